package loadtest

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
)

// revokeStages are the gateway's histograms of the stages of an owner
// change reaching open pages, by the name of the report's info figures.
var revokeStages = []struct{ info, metric string }{
	{"feed_lag", "linkgate_feed_lag_seconds"},         // publish -> the instance reads the event
	{"relink", "linkgate_relink_seconds"},             // event -> record reread, sessions told
	{"close_write", "linkgate_session_close_seconds"}, // told -> close frame written
}

// scrapeStages reads the stage histograms of every instance and adds their
// buckets up.
func scrapeStages(ctx context.Context, bases []string) map[string]float64 {
	sum := map[string]float64{}
	for _, b := range bases {
		m, err := ScrapeMetrics(ctx, b)
		if err != nil {
			continue
		}
		for k, v := range m {
			for _, st := range revokeStages {
				if strings.HasPrefix(k, st.metric) {
					sum[k] += v
				}
			}
		}
	}
	return sum
}

// histQuantile estimates quantile q of a Prometheus histogram observed
// between two scrapes (after minus before), in the histogram's unit, by
// linear interpolation within its bucket, as Prometheus'
// histogram_quantile does. It returns NaN when nothing was observed.
func histQuantile(before, after map[string]float64, metric string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := metric + `_bucket{le="`
	for k, v := range after {
		s, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(s, `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v - before[k]})
	}
	slices.SortFunc(bs, func(a, b bucket) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].n
	lo, below := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return lo // past the last finite bound: that bound
			}
			if b.n == below {
				return b.le
			}
			return lo + (b.le-lo)*(rank-below)/(b.n-below)
		}
		lo, below = b.le, b.n
	}
	return lo
}
