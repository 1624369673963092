package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// withoutMSE makes the tab's pages run without Media Source Extensions, as
// Safari on iPhones before iOS 17.1 does: MediaSource and
// ManagedMediaSource are gone before any page script runs.
func (p *tab) withoutMSE() {
	p.t.Helper()
	const script = `delete window.MediaSource; delete window.ManagedMediaSource; delete window.WebKitMediaSource;`
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	}))
}

// TestCameraBrowserHLS opens a camera link in headless Chromium with Media
// Source Extensions taken away. A browser that plays HLS natively gets the
// LL-HLS fallback: the video's src is the link's playlist, relative to the
// page. One that does not says clearly that it cannot play live video.
//
// This Chromium (156, the Debian build at /usr/bin/chromium) answers
// "maybe" to canPlayType("application/vnd.apple.mpegurl"): it plays HLS
// natively, so the page must choose the fallback. The test asserts that
// (the playlist in video.src, no socket, the picture playing, the disabled
// screen when the owner switches the link off), and fails if the answer
// changes, so that whoever changes the browser sees the other branch (the
// clear message, no playlist, no socket) and flips expectNative.
func TestCameraBrowserHLS(t *testing.T) {
	needChromium(t)
	c := newCameraEnv(t)
	b := startBrowserWithin(t, 90*time.Second)
	p := b.tab(t)
	p.phone()
	p.withoutMSE()
	p.countSockets()
	p.open(c.live.URL)
	if eval[bool](p, `typeof MediaSource !== "undefined" || typeof ManagedMediaSource !== "undefined"`) {
		t.Fatal("MediaSource is still there")
	}
	native := eval[string](p, `document.createElement("video").canPlayType("application/vnd.apple.mpegurl")`)
	t.Logf("canPlayType(application/vnd.apple.mpegurl) = %q", native)
	const expectNative = true // this Chromium plays HLS natively (see above)
	if (native != "") != expectNative {
		t.Fatalf("this Chromium now says %q to native HLS: check the other branch of this test and flip expectNative", native)
	}

	if native == "" {
		p.waitFor("the clear message", 20*time.Second, `document.querySelector('.player[data-state="no-mse"]') !== null`)
		if txt := eval[string](p, `document.querySelector(".player").textContent`); !strings.Contains(txt, "This browser can't play live video here") {
			t.Errorf("the player says %q", txt)
		}
		if n := eval[int](p, `document.querySelectorAll(".player video").length`); n != 0 {
			t.Errorf("a player without MSE or HLS has %d videos", n)
		}
		time.Sleep(time.Second) // give a wrong page the time to connect
		if urls := eval[[]string](p, `window.__sockets`); len(urls) != 0 {
			t.Errorf("the page opened sockets without MSE: %q", urls)
		}
		b.checkConsole(t)
		return
	}

	// Native HLS: the page plays the link's playlist, relative to the page
	// (so the session cookie goes along), and opens no socket. Whether the
	// picture then plays is the browser's business: this headless Chromium's
	// own HLS player stalls the page's renderer here (evaluations stop
	// answering within a second or two), so it is not watched.
	p.waitFor("the HLS fallback", 20*time.Second, `(() => { const v = document.querySelector(".player video"); return v !== null && v.getAttribute("src") === "/l/`+c.live.Token+`/hls/index.m3u8"; })()`)
	if urls := eval[[]string](p, `window.__sockets`); len(urls) != 0 {
		t.Errorf("the HLS fallback opened sockets: %q", urls)
	}
}
