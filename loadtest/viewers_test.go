package loadtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/media/democam"
	"github.com/linkgate/linkgate/tokens"
)

// cameraTarget is a real gateway on loopback, on a real redis-server, with
// an owner, and a real RTSP camera publishing the committed demo clip.
type cameraTarget struct {
	url, apiKey, rtsp string
}

func startCameraTarget(t *testing.T) cameraTarget {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cam, err := democam.Start("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cam.Close() })

	edge := startEdge(t, nil)
	return cameraTarget{url: edge.url, apiKey: edge.apiKey, rtsp: cam.URL()}
}

// A few viewers of a link the scenario mints itself, for a few seconds:
// each one gets the init segment and fragments, no socket is closed on
// them, the figures are there, and what Prepare made is gone afterwards.
func TestViewersEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of camera viewing")
	}
	tg := startCameraTarget(t)
	const n = 4
	var ready bool
	v, err := NewViewers(ViewersConfig{
		APIKey:  tg.apiKey,
		RTSPURL: tg.rtsp,
		Settle:  500 * time.Millisecond,
		Ready:   func() { ready = true },
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Config{Target: tg.url, Connections: n, Duration: 4 * time.Second}, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counts %v, info %v", r.Counts, r.Info)

	if got := r.Counts["event watch"]; got != n {
		t.Errorf("%d sockets opened, want %d", got, n)
	}
	if got := r.Counts["event first-fragment"]; got != n {
		t.Errorf("%d viewers had a first fragment, want %d", got, n)
	}
	if !ready {
		t.Error("Ready was not called")
	}
	if r.Metrics["ttff"].Count != n || r.Metrics["ttff-session"].Count != n {
		t.Errorf("ttff samples %d, ttff-session %d, want %d each", r.Metrics["ttff"].Count, r.Metrics["ttff-session"].Count, n)
	}
	if r.Metrics["ttff-session"].Max < r.Metrics["ttff"].Min {
		t.Errorf("ttff-session (max %v ms) shorter than ttff (min %v ms)", r.Metrics["ttff-session"].Max, r.Metrics["ttff"].Min)
	}
	// A viewer gets the kept keyframe group, then 25 frames a second.
	if got := r.Counts["fragments"]; got < n*2*25 {
		t.Errorf("%d fragments in all, want at least %d", got, n*2*25)
	}
	if r.BytesIn <= 0 {
		t.Error("no bytes received")
	}
	for kind, c := range r.Counts {
		if strings.HasPrefix(kind, "close ") || strings.HasPrefix(kind, "error ") || strings.HasPrefix(kind, "session ") ||
			strings.HasPrefix(kind, "dial ") || kind == "event fragment-before-init" || kind == "event other-message" {
			t.Errorf("unexpected %q x%d", kind, c)
		}
	}
	if got := r.Info["viewers measured"]; got != n {
		t.Errorf("rates of %v viewers, want %d", got, n)
	}
	if fps := r.Info["viewer fragments/s p50"]; fps < 20 || fps > 30 {
		t.Errorf("a viewer's median rate is %v fragments/s, want about 25", fps)
	}
	if r.Info["viewer bytes/s min"] <= 0 {
		t.Errorf("viewer bytes/s min %v", r.Info["viewer bytes/s min"])
	}
	for _, name := range []string{InfoServerCPU, InfoServerRSS, InfoServerWindow, InfoGeneratorCPUWindow} {
		if _, ok := r.Info[name]; !ok {
			t.Errorf("Info has no %q", name)
		}
	}
	if r.Info[InfoServerRSS] <= 0 {
		t.Errorf("server RSS %v MiB", r.Info[InfoServerRSS])
	}
	// The window started once the viewers settled, not with the run.
	if w := r.Info[InfoServerWindow]; w <= 0 || w >= r.Elapsed {
		t.Errorf("server window %v s, run %v s", w, r.Elapsed)
	}

	// Finish deleted the link and the camera.
	api := &ownerapi.Client{BaseURL: tg.url, APIKey: tg.apiKey}
	cams, err := api.ListCameras(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cams.Items) != 0 {
		t.Errorf("%d cameras left after the run", len(cams.Items))
	}
	resp, err := http.Post(v.Link()+"/session", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the minted link still opens after the run")
	}
}

// Viewers that leave after a hold time are replaced: in the closed model by
// the same worker, in the open model by the next arrival, each from a new
// source address.
func TestViewersHold(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of camera viewing")
	}
	tg := startCameraTarget(t)
	api := &ownerapi.Client{BaseURL: tg.url, APIKey: tg.apiKey}
	dc := ownerapi.DeviceCreate{Name: "cam"}
	src := alloc(&dc.RTSP)
	src.URL = tg.rtsp
	cam, err := api.CreateCamera(context.Background(), dc)
	if err != nil {
		t.Fatal(err)
	}
	l, err := api.CreateLink(context.Background(), ownerapi.LinkCreate{Device: cam.ID, Permissions: tokens.Permissions{Camera: []string{tokens.LevelLive}}})
	if err != nil {
		t.Fatal(err)
	}
	// A first viewer starts the camera's upstream (up to a keyframe
	// interval, 1 s, before the first fragment), which then lingers: the
	// held viewers find it running.
	warm, err := NewViewers(ViewersConfig{Link: l.URL, NoServerMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Config{Connections: 1, Duration: 2 * time.Second}, warm)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["event first-fragment"] != 1 {
		t.Fatalf("warming up: %v", r.Counts)
	}
	for _, cfg := range []Config{
		{Model: Closed, Connections: 2, Duration: 3500 * time.Millisecond},
		{Model: Open, Rate: 4, Connections: 8, Duration: 2500 * time.Millisecond},
	} {
		t.Run(string(cfg.Model), func(t *testing.T) {
			v, err := NewViewers(ViewersConfig{Link: l.URL, Hold: time.Second, NoServerMetrics: true})
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(context.Background(), cfg, v)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("counts %v", r.Counts)
			if r.Counts["event left"] < 3 {
				t.Errorf("%d viewers left after their hold, want at least 3", r.Counts["event left"])
			}
			if r.Counts["event first-fragment"] != r.Counts["event watch"] {
				t.Errorf("%d of %d viewers had a fragment", r.Counts["event first-fragment"], r.Counts["event watch"])
			}
			for kind, c := range r.Counts {
				if strings.HasPrefix(kind, "close ") || strings.HasPrefix(kind, "error ") || strings.HasPrefix(kind, "session ") {
					t.Errorf("unexpected %q x%d", kind, c)
				}
			}
			if _, ok := r.Info[InfoServerCPU]; ok {
				t.Error("server figures with NoServerMetrics")
			}
		})
	}
}

// The open model needs a hold time; a config without a link or the means
// to make one is refused, naming the field.
func TestViewersConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  ViewersConfig
		want string
	}{
		{ViewersConfig{}, "Link"},
		{ViewersConfig{Link: "http://127.0.0.1:1/x/abc"}, "Link"},
		{ViewersConfig{APIKey: "k"}, "Link"},
		{ViewersConfig{Link: "http://127.0.0.1:1/l/abc", RTSPTransport: "sctp"}, "RTSPTransport"},
		{ViewersConfig{Link: "http://127.0.0.1:1/l/abc", Hold: -1}, "Hold"},
	} {
		if _, err := NewViewers(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewViewers(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	v, err := NewViewers(ViewersConfig{Link: "http://127.0.0.1:1/l/abc"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Config{Model: Open, Rate: 1, Duration: time.Second}, v)
	if err == nil || !strings.Contains(err.Error(), "Hold") {
		t.Errorf("open model without Hold: %v", err)
	}
	v, _ = NewViewers(ViewersConfig{Link: "http://192.0.2.1:1/l/abc"})
	if _, err := Run(context.Background(), Config{Duration: time.Second}, v); !errors.Is(err, ErrRemoteTarget) {
		t.Errorf("a link outside loopback: %v, want ErrRemoteTarget", err)
	}
}

func TestViewerSourceIP(t *testing.T) {
	seen := map[string]bool{}
	for _, seq := range []int64{0, 1, 249, 250, 62499, 62500, 1_000_000, 14_999_999} {
		ip := viewerSourceIP(seq)
		if !ip.IsLoopback() || ip.To4() == nil || ip.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("seq %d: %v", seq, ip)
		}
		if seen[ip.String()] {
			t.Errorf("seq %d: %v again", seq, ip)
		}
		seen[ip.String()] = true
	}
	if !viewerSourceIP(15_000_000).Equal(viewerSourceIP(0)) {
		t.Error("the addresses do not wrap where documented")
	}
}
