package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestFormatSecond(t *testing.T) {
	s := Second{
		At:  3.0004,
		Ops: 12345,
		CPU: 85.2,
		Metrics: map[string]Summary{
			"latency":   {Count: 12345, P50: 0.421, P99: 1.9},
			"handshake": {Count: 99999, P50: 7, P99: 8},
		},
		Counts: map[string]int64{"status 200": 12340, "error timeout": 3, "error reset": 2},
	}
	got := FormatSecond(s, 1, "")
	want := "   3s   12345 ops/s  latency p50 0.421 ms  p99 1.90 ms  errors 5  cpu 85%"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := FormatSecond(s, 0, "handshake"); !strings.Contains(got, "handshake p50 7.00 ms  p99 8.00 ms") {
		t.Errorf("chosen metric: %q", got)
	}
	// Without "latency", the busiest metric; no CPU when unknown.
	s.Metrics = map[string]Summary{"a": {Count: 1, P50: 1}, "b": {Count: 5, P50: 250, P99: 1500}}
	s.CPU = 0
	if got := FormatSecond(s, 1, ""); !strings.Contains(got, "b p50 250 ms  p99 1.50 s") || strings.Contains(got, "cpu") {
		t.Errorf("busiest metric: %q", got)
	}
	// A part of a second: the rate is per second.
	if got := FormatSecond(Second{At: 10.25, Ops: 100}, 0.25, ""); !strings.HasPrefix(got, "  10s     400 ops/s") {
		t.Errorf("a quarter second: %q", got)
	}
	// An empty second still makes a line.
	if got := FormatSecond(Second{At: 1}, 1, ""); got != "   1s       0 ops/s  errors 0" {
		t.Errorf("empty second: %q", got)
	}
}

func TestProgressLines(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, false, "")
	p.Second(Second{At: 1, Ops: 10})
	p.Second(Second{At: 2, Ops: 20})
	p.Done()
	if lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"); len(lines) != 2 || strings.Contains(b.String(), "\r") {
		t.Fatalf("not a terminal: want 2 plain lines, got %q", b.String())
	}

	b.Reset()
	p = NewProgress(&b, true, "")
	p.Second(Second{At: 1, Ops: 1000, Metrics: map[string]Summary{"latency": {Count: 1, P50: 1, P99: 2}}})
	p.Second(Second{At: 2, Ops: 1})
	p.Done()
	out := b.String()
	if strings.Count(out, "\r") != 2 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("terminal: want two rewrites and one newline, got %q", out)
	}
	// The shorter second line is padded over the first.
	first, second, _ := strings.Cut(strings.TrimPrefix(out, "\r"), "\r")
	if len(strings.TrimSuffix(second, "\n")) != len(first) {
		t.Fatalf("the second line does not cover the first: %q", out)
	}
}

func TestFormatMs(t *testing.T) {
	for ms, want := range map[float64]string{0.0421: "0.042 ms", 4.2: "4.20 ms", 42: "42.0 ms", 420: "420 ms", 4200: "4.20 s"} {
		if got := FormatMs(ms); got != want {
			t.Errorf("FormatMs(%v) = %q, want %q", ms, got, want)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	r := testReport()
	r.Target = "http://127.0.0.1:8080"
	r.Connections = 32
	r.Elapsed = 10
	r.BytesIn = 1 << 20
	ts, _ := ParseThresholds([]string{"latency.p99<=5ms", "achieved>=1000", "info.rss<1"})
	CheckThresholds(r, ts)
	var b bytes.Buffer
	if err := WriteSummary(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"opens, open model, 32 connections, 10.0 s, http://127.0.0.1:8080",
		"achieved 999.5/s of 1000.0/s intended, late 50, dropped 0",
		"p50", "p90", "p99", "p99.9", "max",
		"4.200", "12.000", "30.000", // latency p99, p99.9, max
		"status 200", "9950", "99.50",
		"error timeout",
		"bytes", "in 1.0 MiB (102.4 KiB/s), out 0 B (0 B/s)",
		"generator cpu", "85% of one core, 2 cores",
		"server cpu %", "7.5",
		"pass  latency.p99<=5ms", "measured 4.2 ms",
		"FAIL  achieved>=1000", "measured 999.5/s",
		"FAIL  info.rss<1", `the run reported no "rss"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
}

// TestRunSeries: each second of a run carries its operations and the
// generator's CPU, the seconds add up to the run, and the whole run's
// metrics carry their percentile distribution, ending at the max.
func TestRunSeries(t *testing.T) {
	var lines []string
	r, err := Run(t.Context(), Config{Connections: 2, Duration: 1500 * time.Millisecond, Progress: func(s Second) {
		lines = append(lines, FormatSecond(s, 1, ""))
	}}, funcScenario{func(_ context.Context, op Op) error {
		time.Sleep(time.Millisecond)
		op.Sink.Observe("latency", time.Since(op.Due))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ops int64
	for _, s := range r.Series {
		ops += s.Ops
	}
	if len(r.Series) != 2 || ops != r.Ops || r.Series[0].Ops == 0 || r.Series[0].CPU <= 0 {
		t.Fatalf("series %+v: ops add up to %d of %d", r.Series, ops, r.Ops)
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "latency p50") {
		t.Fatalf("progress lines %q", lines)
	}
	l := r.Metrics["latency"]
	if n := len(l.Percentiles); n < 10 || l.Percentiles[0].P != 0 || l.Percentiles[n-1].P != 100 || l.Percentiles[n-1].Ms != l.Max {
		t.Fatalf("distribution %+v, max %v", l.Percentiles, l.Max)
	}
	for _, s := range r.Series {
		if len(s.Metrics["latency"].Percentiles) != 0 {
			t.Fatal("a second of the series carries a distribution")
		}
	}
}
