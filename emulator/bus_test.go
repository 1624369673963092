package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens/redistest"
)

// waitTimeout bounds every wait of these tests; none takes that long
// unless something is broken.
const waitTimeout = 10 * time.Second

func newBus(t testing.TB) (*Bus, *redis.Client) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	return NewBus(rdb), rdb
}

// waitFor polls cond until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nextChange returns the next change of w that match accepts, skipping
// the others.
func nextChange(t testing.TB, w *Watcher, what string, match func(Change) bool) Change {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case c, ok := <-w.Changes():
			if !ok {
				t.Fatalf("waiting for %s: Changes closed", what)
			}
			if match(c) {
				return c
			}
			if c.Property == PropertyResync { // a reason for a missed change
				t.Logf("waiting for %s: skipped a resync notice of %s", what, c.Device)
			}
		case <-timeout:
			t.Fatalf("no %s after %v", what, waitTimeout)
		}
	}
}

// changeOf matches a change of device's property; value "" matches any.
func changeOf(device, property, value string) func(Change) bool {
	return func(c Change) bool {
		return c.Device == device && c.Property == property && (value == "" || string(c.Value) == value)
	}
}

// served is a device served in the background.
type served struct {
	cmds chan Command
	stop context.CancelFunc
	done chan error
}

// serve serves device with initial until the test ends or stop is called,
// and waits until it is online.
func serve(t testing.TB, b *Bus, device string, initial map[string]json.RawMessage) *served {
	t.Helper()
	s := startServe(t, b, device, initial)
	waitOnline(t, b, device, true)
	return s
}

// startServe serves device in the background without waiting.
func startServe(t testing.TB, b *Bus, device string, initial map[string]json.RawMessage) *served {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	s := &served{cmds: make(chan Command, 100), stop: stop, done: make(chan error, 1)}
	go func() { s.done <- b.Serve(ctx, device, initial, func(c Command) { s.cmds <- c }) }()
	t.Cleanup(func() {
		stop()
		<-s.done
	})
	return s
}

// end stops the device and returns Serve's result.
func (s *served) end(t testing.TB) error {
	t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("Serve still running %v after its context ended", waitTimeout)
		return nil
	}
}

func (s *served) command(t testing.TB) Command {
	t.Helper()
	select {
	case c := <-s.cmds:
		return c
	case <-time.After(waitTimeout):
		t.Fatalf("no command after %v", waitTimeout)
		return Command{}
	}
}

func waitOnline(t testing.TB, b *Bus, device string, want bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s online=%v", device, want), func() bool {
		_, online, err := b.Snapshot(context.Background(), device)
		return err == nil && online == want
	})
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestBusRoundTrip(t *testing.T) {
	b, rdb := newBus(t)
	testRoundTrip(t, b, rdb)
}

// TestBusMiniredis runs the round trip on miniredis, the embedded Redis of
// the demo mode.
func TestBusMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	testRoundTrip(t, NewBus(rdb), rdb)
}

func testRoundTrip(t *testing.T, b *Bus, rdb redis.UniversalClient) {
	ctx := t.Context()
	const dev = "plug-1"
	w := b.Watch(ctx)
	defer w.Close()
	if err := w.Add(ctx, dev); err != nil {
		t.Fatalf("Add: %v", err)
	}

	initial := map[string]json.RawMessage{"switch/on": raw(`false`), "meter/power": raw(` 0 `)}
	s := serve(t, b, dev, initial)

	// Going online publishes every property, then $state.
	for _, want := range []struct{ prop, value string }{
		{"meter/power", `0`}, {"switch/on", `false`}, {PropertyState, `"ready"`},
	} {
		c := nextChange(t, w, want.prop, func(Change) bool { return true })
		if c.Device != dev || c.Property != want.prop || string(c.Value) != want.value || c.TS.IsZero() {
			t.Fatalf("change = %+v, want %s = %s of %s", c, want.prop, want.value, dev)
		}
	}
	state, online, err := b.Snapshot(ctx, dev)
	if err != nil || !online {
		t.Fatalf("Snapshot = %v, %v, %v; want online", state, online, err)
	}
	if len(state) != 2 || string(state["switch/on"]) != `false` || string(state["meter/power"]) != `0` {
		t.Fatalf("Snapshot state = %s, want the initial state without $state", state)
	}

	cmd := Command{ID: "c1", Property: "switch/on", Value: raw(`true`), Session: "s1"}
	if err := b.Send(ctx, dev, cmd); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := s.command(t); got.ID != cmd.ID || got.Property != cmd.Property ||
		string(got.Value) != `true` || got.Session != cmd.Session {
		t.Fatalf("handled %+v, want %+v", got, cmd)
	}

	ts := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := b.Publish(ctx, dev, Change{Property: "switch/on", Value: raw(`true`), TS: ts},
		Change{Property: "meter/power", Value: raw(`47.5`)}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c := nextChange(t, w, "switch/on", func(Change) bool { return true })
	if c.Device != dev || c.Property != "switch/on" || string(c.Value) != `true` || !c.TS.Equal(ts) {
		t.Fatalf("change = %+v, want switch/on = true at %v", c, ts)
	}
	if c := nextChange(t, w, "meter/power", func(Change) bool { return true }); string(c.Value) != `47.5` || c.TS.IsZero() {
		t.Fatalf("change = %+v, want meter/power = 47.5, now", c)
	}
	state, _, _ = b.Snapshot(ctx, dev)
	if string(state["switch/on"]) != `true` || string(state["meter/power"]) != `47.5` {
		t.Fatalf("Snapshot state = %s after Publish", state)
	}

	if err := s.end(t); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	nextChange(t, w, "$state disconnected", changeOf(dev, PropertyState, `"disconnected"`))
	if state, online, err := b.Snapshot(ctx, dev); err != nil || online || len(state) != 2 {
		t.Fatalf("Snapshot after Serve = %s, %v, %v; want the last state, offline", state, online, err)
	}
	if st, err := rdb.HGet(ctx, stateKey(dev), "$state").Result(); err != nil || st != StateDisconnected {
		t.Fatalf("$state = %q, %v; want %q", st, err, StateDisconnected)
	}
}

func TestBusRejectsBadInput(t *testing.T) {
	b, _ := newBus(t)
	ctx := t.Context()
	for _, id := range []string{"", "a}b", "{x}", "UPPER", strings.Repeat("a", 65)} {
		if _, _, err := b.Snapshot(ctx, id); err == nil {
			t.Errorf("Snapshot(%q) succeeded", id)
		}
		if err := b.Send(ctx, id, Command{Property: "a/b", Value: raw(`1`)}); err == nil {
			t.Errorf("Send(%q) succeeded", id)
		}
	}
	for _, cmd := range []Command{{Value: raw(`1`)}, {Property: "a/b"}, {Property: "a/b", Value: raw(`{`)}} {
		if err := b.Send(ctx, "dev", cmd); err == nil {
			t.Errorf("Send(%+v) succeeded", cmd)
		}
	}
	for _, c := range []Change{
		{Property: "$state", Value: raw(`"ready"`)}, // only Serve sets it
		{Property: "nodeonly", Value: raw(`1`)},
		{Property: "a/b", Value: raw(`nope`)},
		{Property: "a/b", Value: raw(`"` + strings.Repeat("x", maxMessage) + `"`)},
	} {
		if err := b.Publish(ctx, "dev", c); err == nil {
			t.Errorf("Publish(%s = %.20s) succeeded", c.Property, c.Value)
		}
	}
}

func TestServeDropsMalformedCommands(t *testing.T) {
	b, rdb := newBus(t)
	ctx := t.Context()
	s := serve(t, b, "dev", nil)
	for _, msg := range []string{
		`not json`,
		`{"id":"c1","value":true}`,
		`{"id":"c2","property":"a/b"}`,
		`{"id":"c3","property":"a/b","value":"` + strings.Repeat("x", maxMessage) + `"}`,
		`{"id":"ok","property":"a/b","value":1}`,
	} {
		if err := rdb.Publish(ctx, setChannel("dev"), msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A channel delivers in order: when the good one arrives, the others
	// were dropped.
	if c := s.command(t); c.ID != "ok" {
		t.Fatalf("handled %+v, want only the well-formed command", c)
	}
	if n := b.Stats().CommandsDropped; n != 4 {
		t.Fatalf("CommandsDropped = %d, want 4", n)
	}
}

func TestWatcherManyDevices(t *testing.T) {
	b, rdb := newBus(t)
	ctx := t.Context()
	w := b.Watch(ctx)
	defer w.Close()
	const n = 60
	devs := make([]string, n)
	var wg sync.WaitGroup
	for i := range devs {
		devs[i] = fmt.Sprintf("dev-%d", i)
		wg.Go(func() {
			if err := w.Add(ctx, devs[i]); err != nil {
				t.Errorf("Add(%s): %v", devs[i], err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	publish := func(dev, value string) {
		t.Helper()
		if err := b.Publish(ctx, dev, Change{Property: "n/p", Value: raw(value)}); err != nil {
			t.Fatalf("Publish(%s): %v", dev, err)
		}
	}
	for _, d := range devs {
		publish(d, `1`)
	}
	seen := make(map[string]bool)
	for range n {
		c := nextChange(t, w, "a change", func(Change) bool { return true })
		if seen[c.Device] || !strings.HasPrefix(c.Device, "dev-") || string(c.Value) != `1` {
			t.Fatalf("unexpected change %+v", c)
		}
		seen[c.Device] = true
	}

	// Adds are counted: dev-0 is watched until removed twice.
	if err := w.Add(ctx, "dev-0"); err != nil {
		t.Fatal(err)
	}
	for i, d := range devs {
		if i%2 == 0 {
			if err := w.Remove(ctx, d); err != nil {
				t.Fatalf("Remove(%s): %v", d, err)
			}
		}
	}
	if err := w.Remove(ctx, "no-such-device"); err != nil {
		t.Fatalf("Remove of a device not watched: %v", err)
	}
	for _, d := range devs {
		publish(d, `2`)
	}
	publish("dev-1", `"end"`)
	// Messages on one connection arrive in publish order: by the end
	// marker, every change still watched has arrived.
	got := make(map[string]bool)
	for {
		c := nextChange(t, w, "a change", func(Change) bool { return true })
		if string(c.Value) == `"end"` {
			break
		}
		got[c.Device] = true
	}
	for i, d := range devs {
		if want := i%2 == 1 || i == 0; got[d] != want {
			t.Errorf("change of %s delivered: %v, want %v", d, got[d], want)
		}
	}
	// An event that is not a change is dropped and counted.
	if err := rdb.Publish(ctx, evtChannel("dev-1"), `{"value":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	publish("dev-1", `3`)
	if c := nextChange(t, w, "a change", func(Change) bool { return true }); string(c.Value) != `3` {
		t.Fatalf("change = %+v, want the malformed event dropped", c)
	}
	if got := b.Stats().EventsMalformed; got != 1 {
		t.Fatalf("EventsMalformed = %d, want 1", got)
	}
}

func TestWatcherSlowConsumer(t *testing.T) {
	b, _ := newBus(t)
	ctx := t.Context()
	w := b.Watch(ctx)
	defer w.Close()
	if err := w.Add(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	// Nobody reads Changes while more than its buffer is published.
	const published = watchBuffer + 100
	batch := make([]Change, published)
	for i := range batch {
		batch[i] = Change{Property: "n/p", Value: raw(fmt.Sprint(i))}
	}
	if err := b.Publish(ctx, "slow", batch...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dropped changes", func() bool { return b.Stats().ChangesDropped == published-watchBuffer })

	// The buffered changes come first, then the resync notice, then what
	// is new.
	for i := range watchBuffer {
		c := <-w.Changes()
		if c.Property != "n/p" || string(c.Value) != fmt.Sprint(i) {
			t.Fatalf("change %d = %+v", i, c)
		}
	}
	if err := b.Publish(ctx, "slow", Change{Property: "n/p", Value: raw(`"new"`)}); err != nil {
		t.Fatal(err)
	}
	if c := <-w.Changes(); c.Device != "slow" || c.Property != PropertyResync {
		t.Fatalf("change = %+v, want the resync notice", c)
	}
	if c := nextChange(t, w, "the new change", func(Change) bool { return true }); string(c.Value) != `"new"` {
		t.Fatalf("change = %+v, want the new one", c)
	}
}

func TestWatcherResyncsAfterReconnect(t *testing.T) {
	b, rdb := newBus(t)
	ctx := t.Context()
	w := b.Watch(ctx)
	defer w.Close()
	if err := w.Add(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	nextChange(t, w, "a resync notice", changeOf("dev", PropertyResync, ""))
	// Publish until a change arrives: the resubscription may lag the
	// notice by nothing, but the test must not rely on it.
	waitFor(t, "a change after the reconnection", func() bool {
		if err := b.Publish(ctx, "dev", Change{Property: "n/p", Value: raw(`1`)}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-w.Changes():
			return c.Property == "n/p"
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
}

func TestWatcherCloses(t *testing.T) {
	b, _ := newBus(t)
	ctx, cancel := context.WithCancel(t.Context())
	w := b.Watch(ctx)
	if err := w.Add(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-w.Changes():
		if ok {
			t.Fatal("a change after the Watcher's context ended")
		}
	case <-time.After(waitTimeout):
		t.Fatal("Changes still open after the Watcher's context ended")
	}
	if err := w.Add(t.Context(), "dev2"); err == nil {
		t.Fatal("Add on a closed Watcher succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after the context ended: %v", err)
	}
}

// TestServeLease checks that one process at a time serves a device: a
// second Serve waits as a standby, takes over at a clean stop, and a Serve
// whose key was taken stops.
func TestServeLease(t *testing.T) {
	b, rdb := newBus(t)
	b.aliveTTL = 300 * time.Millisecond
	ctx := t.Context()
	w := b.Watch(ctx)
	defer w.Close()
	if err := w.Add(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	first := serve(t, b, "dev", map[string]json.RawMessage{"n/p": raw(`"first"`)})
	// The key expires unless refreshed, so a dead process's device goes
	// offline.
	if ttl, err := rdb.PTTL(ctx, aliveKey("dev")).Result(); err != nil || ttl <= 0 || ttl > b.aliveTTL {
		t.Fatalf("alive key TTL = %v, %v; want up to %v", ttl, err, b.aliveTTL)
	}
	second := startServe(t, b, "dev", map[string]json.RawMessage{"n/p": raw(`"second"`)})

	// Longer than the TTL: the first keeps its key fresh, and only it
	// gets commands.
	time.Sleep(2 * b.aliveTTL)
	if err := b.Send(ctx, "dev", Command{ID: "1", Property: "n/p", Value: raw(`1`)}); err != nil {
		t.Fatal(err)
	}
	if c := first.command(t); c.ID != "1" {
		t.Fatalf("first handled %+v", c)
	}
	select {
	case c := <-second.cmds:
		t.Fatalf("the standby handled %+v", c)
	default:
	}

	if err := first.end(t); err != nil {
		t.Fatal(err)
	}
	nextChange(t, w, "the second's state", changeOf("dev", "n/p", `"second"`))
	nextChange(t, w, "the second ready", changeOf("dev", PropertyState, `"ready"`))
	if err := b.Send(ctx, "dev", Command{ID: "2", Property: "n/p", Value: raw(`2`)}); err != nil {
		t.Fatal(err)
	}
	if c := second.command(t); c.ID != "2" {
		t.Fatalf("second handled %+v", c)
	}

	// Its key vanishes, as after a Redis restart: it takes it again.
	if err := rdb.Del(ctx, aliveKey("dev")).Err(); err != nil {
		t.Fatal(err)
	}
	nextChange(t, w, "ready again", changeOf("dev", PropertyState, `"ready"`))
	waitOnline(t, b, "dev", true)

	// Another process takes the key: the second stops and leaves it be.
	if err := rdb.Set(ctx, aliveKey("dev"), "intruder", 0).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second.done:
		second.done <- err
		if !errors.Is(err, ErrServedElsewhere) {
			t.Fatalf("Serve = %v, want ErrServedElsewhere", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve goes on after losing its key")
	}
	if v, err := rdb.Get(ctx, aliveKey("dev")).Result(); v != "intruder" {
		t.Fatalf("alive key = %q, %v; want the intruder's", v, err)
	}
}

// TestCluster runs the bus and a fleet on one Redis Cluster.
func TestCluster(t *testing.T) {
	cc := redistest.StartCluster(t).Client(t)
	waitClusterBus(t, cc)
	t.Run("bus", func(t *testing.T) { testBusCluster(t, cc) })
	t.Run("fleet", func(t *testing.T) { testFleetCluster(t, cc) })
}

// waitClusterBus waits until a PUBLISH on any master reaches a subscriber
// on every master. A young cluster, on a busy machine, may still drop the
// messages its nodes forward to each other.
func waitClusterBus(t *testing.T, cc *redis.ClusterClient) {
	t.Helper()
	ctx := t.Context()
	var mu sync.Mutex
	var masters []*redis.Client
	if err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	subs := make([]*redis.PubSub, len(masters))
	for i, c := range masters {
		subs[i] = c.Subscribe(ctx, "probe")
		defer subs[i].Close()
		if _, err := subs[i].Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the cluster bus", func() bool {
		for i, c := range masters {
			if err := c.Publish(ctx, "probe", i).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for _, sub := range subs {
			seen := make(map[string]bool)
			for len(seen) < len(masters) {
				m, err := sub.ReceiveTimeout(ctx, 100*time.Millisecond)
				if err != nil {
					return false // a lost probe: try again
				}
				if m, ok := m.(*redis.Message); ok {
					seen[m.Payload] = true
				}
			}
		}
		return true
	})
}

// testBusCluster checks that a device's keys share a slot, and that the
// scripts' PUBLISH reaches a subscriber on another node.
func testBusCluster(t *testing.T, cc *redis.ClusterClient) {
	b := NewBus(cc)
	ctx := t.Context()
	w := b.Watch(ctx)
	defer w.Close()
	// Ids in the slots of each of the three masters, and more.
	devs := []string{"a", "b", "c", "d", "e", "f"}
	for _, d := range devs {
		if err := w.Add(ctx, d); err != nil {
			t.Fatalf("Add(%s): %v", d, err)
		}
	}
	for _, d := range devs {
		s := serve(t, b, d, map[string]json.RawMessage{"n/p": raw(`0`)})
		nextChange(t, w, d+" ready", changeOf(d, PropertyState, `"ready"`))
		if err := b.Send(ctx, d, Command{ID: d, Property: "n/p", Value: raw(`1`)}); err != nil {
			t.Fatalf("Send(%s): %v", d, err)
		}
		if c := s.command(t); c.ID != d {
			t.Fatalf("%s handled %+v", d, c)
		}
		if err := b.Publish(ctx, d, Change{Property: "n/p", Value: raw(`1`)}); err != nil {
			t.Fatalf("Publish(%s): %v", d, err)
		}
		nextChange(t, w, d+" n/p = 1", changeOf(d, "n/p", `1`))
		state, online, err := b.Snapshot(ctx, d)
		if err != nil || !online || string(state["n/p"]) != `1` {
			t.Fatalf("Snapshot(%s) = %s, %v, %v", d, state, online, err)
		}
		if err := s.end(t); err != nil {
			t.Fatalf("Serve(%s) = %v", d, err)
		}
		nextChange(t, w, d+" disconnected", changeOf(d, PropertyState, `"disconnected"`))
	}
}

// BenchmarkBusRoundTrip measures a command's way from a gateway to a
// device and its echo back: Send, the device's handle, Publish, the
// Watcher.
func BenchmarkBusRoundTrip(b *testing.B) {
	bus, _ := newBus(b)
	ctx := b.Context()
	w := bus.Watch(ctx)
	defer w.Close()
	if err := w.Add(ctx, "dev"); err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bus.Serve(sctx, "dev", map[string]json.RawMessage{"n/p": raw(`0`)}, func(c Command) {
			if err := bus.Publish(sctx, "dev", Change{Property: c.Property, Value: c.Value}); err != nil && sctx.Err() == nil {
				b.Error(err)
			}
		})
	}()
	defer func() {
		stop()
		<-done
	}()
	nextChange(b, w, "ready", changeOf("dev", PropertyState, `"ready"`))
	cmd := Command{ID: "c", Property: "n/p", Value: raw(`1`), Session: "s"}
	for b.Loop() {
		if err := bus.Send(ctx, "dev", cmd); err != nil {
			b.Fatal(err)
		}
		if c := <-w.Changes(); c.Property != "n/p" {
			b.Fatalf("change = %+v", c)
		}
	}
}
