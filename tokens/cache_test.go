package tokens

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens/redistest"
)

// cacheEnv is a cache over a store on its own redis-server, with a running
// feed. The cache's store reads through a client with a gate on MGET; the
// writer store and the feed use plain clients.
type cacheEnv struct {
	storeEnv
	gate   *gate
	feed   *Feed
	rec    *recorder // subscribed after the cache: when it has an event, so has the cache
	cache  *Cache
	writer *Store
}

func newCacheEnv(t *testing.T, cfg CacheConfig) *cacheEnv {
	t.Helper()
	e := &cacheEnv{storeEnv: *newStoreEnv(t), gate: &gate{}, rec: &recorder{}}
	gated := redis.NewClient(&redis.Options{Addr: e.srv.Addr})
	t.Cleanup(func() { gated.Close() })
	gated.AddHook(e.gate)
	e.writer = e.store
	e.store = newTestStore(gated)
	e.feed = startFeed(t, e.rdb)
	e.cache = NewCache(e.store, e.feed, cfg)
	e.feed.Subscribe(e.rec)
	return e
}

// create makes a link through the writer and waits until its created
// event has reached the cache: the event invalidates the id, and arriving
// after a Get it would drop a freshly cached entry.
func (e *cacheEnv) create(t testing.TB, edit func(*Link)) *Link {
	t.Helper()
	l := create(t, e.writer, e.ring, "alice", "dev-1", edit)
	waitFor(t, "the created event", func() bool { return e.rec.has(l.ID, OpCreated) })
	return l
}

// get is Cache.Get that must succeed.
func (e *cacheEnv) get(t testing.TB, id LinkID) *Link {
	t.Helper()
	l, err := e.cache.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("cache.Get: %v", err)
	}
	return l
}

func (e *cacheEnv) mgets(t testing.TB) int64 { return commandCalls(t, e.rdb, "mget") }

func TestCacheHitSkipsRedis(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, CacheConfig{})
	l := e.create(t, nil)

	before := e.mgets(t)
	first := e.get(t, l.ID)
	for range 999 {
		if got := e.get(t, l.ID); got != first {
			t.Fatal("a hit returned another record than the cached one")
		}
	}
	if n := e.mgets(t) - before; n > 1 {
		t.Fatalf("1000 Gets of one link ran %d MGETs, want at most 1", n)
	}
	if h, m := e.cache.Stats().Hits.Load(), e.cache.Stats().Misses.Load(); h != 999 || m != 1 {
		t.Fatalf("hits %d, misses %d; want 999 and 1", h, m)
	}
	sameRecord(t, first, l)
}

// TestCacheSharedMiss: 100 concurrent misses of one link cost one MGET.
// The reply of the first MGET is held until all 100 callers are waiting in
// the cache, so that none of them can come late and miss again.
func TestCacheSharedMiss(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, CacheConfig{})
	l := e.create(t, nil)
	const callers = 100
	before := e.mgets(t)
	e.gate.close()
	results := make(chan *Link, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			got, err := e.cache.Get(t.Context(), l.ID)
			if err != nil {
				t.Error(err)
			}
			results <- got
		})
	}
	waitFor(t, "all callers to wait for one load", func() bool {
		return e.gate.arrived.Load() >= 1 &&
			goroutinesIn("TestCacheSharedMiss", "singleflight.(*Group).Do(") == callers
	})
	if n := e.gate.arrived.Load(); n != 1 {
		t.Fatalf("%d MGET replies held, want 1", n)
	}
	e.gate.open()
	wg.Wait()
	close(results)
	var first *Link
	for got := range results {
		if first == nil {
			first = got
		}
		if got != first {
			t.Fatal("callers got different records from one load")
		}
	}
	if n := e.mgets(t) - before; n != 1 {
		t.Fatalf("%d concurrent misses ran %d MGETs, want 1", callers, n)
	}
	if e.get(t, l.ID) != first {
		t.Fatal("the shared load was not cached")
	}
}

func TestCacheInvalidation(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, CacheConfig{})
	ctx := t.Context()
	l := e.create(t, nil)
	if got := e.get(t, l.ID); got.Name != "front door" {
		t.Fatalf("Name = %q", got.Name)
	}

	if _, err := e.writer.Update(ctx, "alice", l.ID, OpDisabled, func(l *Link) error {
		l.Status = StatusDisabled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache to see the update", func() bool { return e.get(t, l.ID).Status == StatusDisabled })

	// A use that uses the link up is published too.
	used := e.create(t, func(l *Link) { l.MaxUses = 1 })
	if got := e.get(t, used.ID); got.Check(t0) != nil {
		t.Fatalf("fresh link: %v", got.Check(t0))
	}
	if _, err := e.writer.Use(ctx, used, Access{Event: "session"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache to see the use", func() bool { return e.get(t, used.ID).Check(t0) == ErrUsedUp })

	if err := e.writer.Delete(ctx, "alice", l.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache to see the delete", func() bool {
		_, err := e.cache.Get(ctx, l.ID)
		return err == ErrNotFound
	})
}

func TestCacheNotFound(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, CacheConfig{})
	id := NewLinkID()
	if _, err := e.cache.Get(t.Context(), id); err != ErrNotFound {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
	before := e.mgets(t)
	for range 100 {
		if _, err := e.cache.Get(t.Context(), id); err != ErrNotFound {
			t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
		}
	}
	if n := e.mgets(t) - before; n != 0 {
		t.Fatalf("a cached not-found ran %d MGETs", n)
	}
	if e.cache.Len() != 1 {
		t.Fatalf("Len = %d, want 1", e.cache.Len())
	}
}

// TestCacheStaleLoad: a record read before an invalidation must not be
// cached after it.
func TestCacheStaleLoad(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, CacheConfig{})
	l := e.create(t, nil)
	e.gate.close()
	done := make(chan *Link, 1)
	go func() {
		got, err := e.cache.Get(t.Context(), l.ID)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	waitFor(t, "the load to read the old record", func() bool { return e.gate.arrived.Load() == 1 })
	if _, err := e.writer.Update(t.Context(), "alice", l.ID, "", func(l *Link) error { l.Name = "new"; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the update event", func() bool { return e.rec.has(l.ID, OpUpdated) })
	e.gate.open()
	if got := <-done; got.Name != "front door" {
		t.Fatalf("the held load returned %q; want the record it read", got.Name)
	}
	if got := e.get(t, l.ID); got.Name != "new" {
		t.Fatalf("after the invalidation Get = %q, want new: a stale load was cached", got.Name)
	}
}

// TestCacheBypass: while the feed cannot follow the stream, the cache
// cannot know what changed, so every Get reads Redis.
func TestCacheBypass(t *testing.T) {
	t.Parallel()
	data := redistest.Start(t)
	feedSrv := redistest.Start(t)
	feedRDB := feedSrv.Client(t)
	// Few retries: one Get below runs while Redis is down.
	rdb := redis.NewClient(&redis.Options{Addr: data.Addr, MaxRetries: 1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	ring := testRing(t, testKey(1))
	store := NewStore(rdb, NewPublisher(feedRDB))
	feed := startFeed(t, feedRDB)
	cache := NewCache(store, feed, CacheConfig{})
	rec := &recorder{}
	feed.Subscribe(rec)
	l := create(t, store, ring, "alice", "dev-1", nil)
	waitFor(t, "the created event", func() bool { return rec.has(l.ID, OpCreated) })
	mgets := func() int64 { return commandCalls(t, rdb, "mget") }

	if _, err := cache.Get(t.Context(), l.ID); err != nil {
		t.Fatal(err)
	}
	before := mgets()
	if _, err := cache.Get(t.Context(), l.ID); err != nil || mgets() != before {
		t.Fatalf("warm Get while healthy: %v, %d MGETs", err, mgets()-before)
	}

	feedSrv.Stop(t)
	waitFor(t, "the feed to turn unhealthy", func() bool { return !feed.Healthy() })
	// Change the record behind the cache's back, as a writer whose publish
	// cannot reach the feed would.
	changed := *l
	changed.Name = "changed"
	data2, _ := json.Marshal(&changed)
	if err := rdb.Set(t.Context(), linkKey(l.ID), data2, 0).Err(); err != nil {
		t.Fatal(err)
	}
	before = mgets()
	for range 5 {
		got, err := cache.Get(t.Context(), l.ID)
		if err != nil || got.Name != "changed" {
			t.Fatalf("Get while the feed is down = %v, %v; want the record in Redis", got, err)
		}
	}
	if n := mgets() - before; n != 5 {
		t.Fatalf("5 Gets while the feed is down ran %d MGETs, want 5", n)
	}

	// Redis itself down too: the cache says unavailable, not not-found.
	data.Kill(t)
	if _, err := cache.Get(t.Context(), l.ID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get with Redis down = %v, want ErrUnavailable", err)
	}
	data.Restart(t) // empty after a kill
	feedSrv.Restart(t)
	waitFor(t, "the feed to turn healthy", feed.Healthy)
	if _, err := cache.Get(t.Context(), l.ID); err != ErrNotFound {
		t.Fatalf("Get after Redis lost its data = %v, want ErrNotFound", err)
	}
}

// TestCacheMaxAge: an entry older than MaxAge is read again even without an
// invalidation.
func TestCacheMaxAge(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newCacheEnv(t, CacheConfig{MaxAge: time.Minute, Now: clock})
	l := e.create(t, nil)
	e.get(t, l.ID)
	before := e.mgets(t)
	mu.Lock()
	now = now.Add(59 * time.Second)
	mu.Unlock()
	e.get(t, l.ID)
	if n := e.mgets(t) - before; n != 0 {
		t.Fatalf("an entry younger than MaxAge ran %d MGETs", n)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	e.get(t, l.ID)
	e.get(t, l.ID)
	if n := e.mgets(t) - before; n != 1 {
		t.Fatalf("an entry of MaxAge ran %d MGETs, want 1", n)
	}
}

func TestCacheMaxEntries(t *testing.T) {
	t.Parallel()
	e := newCacheEnv(t, CacheConfig{MaxEntries: 10})
	for range 50 {
		if _, err := e.cache.Get(t.Context(), NewLinkID()); err != ErrNotFound {
			t.Fatal(err)
		}
		if n := e.cache.Len(); n > 10 {
			t.Fatalf("Len = %d, want at most MaxEntries (10)", n)
		}
	}
	e.cache.Flush()
	if n := e.cache.Len(); n != 0 {
		t.Fatalf("Len after Flush = %d", n)
	}
}

// TestCluster runs the store, feed and cache on a three-master Redis
// Cluster: every multi-key command and script must stay in one slot.
func TestCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	cc := cl.Client(t)
	ctx := t.Context()
	ring := testRing(t, testKey(1))
	store := newTestStore(cc)
	feed := startFeed(t, cc)
	cache := NewCache(store, feed, CacheConfig{})
	rec := &recorder{}
	feed.Subscribe(rec)

	var links []*Link
	for range 5 { // ids spread over the slots
		links = append(links, create(t, store, ring, "alice", "dev-1", func(l *Link) { l.MaxUses = 2 }))
	}
	for _, l := range links {
		got, err := cache.Get(ctx, l.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameRecord(t, got, l)
		if _, err := store.Use(ctx, got, Access{Event: "session"}); err != nil {
			t.Fatal(err) // the cached record is current
		}
		renamed, err := store.Update(ctx, "alice", l.ID, "", func(l *Link) error { l.Name = "renamed"; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Use(ctx, l, Access{Event: "session"}); err != ErrStale {
			t.Fatalf("Use of the record before the update = %v, want ErrStale", err)
		}
		l = renamed
		if _, err := store.Use(ctx, l, Access{Event: "session"}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Use(ctx, l, Access{Event: "session"}); err != ErrUsedUp {
			t.Fatalf("3rd Use = %v, want ErrUsedUp", err)
		}
		waitFor(t, "the cache to see the update", func() bool {
			got, err := cache.Get(ctx, l.ID)
			return err == nil && got.Name == "renamed" && got.Uses == 2
		})
		if log, err := store.AccessLog(ctx, "alice", l.ID, 10); err != nil || len(log) != 2 {
			t.Fatalf("AccessLog = %d entries, %v", len(log), err)
		}
	}
	items, next, err := store.List(ctx, "alice", "", 3)
	if err != nil || len(items) != 3 || next == "" {
		t.Fatalf("List = %d items, next %q, %v", len(items), next, err)
	}
	if ids, err := store.LinksOfDevice(ctx, "dev-1"); err != nil || len(ids) != 5 {
		t.Fatalf("LinksOfDevice = %v, %v", ids, err)
	}
	for _, l := range links {
		if err := store.Delete(ctx, "alice", l.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the cache to see the delete", func() bool {
			_, err := cache.Get(ctx, l.ID)
			return err == ErrNotFound
		})
	}

	// A gap on the cluster flushes the cache too.
	if err := cc.Incr(ctx, feedSeqKey).Err(); err != nil {
		t.Fatal(err)
	}
	if err := store.PublishDevice(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	// rec follows the cache: once it has the event, the cache had the reset.
	waitFor(t, "the event after the gap", func() bool { return rec.has(LinkID{}, OpDevice) })
	if gaps := feed.Stats().Gaps.Load(); gaps != 1 {
		t.Fatalf("Gaps = %d, want 1", gaps)
	}
	if n := cache.Len(); n != 0 {
		t.Fatalf("Len after a gap = %d, want 0", n)
	}
}
