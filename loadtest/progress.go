package loadtest

// This file prints a run for a person at a terminal: the live progress,
// one line a second, and the summary at the end.

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// Progress prints a run's live progress: a line a second with the second's
// operations, the main metric's p50 and p99, the errors and the generator's
// CPU use. On a terminal it rewrites one line in place instead. Its Second
// method is a [Config.Progress].
type Progress struct {
	w      io.Writer
	tty    bool
	metric string

	mu     sync.Mutex // guards last and lastAt
	last   int        // width of the line on screen (tty)
	lastAt float64    // the previous second's At
}

// NewProgress returns a Progress printing to w; tty rewrites one line in
// place. metric names the main metric; empty means "latency" when a second
// has it, else that second's metric with the most samples.
func NewProgress(w io.Writer, tty bool, metric string) *Progress {
	return &Progress{w: w, tty: tty, metric: metric}
}

// Second prints one second.
func (p *Progress) Second(s Second) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := FormatSecond(s, s.At-p.lastAt, p.metric)
	p.lastAt = s.At
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := ""
	if n := len(line); n < p.last {
		pad = strings.Repeat(" ", p.last-n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.last = len(line)
}

// Done ends the line being rewritten, if any.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.last > 0 {
		fmt.Fprintln(p.w)
		p.last = 0
	}
}

// IsTerminal reports whether f is a terminal (a character device).
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// FormatSecond formats one second of a run, which lasted span seconds (the
// last one of a run is usually shorter; 0 means 1), as a progress line:
//
//	3s  12345 ops/s  latency p50 0.42 ms  p99 1.90 ms  errors 0  cpu 85%
func FormatSecond(s Second, span float64, metric string) string {
	if span <= 0 {
		span = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%4.0fs  %6.0f ops/s", math.Round(s.At), float64(s.Ops)/span)
	if name := mainMetric(s.Metrics, metric); name != "" {
		m := s.Metrics[name]
		fmt.Fprintf(&b, "  %s p50 %s  p99 %s", clean(name), FormatMs(m.P50), FormatMs(m.P99))
	}
	fmt.Fprintf(&b, "  errors %d", errorCount(s.Counts))
	if s.CPU > 0 {
		fmt.Fprintf(&b, "  cpu %.0f%%", s.CPU)
	}
	return b.String()
}

// mainMetric returns want if m has it; else "latency" if m has it; else
// the metric with the most samples (the first in order on a tie).
func mainMetric(m map[string]Summary, want string) string {
	if _, ok := m[want]; ok && want != "" {
		return want
	}
	if _, ok := m["latency"]; ok {
		return "latency"
	}
	best := ""
	for _, name := range sortedKeys(m) {
		if best == "" || m[name].Count > m[best].Count {
			best = name
		}
	}
	return best
}

// errorCount sums the "error ..." counts.
func errorCount(counts map[string]int64) int64 {
	var n int64
	for k, v := range counts {
		if strings.HasPrefix(k, "error ") {
			n += v
		}
	}
	return n
}

// FormatMs formats milliseconds with three significant digits or so:
// "0.421 ms", "4.20 ms", "42.0 ms", "420 ms", "4.20 s".
func FormatMs(ms float64) string {
	switch {
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case ms >= 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 3, 64) + " ms"
}

// WriteSummary prints r as plain-text tables: the run, latency metrics
// (p50, p90, p99, p99.9, max), counts, bytes, the generator's CPU, the
// scenario's own figures and the thresholds.
func WriteSummary(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	left := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)

	fmt.Fprintf(w, "%s, %s model, %d connections, %.1f s", clean(r.Scenario), r.Model, r.Connections, r.Elapsed)
	if r.Target != "" {
		fmt.Fprintf(w, ", %s", clean(r.Target))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "ops %d, achieved %.1f/s", r.Ops, r.Achieved)
	if r.Model == Open {
		fmt.Fprintf(w, " of %.1f/s intended, late %d, dropped %d", r.Rate, r.Late, r.Dropped)
	}
	fmt.Fprintln(w)

	if len(r.Metrics) > 0 {
		fmt.Fprintln(w)
		names := sortedKeys(r.Metrics)
		wid := nameWidth("metric (ms)", names)
		fmt.Fprintf(tw, "%-*s\tcount\tp50\tp90\tp99\tp99.9\tmax\t\n", wid, "metric (ms)")
		for _, name := range names {
			m := r.Metrics[name]
			fmt.Fprintf(tw, "%-*s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", wid, clean(name), m.Count,
				ms3(m.P50), ms3(m.P90), ms3(m.P99), ms3(m.P999), ms3(m.Max))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Counts) > 0 {
		fmt.Fprintln(w)
		names := sortedKeys(r.Counts)
		wid := nameWidth("count", names)
		fmt.Fprintf(tw, "%-*s\tn\t%% of ops\t\n", wid, "count")
		for _, k := range names {
			pct := "-"
			if r.Ops > 0 {
				pct = strconv.FormatFloat(100*float64(r.Counts[k])/float64(r.Ops), 'f', 2, 64)
			}
			fmt.Fprintf(tw, "%-*s\t%d\t%s\t\n", wid, clean(k), r.Counts[k], pct)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if r.BytesIn > 0 || r.BytesOut > 0 {
		fmt.Fprintf(left, "bytes\tin %s (%s/s), out %s (%s/s)\n", formatBytes(float64(r.BytesIn)), formatBytes(perSecond(r.BytesIn, r.Elapsed)),
			formatBytes(float64(r.BytesOut)), formatBytes(perSecond(r.BytesOut, r.Elapsed)))
	}
	fmt.Fprintf(left, "generator cpu\t%.0f%% of one core, %d cores", r.Generator.CPU, r.Generator.Cores)
	if r.Generator.Cores > 0 && r.Generator.CPU > 90*float64(r.Generator.Cores) {
		fmt.Fprint(left, " (saturated: the generator, not the target, may be the limit)")
	}
	fmt.Fprintln(left)
	for _, k := range sortedKeys(r.Info) {
		fmt.Fprintf(left, "%s\t%s\n", clean(k), strconv.FormatFloat(r.Info[k], 'g', 6, 64))
	}
	if err := left.Flush(); err != nil {
		return err
	}
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(w)
		for _, t := range r.Thresholds {
			verdict := "pass"
			if !t.Pass {
				verdict = "FAIL"
			}
			got := "measured " + strconv.FormatFloat(t.Value, 'g', 6, 64) + unitSuffix(t.Unit)
			if t.Note != "" {
				got = clean(t.Note)
			}
			fmt.Fprintf(left, "%s\t%s\t%s\n", verdict, clean(t.Expr), got)
		}
		if err := left.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// nameWidth returns the width of the widest of head and names, for a
// left-aligned first column in a right-aligned table.
func nameWidth(head string, names []string) int {
	n := utf8.RuneCountInString(head)
	for _, s := range names {
		n = max(n, utf8.RuneCountInString(s))
	}
	return n
}

// formatBytes formats a number of bytes in B, KiB, MiB or GiB.
func formatBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(n, 'f', 0, 64) + " B"
	}
	return strconv.FormatFloat(n, 'f', 1, 64) + " " + units[i]
}

func ms3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

func perSecond(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

func unitSuffix(u string) string {
	switch u {
	case "", "%", "/s":
		return u
	}
	return " " + u
}

// clean keeps names from a scenario or a target safe on a terminal: control
// characters become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
