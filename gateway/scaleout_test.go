package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens/redistest"
)

func TestInvalidationAcrossInstances(t *testing.T) {
	t.Parallel()
	testInvalidation(t, redistest.Start(t).Client(t))
}

func TestInvalidationAcrossInstancesCluster(t *testing.T) {
	t.Parallel()
	testInvalidation(t, redistest.StartCluster(t).Client(t))
}

// testInvalidation runs two gateways on one Redis: an owner change made
// through A reaches B's warm cache at once, and a gap in the feed flushes B.
func testInvalidation(t *testing.T, rdb redis.UniversalClient) {
	ring := testRing(t)
	a, b := startGateway(t, rdb, ring), startGateway(t, rdb, ring)
	owner := newTenant(t, a, "owner")
	plug := owner.device(t, plugBody)
	l := owner.link(t, map[string]any{"device": plug.ID, "permissions": map[string]any{"view": []string{"meter/power"}}})
	onB := b.url + "/l/" + l.Token

	// Warm B's cache, and show that it answers from memory.
	want(t, call(t, "GET", onB, "", nil), http.StatusOK)
	hits := b.Cache().Stats().Hits.Load()
	for range 10 {
		want(t, call(t, "GET", onB, "", nil), http.StatusOK)
	}
	if got := b.Cache().Stats().Hits.Load() - hits; got != 10 {
		t.Fatalf("B's cache answered %d of 10 warm opens", got)
	}

	want(t, owner.do(t, "POST", "/links/"+l.ID+"/disable", nil), http.StatusOK)
	took := eventually(t, 100*time.Millisecond, "B refuses the link disabled through A", func() bool {
		return call(t, "GET", onB, "", nil).StatusCode == http.StatusGone
	})
	t.Logf("B refused the disabled link %v after A's answer", took)

	want(t, owner.do(t, "POST", "/links/"+l.ID+"/enable", nil), http.StatusOK)
	eventually(t, 100*time.Millisecond, "B admits the re-enabled link", func() bool {
		return call(t, "GET", onB, "", nil).StatusCode == http.StatusOK
	})

	// A gap: entries that B never read (here: a sequence number skipped, as
	// when the stream is trimmed past B's position). B must flush.
	if b.Cache().Len() == 0 {
		t.Fatal("B's cache is empty before the gap")
	}
	gaps, gapsA, flushes := b.Feed().Stats().Gaps.Load(), a.Feed().Stats().Gaps.Load(), b.Cache().Stats().Flushes.Load()
	if err := rdb.Incr(context.Background(), "lg:{feed}:seq").Err(); err != nil {
		t.Fatal(err)
	}
	owner.link(t, map[string]any{"device": plug.ID}) // any owner write publishes
	eventually(t, 2*time.Second, "B sees the gap", func() bool { return b.Feed().Stats().Gaps.Load() > gaps })
	if b.Cache().Stats().Flushes.Load() <= flushes {
		t.Error("B did not flush its cache on the gap")
	}
	if n := b.Cache().Len(); n != 0 {
		t.Errorf("B's cache holds %d entries after the gap", n)
	}
	eventually(t, 2*time.Second, "A sees the gap too", func() bool { return a.Feed().Stats().Gaps.Load() > gapsA })
	want(t, call(t, "GET", onB, "", nil), http.StatusOK)
}

// TestOpenRefusedBeforeFeed: a link changed in Redis by another instance is
// refused by the session exchange on an instance whose feed has not told
// it yet (here: never, the record is rewritten without a feed event),
// while the side-effect-free page still answers from the cache.
func TestOpenRefusedBeforeFeed(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ring := testRing(t)
	a, b := startGateway(t, rdb, ring), startGateway(t, rdb, ring)
	owner := newTenant(t, a, "owner")
	plug := owner.device(t, plugBody)
	l := owner.link(t, map[string]any{"device": plug.ID, "permissions": map[string]any{"view": []string{"meter/power"}}})
	onB := b.url + "/l/" + l.Token
	want(t, call(t, "POST", onB+"/session", "", nil), http.StatusOK) // warms B's cache

	ctx := context.Background()
	key := "lg:link:{" + l.ID + "}"
	raw, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	rec["status"], rec["version"] = "disabled", rec["version"].(float64)+1
	if raw, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, key, raw, 0).Err(); err != nil {
		t.Fatal(err)
	}

	want(t, call(t, "GET", onB, "", nil), http.StatusOK) // the cache, as the feed left it
	wantError(t, call(t, "POST", onB+"/session", "", nil), http.StatusGone, "disabled")
	want(t, call(t, "GET", onB, "", nil), http.StatusGone) // the refusal refreshed the cache
}
