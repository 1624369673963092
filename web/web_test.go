package web

import (
	"bytes"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/emulator"
)

var (
	scriptRe     = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	styleAttrRe  = regexp.MustCompile(`(?i)\sstyle\s*=`)
	styleElemRe  = regexp.MustCompile(`(?i)<style[\s>]`)
	handlerRe    = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	staticRefRe  = regexp.MustCompile(`(?i)(?:src|href)\s*=\s*"(/static/[^"?#]*)`)
	externalRefs = regexp.MustCompile(`(?i)(?:src|href)\s*=\s*"(?:https?:)?//`)
	cssURLRe     = regexp.MustCompile(`url\(\s*["']?([^"')]+)`)
)

// checkCSP fails when page needs anything the link page's
// Content-Security-Policy refuses: inline scripts, inline styles, inline
// event handlers, javascript: URLs, or resources from elsewhere.
func checkCSP(t *testing.T, name string, page []byte) {
	t.Helper()
	s := string(page)
	scripts := scriptRe.FindAllStringSubmatch(s, -1)
	if len(scripts) == 0 {
		t.Errorf("%s: no <script> at all", name)
	}
	for _, m := range scripts {
		if strings.TrimSpace(m[2]) != "" {
			t.Errorf("%s: inline script body %q", name, m[2])
		}
		if !strings.Contains(m[1], `src="/static/`) {
			t.Errorf("%s: script without a /static/ src: <script%s>", name, m[1])
		}
	}
	if m := styleAttrRe.FindString(s); m != "" {
		t.Errorf("%s: style attribute: %q", name, m)
	}
	if styleElemRe.MatchString(s) {
		t.Errorf("%s: <style> element", name)
	}
	if m := handlerRe.FindString(s); m != "" {
		t.Errorf("%s: inline event handler in %q", name, m)
	}
	if strings.Contains(strings.ToLower(s), "javascript:") {
		t.Errorf("%s: javascript: URL", name)
	}
	if m := externalRefs.FindString(s); m != "" {
		t.Errorf("%s: external resource %q", name, m)
	}
	if !strings.Contains(s, `<meta name="robots" content="noindex`) {
		t.Errorf("%s: no robots noindex meta", name)
	}
}

// checkStaticRefs fails when page refers to a /static/ file that Static
// does not have. It returns the files referred to.
func checkStaticRefs(t *testing.T, name string, page []byte) []string {
	t.Helper()
	var refs []string
	for _, m := range staticRefRe.FindAllStringSubmatch(string(page), -1) {
		file := strings.TrimPrefix(m[1], "/static/")
		refs = append(refs, file)
		if _, err := fs.Stat(Static, file); err != nil {
			t.Errorf("%s refers to %s, which is not in Static: %v", name, m[1], err)
		}
	}
	return refs
}

func TestLinkPage(t *testing.T) {
	for _, kind := range []string{"device", "camera"} {
		page := LinkPage(kind)
		if len(page) == 0 {
			t.Fatalf("LinkPage(%q) is empty", kind)
		}
		checkCSP(t, kind, page)
		refs := checkStaticRefs(t, kind, page)
		for _, want := range []string{"app.css", "app.js", "live.js", "camera.js", "icon.svg"} {
			if !slices.Contains(refs, want) {
				t.Errorf("LinkPage(%q) does not refer to /static/%s", kind, want)
			}
		}
		// live.js and camera.js use window.LinkGate: they must run after
		// app.js, and none may hold up the parser. Both kinds get both: a
		// link's device may be swapped for a camera, or back, while the
		// page is open, and each script does nothing on the other kind.
		var order []string
		for _, m := range scriptRe.FindAllStringSubmatch(string(page), -1) {
			if !strings.Contains(m[1], " defer") {
				t.Errorf("LinkPage(%q): script without defer: <script%s>", kind, m[1])
			}
			order = append(order, m[1])
		}
		app := slices.IndexFunc(order, func(a string) bool { return strings.Contains(a, "/static/app.js") })
		for _, layer := range []string{"live.js", "camera.js"} {
			if j := slices.IndexFunc(order, func(a string) bool { return strings.Contains(a, "/static/"+layer) }); app < 0 || j < app {
				t.Errorf("LinkPage(%q): %s is not loaded after app.js: %q", kind, layer, order)
			}
		}
		s := string(page)
		for _, want := range []string{
			`<link rel="icon" href="/static/icon.svg"`,
			`data-kind="` + kind + `"`,
			`id="app"`,
			`aria-live="polite"`,
		} {
			if !strings.Contains(s, want) {
				t.Errorf("LinkPage(%q) lacks %s", kind, want)
			}
		}
		if strings.Contains(s, "{{") {
			t.Errorf("LinkPage(%q) has template leftovers", kind)
		}
		if !bytes.Equal(page, LinkPage(kind)) || &page[0] != &LinkPage(kind)[0] {
			t.Errorf("LinkPage(%q) is not computed once", kind)
		}
	}
	if bytes.Equal(LinkPage("device"), LinkPage("camera")) {
		t.Error("device and camera pages are the same")
	}
	if !bytes.Equal(LinkPage("bogus"), LinkPage("device")) {
		t.Error("an unknown kind does not get the device page")
	}
}

func TestRenderErrorEscapes(t *testing.T) {
	var buf bytes.Buffer
	err := RenderError(&buf, ErrorPage{
		Status:  410,
		Code:    `expired"><script>alert(1)</script>`,
		Title:   `<script>alert("t")</script> expired`,
		Message: `<img src=x onerror=alert(2)> & more`,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, bad := range []string{`<script>alert`, `<img src=x`, `"><script>`} {
		if strings.Contains(s, bad) {
			t.Errorf("output has unescaped %q", bad)
		}
	}
	if !strings.Contains(s, "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt; expired") {
		t.Errorf("title not escaped as expected:\n%s", s)
	}
	if !strings.Contains(s, "&lt;img src=x onerror=alert(2)&gt; &amp; more") {
		t.Errorf("message not escaped as expected:\n%s", s)
	}
	checkCSP(t, "error page", buf.Bytes())
}

func TestRenderError(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	opens := time.Date(2026, 11, 22, 11, 0, 0, 0, berlin)
	for _, tc := range []struct {
		name      string
		page      ErrorPage
		want      []string
		dontWant  []string
		wantTitle string
	}{
		{
			name: "not yet active",
			page: ErrorPage{Status: 403, Code: "not-yet-active", Title: "Not open yet", Message: "Soon.", Opens: opens},
			want: []string{
				`<time datetime="2026-11-22T10:00:00Z">Sun 22 Nov 2026, 10:00 UTC</time>`,
				`data-code="not-yet-active"`,
				`<h1 tabindex="-1">Not open yet</h1>`,
				"Soon.",
				`href="#i-calendar"`,
			},
			wantTitle: "Not open yet · linkgate",
		},
		{
			name:      "defaults from code",
			page:      ErrorPage{Status: 410, Code: "used-up"},
			want:      []string{refusals["used-up"].title, refusals["used-up"].message, `href="#i-ticket"`, "tone-stop"},
			dontWant:  []string{"<time"},
			wantTitle: refusals["used-up"].title,
		},
		{
			name:     "default message names the opening when known",
			page:     ErrorPage{Status: 403, Code: "outside-schedule", Opens: opens},
			want:     []string{refusals["outside-schedule"].whenOpens, `datetime="2026-11-22T10:00:00Z"`},
			dontWant: []string{refusals["outside-schedule"].message},
		},
		{
			name: "code from status",
			page: ErrorPage{Status: 503},
			want: []string{`data-code="unavailable"`, refusals["unavailable"].title, "tone-warn"},
		},
		{
			name: "unknown code",
			page: ErrorPage{Status: 400, Code: "weird", Title: "Odd"},
			want: []string{`data-code="weird"`, `href="#i-alert"`, "Odd"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderError(&buf, tc.page); err != nil {
				t.Fatal(err)
			}
			s := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("lacks %q", w)
				}
			}
			for _, w := range tc.dontWant {
				if strings.Contains(s, w) {
					t.Errorf("has %q", w)
				}
			}
			if tc.wantTitle != "" && !strings.Contains(s, "<title>"+tc.wantTitle) {
				t.Errorf("title is not %q", tc.wantTitle)
			}
			checkCSP(t, tc.name, buf.Bytes())
			checkStaticRefs(t, tc.name, buf.Bytes())
		})
	}
}

// Every refusal code has its wording in both web.go and app.js, and every
// icon either names exists in the sprite.
func TestRefusalsInStep(t *testing.T) {
	js := readStatic(t, "app.js")
	sprite := string(LinkPage("device"))
	for code, r := range refusals {
		for _, s := range []string{r.title, r.message, r.whenOpens} {
			if s != "" && !strings.Contains(js, jsString(s)) {
				t.Errorf("%s: app.js lacks %q", code, s)
			}
		}
		if !strings.Contains(sprite, `id="i-`+r.icon+`"`) {
			t.Errorf("%s: no icon %q in the sprite", code, r.icon)
		}
	}
	var used []string
	for _, m := range regexp.MustCompile(`icon\("([a-z-]+)"\)|icon: "([a-z-]+)"`).FindAllStringSubmatch(js, -1) {
		used = append(used, m[1]+m[2])
	}
	types, _, ok := strings.Cut(js[strings.Index(js, "const TYPE_ICONS = {"):], "};")
	if !ok {
		t.Fatal("app.js has no TYPE_ICONS")
	}
	for _, m := range regexp.MustCompile(`: "([a-z-]+)"`).FindAllStringSubmatch(types, -1) {
		used = append(used, m[1])
	}
	if len(used) < 10 {
		t.Fatalf("found only %d icon names in app.js", len(used))
	}
	for _, name := range used {
		if !strings.Contains(sprite, `id="i-`+name+`"`) {
			t.Errorf("app.js uses icon %q, which is not in the sprite", name)
		}
	}
}

// jsString is s as it is written in app.js (double quotes, apostrophes as is).
func jsString(s string) string { return `"` + s + `"` }

func TestStaticFiles(t *testing.T) {
	for _, name := range []string{"app.css", "app.js", "live.js", "camera.js", "icon.svg", "noscript.css"} {
		if b := readStatic(t, name); len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	// The stylesheet refers to no other file that is missing, nor to anything
	// from elsewhere.
	css := readStatic(t, "app.css")
	for _, m := range cssURLRe.FindAllStringSubmatch(css, -1) {
		u := m[1]
		if strings.HasPrefix(u, "data:") {
			continue
		}
		if !strings.HasPrefix(u, "/static/") {
			t.Errorf("app.css refers to %q", u)
			continue
		}
		if _, err := fs.Stat(Static, strings.TrimPrefix(u, "/static/")); err != nil {
			t.Errorf("app.css refers to %s: %v", u, err)
		}
	}
	if strings.Contains(css, "@import") {
		t.Error("app.css imports")
	}
}

// The scripts build the page with DOM APIs only: nothing that parses HTML
// from strings, evaluates code, sets inline styles the CSP would refuse, or
// reaches another origin.
func TestScriptAvoidsUnsafeAPIs(t *testing.T) {
	for _, name := range []string{"app.js", "live.js", "camera.js"} {
		js := readStatic(t, name)
		for _, bad := range []string{
			"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
			"eval(", "new Function", "setTimeout(\"", "setInterval(\"",
			"setAttribute(\"style\"", "cssText", ".style.", "\"style\":", "style:",
			"http://", "https://", "ws://", "wss://",
		} {
			if bad == "http://" && strings.Count(js, bad) == strings.Count(js, "http://www.w3.org/2000/svg") {
				continue // the SVG namespace is a name, not a fetch
			}
			if bad == ".style." && strings.Count(js, bad) == strings.Count(js, "swatch.style.backgroundColor") {
				continue // the CSSOM, which style-src 'self' allows (app.js's colour swatch)
			}
			if strings.Contains(js, bad) {
				t.Errorf("%s uses %q", name, bad)
			}
		}
	}
	js := readStatic(t, "app.js")
	for _, want := range []string{
		`method: "POST"`,
		`credentials: "same-origin"`,
		"/session`",
		"location.pathname",
		"setValue",
		"setLive",
	} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %q", want)
		}
	}
}

func readStatic(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(Static, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// live.js speaks the WebSocket protocol of emulator/session.go: its close
// codes, its reasons and its refusal codes are in step, and it uses only
// the hooks app.js hands out on window.LinkGate.
func TestLiveScript(t *testing.T) {
	js := readStatic(t, "live.js")
	for _, want := range []string{
		"new WebSocket(",
		`LG.socketURL("ws")`,
		`type: "set"`,
		`"linkgate:ready"`,
		`"linkgate:closed"`,
		`"aria-live": "polite"`,
		`role: "img"`,
		"LG.onSet(",
		"LG.render(",
		"LG.closed(",
		"LG.session()",
		`LG.refuse("connection-lost"`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("live.js lacks %s", want)
		}
	}

	// Every close code and reason of the protocol, and nothing else; device
	// sockets are never closed for a camera's reasons.
	checkCloseReasons(t, "live.js", js, cameraOnlyReasons, liveRetries)

	// Every refusal of a command has words for people.
	refused, _, ok := strings.Cut(js[strings.Index(js, "const REFUSED = {"):], "};")
	if !ok {
		t.Fatal("live.js has no REFUSED")
	}
	for _, code := range []string{
		emulator.ErrForbidden.Code, emulator.ErrUnknownProperty.Code, emulator.ErrRateLimited.Code,
		emulator.ErrBadMessage.Code, emulator.ErrOffline.Code, emulator.ErrUnavailable.Code,
		emulator.CodeInvalidValue,
	} {
		if !strings.Contains(refused, code+":") && !strings.Contains(refused, `"`+code+`":`) {
			t.Errorf("live.js has no words for the refusal %q", code)
		}
	}

	checkHooks(t, "live.js", js)
}

// liveRetries are the closing reasons live.js handles by reconnecting (its
// default case).
var liveRetries = []string{"server-shutdown", "too-slow", "unavailable"}

// cameraOnlyReasons are the closing reasons only a camera's stream gets.
var cameraOnlyReasons = []string{emulator.ReasonLevelRevoked}

// cameraRetries are the closing reasons camera.js handles by reconnecting
// (its default case).
var cameraRetries = []string{"server-shutdown", "too-slow", "unavailable"}

// checkCloseReasons: the script's CLOSE_REASONS table has every close code
// and reason of emulator.CloseCodes but skip, and nothing else, and its
// end() has a case for each, or reconnects for it (retries).
func checkCloseReasons(t *testing.T, name, js string, skip, retries []string) {
	t.Helper()
	// The script's end() hands the reason to LinkGate.closed in app.js,
	// which shows the screens both live layers share: its cases count.
	closed := closedFunc(t)
	for _, want := range []string{"reopen();", `refuse("too-many-sessions"`} {
		if !strings.Contains(closed, want) {
			t.Errorf("app.js: closed() lacks %s", want)
		}
	}
	at := strings.Index(js, "const CLOSE_REASONS = {")
	if at < 0 {
		t.Fatalf("%s has no CLOSE_REASONS", name)
	}
	table, _, ok := strings.Cut(js[at:], "};")
	if !ok {
		t.Fatalf("%s: CLOSE_REASONS does not end", name)
	}
	got := map[int]string{}
	for _, m := range regexp.MustCompile(`(\d{4}): "([a-z-]+)"`).FindAllStringSubmatch(table, -1) {
		code, _ := strconv.Atoi(m[1])
		got[code] = m[2]
	}
	want := 0
	for reason, code := range emulator.CloseCodes {
		if slices.Contains(skip, reason) {
			if _, ok := got[code]; ok {
				t.Errorf("%s: CLOSE_REASONS has %d (%s), which its socket never gets", name, code, reason)
			}
			continue
		}
		want++
		if got[code] != reason {
			t.Errorf("%s: CLOSE_REASONS[%d] = %q, want %q", name, code, got[code], reason)
		}
		handled := strings.Contains(js, `case "`+reason+`":`) || strings.Contains(closed, `case "`+reason+`":`)
		if !handled && !slices.Contains(retries, reason) {
			t.Errorf("%s: end() has no case for %q", name, reason)
		}
	}
	if len(got) != want {
		t.Errorf("%s: CLOSE_REASONS has %d codes, the protocol %d", name, len(got), want)
	}
}

// closedFunc returns the body of app.js's closed(): what a live socket's
// closing reason shows.
func closedFunc(t *testing.T) string {
	t.Helper()
	app := readStatic(t, "app.js")
	at := strings.Index(app, "function closed(reason, retry, busy) {")
	if at < 0 {
		t.Fatal("app.js has no closed(reason, retry, busy)")
	}
	body, _, ok := strings.Cut(app[at:], "\n  }\n")
	if !ok {
		t.Fatal("app.js: closed() does not end")
	}
	return body
}

// checkHooks: the script uses only the hooks app.js hands out on
// window.LinkGate, icons that are in the sprite, and refusal screens that
// app.js has words for.
func checkHooks(t *testing.T, name, js string) {
	t.Helper()
	app := readStatic(t, "app.js")
	exported, _, ok := strings.Cut(app[strings.Index(app, "window.LinkGate = Object.freeze({"):], "});")
	if !ok {
		t.Fatal("app.js does not hand out window.LinkGate")
	}
	uses := regexp.MustCompile(`\bLG\.([a-zA-Z]+)`).FindAllStringSubmatch(js, -1)
	if len(uses) == 0 {
		t.Errorf("%s uses no LinkGate hook", name)
	}
	for _, m := range uses {
		if !regexp.MustCompile(`\b` + m[1] + `\b`).MatchString(exported) {
			t.Errorf("%s uses LinkGate.%s, which app.js does not hand out", name, m[1])
		}
	}
	sprite := string(LinkPage("device"))
	for _, m := range regexp.MustCompile(`icon\("([a-z-]+)"\)`).FindAllStringSubmatch(js, -1) {
		if !strings.Contains(sprite, `id="i-`+m[1]+`"`) {
			t.Errorf("%s uses icon %q, which is not in the sprite", name, m[1])
		}
	}
	for _, m := range regexp.MustCompile(`LG\.refuse\("([a-z-]+)"`).FindAllStringSubmatch(js, -1) {
		if !strings.Contains(app, `"`+m[1]+`": {`) && !strings.Contains(app, "\n    "+m[1]+": {") {
			t.Errorf("%s shows refusal %q, which app.js has no words for", name, m[1])
		}
	}
}

// camera.js plays the camera's stream (GET /l/{token}/live) through Media
// Source Extensions, speaks the closing protocol of emulator/session.go,
// and uses only the hooks app.js hands out.
func TestCameraScript(t *testing.T) {
	js := readStatic(t, "camera.js")
	for _, want := range []string{
		"new WebSocket(",
		`LG.socketURL("live")`,
		`binaryType = "arraybuffer"`,
		// ManagedMediaSource first (Safari on iOS), then MediaSource, and
		// the type checked before a SourceBuffer is made.
		"window.ManagedMediaSource || window.MediaSource",
		"isTypeSupported(",
		"addSourceBuffer(",
		"changeType(",
		`mode = "sequence"`,
		"disableRemotePlayback = true",
		// Muted inline autoplay, a play button when it is refused.
		"muted: true",
		"playsinline: true",
		`"NotAllowedError"`,
		`class: "player-play"`,
		// The live edge and the buffer's trimming.
		"playbackRate",
		"const LIVE_MAX = 0.5;",
		"const LIVE_JUMP = 2;",
		"const JUMP_TO = 0.1;",
		"const MIN_RATE = 1.05;",
		"const MAX_RATE = 1.25;",
		"const KEEP = 10;",
		".remove(",
		`"QuotaExceededError"`,
		// The screens, and the hooks of the live layer.
		"This browser can't play live video here",
		"This browser can't play this camera's video",
		"Camera offline",
		`"linkgate:ready"`,
		`"linkgate:closed"`,
		`link.kind === "camera"`,
		"LG.setLive(",
		"LG.showApp()",
		"LG.closed(",
		"LG.session()",
		`LG.refuse("connection-lost"`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("camera.js lacks %s", want)
		}
	}
	// Appends go through one queue, which waits while the SourceBuffer updates.
	if n := strings.Count(js, "appendBuffer("); n != 1 {
		t.Errorf("camera.js calls appendBuffer in %d places, want 1 (the queue)", n)
	}
	pump, _, _ := strings.Cut(js[strings.Index(js, "function pump() {"):], "\n  }\n")
	if !strings.Contains(pump, "!sb.updating") || !strings.Contains(pump, "appendBuffer(") {
		t.Errorf("the append queue does not wait for the SourceBuffer:\n%s", pump)
	}

	// Every close code and reason of the protocol, the camera's own too.
	checkCloseReasons(t, "camera.js", js, nil, cameraRetries)
	checkHooks(t, "camera.js", js)

	// app.js gives camera.js a player only when the link has live view,
	// and says so otherwise.
	app := readStatic(t, "app.js")
	for _, want := range []string{`levels.has("live")`, "Live view isn't part of this link.", "state.camera = { player: live, status }"} {
		if !strings.Contains(app, want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
	// The classes camera.js gives its elements are styled.
	css := readStatic(t, "app.css")
	for _, m := range regexp.MustCompile(`class: "([a-z-]+)"`).FindAllStringSubmatch(js, -1) {
		if m[1] == "visually-hidden" || m[1] == "icon" {
			continue
		}
		if !strings.Contains(css, "."+m[1]) {
			t.Errorf("camera.js uses class %q, which app.css does not style", m[1])
		}
	}
}
