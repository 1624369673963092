package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestParseMetrics(t *testing.T) {
	const text = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE linkgate_link_opens_total counter
linkgate_link_opens_total{outcome="ok"} 7
linkgate_link_opens_total{outcome="not-found"} 2
# TYPE x_gauge gauge
x_gauge{b="2",a="1"} -3
# TYPE lat histogram
lat_bucket{le="0.005"} 3
lat_bucket{le="+Inf"} 4
lat_sum 0.5
lat_count 4
# TYPE q summary
q{quantile="0.5"} 0.25
q_sum 1
q_count 3
untyped_thing 9
`
	got, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"process_cpu_seconds_total":                      12.5,
		`linkgate_link_opens_total{outcome="ok"}`:        7,
		`linkgate_link_opens_total{outcome="not-found"}`: 2,
		`x_gauge{a="1",b="2"}`:                           -3,
		`lat_bucket{le="0.005"}`:                         3,
		`lat_bucket{le="+Inf"}`:                          4,
		"lat_sum":                                        0.5,
		"lat_count":                                      4,
		`q{quantile="0.5"}`:                              0.25,
		"q_sum":                                          1,
		"q_count":                                        3,
		"untyped_thing":                                  9,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, err := parseMetrics(strings.NewReader("not a metric line {")); err == nil {
		t.Error("garbage parsed without error")
	}
}

// The process figures the viewers scenario reads come from the collectors
// the gateway registers.
func TestScrapeMetricsProcessCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, target := range []string{srv.URL, srv.URL + "/", srv.URL + "/metrics"} {
		m, err := ScrapeMetrics(context.Background(), target)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if _, ok := m["process_cpu_seconds_total"]; !ok {
			t.Errorf("%s: no process_cpu_seconds_total", target)
		}
		for _, name := range []string{"process_resident_memory_bytes", "go_goroutines"} {
			if m[name] <= 0 {
				t.Errorf("%s: %s = %v, want > 0", target, name, m[name])
			}
		}
	}
	if _, err := ScrapeMetrics(context.Background(), srv.URL+"/nothing-here"); err == nil {
		t.Error("a 404 scraped without error")
	}
}
