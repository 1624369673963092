package tokens

import (
	"fmt"
	"testing"
	"time"

	"github.com/linkgate/linkgate/tokens/redistest"
)

func TestFeedOrder(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	pub := NewPublisher(rdb)
	ctx := t.Context()

	// The feed starts at the stream's end: what came before is history,
	// covered by the Reset every subscriber gets on connecting.
	for range 3 {
		if err := pub.Publish(ctx, Event{Link: NewLinkID(), Op: OpCreated}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	f := startFeed(t, rdb, rec)
	if _, resets := rec.snapshot(); resets != 1 {
		t.Fatalf("%d resets on connecting, want 1", resets)
	}

	ops := []Op{OpCreated, OpUpdated, OpDisabled, OpEnabled, OpUsedUp, OpDeleted}
	var want []Event
	for i := range 60 {
		e := Event{Seq: int64(4 + i), Link: NewLinkID(), Op: ops[i%len(ops)]}
		if i%10 == 9 {
			e = Event{Seq: e.Seq, Device: fmt.Sprint("dev-", i), Op: OpDevice}
		}
		e.At = time.Unix(1_700_000_000, int64(i)) // the publish time goes through to the nanosecond
		want = append(want, e)
		e.Seq = 0 // the publisher numbers events
		if err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "60 events", func() bool { ev, _ := rec.snapshot(); return len(ev) >= len(want) })
	got, resets := rec.snapshot()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if resets != 1 || f.Stats().Gaps.Load() != 0 || f.Stats().Events.Load() != 60 || f.Stats().Reconnects.Load() != 0 {
		t.Fatalf("resets %d, stats %+v; want 1 reset, 60 events, no gaps or reconnects", resets, f.Stats())
	}
}

func TestFeedGap(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	pub := NewPublisher(rdb)
	ctx := t.Context()
	rec := &recorder{}
	f := startFeed(t, rdb, rec)

	first, second := NewLinkID(), NewLinkID()
	if err := pub.Publish(ctx, Event{Link: first, Op: OpUpdated}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first event", func() bool { return rec.has(first, OpUpdated) })
	if f.Stats().Gaps.Load() != 0 {
		t.Fatal("gap before any was made")
	}
	// An event that was numbered but never reached the stream: the reader
	// cannot know what it was about.
	if err := rdb.Incr(ctx, feedSeqKey).Err(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, Event{Link: second, Op: OpUpdated}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event after the gap", func() bool { return rec.has(second, OpUpdated) })
	events, resets := rec.snapshot()
	if gaps := f.Stats().Gaps.Load(); gaps != 1 {
		t.Fatalf("Gaps = %d, want 1", gaps)
	}
	if resets != 2 { // on connecting, and for the gap
		t.Fatalf("%d resets, want 2", resets)
	}
	if last := events[len(events)-1]; last.Seq != 3 {
		t.Fatalf("event after the gap has seq %d, want 3", last.Seq)
	}
	// The reader follows the new numbering: no second gap.
	third := NewLinkID()
	if err := pub.Publish(ctx, Event{Link: third, Op: OpDeleted}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next event", func() bool { return rec.has(third, OpDeleted) })
	if gaps := f.Stats().Gaps.Load(); gaps != 1 {
		t.Fatalf("Gaps = %d after a regular event, want 1", gaps)
	}
}

// TestFeedReconnect: the feed is unhealthy while Redis is down, and resets
// its subscribers when it is back, since events may have been missed.
func TestFeedReconnect(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	pub := NewPublisher(rdb)
	rec := &recorder{}
	f := startFeed(t, rdb, rec)
	_, before := rec.snapshot()

	srv.Stop(t)
	waitFor(t, "the feed to turn unhealthy", func() bool { return !f.Healthy() })

	srv.Restart(t)
	waitFor(t, "the feed to turn healthy", f.Healthy)
	if _, resets := rec.snapshot(); resets < before+2 {
		t.Fatalf("%d resets, want at least %d: on losing the stream and on finding it again", resets, before+2)
	}
	if f.Stats().Reconnects.Load() < 1 {
		t.Fatal("Reconnects not counted")
	}

	// Events flow again.
	id := NewLinkID()
	if err := pub.Publish(t.Context(), Event{Link: id, Op: OpDisabled}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an event after the restart", func() bool { return rec.has(id, OpDisabled) })
	if gaps := f.Stats().Gaps.Load(); gaps != 0 {
		t.Fatalf("Gaps = %d: Stop saved the stream, nothing was lost", gaps)
	}
}
