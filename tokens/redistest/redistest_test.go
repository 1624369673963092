package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestMain fails the package if goroutines outlive the tests: process
// waiters must end with their processes, and clients be closed on cleanup.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	deadline := time.Now().Add(2 * time.Second) // go-redis may need a moment
	for code == 0 && runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "FAIL: leaked goroutines")
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			code = 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Exit(code)
}

func TestServer(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(t.Context(), "k").Result(); got != "v" || err != nil {
		t.Fatalf("GET k = %q, %v; want v", got, err)
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil || opt.Addr != s.Addr || opt.DB != 0 {
		t.Fatalf("ParseURL(%q) = %+v, %v", s.URL(), opt, err)
	}
}

func TestStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	if err := c.Set(t.Context(), "kept", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	assertDown(t, s)
	s.Restart(t)
	if got, err := c.Get(t.Context(), "kept").Result(); got != "v" || err != nil {
		t.Fatalf("GET kept after Restart = %q, %v; want v", got, err)
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	s := Start(t)
	c := s.Client(t)
	if err := c.Set(t.Context(), "lost", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill(t)
	assertDown(t, s)
	s.Kill(t) // no-op on a dead server
	s.Restart(t)
	if err := c.Get(t.Context(), "lost").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET lost after Kill and Restart: err = %v, want redis.Nil", err)
	}
}

// assertDown fails the test unless the port of s is closed. It dials
// directly, as go-redis would log failures and keep redialing.
func assertDown(t *testing.T, s *Server) {
	t.Helper()
	if conn, err := net.Dial("tcp", s.Addr); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections", s.Addr)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	cc := c.Client(t)
	ctx := t.Context()

	for i := range 100 {
		if err := cc.Set(ctx, fmt.Sprint("key", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if got, err := cc.Get(ctx, fmt.Sprint("key", i)).Int(); got != i || err != nil {
			t.Fatalf("GET key%d = %d, %v", i, got, err)
		}
	}
	// The keys are spread over the slots, so every master holds some.
	var masters atomic.Int32
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		masters.Add(1)
		if n, err := m.DBSize(ctx).Result(); err != nil || n == 0 {
			return fmt.Errorf("master %s holds %d keys, %v", m.Options().Addr, n, err)
		}
		return nil
	})
	if err != nil || masters.Load() != 3 {
		t.Fatalf("ForEachMaster: %d masters, %v", masters.Load(), err)
	}

	// A hash tag maps keys to one slot, so multi-key commands work on them.
	a, err := cc.ClusterKeySlot(ctx, "{x}a").Result()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := cc.ClusterKeySlot(ctx, "{x}b").Result(); a != b || err != nil {
		t.Fatalf("CLUSTER KEYSLOT: {x}a in %d, {x}b in %d, %v", a, b, err)
	}
	if err := cc.MSet(ctx, "{x}a", 1, "{x}b", 2).Err(); err != nil {
		t.Fatalf("MSET of one hash tag: %v", err)
	}
}

// skipRecorder is a testing.TB that records how Start gave up instead of
// ending the test.
type skipRecorder struct {
	testing.TB
	how, msg string
}

func (r *skipRecorder) Fatalf(format string, args ...any) { r.end("fatal", format, args) }
func (r *skipRecorder) Skipf(format string, args ...any)  { r.end("skip", format, args) }

func (r *skipRecorder) end(how, format string, args []any) {
	r.how, r.msg = how, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestNotInstalled cannot be parallel: it changes the environment.
func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", "")
	for ci, want := range map[string]string{"true": "fatal", "": "skip"} {
		t.Setenv("CI", ci)
		r := &skipRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(r)
		}()
		<-done
		if r.how != want || !strings.Contains(r.msg, "make test") {
			t.Errorf("CI=%q: Start gave up with %s %q, want %s mentioning make test", ci, r.how, r.msg, want)
		}
	}
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t)
	c := s.Client(t)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx, 1, 5*time.Second).Err(); err != nil { // on the replica too
		t.Fatal(err)
	}
	old := s.Primary.Addr
	s.Failover(t)
	if s.Primary.Addr == old {
		t.Fatalf("the primary is still %s after the failover", old)
	}
	// The client finds the new primary; the data written before is there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Set(ctx, "k2", "after", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write through the sentinel after the failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := c.Get(ctx, "k").Result(); got != "before" || err != nil {
		t.Fatalf("GET k = %q, %v after the failover", got, err)
	}
}
