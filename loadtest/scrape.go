package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxScrape bounds the /metrics answer ScrapeMetrics reads.
const maxScrape = 32 << 20

// scrapeTimeout bounds a scrape whose context has no deadline.
const scrapeTimeout = 10 * time.Second

// ScrapeMetrics reads a Prometheus text exposition (what the gateway serves
// at /metrics) and returns every sample by its series name: the metric name,
// then its labels sorted by name in braces, as
// `linkgate_link_opens_total{outcome="ok"}`; a metric without labels is its
// bare name, such as "process_cpu_seconds_total". Histograms give
// name_bucket{le="..."}, name_sum and name_count, summaries
// name{quantile="..."}, name_sum and name_count.
//
// target is the server's base URL (/metrics is appended) or, when its path
// is neither empty nor "/", the metrics URL itself.
func ScrapeMetrics(ctx context.Context, target string) (map[string]float64, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("loadtest: metrics: want a URL such as http://127.0.0.1:8080, got %q", target)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, scrapeTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("loadtest: metrics: %w", err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadtest: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadtest: metrics: %s: %s", u.Redacted(), resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxScrape))
}

// parseMetrics parses the Prometheus text format into samples by series
// name (see ScrapeMetrics).
func parseMetrics(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("loadtest: metrics: %w", err)
	}
	out := make(map[string]float64)
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := m.GetLabel()
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[seriesName(name, labels)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[seriesName(name, labels)] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[seriesName(name, labels)] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					out[seriesName(name+"_bucket", labels, "le", formatFloat(b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
				out[seriesName(name+"_sum", labels)] = h.GetSampleSum()
				out[seriesName(name+"_count", labels)] = float64(h.GetSampleCount())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					out[seriesName(name, labels, "quantile", formatFloat(q.GetQuantile()))] = q.GetValue()
				}
				out[seriesName(name+"_sum", labels)] = s.GetSampleSum()
				out[seriesName(name+"_count", labels)] = float64(s.GetSampleCount())
			}
		}
	}
	return out, nil
}

// seriesName is name{a="x",b="y"} with the labels (and the extra pair, if
// given) sorted by name.
func seriesName(name string, labels []*dto.LabelPair, extra ...string) string {
	pairs := make([][2]string, 0, len(labels)+1)
	for _, l := range labels {
		pairs = append(pairs, [2]string{l.GetName(), l.GetValue()})
	}
	if len(extra) == 2 {
		pairs = append(pairs, [2]string{extra[0], extra[1]})
	}
	if len(pairs) == 0 {
		return name
	}
	slices.SortFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p[0])
		b.WriteString("=")
		b.WriteString(strconv.Quote(p[1]))
	}
	b.WriteByte('}')
	return b.String()
}

// formatFloat writes a bucket bound or quantile as the exposition does:
// "0.005", "+Inf".
func formatFloat(f float64) string {
	return model.SampleValue(f).String()
}
