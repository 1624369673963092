package loadtest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// thresholdCases are the parser's table; every expression is also a fuzz
// seed.
var thresholdCases = []struct {
	expr string
	want Threshold // Subject, Op, Value, Unit; zero Op: an error
	part string    // the ThresholdError's Part when it fails
}{
	{"latency.p99<=5ms", Threshold{Subject: "latency.p99", Op: "<=", Value: 5, Unit: "ms"}, ""},
	{"command.p999<20ms", Threshold{Subject: "command.p999", Op: "<", Value: 20, Unit: "ms"}, ""},
	{"command.p99.9 < 0.02s", Threshold{Subject: "command.p99.9", Op: "<", Value: 20, Unit: "s"}, ""},
	{"latency.p50<=500us", Threshold{Subject: "latency.p50", Op: "<=", Value: 0.5, Unit: "us"}, ""},
	{"latency.max<100", Threshold{Subject: "latency.max", Op: "<", Value: 100}, ""},
	{"first frame.p50<=250ms", Threshold{Subject: "first frame.p50", Op: "<=", Value: 250, Unit: "ms"}, ""},
	{"latency.count>=1000", Threshold{Subject: "latency.count", Op: ">=", Value: 1000}, ""},
	{"achieved>=1000", Threshold{Subject: "achieved", Op: ">=", Value: 1000}, ""},
	{"achieved >= 1_000/s", Threshold{Subject: "achieved", Op: ">=", Value: 1000, Unit: "/s"}, ""},
	{"errors<0.1%", Threshold{Subject: "errors", Op: "<", Value: 0.1, Unit: "%"}, ""},
	{"errors==0", Threshold{Subject: "errors", Op: "==", Value: 0}, ""},
	{"status 200>=99%", Threshold{Subject: "status 200", Op: ">=", Value: 99, Unit: "%"}, ""},
	{"status 5*==0", Threshold{Subject: "status 5*", Op: "==", Value: 0}, ""},
	{"dropped==0", Threshold{Subject: "dropped", Op: "==", Value: 0}, ""},
	{"late<1%", Threshold{Subject: "late", Op: "<", Value: 1, Unit: "%"}, ""},
	{"ops!=0", Threshold{Subject: "ops", Op: "!=", Value: 0}, ""},
	{"generator.cpu<150%", Threshold{Subject: "generator.cpu", Op: "<", Value: 150, Unit: "%"}, ""},
	{"info.server cpu %<=8", Threshold{Subject: "info.server cpu %", Op: "<=", Value: 8}, ""},
	{"latency.p99<=1e1ms", Threshold{Subject: "latency.p99", Op: "<=", Value: 10, Unit: "ms"}, ""},

	{"latency.p99", Threshold{}, "operator"},
	{"latency.p99=5ms", Threshold{}, "operator"},
	{"latency.p99=<5ms", Threshold{}, "operator"},
	{"latency.p99<<5", Threshold{}, "operator"},
	{"<=5ms", Threshold{}, "subject"},
	{"latency<=5ms", Threshold{}, "subject"},
	{"latency.p95<=5ms", Threshold{}, "subject"},
	{"info.<=5", Threshold{}, "subject"},
	{"status [<=5", Threshold{}, "subject"},
	{"latency.p99<=", Threshold{}, "value"},
	{"latency.p99<=ms", Threshold{}, "value"},
	{"latency.p99<=1e999ms", Threshold{}, "value"},
	{"latency.p99<=5 parsecs", Threshold{}, "unit"},
	{"latency.p99<=5%", Threshold{}, "unit"},
	{"latency.count>=5ms", Threshold{}, "unit"},
	{"achieved>=5ms", Threshold{}, "unit"},
	{"ops>5%", Threshold{}, "unit"},
	{"errors<5ms", Threshold{}, "unit"},
	{"info.rss<=5%", Threshold{}, "unit"},
	{"latency.p99<=0x10", Threshold{}, "unit"},
	{"latency.p99<=5\nms", Threshold{}, "expression"},
	{strings.Repeat("a", MaxThresholdLen) + "<1", Threshold{}, "expression"},
}

func TestParseThreshold(t *testing.T) {
	for _, c := range thresholdCases {
		got, err := ParseThreshold(c.expr)
		if c.want.Op == "" {
			var te *ThresholdError
			if !errors.As(err, &te) || te.Part != c.part {
				t.Errorf("%q: %v, want a ThresholdError on the %s", c.expr, err, c.part)
			} else if !strings.Contains(err.Error(), c.part) {
				t.Errorf("%q: the message %q does not name the %s", c.expr, err, c.part)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.expr, err)
			continue
		}
		if got.Subject != c.want.Subject || got.Op != c.want.Op || got.Value != c.want.Value || got.Unit != c.want.Unit {
			t.Errorf("%q: got %s %s %v %q, want %s %s %v %q", c.expr, got.Subject, got.Op, got.Value, got.Unit,
				c.want.Subject, c.want.Op, c.want.Value, c.want.Unit)
		}
		again, err := ParseThreshold(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%q: canonical %q parses to %+v, %v", c.expr, got.String(), again, err)
		}
	}
}

// FuzzParseThreshold: nothing panics, and what parses has a canonical form
// that parses to the same threshold (and is evaluated without panicking).
func FuzzParseThreshold(f *testing.F) {
	for _, c := range thresholdCases {
		f.Add(c.expr)
	}
	r := testReport()
	f.Fuzz(func(t *testing.T, expr string) {
		th, err := ParseThreshold(expr)
		if err != nil {
			var te *ThresholdError
			if !errors.As(err, &te) {
				t.Fatalf("%q: error %v is not a *ThresholdError", expr, err)
			}
			return
		}
		again, err := ParseThreshold(th.String())
		if err != nil || !reflect.DeepEqual(again, th) {
			t.Fatalf("%q: canonical %q parses to %+v, %v; want %+v", expr, th.String(), again, err, th)
		}
		th.Evaluate(r)
	})
}

// testReport is a small report with a bit of everything.
func testReport() *Report {
	return &Report{
		Scenario: "opens",
		Model:    Open,
		Rate:     1000,
		Ops:      10000,
		Achieved: 999.5,
		Late:     50,
		Dropped:  0,
		Metrics: map[string]Summary{
			"latency": {Count: 10000, Min: 0.1, Mean: 0.6, P50: 0.5, P90: 1, P99: 4.2, P999: 12, Max: 30},
			"command": {Count: 500, P50: 1, P99: 3, P999: 19, Max: 25},
		},
		Counts: map[string]int64{
			"status 200":    9950,
			"status 404":    40,
			"status 503":    1,
			"error timeout": 6,
			"error reset":   3,
		},
		Generator: Generator{CPU: 85, Cores: 2},
		Info:      map[string]float64{"server cpu %": 7.5},
	}
}

func TestEvaluateThresholds(t *testing.T) {
	r := testReport()
	cases := []struct {
		expr  string
		value float64
		unit  string
		pass  bool
		note  bool // cannot be measured
	}{
		{"latency.p99<=5ms", 4.2, "ms", true, false},
		{"latency.p99<=4000us", 4.2, "ms", false, false},
		{"latency.p99<0.005s", 4.2, "ms", true, false},
		{"command.p999<20ms", 19, "ms", true, false},
		{"command.p99.9<19", 19, "ms", false, false},
		{"latency.count>=10000", 10000, "", true, false},
		{"achieved>=1000", 999.5, "/s", false, false},
		{"achieved>=990/s", 999.5, "/s", true, false},
		{"errors<0.1%", 0.09, "%", true, false},
		{"errors==0", 9, "", false, false},
		{"error timeout<=6", 6, "", true, false},
		{"status 200>=99%", 99.5, "%", true, false},
		{"status 5*==0", 1, "", false, false},
		{"status 4*<1%", 0.4, "%", true, false},
		{"dropped==0", 0, "", true, false},
		{"late<1%", 0.5, "%", true, false},
		{"ops>0", 10000, "", true, false},
		{"generator.cpu<=80", 85, "%", false, false},
		{"info.server cpu %<=8", 7.5, "", true, false},
		{"info.rss<=100", 0, "", false, true},
		{"handshake.p99<=5ms", 0, "", false, true},
	}
	for _, c := range cases {
		th, err := ParseThreshold(c.expr)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		got := th.Evaluate(r)
		if d := got.Value - c.value; d > 1e-9 || d < -1e-9 || got.Unit != c.unit || got.Pass != c.pass || (got.Note != "") != c.note {
			t.Errorf("%q: got %+v, want value %v %q pass %v note %v", c.expr, got, c.value, c.unit, c.pass, c.note)
		}
	}

	// A percentage of nothing fails rather than passing by default.
	empty := &Report{}
	th, _ := ParseThreshold("errors<1%")
	if got := th.Evaluate(empty); got.Pass || got.Note == "" {
		t.Errorf("errors<1%% of no operations: %+v, want a failure with a note", got)
	}

	ts, err := ParseThresholds([]string{"latency.p99<=5ms", "errors<0.1%"})
	if err != nil {
		t.Fatal(err)
	}
	if !CheckThresholds(r, ts) || len(r.Thresholds) != 2 || !r.Passed() {
		t.Fatalf("passing thresholds: %+v", r.Thresholds)
	}
	ts, _ = ParseThresholds([]string{"latency.p99<=5ms", "achieved>=1000"})
	if CheckThresholds(r, ts) || len(r.Thresholds) != 2 || r.Passed() || !r.Thresholds[0].Pass || r.Thresholds[1].Pass {
		t.Fatalf("one failing threshold: %+v", r.Thresholds)
	}
	if _, err := ParseThresholds([]string{"latency.p99<=5ms", "bogus"}); err == nil {
		t.Fatal("ParseThresholds took a bad expression")
	}
}
