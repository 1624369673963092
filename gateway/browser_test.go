package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/tokens/redistest"
)

// chromiumPath is where `make test` (the deps target) installs Chromium.
const chromiumPath = "/usr/bin/chromium"

// TestBrowser opens share links in a real headless Chromium against a
// gateway on a real Redis with a simulated fleet, and drives the page as a
// person would: the plug's switch, the light's brightness slider (moved as a
// pointer moves it, then with an arrow key), and the owner switching the
// link off under an open page. It
// saves screenshots at phone and desktop size (LINKGATE_ARTIFACTS, default
// <repo>/artifacts/screenshots).
func TestBrowser(t *testing.T) {
	needChromium(t)
	// Not parallel: a browser playing video wants the machine's cores to
	// itself, or the test measures the machine instead of linkgate.
	shots := artifactsDir(t)

	e := newWSEnv(t) // the plug and its link: controls switch/on, sees meter/power
	light := e.owner.device(t, lightBody)
	lightLink := e.owner.link(t, map[string]any{"device": light.ID, "permissions": map[string]any{
		"control": []string{"light/on", "light/brightness"},
	}})

	b := startBrowser(t)
	plug := b.tab(t)
	plug.phone()
	start := time.Now()
	plug.open(e.link.URL)

	// Live: the session is open, the socket said hello, the device is online.
	plug.waitFor("the plug page to go live", 10*time.Second,
		`document.querySelector('#app[data-screen="app"] .app[data-live="on"]') !== null`)
	t.Logf("plug page live %v after navigation started", time.Since(start).Round(time.Millisecond))
	plug.waitFor("the power reading", 5*time.Second, `card("meter/power").dataset.known !== undefined`)
	if n := eval[int](plug, `document.querySelectorAll('[data-path="meter/energy"]').length`); n != 0 {
		t.Errorf("the energy meter, which the link may not see, is on the page (%d elements)", n)
	}
	if txt := eval[string](plug, `document.body.innerText`); strings.Contains(txt, "Energy") || strings.Contains(txt, "kWh") {
		t.Errorf("the page mentions the energy meter:\n%s", txt)
	}
	if eval[bool](plug, `!card("meter/power").querySelector("output").textContent.includes("W")`) {
		t.Error("the power reading is not shown with its unit")
	}
	if eval[bool](plug, `!!card("meter/power").querySelector("input, select, button")`) {
		t.Error("the power reading, which the link may only see, has a control")
	}

	// The switch: the device turns on and draws power.
	plug.do(chromedp.Click(chromedp.CSS(`[data-path="switch/on"] input[role="switch"]`)))
	clicked := time.Now()
	plug.waitFor("the switch to be on, as the device reports", 5*time.Second,
		`card("switch/on").dataset.known === "true" && card("switch/on").querySelector("input").checked`)
	t.Logf("switch on echoed %v after the click", time.Since(clicked).Round(time.Millisecond))
	plug.waitFor("the shown power to rise above 0 W", 5*time.Second, `shownNumber("meter/power") > 0`)
	t.Logf("power %.1f W shown %v after the click", eval[float64](plug, `shownNumber("meter/power")`), time.Since(clicked).Round(time.Millisecond))
	plug.waitFor("the result read out to screen readers", 2*time.Second,
		`[...document.querySelectorAll('[aria-live="polite"]')].some((e) => e.textContent === "Switch, On: on")`)
	if lbl := eval[string](plug, `card("switch/on").querySelector("input").labels[0].textContent`); lbl != "On" {
		t.Errorf("the switch is labelled %q", lbl)
	}
	if got := eval[string](plug, `card("switch/on").dataset.cmd`); got == "refused" {
		t.Errorf("the switch command was refused: %s", eval[string](plug, `card("switch/on").innerText`))
	}
	// A few readings for the sparkline, then the pictures.
	plug.waitFor("the power sparkline", 5*time.Second,
		`(card("meter/power").querySelector("svg.spark polyline").getAttribute("points") || "").split(" ").length >= 5`)
	plug.screenshot(shots, "plug-live-phone")
	plug.desktop()
	plug.screenshot(shots, "plug-live-desktop")

	// The light, in a second tab: the brightness slider, set as a pointer
	// would (input, then change on release), then one arrow key.
	lamp := b.tab(t)
	lamp.phone()
	lamp.open(lightLink.URL)
	lamp.waitFor("the light page to go live", 10*time.Second,
		`document.querySelector('#app[data-screen="app"] .app[data-live="on"]') !== null`)
	lamp.waitFor("the brightness reading", 5*time.Second, `card("light/brightness").dataset.known !== undefined`)
	target := 80
	if eval[float64](lamp, `Number(card("light/brightness").dataset.known)`) >= 50 {
		target = 20
	}
	slid := time.Now()
	lamp.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const s = card("light/brightness").querySelector('input[type="range"]');
		s.value = "%d";
		s.dispatchEvent(new Event("input", {bubbles: true}));
		s.dispatchEvent(new Event("change", {bubbles: true}));
	})()`, target)))
	lamp.waitFor(fmt.Sprintf("brightness %d echoed", target), 5*time.Second,
		fmt.Sprintf(`card("light/brightness").dataset.known === "%d" && shownNumber("light/brightness") === %d`, target, target))
	t.Logf("brightness %d echoed %v after the slider moved", target, time.Since(slid).Round(time.Millisecond))
	lamp.do(chromedp.Focus(chromedp.CSS(`[data-path="light/brightness"] input[type="range"]`)))
	lamp.do(chromedp.KeyEvent(kb.ArrowRight))
	lamp.waitFor(fmt.Sprintf("brightness %d (arrow key) echoed", target+1), 5*time.Second,
		fmt.Sprintf(`card("light/brightness").dataset.known === "%d" && shownNumber("light/brightness") === %d`, target+1, target+1))
	lamp.screenshot(shots, "light-live-phone")

	// The owner switches the plug's link off: the open page says so at once.
	want(t, e.owner.do(t, "POST", "/links/"+e.link.ID+"/disable", nil), http.StatusOK)
	answered := time.Now()
	plug.do(chromedp.Poll[chromedp.Void](`document.getElementById("app").dataset.screen === "disabled"`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(time.Second)))
	t.Logf("disabled screen shown %v after the API answered", time.Since(answered).Round(time.Millisecond))
	if h1 := eval[string](plug, `document.querySelector("#app h1").textContent`); h1 != "This link is switched off" {
		t.Errorf("disabled screen heading %q", h1)
	}
	plug.screenshot(shots, "disabled-desktop")
	plug.phone()
	plug.screenshot(shots, "disabled-phone")

	// The light's link is another link: it stays live.
	if !eval[bool](lamp, `document.querySelector('.app[data-live="on"]') !== null`) {
		t.Error("the light's page lost its connection when the plug's link was switched off")
	}
	b.checkConsole(t)
}

// TestBrowserReconnect: what an open page does when things around it
// change. A refused command puts the control back; the device going
// offline and back; the owner taking control away and setting a window
// while the page is open; and the gateway restarting under the page, which
// comes back by itself.
func TestBrowserReconnect(t *testing.T) {
	needChromium(t)
	// Not parallel: a browser playing video wants the machine's cores to
	// itself, or the test measures the machine instead of linkgate.
	shots := artifactsDir(t)
	rdb := redistest.Start(t).Client(t)
	ring := testRing(t)
	// One command per two seconds: the second click in a row is refused.
	slow := func(c *gateway.Config) { c.WS.Commands = emulator.SessionLimits{Commands: 0.5, Burst: 1} }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	in, stopGateway := serveGateway(t, rdb, ring, ln, slow)
	owner := newTenant(t, in, "owner")
	plug := owner.device(t, plugBody)
	link := owner.link(t, map[string]any{"device": plug.ID, "permissions": map[string]any{
		"control": []string{"switch/on"}, "view": []string{"meter/power"},
	}})
	stopFleet := runFleet(t, rdb)

	b := startBrowser(t)
	p := b.tab(t)
	p.phone()
	p.open(link.URL)
	p.waitFor("the page to go live", 10*time.Second, `document.querySelector('.app[data-live="on"]') !== null`)
	p.waitFor("the switch's state", 5*time.Second, `card("switch/on").dataset.known !== undefined`)

	// A refused command: its reason on the card, the switch back as it was.
	was := eval[string](p, `card("switch/on").dataset.known`)
	p.do(chromedp.Click(chromedp.CSS(`[data-path="switch/on"] input`)))
	p.waitFor("the first change to be echoed", 5*time.Second, fmt.Sprintf(`card("switch/on").dataset.known !== %q`, was))
	now := eval[string](p, `card("switch/on").dataset.known`)
	p.do(chromedp.Click(chromedp.CSS(`[data-path="switch/on"] input`)))
	p.waitFor("the second change to be refused", 5*time.Second, `card("switch/on").dataset.cmd === "refused"`)
	if note := eval[string](p, `card("switch/on").querySelector(".cmd-note").textContent`); !strings.Contains(note, "Too many changes") {
		t.Errorf("refusal note %q", note)
	}
	if checked := eval[bool](p, `card("switch/on").querySelector("input").checked`); fmt.Sprint(checked) != now {
		t.Errorf("after the refusal the switch shows %v, the device %s", checked, now)
	}
	p.screenshot(shots, "refused-phone")

	// The device goes offline: a banner, controls off; and back.
	stopFleet()
	p.waitFor("the device-offline banner", 5*time.Second,
		`document.querySelector('.app[data-live="offline"] .live-note.offline:not([hidden])') !== null && card("switch/on").querySelector("input").disabled`)
	p.screenshot(shots, "offline-phone")
	runFleet(t, rdb)
	p.waitFor("the device back online", 5*time.Second,
		`document.querySelector('.app[data-live="on"]') !== null && !card("switch/on").querySelector("input").disabled`)

	// The owner takes control away and gives the link a window: the page
	// follows, without a reload.
	end := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	want(t, owner.do(t, "PATCH", "/links/"+link.ID, map[string]any{
		"permissions": map[string]any{"view": []string{"switch/on", "meter/power"}},
		"window":      map[string]any{"end": end},
	}), http.StatusOK)
	p.waitFor("the switch to become view-only and the time left to show", 5*time.Second,
		`card("switch/on") && !card("switch/on").querySelector("input") && card("meter/power") && document.querySelector(".timeleft .countdown")`)
	if left := eval[string](p, `document.querySelector(".timeleft .countdown").textContent`); !strings.HasPrefix(left, "1:59:") && !strings.HasPrefix(left, "2:00:") {
		t.Errorf("time left %q, want about 2 hours", left)
	}
	p.screenshot(shots, "permissions-phone")

	// The gateway restarts: the page says the connection is lost, then comes
	// back by itself (a new session, a new socket).
	stopGateway()
	stopped := time.Now()
	p.waitFor("the connection-lost screen", 10*time.Second, `document.getElementById("app").dataset.screen === "connection-lost"`)
	t.Logf("connection-lost screen %v after the gateway stopped", time.Since(stopped).Round(time.Millisecond))
	p.screenshot(shots, "connection-lost-phone")
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serveGateway(t, rdb, ring, ln, slow)
	restarted := time.Now()
	p.waitFor("the page to come back live", 15*time.Second,
		`document.getElementById("app").dataset.screen === "app" && document.querySelector('.app[data-live="on"]') !== null && card("meter/power").dataset.known !== undefined`)
	t.Logf("live again %v after the gateway restarted", time.Since(restarted).Round(time.Millisecond))

	// A link open in as many places as it may be: the next page says it is
	// busy, and gets in by itself once a place is free.
	one := owner.link(t, map[string]any{"device": plug.ID, "maxSessions": 1,
		"permissions": map[string]any{"view": []string{"meter/power"}}})
	first := b.tab(t)
	first.open(one.URL)
	first.waitFor("the first page to go live", 10*time.Second, `document.querySelector('.app[data-live="on"]') !== null`)
	second := b.tab(t)
	second.phone()
	second.open(one.URL)
	second.waitFor("the busy screen", 5*time.Second, `document.getElementById("app").dataset.screen === "too-many-sessions"`)
	second.screenshot(shots, "busy-phone")
	first.close()
	freed := time.Now()
	second.waitFor("the second page to get in", 15*time.Second, `document.querySelector('#app[data-screen="app"] .app[data-live="on"]') !== null`)
	t.Logf("busy page live %v after the other page closed", time.Since(freed).Round(time.Millisecond))

	// A page that cannot reach its server says so in the console.
	b.checkConsole(t, "net::ERR_CONNECTION_REFUSED", "WebSocket connection to")
}

// needChromium skips the test when Chromium is missing, or fails it under
// CI=true.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true: the browser tests must run)", chromiumPath, err)
		}
		t.Skipf("%s is missing; `make test` installs it (apt-get install chromium)", chromiumPath)
	}
}

// runFleet runs simulated devices for every device on rdb, and returns a
// func that stops them (taking them offline) and waits.
func runFleet(t *testing.T, rdb redis.UniversalClient) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	fleet := emulator.NewFleet(emulator.NewBus(rdb), emulator.NewStore(rdb), emulator.FleetOptions{
		Rescan: 50 * time.Millisecond,
		Sim:    emulator.SimOptions{Tick: 50 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = fleet.Run(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// artifactsDir is where screenshots go: $LINKGATE_ARTIFACTS, or
// artifacts/screenshots at the repository root (gitignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LINKGATE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts", "screenshots")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium for a test; its tabs share it.
type browser struct {
	ctx context.Context

	mu      sync.Mutex // guards console
	console []string   // errors and exceptions of every tab
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	return startBrowserWithin(t, time.Minute)
}

// startBrowserWithin starts a browser that lives at most the given time: a
// stuck page cannot hang the test run.
func startBrowserWithin(t *testing.T, within time.Duration) *browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		// Several tabs work at once: none may be slowed as a background tab.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
	)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return &browser{ctx: bctx}
}

// tab opens a tab whose console errors and exceptions are kept.
func (b *browser) tab(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.console = append(b.console, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return &tab{t: t, ctx: ctx, close: cancel}
}

// checkConsole fails the test for any error or uncaught exception a page
// logged (a violation of the Content-Security-Policy is one), but those
// that contain one of the expected strings.
func (b *browser) checkConsole(t *testing.T, expected ...string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if !slices.ContainsFunc(expected, func(s string) bool { return strings.Contains(m, s) }) {
			t.Errorf("browser console: %s", m)
		}
	}
}

// tab is one page of the browser.
type tab struct {
	t     *testing.T
	ctx   context.Context
	close context.CancelFunc // closes the tab
}

// pageHelpers are functions the test's expressions use; they are defined
// through the DevTools protocol, not by the page (whose CSP allows no
// inline script).
const pageHelpers = `
	window.card = (path) => document.querySelector('[data-path="' + path + '"]');
	window.shownNumber = (path) => {
		const out = card(path).querySelector("output");
		return out ? Number(out.firstChild.textContent.replace(/[^0-9.\-]/g, "")) : NaN;
	};
	true`

func (p *tab) do(a chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, a); err != nil {
		p.t.Fatal(err)
	}
}

func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func (p *tab) open(url string) {
	p.t.Helper()
	p.do(chromedp.Navigate(url))
	p.do(chromedp.Evaluate[chromedp.Void](pageHelpers))
}

// waitFor polls expr in the page every 50 ms until it is true.
func (p *tab) waitFor(what string, within time.Duration, expr string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		screen, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("app").dataset.screen + ": " + document.body.innerText`))
		p.t.Fatalf("waiting for %s: %v\npage: %s", what, err, screen)
	}
}

// phone is an iPhone-sized viewport (390×844 CSS pixels, 2× pixels).
func (p *tab) phone() {
	p.t.Helper()
	p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait))
}

// desktop is a laptop-sized viewport.
func (p *tab) desktop() {
	p.t.Helper()
	p.do(chromedp.EmulateViewport(1280, 800))
}

// screenshot saves the viewport as dir/name.png once the layout settled.
func (p *tab) screenshot(dir, name string) {
	p.t.Helper()
	// Two frames: the new viewport is laid out and painted.
	p.do(chromedp.Evaluate[chromedp.Void](`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatal(err)
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s", file)
}
