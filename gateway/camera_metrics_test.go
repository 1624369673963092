package gateway_test

import (
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkgate/linkgate/gateway"
)

// A viewer watching live video feeds the added-latency histograms, with
// values that are latencies: above zero, below seconds.
func TestCameraAddedLatencyObserved(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := newCameraEnv(t, func(cfg *gateway.Config) { cfg.Registry = reg })
	conn, resp, err := openLive(t, c.in, c.live.Token)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	// The cached group of pictures comes first, unmeasured; then live
	// fragments at the camera's 25 fps.
	for binaries := 0; binaries < 60; {
		typ, _, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ == websocket.BinaryMessage {
			binaries++
		}
	}

	for _, name := range []string{"linkgate_camera_added_latency_seconds", "linkgate_camera_send_latency_seconds"} {
		var n, under5 uint64
		var sum float64
		eventually(t, 5*time.Second, name, func() bool {
			n, sum, under5 = histogram(t, reg, name)
			return n >= 10
		})
		if mean := sum / float64(n); mean <= 0 || mean >= 5 {
			t.Errorf("%s: mean %.6f s over %d fragments", name, mean, n)
		}
		if under5 != n {
			t.Errorf("%s: %d of %d observations above 5 s", name, n-under5, n)
		}
	}
}

// histogram reads a histogram: its count, its sum, and how many
// observations were at most 5 s.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (n uint64, sum float64, under5 uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 5 {
				under5 = b.GetCumulativeCount()
			}
		}
		return h.GetSampleCount(), h.GetSampleSum(), under5
	}
	return 0, 0, 0
}
