package loadtest

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// funcScenario is a Scenario whose workers call do.
type funcScenario struct {
	do func(ctx context.Context, op Op) error
}

func (s funcScenario) Name() string { return "func" }
func (s funcScenario) Worker(context.Context, int) (Worker, error) {
	return funcWorker(s.do), nil
}

type funcWorker func(ctx context.Context, op Op) error

func (f funcWorker) Do(ctx context.Context, op Op) error { return f(ctx, op) }
func (f funcWorker) Close() error                        { return nil }

func TestClosedCount(t *testing.T) {
	var n atomic.Int64
	r, err := Run(t.Context(), Config{Connections: 4, Count: 1000}, funcScenario{func(_ context.Context, op Op) error {
		n.Add(1)
		op.Sink.Observe("latency", time.Since(op.Due))
		op.Sink.Count("status 200", 1)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 1000 || r.Ops != 1000 || r.Counts["status 200"] != 1000 || r.Metrics["latency"].Count != 1000 {
		t.Fatalf("ran %d, report ops %d counts %v latency %+v", n.Load(), r.Ops, r.Counts, r.Metrics["latency"])
	}
	if r.Late != 0 || r.Dropped != 0 || r.Rate != 0 {
		t.Fatalf("closed model reports open-model fields: %+v", r)
	}
}

// TestOpenSchedule: operations are due at the rate, in order, and none
// start before they are due.
func TestOpenSchedule(t *testing.T) {
	const rate = 500.0
	var early atomic.Int64
	var mu sync.Mutex
	due := map[int64]time.Time{}
	start := time.Now()
	r, err := Run(t.Context(), Config{Model: Open, Rate: rate, Connections: 8, Count: 200}, funcScenario{func(_ context.Context, op Op) error {
		if time.Now().Before(op.Due) {
			early.Add(1)
		}
		mu.Lock()
		due[op.Seq] = op.Due
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if early.Load() != 0 {
		t.Fatalf("%d operations started before they were due", early.Load())
	}
	if r.Ops != 200 || r.Dropped != 0 || len(due) != 200 {
		t.Fatalf("ops %d dropped %d seen %d, want 200, 0 and 200", r.Ops, r.Dropped, len(due))
	}
	// Operation i is due i/rate after the first, whenever it ran.
	if due[0].Before(start) {
		t.Fatalf("the first operation was due before Run was called")
	}
	for seq, d := range due {
		want := due[0].Add(time.Duration(float64(seq) / rate * float64(time.Second)))
		if diff := d.Sub(want); diff < -time.Microsecond || diff > time.Microsecond {
			t.Errorf("op %d due %v after the first, want %v", seq, d.Sub(due[0]), want.Sub(due[0]))
		}
	}
	if r.Elapsed < 199/rate {
		t.Fatalf("200 operations at %v/s took %.3fs, want at least %.3fs", rate, r.Elapsed, 199/rate)
	}
}

// TestOpenCorrectsCoordinatedOmission: one worker, 100 operations a second,
// and a server that stalls once for 500 ms. A closed-model tool sees one slow
// answer; the operations due during the stall waited too, and the open
// model's latencies say so: about 50 of 300 samples wait 0-500 ms, so the
// p90 is far above the 1 ms service time.
func TestOpenCorrectsCoordinatedOmission(t *testing.T) {
	const rate = 100.0
	r, err := Run(t.Context(), Config{Model: Open, Rate: rate, Connections: 1, Count: 300}, funcScenario{func(_ context.Context, op Op) error {
		if op.Seq == 100 {
			time.Sleep(500 * time.Millisecond)
		} else {
			time.Sleep(time.Millisecond)
		}
		op.Sink.Observe("latency", time.Since(op.Due))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	lat := r.Metrics["latency"]
	if lat.Count != 300 {
		t.Fatalf("count %d, want 300", lat.Count)
	}
	// The 50 operations due during the stall wait 500, 490, ... 10 ms.
	if lat.Max < 490 || lat.Max > 1500 {
		t.Fatalf("max %.1f ms, want about 500", lat.Max)
	}
	if lat.P90 < 100 {
		t.Fatalf("p90 %.1f ms: the operations queued behind the stall were not counted from their due time", lat.P90)
	}
	if r.Late < 40 {
		t.Fatalf("late %d, want about 50", r.Late)
	}
}

// TestOpenDropped: a worker that cannot keep up leaves operations undone by
// the end, and the report counts them.
func TestOpenDropped(t *testing.T) {
	r, err := Run(t.Context(), Config{Model: Open, Rate: 1000, Connections: 1, Duration: 300 * time.Millisecond}, funcScenario{func(ctx context.Context, op Op) error {
		time.Sleep(10 * time.Millisecond)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	// About 300 due, about 30 done.
	if r.Ops > 60 || r.Dropped < 200 || math.Abs(float64(r.Ops+r.Dropped)-300) > 40 {
		t.Fatalf("ops %d dropped %d, want about 30 and 270", r.Ops, r.Dropped)
	}
}

func TestErrorsCounted(t *testing.T) {
	r, err := Run(t.Context(), Config{Connections: 2, Count: 10}, funcScenario{func(context.Context, Op) error {
		return context.DeadlineExceeded
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["error timeout"] != 10 {
		t.Fatalf("counts %v, want 10 timeouts", r.Counts)
	}
}

func TestRecorderMerge(t *testing.T) {
	rec := newRecorder(3, time.Now())
	for i := range 300 {
		rec.Sink(i).Observe("latency", time.Duration(i+1)*time.Millisecond)
		rec.Sink(i).Count("status 200", 1)
		rec.Sink(i).Bytes(10, 1)
	}
	sec := rec.tick(time.Now(), 0)
	all := rec.total()
	for _, s := range []map[string]Summary{sec.Metrics, all.summaries(false)} {
		l := s["latency"]
		if l.Count != 300 || l.Min != 1 || math.Abs(l.Max-300) > 0.3 || math.Abs(l.P50-150) > 0.2 || math.Abs(l.P99-297) > 0.3 {
			t.Fatalf("merged summary %+v, want 300 samples 1..300 ms", l)
		}
	}
	if all.counts["status 200"] != 300 || all.bytesIn != 3000 || all.bytesOut != 300 {
		t.Fatalf("counts %v in %d out %d", all.counts, all.bytesIn, all.bytesOut)
	}
	if next := rec.tick(time.Now(), 0); len(next.Metrics) != 0 || len(next.Counts) != 0 {
		t.Fatalf("the next second is not empty: %+v", next)
	}
	if got := len(rec.Series()); got != 2 {
		t.Fatalf("series has %d seconds, want 2", got)
	}
}

func TestCheckTarget(t *testing.T) {
	ctx := t.Context()
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1", "ws://[::1]:9/x", "http://127.8.9.10"} {
		if err := CheckTarget(ctx, ok, false); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1", "http://192.0.2.1:80", "http://[2001:db8::1]"} {
		if err := CheckTarget(ctx, bad, false); !errors.Is(err, ErrRemoteTarget) {
			t.Errorf("%s: %v, want ErrRemoteTarget", bad, err)
		}
		if err := CheckTarget(ctx, bad, true); err != nil {
			t.Errorf("%s allowed: %v", bad, err)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:80", "ftp://127.0.0.1", "http://"} {
		if err := CheckTarget(ctx, bad, true); err == nil || errors.Is(err, ErrRemoteTarget) {
			t.Errorf("%q: %v, want a URL error", bad, err)
		}
	}
}
