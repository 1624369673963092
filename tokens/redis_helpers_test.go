package tokens

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens/redistest"
)

// waitTimeout bounds every poll; polls end as soon as their condition holds.
const waitTimeout = 10 * time.Second

// waitFor polls cond until it holds, or fails the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stepClock is a synthetic clock that moves one millisecond on every
// reading, so that records created in a row have distinct, ordered times.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// storeEnv is a store on its own redis-server.
type storeEnv struct {
	srv   *redistest.Server
	rdb   *redis.Client
	ring  *KeyRing
	store *Store
}

func newStoreEnv(t *testing.T) *storeEnv {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	return &storeEnv{srv: srv, rdb: rdb, ring: testRing(t, testKey(1)), store: newTestStore(rdb)}
}

func newTestStore(rdb redis.UniversalClient) *Store {
	s := NewStore(rdb, NewPublisher(rdb))
	s.now = (&stepClock{t: t0}).Now
	return s
}

// create stores a new link of owner on device, with edit applied first.
func create(t testing.TB, s *Store, ring *KeyRing, owner, device string, edit func(*Link)) *Link {
	t.Helper()
	l := &Link{
		Owner:       owner,
		Device:      device,
		Kind:        KindDevice,
		Name:        "front door",
		Permissions: Permissions{Control: []string{"lock/open"}, View: []string{"lock/state"}},
	}
	if edit != nil {
		edit(l)
	}
	if err := s.Create(t.Context(), ring, l); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return l
}

// feedEvents returns the feed stream's entries as events, oldest first,
// without their publish times (checked to be set).
func feedEvents(t testing.TB, rdb redis.UniversalClient) []Event {
	t.Helper()
	msgs, err := rdb.XRange(t.Context(), feedStreamKey, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for _, m := range msgs {
		e := parseEvent(m)
		if e.At.IsZero() {
			t.Errorf("feed entry %s has no publish time", m.ID)
		}
		e.At = time.Time{}
		out = append(out, e)
	}
	return out
}

// commandCalls returns how many times the server has run cmd (lower case),
// from INFO commandstats.
func commandCalls(t testing.TB, rdb *redis.Client, cmd string) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "cmdstat_" + cmd + ":calls="
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			n, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			if err != nil {
				t.Fatalf("INFO commandstats: %q: %v", line, err)
			}
			return n
		}
	}
	return 0
}

// recorder is a feed subscriber that keeps what it is told.
type recorder struct {
	mu     sync.Mutex
	events []Event
	resets int
}

func (r *recorder) Event(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) Reset() {
	r.mu.Lock()
	r.resets++
	r.mu.Unlock()
}

func (r *recorder) snapshot() ([]Event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...), r.resets
}

// has reports whether an event of op for link has arrived.
func (r *recorder) has(link LinkID, op Op) bool {
	events, _ := r.snapshot()
	for _, e := range events {
		if e.Link == link && e.Op == op {
			return true
		}
	}
	return false
}

// startFeed runs a feed on rdb with short timeouts until the test ends, and
// waits until it has synced. Subscribers are added before it starts.
func startFeed(t testing.TB, rdb redis.UniversalClient, subs ...Subscriber) *Feed {
	t.Helper()
	f := NewFeed(rdb, FeedConfig{
		Block:   100 * time.Millisecond,
		Backoff: 10 * time.Millisecond,
		Logger:  slog.New(slog.DiscardHandler),
	})
	for _, s := range subs {
		f.Subscribe(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	// Registered after the client's cleanup, so it runs first.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Feed.Run: %v", err)
		}
	})
	select {
	case <-f.Ready():
	case <-time.After(waitTimeout):
		t.Fatal("feed not ready")
	}
	if !f.Healthy() {
		t.Fatal("feed ready but not healthy")
	}
	return f
}

// gate is a go-redis hook that can hold the replies of MGET: the command
// runs on the server, and its caller waits until the gate opens.
type gate struct {
	mu      sync.Mutex
	ch      chan struct{} // nil: open
	arrived atomic.Int64  // MGET replies that reached the gate
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "mget" {
			g.mu.Lock()
			ch := g.ch
			g.mu.Unlock()
			g.arrived.Add(1)
			if ch != nil {
				<-ch
			}
		}
		return err
	}
}

// goroutinesIn counts the goroutines whose stacks contain every one of
// frames.
func goroutinesIn(frames ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		all := true
		for _, f := range frames {
			all = all && strings.Contains(g, f)
		}
		if all {
			count++
		}
	}
	return count
}
