package loadtest

import (
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: latencies are recorded in microseconds from 1 µs to
// 5 minutes with 3 significant digits (an error of at most 0.1 %). A value
// past the top is recorded as the top and counted in Summary.Clipped.
const (
	histMin    = 1
	histMax    = int64(5 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// Recorder collects what a run measures: latency histograms by metric name,
// counts by kind (statuses, error kinds, events) and bytes. Workers record
// through a [Sink]; a Recorder has a few sinks (shards), each behind its own
// mutex, so that thousands of sessions share a handful of histograms instead
// of holding one each (an HDR histogram of this range is about 200 KiB).
//
// Every sink keeps two sets: the whole run, and the current second. The
// engine closes a second with [Recorder.tick], which merges and resets the
// second's set of every sink into one [Second] of the series.
type Recorder struct {
	sinks []*Sink
	start time.Time

	mu      sync.Mutex // guards series and the last tick's figures
	series  []Second
	lastAt  time.Time     // the last tick (or the start)
	lastOps int64         // operations finished at the last tick
	lastCPU time.Duration // the process's CPU time at the last tick
}

// newRecorder returns a recorder with n sinks (at least 1).
func newRecorder(n int, start time.Time) *Recorder {
	r := &Recorder{start: start, lastAt: start, lastCPU: cpuTime()}
	for range max(n, 1) {
		r.sinks = append(r.sinks, &Sink{total: newTally(), sec: newTally()})
	}
	return r
}

// Sink returns the sink worker i records to.
func (r *Recorder) Sink(i int) *Sink { return r.sinks[i%len(r.sinks)] }

// Sink is where workers record; it is safe for concurrent use.
type Sink struct {
	mu    sync.Mutex // guards total and sec
	total *tally
	sec   *tally
}

// Observe records one latency sample of the named metric.
func (s *Sink) Observe(metric string, d time.Duration) {
	us := max(d.Microseconds(), histMin)
	s.mu.Lock()
	s.total.observe(metric, us)
	s.sec.observe(metric, us)
	s.mu.Unlock()
}

// Count adds n to the named count: "status 200", "error timeout",
// "event stall". The prefix before the first space is the count's family.
func (s *Sink) Count(kind string, n int64) {
	s.mu.Lock()
	s.total.counts[kind] += n
	s.sec.counts[kind] += n
	s.mu.Unlock()
}

// Bytes adds to the bytes received and sent.
func (s *Sink) Bytes(in, out int64) {
	s.mu.Lock()
	s.total.bytesIn += in
	s.total.bytesOut += out
	s.sec.bytesIn += in
	s.sec.bytesOut += out
	s.mu.Unlock()
}

// tally is one set of measurements.
type tally struct {
	hists             map[string]*hdrhistogram.Histogram
	clipped           map[string]int64
	counts            map[string]int64
	bytesIn, bytesOut int64
}

func newTally() *tally {
	return &tally{
		hists:   map[string]*hdrhistogram.Histogram{},
		clipped: map[string]int64{},
		counts:  map[string]int64{},
	}
}

func (t *tally) observe(metric string, us int64) {
	h := t.hists[metric]
	if h == nil {
		h = newHist()
		t.hists[metric] = h
	}
	if us > histMax {
		us = histMax
		t.clipped[metric]++
	}
	_ = h.RecordValue(us) // in range by construction
}

// merge adds o into t.
func (t *tally) merge(o *tally) {
	for name, h := range o.hists {
		if mine := t.hists[name]; mine != nil {
			mine.Merge(h)
		} else {
			t.hists[name] = hdrhistogram.Import(h.Export())
		}
	}
	for k, v := range o.clipped {
		t.clipped[k] += v
	}
	for k, v := range o.counts {
		t.counts[k] += v
	}
	t.bytesIn += o.bytesIn
	t.bytesOut += o.bytesOut
}

// reset empties t, keeping its histograms' memory.
func (t *tally) reset() {
	for _, h := range t.hists {
		h.Reset()
	}
	clear(t.clipped)
	clear(t.counts)
	t.bytesIn, t.bytesOut = 0, 0
}

// summaries returns a Summary per metric that has samples; with dist, each
// with its percentile distribution.
func (t *tally) summaries(dist bool) map[string]Summary {
	out := make(map[string]Summary, len(t.hists))
	for name, h := range t.hists {
		if h.TotalCount() > 0 {
			s := summarize(h, t.clipped[name])
			if dist {
				s.Percentiles = distribution(h)
			}
			out[name] = s
		}
	}
	return out
}

// tick closes the second that ends at now, when ops operations have
// finished since the start: it merges every sink's second into one Second,
// appends it to the series, resets the sinks' seconds and returns it.
func (r *Recorder) tick(now time.Time, ops int64) Second {
	sec := newTally()
	for _, s := range r.sinks {
		s.mu.Lock()
		sec.merge(s.sec)
		s.sec.reset()
		s.mu.Unlock()
	}
	out := Second{
		At:       now.Sub(r.start).Seconds(),
		Metrics:  sec.summaries(false),
		Counts:   sec.counts,
		BytesIn:  sec.bytesIn,
		BytesOut: sec.bytesOut,
	}
	cpu := cpuTime()
	r.mu.Lock()
	out.Ops = ops - r.lastOps
	if wall := now.Sub(r.lastAt); wall > 0 {
		out.CPU = 100 * (cpu - r.lastCPU).Seconds() / wall.Seconds()
	}
	r.lastAt, r.lastOps, r.lastCPU = now, ops, cpu
	r.series = append(r.series, out)
	r.mu.Unlock()
	return out
}

// total merges every sink's whole-run set.
func (r *Recorder) total() *tally {
	all := newTally()
	for _, s := range r.sinks {
		s.mu.Lock()
		all.merge(s.total)
		s.mu.Unlock()
	}
	return all
}

// Series returns the seconds closed so far.
func (r *Recorder) Series() []Second {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.series)
}

// Summary describes one latency metric. Durations are in milliseconds, as
// floating point, in JSON.
type Summary struct {
	Count   int64   `json:"count"`
	Min     float64 `json:"min"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p999"`
	Max     float64 `json:"max"`
	Clipped int64   `json:"clipped,omitempty"` // samples above 5 min, recorded as 5 min
	// Percentiles is the latency by percentile, from 0 to the max, as in
	// HdrHistogram's percentile distribution: ticksPerHalf points in each
	// halving of the distance to 100 %. Only the whole run's summaries
	// carry it, not the series'.
	Percentiles []Percentile `json:"percentiles,omitempty"`
}

// Percentile is one point of a latency distribution.
type Percentile struct {
	P  float64 `json:"p"`  // percentile, 0 to 100
	Ms float64 `json:"ms"` // latency at or below which P percent of samples fall
}

// ticksPerHalf is the number of points in each halving of the distance to
// 100 %: 0, 12.9, 24.2, ... 50, ... 75, ... 87.5, ...
const ticksPerHalf = 5

// distribution returns h's percentile distribution: points at ticksPerHalf
// per halving of the distance to 100 %, as long as the samples resolve
// them, then the max at 100 %.
func distribution(h *hdrhistogram.Histogram) []Percentile {
	n := h.TotalCount()
	var out []Percentile
	for i := 0; ; i++ {
		rest := math.Pow(2, -float64(i)/ticksPerHalf) // 1 - quantile
		if rest*float64(n) < 1 || i > 40*ticksPerHalf {
			break
		}
		p := 100 * (1 - rest)
		out = append(out, Percentile{P: p, Ms: float64(h.ValueAtQuantile(p)) / 1e3})
	}
	return append(out, Percentile{P: 100, Ms: float64(h.Max()) / 1e3})
}

func summarize(h *hdrhistogram.Histogram, clipped int64) Summary {
	ms := func(us int64) float64 { return float64(us) / 1e3 }
	return Summary{
		Count:   h.TotalCount(),
		Min:     ms(h.Min()),
		Mean:    h.Mean() / 1e3,
		P50:     ms(h.ValueAtQuantile(50)),
		P90:     ms(h.ValueAtQuantile(90)),
		P99:     ms(h.ValueAtQuantile(99)),
		P999:    ms(h.ValueAtQuantile(99.9)),
		Max:     ms(h.Max()),
		Clipped: clipped,
	}
}

// Second is one second of a run's series.
type Second struct {
	At       float64            `json:"at"`  // seconds since the run started, at the second's end
	Ops      int64              `json:"ops"` // operations finished in the second
	CPU      float64            `json:"cpu"` // the generator's CPU use in the second, percent of one core
	Metrics  map[string]Summary `json:"metrics,omitempty"`
	Counts   map[string]int64   `json:"counts,omitempty"`
	BytesIn  int64              `json:"bytesIn"`
	BytesOut int64              `json:"bytesOut"`
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
