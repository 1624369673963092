package loadtest

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A Threshold is a pass/fail condition on a report, for CI: a run passes when
// every threshold holds. Its text form is
//
//	SUBJECT OP VALUE[UNIT]
//
// with OP one of <, <=, >, >=, ==, != and spaces allowed around it. SUBJECT is
// one of:
//
//	METRIC.STAT   a latency: STAT is p50, p90, p99, p999 (or p99.9), min,
//	              mean or max, in ms unless the value has a unit (us, ms,
//	              s); STAT count is the number of samples.
//	              latency.p99<=5ms  command.p999<20ms
//	achieved      operations finished per second (unit /s optional)
//	ops           operations finished
//	late          open model: operations started late; with %, of ops
//	dropped       open model: operations never started; with %, of those due
//	errors        the sum of the "error ..." counts; with %, of ops
//	              errors<0.1%  errors==0
//	COUNT         a count by its name, with * matching any text:
//	              "status 200", "status 5*", "error timeout"; with %, of ops
//	              status 200>=99%  status 5*==0
//	generator.cpu the generator's CPU use, percent of one core (% optional)
//	info.NAME     a scenario's own figure, as it reports it, no unit
//	              info.server cpu %<=8
//
// A subject that names no sample (a metric with no samples, an info figure
// the scenario did not report) fails.
type Threshold struct {
	// Subject is what is compared, as written (trimmed): "latency.p99".
	Subject string
	// Op is the comparison: "<", "<=", ">", ">=", "==" or "!=".
	Op string
	// Value is the bound in the subject's base unit: milliseconds for
	// latencies, percent with a % unit, else the plain number.
	Value float64
	// Unit is the unit as written: "", "ms", "us", "s", "%" or "/s".
	Unit string

	written float64 // Value as written, in Unit
	kind    subjectKind
	metric  string // kindLatency: the metric; kindCount: the count pattern; kindInfo: the figure
	stat    string // kindLatency: the stat
}

// subjectKind says which part of a report a threshold reads.
type subjectKind int

const (
	kindLatency subjectKind = iota + 1
	kindAchieved
	kindOps
	kindLate
	kindDropped
	kindCount // errors and named counts
	kindCPU
	kindInfo
)

// ThresholdError is a threshold that does not parse. Part names the part
// that is wrong ("subject", "operator", "value", "unit"), Text quotes it.
type ThresholdError struct {
	Expr string // the whole expression
	Part string // "subject", "operator", "value" or "unit"
	Text string // the offending text
	Msg  string // what is wrong, and what is wanted
}

func (e *ThresholdError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("threshold %q: %s: %s", e.Expr, e.Part, e.Msg)
	}
	return fmt.Sprintf("threshold %q: %s %q: %s", e.Expr, e.Part, e.Text, e.Msg)
}

// MaxThresholdLen bounds a threshold's text.
const MaxThresholdLen = 256

// latencyStats maps the stats a latency subject may name to Summary fields.
var latencyStats = map[string]func(Summary) float64{
	"p50":   func(s Summary) float64 { return s.P50 },
	"p90":   func(s Summary) float64 { return s.P90 },
	"p99":   func(s Summary) float64 { return s.P99 },
	"p999":  func(s Summary) float64 { return s.P999 },
	"p99.9": func(s Summary) float64 { return s.P999 },
	"min":   func(s Summary) float64 { return s.Min },
	"mean":  func(s Summary) float64 { return s.Mean },
	"max":   func(s Summary) float64 { return s.Max },
	"count": func(s Summary) float64 { return float64(s.Count) },
}

// ParseThreshold parses one threshold. Errors are *ThresholdError.
func ParseThreshold(expr string) (Threshold, error) {
	fail := func(part, text, msg string) (Threshold, error) {
		return Threshold{}, &ThresholdError{Expr: expr, Part: part, Text: text, Msg: msg}
	}
	if len(expr) > MaxThresholdLen {
		return fail("expression", "", fmt.Sprintf("longer than %d bytes", MaxThresholdLen))
	}
	if !utf8.ValidString(expr) || strings.ContainsFunc(expr, unicode.IsControl) {
		return fail("expression", "", "holds control characters or invalid UTF-8")
	}
	i := strings.IndexAny(expr, "<>=!")
	if i < 0 {
		return fail("operator", "", "missing: want one of < <= > >= == != as in latency.p99<=5ms")
	}
	j := i
	for j < len(expr) && strings.IndexByte("<>=!", expr[j]) >= 0 {
		j++
	}
	var t Threshold
	t.Subject = strings.TrimSpace(expr[:i])
	t.Op = expr[i:j]
	switch t.Op {
	case "<", "<=", ">", ">=", "==", "!=":
	case "=":
		return fail("operator", t.Op, "want == for equality")
	default:
		return fail("operator", t.Op, "want one of < <= > >= == !=")
	}
	if t.Subject == "" {
		return fail("subject", "", "missing: want a metric such as latency.p99, achieved, errors, status 200")
	}
	rest := strings.TrimSpace(expr[j:])
	num, unit := splitNumber(rest)
	if num == "" {
		return fail("value", rest, "want a number, as in <=5ms or >=99%")
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return fail("value", num, "not a finite number")
	}
	t.Unit = strings.TrimSpace(unit)
	t.written = v

	s := t.Subject
	switch {
	case s == "achieved":
		t.kind = kindAchieved
	case s == "ops":
		t.kind = kindOps
	case s == "late":
		t.kind = kindLate
	case s == "dropped":
		t.kind = kindDropped
	case s == "errors":
		t.kind, t.metric = kindCount, "error *"
	case s == "generator.cpu":
		t.kind = kindCPU
	case strings.HasPrefix(s, "info."):
		t.kind, t.metric = kindInfo, s[len("info."):]
		if t.metric == "" {
			return fail("subject", s, "want info.NAME, a figure the scenario reports")
		}
	default:
		// METRIC.STAT first (metric names may hold spaces), then a count.
		for stat := range latencyStats {
			if m, ok := strings.CutSuffix(s, "."+stat); ok && m != "" && len(stat) > len(t.stat) {
				t.kind, t.metric, t.stat = kindLatency, m, stat
			}
		}
		if t.kind == kindLatency {
			break
		}
		if !strings.ContainsAny(s, " *") {
			return fail("subject", s, "want METRIC.STAT (STAT: p50 p90 p99 p999 min mean max count), "+
				"achieved, ops, late, dropped, errors, generator.cpu, info.NAME or a count such as \"status 200\"")
		}
		t.kind, t.metric = kindCount, s
		if _, err := path.Match(s, ""); err != nil {
			return fail("subject", s, "not a valid count pattern")
		}
	}

	// The unit: check it and bring the value to the subject's base unit.
	badUnit := func(want string) (Threshold, error) { return fail("unit", t.Unit, "want "+want) }
	switch t.kind {
	case kindLatency:
		if t.stat == "count" {
			if t.Unit != "" {
				return badUnit("none: a count of samples")
			}
			break
		}
		switch t.Unit {
		case "", "ms":
		case "us", "µs":
			v /= 1e3
		case "s":
			v *= 1e3
		default:
			return badUnit("us, ms or s (none: ms)")
		}
	case kindAchieved:
		if t.Unit != "" && t.Unit != "/s" {
			return badUnit("/s or none")
		}
	case kindOps, kindInfo:
		if t.Unit != "" {
			return badUnit("none")
		}
	case kindLate, kindDropped, kindCount:
		if t.Unit != "" && t.Unit != "%" {
			return badUnit("% or none (a plain count)")
		}
	case kindCPU:
		if t.Unit != "" && t.Unit != "%" {
			return badUnit("% or none (percent of one core)")
		}
	}
	t.Value = v
	return t, nil
}

// splitNumber splits "5ms" into "5" and "ms": the longest prefix that looks
// like a decimal number.
func splitNumber(s string) (num, unit string) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := false
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == '_') {
		digits = digits || s[i] != '.' && s[i] != '_'
		i++
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') && digits {
		k := i + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && s[k] >= '0' && s[k] <= '9' {
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			i = k
		}
	}
	if !digits {
		return "", s
	}
	return s[:i], s[i:]
}

// String returns the threshold in its canonical text form, which parses
// back to the same threshold.
func (t Threshold) String() string {
	return t.Subject + t.Op + strconv.FormatFloat(t.written, 'g', -1, 64) + t.Unit
}

// ThresholdResult is one threshold evaluated against a report.
type ThresholdResult struct {
	Expr  string  `json:"expr"`           // the threshold, canonical form
	Value float64 `json:"value"`          // what the run measured, in Unit
	Unit  string  `json:"unit,omitempty"` // "ms", "%", "/s" or none
	Pass  bool    `json:"pass"`
	Note  string  `json:"note,omitempty"` // why it could not be measured
}

// Evaluate checks t against r.
func (t Threshold) Evaluate(r *Report) ThresholdResult {
	res := ThresholdResult{Expr: t.String()}
	pct := t.Unit == "%"
	percentOf := func(n, of float64) (float64, bool) {
		if of <= 0 {
			res.Note = "no operations to take a percentage of"
			return 0, false
		}
		return 100 * n / of, true
	}
	var v float64
	ok := true
	switch t.kind {
	case kindLatency:
		s, found := r.Metrics[t.metric]
		if !found || s.Count == 0 {
			res.Note = fmt.Sprintf("no samples of %q (metrics: %s)", t.metric, strings.Join(sortedKeys(r.Metrics), ", "))
			ok = false
			break
		}
		v = latencyStats[t.stat](s)
		if t.stat != "count" {
			res.Unit = "ms"
		}
	case kindAchieved:
		v, res.Unit = r.Achieved, "/s"
	case kindOps:
		v = float64(r.Ops)
	case kindLate:
		v = float64(r.Late)
		if pct {
			v, ok = percentOf(v, float64(r.Ops))
		}
	case kindDropped:
		v = float64(r.Dropped)
		if pct {
			v, ok = percentOf(v, float64(r.Ops+r.Dropped))
		}
	case kindCount:
		for k, n := range r.Counts {
			if m, _ := path.Match(t.metric, k); m {
				v += float64(n)
			}
		}
		if pct {
			v, ok = percentOf(v, float64(r.Ops))
		}
	case kindCPU:
		v, res.Unit = r.Generator.CPU, "%"
	case kindInfo:
		var found bool
		if v, found = r.Info[t.metric]; !found {
			res.Note = fmt.Sprintf("the run reported no %q", t.metric)
			ok = false
		}
	default:
		res.Note = "not a parsed threshold"
		ok = false
	}
	if pct && ok {
		res.Unit = "%"
	}
	if !ok {
		return res
	}
	res.Value = v
	switch t.Op {
	case "<":
		res.Pass = v < t.Value
	case "<=":
		res.Pass = v <= t.Value
	case ">":
		res.Pass = v > t.Value
	case ">=":
		res.Pass = v >= t.Value
	case "==":
		res.Pass = v == t.Value
	case "!=":
		res.Pass = v != t.Value
	}
	return res
}

// ParseThresholds parses each expression; the first error is returned.
func ParseThresholds(exprs []string) ([]Threshold, error) {
	out := make([]Threshold, 0, len(exprs))
	for _, e := range exprs {
		t, err := ParseThreshold(e)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// CheckThresholds evaluates ts against r, sets r.Thresholds and reports
// whether every one passed.
func CheckThresholds(r *Report, ts []Threshold) bool {
	r.Thresholds = r.Thresholds[:0]
	pass := true
	for _, t := range ts {
		res := t.Evaluate(r)
		pass = pass && res.Pass
		r.Thresholds = append(r.Thresholds, res)
	}
	return pass
}
