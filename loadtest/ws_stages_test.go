package loadtest

import (
	"math"
	"testing"
)

// TestHistQuantile: quantiles of what a histogram observed between two
// scrapes, interpolated within buckets.
func TestHistQuantile(t *testing.T) {
	const m = "x_seconds"
	b := func(le string) string { return m + `_bucket{le="` + le + `"}` }
	before := map[string]float64{b("0.001"): 5, b("0.002"): 5, b("0.01"): 5, b("+Inf"): 5}
	after := map[string]float64{b("0.001"): 55, b("0.002"): 95, b("0.01"): 104, b("+Inf"): 105}
	for _, c := range []struct{ q, want float64 }{
		{0.25, 0.0005}, // 25 of the 100 new: half-way through the first bucket
		{0.5, 0.001},   // exactly its bound
		{0.7, 0.0015},  // 70: half-way through (1 ms, 2 ms]
		{0.99, 0.01},   // 99: the last finite bucket's bound
		{0.999, 0.01},  // in +Inf: the last finite bound
	} {
		if got := histQuantile(before, after, m, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if got := histQuantile(after, after, m, 0.5); !math.IsNaN(got) {
		t.Errorf("nothing observed: %v, want NaN", got)
	}
}
