package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// cameraWatch is how long TestCameraBrowser watches the live picture,
// sampling it every second: $LINKGATE_CAMERA_WATCH (a Go duration), by
// default the minute the issue asks for.
func cameraWatch(t *testing.T) time.Duration {
	t.Helper()
	const def = 60 * time.Second
	s := os.Getenv("LINKGATE_CAMERA_WATCH")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 3*time.Second {
		t.Fatalf("LINKGATE_CAMERA_WATCH=%q: want a duration of at least 3s", s)
	}
	return d
}

// maxLiveDelay is the most the picture may trail the newest buffered frame
// at any sample (camera.js aims for 0.5 s).
const maxLiveDelay = 1.0

// playerSample is what the page's video element says at one moment.
type playerSample struct {
	State   string  `json:"state"`   // the player's data-state
	Time    float64 `json:"time"`    // currentTime
	End     float64 `json:"end"`     // buffered.end(last), -1 when nothing is buffered
	Start   float64 `json:"start"`   // buffered.start(0)
	Ranges  int     `json:"ranges"`  // buffered.length
	Frames  int     `json:"frames"`  // getVideoPlaybackQuality().totalVideoFrames
	Dropped int     `json:"dropped"` // droppedVideoFrames
	Paused  bool    `json:"paused"`
	Rate    float64 `json:"rate"`
	Width   int     `json:"width"`
	Height  int     `json:"height"`
	Delay   string  `json:"delay"` // the page's own readout
}

func (s playerSample) behind() float64 { return s.End - s.Time }

const samplePlayer = `(() => {
	const v = document.querySelector(".player video");
	const p = document.querySelector(".player");
	if (!v || !p) return {state: p ? p.dataset.state : "none", end: -1};
	const b = v.buffered;
	const q = v.getVideoPlaybackQuality();
	return {
		state: p.dataset.state || "", time: v.currentTime, end: b.length ? b.end(b.length - 1) : -1, start: b.length ? b.start(0) : 0,
		ranges: b.length, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,
		paused: v.paused, rate: v.playbackRate, width: v.videoWidth, height: v.videoHeight,
		delay: (p.querySelector(".player-delay") || {}).textContent || "",
	};
})()`

// TestCameraBrowser plays a camera link in a real headless Chromium: the
// demo camera (a real RTSP server) through the gateway's stream socket into
// Media Source Extensions. Over cameraWatch, sampled every second, frames
// keep being decoded, the playhead keeps moving and it stays within
// maxLiveDelay of the newest frame. The owner taking live view away turns
// the open page into one that says so; a camera link without the live level
// says so and opens no socket; a link switched off while it plays shows its
// closing screen. Screenshots at phone and desktop size go to the artifacts
// directory.
func TestCameraBrowser(t *testing.T) {
	needChromium(t)
	// Not parallel: a browser playing video wants the machine's cores to
	// itself, or the test measures the machine instead of linkgate.
	shots := artifactsDir(t)
	watch := cameraWatch(t)
	c := newCameraEnv(t)
	noLive := c.owner.link(t, map[string]any{"device": c.cam.ID, "name": "Door, recordings only",
		"permissions": map[string]any{"camera": []string{"archive", "notices"}}})

	b := startBrowserWithin(t, watch+90*time.Second)
	p := b.tab(t)
	p.phone()

	// This Chromium must play H.264 through MSE at all, or nothing below means anything.
	const h264 = `video/mp4; codecs="avc1.42E01E"`
	if !eval[bool](p, fmt.Sprintf(`typeof MediaSource === "function" && MediaSource.isTypeSupported(%q)`, h264)) {
		msg := fmt.Sprintf("%s cannot play %s through Media Source Extensions (a build without H.264)", chromiumPath, h264)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	p.countSockets()
	start := time.Now()
	p.open(c.live.URL)
	p.waitFor("the live picture", 20*time.Second,
		`document.querySelector('.player[data-state="live"] video') !== null && document.querySelector(".player video").currentTime > 0`)
	t.Logf("picture live %v after navigation started", time.Since(start).Round(time.Millisecond))

	// Watch: every second the picture has moved on, more frames were
	// decoded, and the playhead is close behind the newest frame.
	var samples []playerSample
	prev := eval[playerSample](p, samplePlayer)
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
		case s.End < 0:
			t.Errorf("sample %d: nothing buffered", n)
		case s.behind() >= maxLiveDelay:
			t.Errorf("sample %d: %.2f s behind the newest frame (buffered to %.2f, playing %.2f), want under %.1f s",
				n, s.behind(), s.End, s.Time, maxLiveDelay)
		}
		if s.Frames <= prev.Frames {
			t.Errorf("sample %d: no frame decoded in the last second (%d, then %d)", n, prev.Frames, s.Frames)
		}
		if s.Time <= prev.Time {
			t.Errorf("sample %d: the playhead did not move (%.3f, then %.3f)", n, prev.Time, s.Time)
		}
		prev = s
	}
	if t.Failed() {
		for i, s := range samples {
			t.Logf("sample %d: %+v", i+1, s)
		}
	}

	// The numbers, for the record.
	delays := make([]float64, len(samples))
	for i, s := range samples {
		delays[i] = s.behind()
	}
	slices.Sort(delays)
	first, last := samples[0], samples[len(samples)-1]
	played := last.Time - first.Time
	elapsed := float64(len(samples) - 1)
	t.Logf("watched %v: delay behind the newest frame min %.2f s, median %.2f s, p95 %.2f s, max %.2f s",
		watch, delays[0], delays[len(delays)/2], delays[len(delays)*95/100], delays[len(delays)-1])
	t.Logf("played %.1f s of video in %.0f s; %d frames decoded (%.1f/s), %d dropped; %dx%d; buffered at the end %.1f s in %d range(s)",
		played, elapsed, last.Frames-first.Frames, float64(last.Frames-first.Frames)/elapsed, last.Dropped, last.Width, last.Height,
		last.End-last.Start, last.Ranges)
	if last.Width != 640 || last.Height != 360 {
		t.Errorf("the picture is %dx%d, the demo camera's is 640x360", last.Width, last.Height)
	}
	// The clock of the picture keeps up with the wall clock: no drift.
	if elapsed >= 10 && (played < 0.95*elapsed || played > 1.05*elapsed+1) {
		t.Errorf("played %.1f s of video in %.0f s", played, elapsed)
	}
	if rate := float64(last.Frames-first.Frames) / elapsed; elapsed >= 10 && rate < 20 {
		t.Errorf("%.1f frames decoded a second, the camera sends 25", rate)
	}
	// The buffer is trimmed (camera.js keeps 10 s behind the playhead, cut
	// at a keyframe, every 5 s): memory stays flat however long it plays.
	if span := last.End - last.Start; elapsed >= 30 && span > 20 {
		t.Errorf("%.1f s of video buffered after %.0f s: the buffer is not trimmed", span, elapsed)
	}

	if txt := eval[string](p, `document.querySelector(".appbar .pill").textContent`); txt != "Live" {
		t.Errorf("the app bar says %q, want Live", txt)
	}
	if d := eval[string](p, `document.querySelector(".player-delay").textContent`); !strings.HasSuffix(d, " s") {
		t.Errorf("the delay readout says %q", d)
	}
	p.screenshot(shots, "camera-live-phone")
	p.desktop()
	p.waitFor("the picture live at desktop size", 5*time.Second, `document.querySelector('.player[data-state="live"]') !== null`)
	p.screenshot(shots, "camera-live-desktop")
	if urls := eval[[]string](p, `window.__sockets`); len(urls) != 1 || !strings.HasSuffix(urls[0], "/l/"+c.live.Token+"/live") {
		t.Errorf("the live page opened the sockets %q, want one to its /live", urls)
	}

	// The owner takes live view away: the stream closes ("level-revoked"),
	// the page asks for a new session and says what the link still has.
	want(t, c.owner.do(t, "PATCH", "/links/"+c.live.ID, map[string]any{"permissions": map[string]any{"camera": []string{"notices"}}}), http.StatusOK)
	p.waitFor("the page without live view", 5*time.Second,
		`document.getElementById("app").dataset.screen === "app" && document.querySelector(".live-excluded") !== null && !document.querySelector(".player")`)

	// A link without the live level: the page says so and opens no socket.
	q := b.tab(t)
	q.phone()
	q.countSockets()
	q.open(noLive.URL)
	q.waitFor("the page of the link without live view", 10*time.Second,
		`document.getElementById("app").dataset.screen === "app" && document.querySelector(".live-excluded") !== null`)
	if txt := eval[string](q, `document.querySelector(".live-excluded").textContent`); !strings.Contains(txt, "Live view isn't part of this link.") {
		t.Errorf("the page of the link without live view says %q", txt)
	}
	if n := eval[int](q, `document.querySelectorAll(".player, video").length`); n != 0 {
		t.Errorf("the page of the link without live view has %d players", n)
	}
	time.Sleep(time.Second) // give a wrong page the time to connect
	if urls := eval[[]string](q, `window.__sockets`); len(urls) != 0 {
		t.Errorf("the page of the link without live view opened sockets: %q", urls)
	}
	q.screenshot(shots, "camera-no-live-phone")

	// Another live link, switched off by its owner while it plays: the
	// closing screen.
	other := c.owner.link(t, map[string]any{"device": c.cam.ID, "permissions": map[string]any{"camera": []string{"live"}}})
	q.open(other.URL)
	q.waitFor("the other live picture", 20*time.Second, `document.querySelector('.player[data-state="live"]') !== null`)
	want(t, c.owner.do(t, "POST", "/links/"+other.ID+"/disable", nil), http.StatusOK)
	q.waitFor("the disabled screen", 5*time.Second, `document.getElementById("app").dataset.screen === "disabled"`)

	b.checkConsole(t)
}

// countSockets makes the tab's pages record the URL of every WebSocket
// they open in window.__sockets (a script run before theirs).
func (p *tab) countSockets() {
	p.t.Helper()
	const script = `(() => {
		const Native = window.WebSocket;
		window.__sockets = [];
		window.WebSocket = class extends Native {
			constructor(url, protocols) {
				window.__sockets.push(String(url));
				super(url, protocols);
			}
		};
	})()`
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	}))
}
