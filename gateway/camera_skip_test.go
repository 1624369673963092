package gateway_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// skipSteps is the timeline of skippingCamera, in frame intervals (1/25 s)
// between consecutive frames, repeated: runs of single steps broken by
// frames skipped, 2 or 3 intervals, right after a run (the hardest case
// for a muxer that must guess a frame's duration before the next one
// comes). 16 frames in 21 intervals: about 19 frames a second.
var skipSteps = []int64{1, 1, 1, 3, 1, 1, 2, 1, 1, 1, 1, 3, 1, 2, 1, 1}

// skippingCamera is an RTSP camera that skips frames: a real gortsplib
// server publishing the demo clip (640x360, 25 fps, an IDR every 25
// frames) with every access unit, so that each one decodes, but on the
// irregular timeline of skipSteps: RTP timestamps and the time each frame
// is sent leap over the skipped frames together, as a camera under load
// does.
type skippingCamera struct {
	url    string
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	sent   atomic.Int64 // access units published
	stop   context.CancelFunc
	done   chan struct{}
}

func startSkippingCamera(t *testing.T) *skippingCamera {
	t.Helper()
	aus, sps, pps := loadDemoClip(t)
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
	medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	enc, err := forma.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	return startTestCamera(t, "/skip", []*description.Media{medi}, func(ctx context.Context, c *skippingCamera) {
		start := time.Now()
		var ticks int64 // 90 kHz, from start
		for n := 0; ; n++ {
			due := start.Add(time.Duration(ticks) * time.Second / 90000)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(due)):
			}
			pkts, err := enc.Encode(aus[n%len(aus)])
			if err != nil {
				t.Errorf("RTP encoding: %v", err)
				return
			}
			for _, pkt := range pkts {
				pkt.Timestamp = uint32(1000 + ticks)
				if err := c.stream.WritePacketRTPWithNTP(medi, pkt, due); err != nil {
					return
				}
			}
			c.sent.Add(1)
			ticks += skipSteps[n%len(skipSteps)] * 3600
		}
	})
}

// startTestCamera serves medias at path on a real gortsplib server on a
// loopback port, with publish running until the test ends.
func startTestCamera(t *testing.T, path string, medias []*description.Media, publish func(context.Context, *skippingCamera)) *skippingCamera {
	t.Helper()
	c := &skippingCamera{done: make(chan struct{})}
	var ln net.Listener
	c.srv = &gortsplib.Server{
		Handler:     c,
		RTSPAddress: "127.0.0.1:0",
		Listen: func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			ln = l
			return l, err
		},
	}
	if err := c.srv.Start(); err != nil {
		t.Fatal(err)
	}
	c.stream = &gortsplib.ServerStream{Server: c.srv, Desc: &description.Session{Medias: medias}}
	if err := c.stream.Initialize(); err != nil {
		c.srv.Close()
		t.Fatal(err)
	}
	c.url = "rtsp://" + ln.Addr().String() + path
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	go func() {
		defer close(c.done)
		publish(ctx, c)
	}()
	t.Cleanup(func() {
		c.stop()
		<-c.done
		c.stream.Close()
		c.srv.Close()
	})
	return c
}

// loadDemoClip reads the demo camera's clip, an Annex-B stream with the SPS
// and PPS before every IDR and one slice per picture, as access units.
func loadDemoClip(t *testing.T) (aus [][][]byte, sps, pps []byte) {
	t.Helper()
	data, err := os.ReadFile("../media/democam/clip/demo.h264")
	if err != nil {
		t.Fatal(err)
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	var au [][]byte
	slice := false
	for _, n := range nalus {
		switch typ := h264.NALUType(n[0] & 0x1f); typ {
		case h264.NALUTypeSPS, h264.NALUTypePPS:
			if typ == h264.NALUTypeSPS {
				sps = n
			} else {
				pps = n
			}
			if slice {
				aus, au, slice = append(aus, au), nil, false
			}
		case h264.NALUTypeNonIDR, h264.NALUTypeIDR:
			if slice && n[1]&0x80 != 0 { // first_mb_in_slice == 0: a new picture
				aus, au = append(aus, au), nil
			}
			slice = true
		}
		au = append(au, n)
	}
	aus = append(aus, au)
	if len(aus) < 50 || sps == nil || pps == nil || !h264.IsRandomAccess(aus[0]) {
		t.Fatalf("demo clip: %d access units, SPS %v, PPS %v", len(aus), sps != nil, pps != nil)
	}
	return aus, sps, pps
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (c *skippingCamera) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (c *skippingCamera) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (c *skippingCamera) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// TestCameraBrowserSkippingCamera plays a camera that skips frames in
// headless Chromium. Each fragment leaves the server before the next frame
// tells its duration, so the duration is a guess; were the next frame's
// decode time more than twice that guess later, Chromium's MSE would take
// it as a discontinuity and drop every frame up to the next keyframe. So:
// every second more frames are decoded, the playhead moves and stays close
// to the newest frame, and over the watch Chromium decodes about as many
// frames as the camera sent (a discontinuity at each skip would lose most
// of them).
func TestCameraBrowserSkippingCamera(t *testing.T) {
	needChromium(t)
	watch := min(cameraWatch(t), 20*time.Second)
	cam := startSkippingCamera(t)
	e := newWSEnv(t)
	var dev struct {
		ID string `json:"id"`
	}
	want(t, e.owner.do(t, "POST", "/cameras", map[string]any{"name": "Yard", "rtsp": map[string]any{"url": cam.url}}), http.StatusCreated).json(t, &dev)
	live := e.owner.link(t, map[string]any{"device": dev.ID, "permissions": map[string]any{"camera": []string{"live"}}})

	b := startBrowserWithin(t, watch+60*time.Second)
	p := b.tab(t)
	p.open(live.URL)
	p.waitFor("the live picture", 20*time.Second,
		`document.querySelector('.player[data-state="live"] video') !== null && document.querySelector(".player video").currentTime > 0`)

	first := eval[playerSample](p, samplePlayer)
	sent0, at0 := cam.sent.Load(), time.Now()
	prev := first
	var samples []playerSample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for end := time.Now().Add(watch); time.Now().Before(end); {
		<-tick.C
		s := eval[playerSample](p, samplePlayer)
		samples = append(samples, s)
		n := len(samples)
		switch {
		case s.State != "live" || s.Paused:
			t.Errorf("sample %d: the player is %q (paused %v), not live", n, s.State, s.Paused)
		case s.behind() >= maxLiveDelay:
			t.Errorf("sample %d: %.2f s behind the newest frame, want under %.1f s", n, s.behind(), maxLiveDelay)
		}
		if s.Frames <= prev.Frames {
			t.Errorf("sample %d: no frame decoded in the last second (%d, then %d)", n, prev.Frames, s.Frames)
		}
		if s.Time <= prev.Time {
			t.Errorf("sample %d: the playhead did not move (%.3f, then %.3f)", n, prev.Time, s.Time)
		}
		prev = s
	}
	sent, elapsed := cam.sent.Load()-sent0, time.Since(at0).Seconds()
	decoded := prev.Frames - first.Frames
	t.Logf("watched %.0f s: the camera sent %d frames (%.1f/s), Chromium decoded %d (%.1f/s), %d dropped; played %.1f s",
		elapsed, sent, float64(sent)/elapsed, decoded, float64(decoded)/elapsed, prev.Dropped, prev.Time-first.Time)
	if float64(decoded) < 0.9*float64(sent) {
		t.Errorf("Chromium decoded %d of the %d frames sent: frames were dropped up to keyframes", decoded, sent)
	}
	if t.Failed() {
		for i, s := range samples {
			t.Logf("sample %d: %+v", i+1, s)
		}
	}
	b.checkConsole(t)
}
