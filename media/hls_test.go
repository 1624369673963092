package media

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// hlsServer serves camera "cam" of m over HTTP the way the gateway does.
func hlsServer(t testing.TB, m *Manager, src Source) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := m.ServeHLS(r.Context(), "cam", src, HLSRequest{File: path.Base(r.URL.Path), Query: r.URL.RawQuery})
		var qe *HLSQueryError
		switch {
		case err == nil:
			w.Header().Set("Content-Type", resp.ContentType)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(resp.Status)
			_, _ = w.Write(resp.Body)
		case errors.Is(err, ErrHLSNotFound):
			http.Error(w, "not found", http.StatusNotFound)
		case errors.As(err, &qe):
			http.Error(w, qe.Error(), http.StatusBadRequest)
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hlsAU is one access unit as gohlslib's client decoded it.
type hlsAU struct {
	pts, dts int64
	idr      bool
}

// hlsClient reads url with gohlslib's own client and collects the H.264
// access units it decodes.
type hlsClient struct {
	c   *gohlslib.Client
	mu  sync.Mutex
	aus []hlsAU
	bad string // why an access unit was not H.264
}

func startHLSClient(t testing.TB, url string) *hlsClient {
	t.Helper()
	hc := &hlsClient{}
	hc.c = &gohlslib.Client{
		URI: url,
		OnTracks: func(tracks []*gohlslib.Track) error {
			for _, tr := range tracks {
				if _, ok := tr.Codec.(*codecs.H264); ok {
					hc.c.OnDataH26x(tr, func(pts, dts int64, au [][]byte) {
						hc.mu.Lock()
						defer hc.mu.Unlock()
						a := hlsAU{pts: pts, dts: dts}
						pic := false
						for _, nalu := range au {
							switch h264.NALUType(nalu[0] & 0x1f) {
							case h264.NALUTypeIDR:
								a.idr, pic = true, true
							case h264.NALUTypeNonIDR:
								pic = true
							}
						}
						if !pic && hc.bad == "" {
							hc.bad = "an access unit without a picture"
						}
						hc.aus = append(hc.aus, a)
					})
					return nil
				}
			}
			return errors.New("no H.264 track")
		},
	}
	if err := hc.c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.c.Close)
	return hc
}

func (hc *hlsClient) snapshot() []hlsAU {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	return append([]hlsAU(nil), hc.aus...)
}

// wait waits for n access units and checks them: H.264 pictures, the first
// an IDR, decode times going up.
func (hc *hlsClient) wait(t testing.TB, n int, within time.Duration) []hlsAU {
	t.Helper()
	waitFor(t, within, "access units over LL-HLS", func() bool {
		select {
		//lint:ignore SA1019 a check that must not block needs the channel; Wait2 blocks
		case err := <-hc.c.Wait():
			t.Fatalf("HLS client ended: %v", err)
		default:
		}
		return len(hc.snapshot()) >= n
	})
	aus := hc.snapshot()
	hc.mu.Lock()
	bad := hc.bad
	hc.mu.Unlock()
	if bad != "" {
		t.Errorf("HLS client decoded %s", bad)
	}
	if !aus[0].idr {
		t.Errorf("the first access unit is not an IDR")
	}
	for i := 1; i < len(aus); i++ {
		if aus[i].dts <= aus[i-1].dts {
			t.Fatalf("decode time went from %d to %d at access unit %d", aus[i-1].dts, aus[i].dts, i)
		}
		if aus[i].pts < aus[i].dts {
			t.Fatalf("access unit %d shown before it is decoded", i)
		}
	}
	return aus
}

// TestHLSSharedUpstream reads a camera over LL-HLS with gohlslib's client
// while an MSE viewer watches it: both come from one RTSP session. When
// both go, the HLS output stops after Linger, and so does the upstream.
func TestHLSSharedUpstream(t *testing.T) {
	t.Parallel()
	const linger = 1500 * time.Millisecond
	cam := startCam(t, camOpts{})
	m, lb := newTestManager(t, Config{Linger: linger})
	srv := hlsServer(t, m, cam.source())

	v, r := watch(t, m, "cam", cam.source())
	hc := startHLSClient(t, srv.URL+"/index.m3u8")
	aus := hc.wait(t, 50, 30*time.Second)
	r.waitFragments(50, 10*time.Second)
	// 25 frames a second: 50 of them span about 2 s.
	if span := aus[49].dts - aus[0].dts; span < 90000 || span > 3*90000 {
		t.Errorf("50 access units span %d ticks of 90 kHz", span)
	}
	if got := cam.opened.Load(); got != 1 {
		t.Errorf("camera saw %d RTSP sessions, want 1 for the MSE viewer and the HLS client", got)
	}
	if st := m.Stats("cam"); !st.HLS || st.Viewers != 1 || st.Connects != 1 {
		t.Errorf("stats %+v", st)
	}

	hc.c.Close()
	v.Close()
	left := time.Now()
	waitFor(t, 10*time.Second, "the HLS output to stop", func() bool { return !m.Stats("cam").HLS })
	if d := time.Since(left); d < linger*8/10 {
		t.Errorf("HLS output stopped %v after the last request, before Linger", d)
	}
	waitFor(t, 10*time.Second, "the upstream to stop", func() bool { return cam.closed.Load() == 1 })
	if strings.Contains(lb.String(), cam.url()) {
		t.Errorf("logs contain the source URL")
	}
}

// TestHLSPlaylist checks what an LL-HLS client sees of the playlists: no
// source URL, preload hints, blocking reloads answered when the part comes
// and within BlockTimeout otherwise.
func TestHLSPlaylist(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{HLS: HLSConfig{BlockTimeout: 2 * time.Second}})
	ctx := context.Background()
	get := func(file, query string) (*HLSResponse, error) {
		return m.ServeHLS(ctx, "cam", cam.source(), HLSRequest{File: file, Query: query})
	}

	var mv *HLSResponse
	var err error
	for start := time.Now(); time.Since(start) < 20*time.Second; {
		if mv, err = get("index.m3u8", ""); !errors.Is(err, ErrHLSNotReady) {
			break
		}
	}
	if err != nil {
		t.Fatalf("multivariant playlist: %v", err)
	}
	if !strings.Contains(string(mv.Body), "video1_stream.m3u8") || !strings.Contains(string(mv.Body), `CODECS="avc1.`) {
		t.Fatalf("multivariant playlist:\n%s", mv.Body)
	}
	pl, err := get("video1_stream.m3u8", "")
	if err != nil {
		t.Fatal(err)
	}
	body := string(pl.Body)
	for _, s := range []string{cam.url(), testPass, "rtsp", "127.0.0.1"} {
		if strings.Contains(body, s) || strings.Contains(string(mv.Body), s) {
			t.Errorf("a playlist contains %q", s)
		}
	}
	if !strings.Contains(body, "#EXT-X-PRELOAD-HINT") || !strings.Contains(body, "#EXT-X-PART:") {
		t.Fatalf("not an LL-HLS playlist:\n%s", body)
	}

	// A blocking reload for the next segment's first part is answered when
	// it is there; one far ahead is refused at once.
	parsed, err := playlist.Unmarshal(pl.Body)
	if err != nil {
		t.Fatal(err)
	}
	media := parsed.(*playlist.Media)
	next := uint64(media.MediaSequence + len(media.Segments)) // being built
	start := time.Now()
	pl, err = get("video1_stream.m3u8", "_HLS_msn="+itoa(next+1)+"&_HLS_part=0")
	if err != nil {
		t.Fatalf("blocking reload: %v", err)
	}
	if pl.Status != http.StatusOK || !strings.Contains(string(pl.Body), "_seg"+itoa(next)+".mp4") {
		t.Errorf("blocking reload for segment %d after %v: %d\n%s", next+1, time.Since(start), pl.Status, pl.Body)
	}
	if far, err := get("video1_stream.m3u8", "_HLS_msn="+itoa(next+100)); err != nil || far.Status != http.StatusBadRequest {
		t.Errorf("a reload far ahead: %v %v", far, err)
	}

	// The preload-hinted part is answered when it is complete.
	hint := between(string(pl.Body), `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="`, `"`)
	if p, err := get(hint, ""); err != nil || p.ContentType != "video/mp4" || len(p.Body) == 0 {
		t.Errorf("the hinted part %s: %v", hint, err)
	}
	// A part far ahead is not waited for.
	if _, err := get(strings.Replace(hint, "_part", "_part9", 1), ""); !errors.Is(err, ErrHLSNotFound) {
		t.Errorf("a part far ahead: %v", err)
	}
	for _, bad := range []struct{ file, query string }{
		{"video1_stream.m3u8", "_HLS_part=1"},
		{"video1_stream.m3u8", "_HLS_msn=-1"},
		{"video1_stream.m3u8", "_HLS_msn=1&_HLS_msn=2"},
		{"video1_stream.m3u8", "_HLS_skip=NO"},
	} {
		var qe *HLSQueryError
		if _, err := get(bad.file, bad.query); !errors.As(err, &qe) {
			t.Errorf("%s?%s: %v, want an HLSQueryError", bad.file, bad.query, err)
		}
	}
	for _, bad := range []string{"../index.m3u8", "x.m3u8", "000000000000_video1_part1.mp4", "index.m3u8/"} {
		if _, err := get(bad, ""); !errors.Is(err, ErrHLSNotFound) {
			t.Errorf("%s: %v, want ErrHLSNotFound", bad, err)
		}
	}
}

// TestHLSNotReady: a camera that cannot be reached answers within
// BlockTimeout, not never.
func TestHLSNotReady(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{})
	cam.kill()
	m, _ := newTestManager(t, Config{HLS: HLSConfig{BlockTimeout: 300 * time.Millisecond}})
	start := time.Now()
	_, err := m.ServeHLS(context.Background(), "cam", cam.source(), HLSRequest{File: "index.m3u8"})
	if !errors.Is(err, ErrHLSNotReady) {
		t.Fatalf("ServeHLS: %v, want ErrHLSNotReady", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answered after %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.ServeHLS(ctx, "cam", cam.source(), HLSRequest{File: "index.m3u8"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ServeHLS with a short context: %v", err)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return ""
}
