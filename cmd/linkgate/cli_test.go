package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/tokens/redistest"
)

const testAPIKey = "lgk_cli-test-key-0123456789"

type cliFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// fakeGateway fakes just enough of the owner API: canned answers by
// method and path, and a record of every request.
type fakeGateway struct {
	url string

	mu      sync.Mutex
	replies map[string]fakeReply // "GET /api/v1/links" or, to match the query too, "GET /api/v1/links?cursor=c"
	got     []fakeRequest
}

type fakeReply struct {
	status int
	body   string
}

type fakeRequest struct{ method, path, query, body string }

func (r fakeRequest) String() string { return r.method + " " + r.path + "?" + r.query + " " + r.body }

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	g := &fakeGateway{replies: make(map[string]fakeReply)}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.got = append(g.got, fakeRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b)})
	reply, ok := g.replies[r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery]
	if !ok {
		reply, ok = g.replies[r.Method+" "+r.URL.EscapedPath()]
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Header.Get("Authorization") != "Bearer "+testAPIKey:
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"A valid API key is required."}}`)
	case !ok:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"not-found","message":"Not found."}}`)
	default:
		w.WriteHeader(reply.status)
		io.WriteString(w, reply.body)
	}
}

func (g *fakeGateway) on(route string, status int, body string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.replies[route] = fakeReply{status, body}
}

func (g *fakeGateway) requests() []fakeRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.got)
}

// run runs a command against the fake with the API flags appended.
func (g *fakeGateway) run(fn cliFunc, args ...string) (code int, stdout, stderr string) {
	return runCLI(fn, append(args, "--server", g.url, "--api-key", testAPIKey)...)
}

func runCLI(fn cliFunc, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = fn(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameJSON fails unless got and want are the same JSON value.
func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("body = %s\nwant   %s", gb, wb)
	}
}

var (
	t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	t1 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
)

const linkID = "0123456789abcdef0123456789abcdef"

func testLink() *ownerapi.Link {
	start, end := t0, t1
	return &ownerapi.Link{
		ID: linkID, URL: "http://gw.test/l/TOKEN", Token: "TOKEN", Name: "Front door", Device: "dev1", Kind: "device",
		Permissions: tokens.Permissions{Control: []string{"lock/locked"}, View: []string{"lock/battery"}, Camera: []string{}},
		Window:      ownerapi.Window{Start: &start, End: &end},
		Schedule: &tokens.Schedule{TimeZone: "Europe/Berlin", Slots: []tokens.Slot{
			{Days: []string{"mon", "tue"}, Start: "08:00", End: "18:00"},
		}},
		Status: "active", MaxUses: 10, Uses: 3, Version: 2, CreatedAt: t0, UpdatedAt: t0,
	}
}

func TestLinkCreate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "every flag",
			args: []string{"create", "--device", "dev1", "--name", "Front door", "--control", "lock/locked,lock/light",
				"--view", "lock/battery", "--view", "door/open", "--start", "2026-11-22T10:00:00Z", "--end", "2026-11-29T11:00:00+01:00",
				"--schedule-tz", "Europe/Berlin", "--schedule", "mon-wed 08:00-18:00; sat 22:00-02:00", "--max-uses", "10", "--max-sessions", "2"},
			want: `{"device":"dev1","name":"Front door",
				"permissions":{"control":["lock/locked","lock/light"],"view":["lock/battery","door/open"],"camera":[]},
				"window":{"start":"2026-11-22T10:00:00Z","end":"2026-11-29T11:00:00+01:00"},
				"schedule":{"timeZone":"Europe/Berlin","slots":[{"days":["mon","tue","wed"],"start":"08:00","end":"18:00"},{"days":["sat"],"start":"22:00","end":"02:00"}]},
				"maxUses":10,"maxSessions":2}`,
		},
		{
			name: "least",
			args: []string{"create", "--device", "dev1"},
			want: `{"device":"dev1","name":"","permissions":{"control":[],"view":[],"camera":[]}}`,
		},
		{
			name: "camera, end only",
			args: []string{"create", "--device", "cam1", "--camera", "live,archive", "--end", "2026-11-29T10:00:00Z"},
			want: `{"device":"cam1","name":"","permissions":{"control":[],"view":[],"camera":["live","archive"]},"window":{"end":"2026-11-29T10:00:00Z"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newFakeGateway(t)
			g.on("POST /api/v1/links", 201, mustJSON(t, testLink()))
			code, stdout, stderr := g.run(runLink, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			reqs := g.requests()
			if len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].path != "/api/v1/links" {
				t.Fatalf("requests = %v", reqs)
			}
			sameJSON(t, reqs[0].body, tt.want)
			if first, _, _ := strings.Cut(stdout, "\n"); first != "url:          http://gw.test/l/TOKEN" {
				t.Errorf("first line %q, want the URL\n%s", first, stdout)
			}
		})
	}
}

func TestLinkShowOutput(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	g.on("GET /api/v1/links/"+linkID, 200, mustJSON(t, testLink()))
	code, stdout, stderr := g.run(runLink, "show", linkID)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	want := `url:          http://gw.test/l/TOKEN
id:           0123456789abcdef0123456789abcdef
name:         Front door
device:       dev1
kind:         device
status:       active
window:       2026-11-22 10:00 → 2026-11-29 10:00 UTC
schedule:     mon,tue 08:00-18:00 (Europe/Berlin)
control:      lock/locked
view:         lock/battery
uses:         3
max uses:     10
max sessions: no limit
created:      2026-11-22 10:00 UTC
updated:      2026-11-22 10:00 UTC
version:      2
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}

	// --json prints the API's JSON, indented; flags may follow the id.
	code, stdout, _ = g.run(runLink, "show", linkID, "--json")
	if code != exitOK {
		t.Fatalf("--json: exit %d", code)
	}
	var l ownerapi.Link
	if err := json.Unmarshal([]byte(stdout), &l); err != nil || l.URL != "http://gw.test/l/TOKEN" {
		t.Errorf("--json printed %s (%v)", stdout, err)
	}
	if !strings.Contains(stdout, "\n  \"id\"") {
		t.Errorf("--json is not indented:\n%s", stdout)
	}
}

func TestLinkEdit(t *testing.T) {
	t.Parallel()
	get := "GET /api/v1/links/" + linkID
	tests := []struct {
		name    string
		args    []string
		wantGET bool
		want    string
	}{
		{"eternal", []string{"--eternal"}, false, `{"window":null}`},
		{"name only", []string{"--name", "x"}, false, `{"name":"x"}`},
		{"device swap", []string{"--device", "dev2"}, false, `{"device":"dev2"}`},
		{"no schedule", []string{"--no-schedule"}, false, `{"schedule":null}`},
		{"remove limits", []string{"--max-uses", "0", "--max-sessions", "0"}, false, `{"maxUses":0,"maxSessions":0}`},
		{"eternal from a start", []string{"--eternal", "--start", "2026-12-01T00:00:00Z"}, false, `{"window":{"start":"2026-12-01T00:00:00Z"}}`},
		{"whole window", []string{"--start", "2026-12-01T00:00:00Z", "--end", "2026-12-02T00:00:00Z"}, false,
			`{"window":{"start":"2026-12-01T00:00:00Z","end":"2026-12-02T00:00:00Z"}}`},
		{"end keeps start", []string{"--end", "2026-12-24T18:00:00Z"}, true,
			`{"window":{"start":"2026-11-22T10:00:00Z","end":"2026-12-24T18:00:00Z"}}`},
		{"no start keeps end", []string{"--start", ""}, true, `{"window":{"end":"2026-11-29T10:00:00Z"}}`},
		{"control keeps the other lists", []string{"--control", "lock/light"}, true,
			`{"permissions":{"control":["lock/light"],"view":["lock/battery"],"camera":[]}}`},
		{"empty view", []string{"--view", ""}, true, `{"permissions":{"control":["lock/locked"],"view":[],"camera":[]}}`},
		{"schedule keeps zone", []string{"--schedule", "sat 10:00-12:00"}, true,
			`{"schedule":{"timeZone":"Europe/Berlin","slots":[{"days":["sat"],"start":"10:00","end":"12:00"}]}}`},
		{"zone keeps slots", []string{"--schedule-tz", "America/New_York"}, true,
			`{"schedule":{"timeZone":"America/New_York","slots":[{"days":["mon","tue"],"start":"08:00","end":"18:00"}]}}`},
		{"flags before the id", []string{"--name", "y"}, false, `{"name":"y"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newFakeGateway(t)
			g.on(get, 200, mustJSON(t, testLink()))
			g.on("PATCH /api/v1/links/"+linkID, 200, mustJSON(t, testLink()))
			args := append([]string{"edit", linkID}, tt.args...)
			if tt.name == "flags before the id" {
				args = append(append([]string{"edit"}, tt.args...), linkID)
			}
			code, stdout, stderr := g.run(runLink, args...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			reqs := g.requests()
			if tt.wantGET {
				if len(reqs) != 2 || reqs[0].method+" "+reqs[0].path != get {
					t.Fatalf("requests = %v, want a GET then the PATCH", reqs)
				}
				reqs = reqs[1:]
			}
			if len(reqs) != 1 || reqs[0].method != "PATCH" || reqs[0].path != "/api/v1/links/"+linkID {
				t.Fatalf("requests = %v, want one PATCH", reqs)
			}
			if tt.want == `{"window":null}` || tt.want == `{"name":"x"}` {
				// The exact bytes matter here: null is not absent.
				if reqs[0].body != tt.want {
					t.Errorf("body = %s, want %s", reqs[0].body, tt.want)
				}
			}
			sameJSON(t, reqs[0].body, tt.want)
			if !strings.HasPrefix(stdout, "url:") {
				t.Errorf("stdout = %q", stdout)
			}
		})
	}
}

// TestUsageErrors checks that bad command lines exit 2 before sending
// anything.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   cliFunc
		args []string
		want string // in stderr
	}{
		{"edit nothing", runLink, []string{"edit", linkID}, "nothing to change"},
		{"edit eternal and end", runLink, []string{"edit", linkID, "--eternal", "--end", "2026-12-01T00:00:00Z"}, "contradict"},
		{"edit no-schedule and schedule", runLink, []string{"edit", linkID, "--no-schedule", "--schedule", "mon 08:00-09:00"}, "contradict"},
		{"edit without id", runLink, []string{"edit", "--name", "x"}, "missing link ID"},
		{"show two ids", runLink, []string{"show", "a", "b"}, `unexpected argument "b"`},
		{"bad time", runLink, []string{"create", "--device", "d", "--end", "tomorrow"}, "RFC 3339"},
		{"schedule without zone", runLink, []string{"create", "--device", "d", "--schedule", "mon 08:00-09:00"}, "--schedule-tz"},
		{"bad day", runLink, []string{"create", "--device", "d", "--schedule-tz", "UTC", "--schedule", "monday 08:00-09:00"}, `unknown day "monday"`},
		{"bad times", runLink, []string{"create", "--device", "d", "--schedule-tz", "UTC", "--schedule", "mon 8-9"}, "HH:MM-HH:MM"},
		{"negative max uses", runLink, []string{"create", "--device", "d", "--max-uses", "-1"}, "--max-uses"},
		{"no device", runLink, []string{"create", "--name", "x"}, "--device is required"},
		{"limit too big", runLink, []string{"list", "--limit", "500"}, "--limit"},
		{"unknown flag", runLink, []string{"list", "--colour"}, "flag provided but not defined: -colour"},
		{"bad flag value", runLink, []string{"list", "--limit", "many"}, `invalid value "many"`},
		{"unknown command", runLink, []string{"frobnicate"}, `unknown link command "frobnicate"`},
		{"device without file", runDevice, []string{"create", "--name", "x", "--type", "plug"}, "--file is required"},
		{"device file missing", runDevice, []string{"create", "--name", "x", "--type", "plug", "--file", "/nonexistent.json"}, "--file"},
		{"camera without url", runCamera, []string{"create", "--name", "x"}, "--url is required"},
		{"camera bad transport", runCamera, []string{"create", "--name", "x", "--url", "rtsp://cam/1", "--transport", "http"}, "--transport"},
		{"camera http url", runCamera, []string{"create", "--name", "x", "--url", "http://cam/1"}, "rtsp://"},
		{"camera transport alone", runCamera, []string{"edit", "c1", "--transport", "udp"}, "--transport needs --url"},
		{"camera has no type flag", runCamera, []string{"create", "--name", "x", "--url", "rtsp://cam/1", "--type", "plug"}, "not defined: -type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newFakeGateway(t)
			code, stdout, stderr := g.run(tt.fn, tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %s", code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "linkgate: ") || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want linkgate: ...%s...", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout = %q", stdout)
			}
			if reqs := g.requests(); len(reqs) != 0 {
				t.Errorf("sent %v", reqs)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		fn   cliFunc
		args []string
		code int
		want []string
	}{
		{runLink, nil, exitUsage, []string{"Usage: linkgate link <command>", "create --device ID", "Exit status:", "5  unauthorized", "LINKGATE_API_KEY"}},
		{runLink, []string{"-h"}, exitOK, []string{"Usage: linkgate link <command>", "edit ID"}},
		{runLink, []string{"help"}, exitOK, []string{"Usage: linkgate link <command>"}},
		{runLink, []string{"create", "-h"}, exitOK, []string{"Usage: linkgate link create --device ID [flags]", "-schedule-tz", "-max-sessions", "-api-key", "Exit status:"}},
		{runLink, []string{"edit", "--help"}, exitOK, []string{"-eternal", "-no-schedule"}},
		{runDevice, []string{"-h"}, exitOK, []string{"Usage: linkgate device <command>", "create --type TYPE --file FILE"}},
		{runDevice, []string{"create", "-h"}, exitOK, []string{"-file", "datatype"}},
		{runCamera, []string{"create", "-h"}, exitOK, []string{"Usage: linkgate camera create --name NAME --url RTSP-URL", "-transport"}},
		{runOwner, []string{"-h"}, exitOK, []string{"Usage: linkgate owner <command>", "LINKGATE_REDIS_URL", "Exit status:"}},
		{runOwner, []string{"create", "-h"}, exitOK, []string{"-redis", "shown only"}},
	} {
		code, stdout, stderr := runCLI(tt.fn, tt.args...)
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.args, code, tt.code)
		}
		if stdout != "" {
			t.Errorf("%v: stdout %q", tt.args, stdout)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: usage lacks %q:\n%s", tt.args, w, stderr)
			}
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		code   int
		want   string
	}{
		{404, `{"error":{"code":"not-found","message":"Not found."}}`, exitNotFound, "linkgate: not-found: Not found. [HTTP 404]"},
		{400, `{"error":{"code":"invalid-field","message":"must be after window.start","field":"window.end"}}`, exitInvalid,
			"linkgate: invalid-field (window.end): must be after window.start [HTTP 400]"},
		{400, `{"error":{"code":"invalid-json","message":"unknown field \"x\""}}`, exitInvalid, "invalid-json"},
		{409, `{"error":{"code":"conflict","message":"try again"}}`, exitInvalid, "conflict"},
		{413, `{"error":{"code":"too-large","message":"too large"}}`, exitInvalid, "too-large"},
		{401, `{"error":{"code":"unauthorized","message":"bad key ` + testAPIKey + `"}}`, exitUnauthorized, "unauthorized"},
		{429, `{"error":{"code":"rate-limited","message":"slow down"}}`, exitFailure, "rate-limited"},
		{500, `{"error":{"code":"internal","message":"Internal error."}}`, exitFailure, "internal"},
		{503, `{"error":{"code":"unavailable","message":"later"}}`, exitFailure, "unavailable"},
		{502, `<html>Bad Gateway ` + testAPIKey + `</html>`, exitFailure, "http-502: <html>Bad Gateway [redacted]</html>"},
	}
	for _, tt := range tests {
		g := newFakeGateway(t)
		g.on("GET /api/v1/links/"+linkID, tt.status, tt.body)
		code, stdout, stderr := g.run(runLink, "show", linkID)
		if code != tt.code {
			t.Errorf("HTTP %d: exit %d, want %d", tt.status, code, tt.code)
		}
		if !strings.HasPrefix(stderr, "linkgate: ") || !strings.Contains(stderr, tt.want) {
			t.Errorf("HTTP %d: stderr %q, want %q", tt.status, stderr, tt.want)
		}
		if strings.Contains(stderr+stdout, testAPIKey) {
			t.Errorf("HTTP %d: output shows the API key: %s", tt.status, stderr)
		}
	}

	// A wrong key is a 401 from the server.
	g := newFakeGateway(t)
	code, _, stderr := runCLI(runLink, "list", "--server", g.url, "--api-key", "lgk_wrong")
	if code != exitUnauthorized || strings.Contains(stderr, "lgk_wrong") {
		t.Errorf("wrong key: exit %d, stderr %q", code, stderr)
	}

	// A server that is not a URL is a usage error.
	code, _, stderr = runCLI(runLink, "list", "--server", "gw.test:8080", "--api-key", testAPIKey)
	if code != exitUsage || !strings.Contains(stderr, "--server") {
		t.Errorf("bad --server: exit %d, stderr %q", code, stderr)
	}

	// Nobody listening is a failure.
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	code, _, stderr = runCLI(runLink, "list", "--server", srv.URL, "--api-key", testAPIKey)
	if code != exitFailure || !strings.HasPrefix(stderr, "linkgate: ") || strings.Contains(stderr, testAPIKey) {
		t.Errorf("unreachable: exit %d, stderr %q", code, stderr)
	}
}

func TestEnvironment(t *testing.T) {
	g := newFakeGateway(t)
	g.on("GET /api/v1/links", 200, `{"items":[],"next":""}`)

	t.Setenv(envServer, g.url)
	t.Setenv(envAPIKey, testAPIKey)
	if code, _, stderr := runCLI(runLink, "list"); code != exitOK {
		t.Errorf("key and server from the environment: exit %d, %s", code, stderr)
	}
	if n := len(g.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	// The environment's key never shows in usage.
	_, _, stderr := runCLI(runLink, "list", "-h")
	if strings.Contains(stderr, testAPIKey) {
		t.Errorf("usage shows the API key:\n%s", stderr)
	}

	t.Setenv(envAPIKey, "")
	code, _, stderr := runCLI(runLink, "list")
	if code != exitUsage || !strings.Contains(stderr, "no API key") || !strings.Contains(stderr, envAPIKey) {
		t.Errorf("no key: exit %d, stderr %q", code, stderr)
	}
	if n := len(g.requests()); n != 1 {
		t.Errorf("sent a request without a key")
	}
}

func TestLinkList(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	second := testLink()
	second.ID, second.Name, second.Window, second.Status, second.MaxUses, second.Uses = "fedcba9876543210fedcba9876543210", "Guest\x1b[31m", ownerapi.Window{}, "disabled", 0, 0
	g.on("GET /api/v1/links?limit=1", 200, mustJSON(t, ownerapi.Page[*ownerapi.Link]{Items: []*ownerapi.Link{testLink()}, Next: "c2"}))
	g.on("GET /api/v1/links?cursor=c2&limit=1", 200, mustJSON(t, ownerapi.Page[*ownerapi.Link]{Items: []*ownerapi.Link{second}}))

	code, stdout, stderr := g.run(runLink, "list", "--limit", "1")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `ID                                NAME        DEVICE  KIND    STATUS  WINDOW                                   USES
0123456789abcdef0123456789abcdef  Front door  dev1    device  active  2026-11-22 10:00 → 2026-11-29 10:00 UTC  3/10
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if !strings.Contains(stderr, "--cursor c2") {
		t.Errorf("no hint for the next page: %q", stderr)
	}

	code, stdout, stderr = g.run(runLink, "list", "--limit", "1", "--all")
	if code != exitOK {
		t.Fatalf("--all: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "eternal") || !strings.Contains(lines[2], "disabled") {
		t.Errorf("--all:\n%s", stdout)
	}
	if strings.Contains(stdout, "\x1b") {
		t.Errorf("a control character reached the terminal: %q", stdout)
	}
	if stderr != "" {
		t.Errorf("--all: stderr %q", stderr)
	}

	code, stdout, _ = g.run(runLink, "list", "--limit", "1", "--all", "--json")
	var page ownerapi.Page[ownerapi.Link]
	if err := json.Unmarshal([]byte(stdout), &page); code != exitOK || err != nil || len(page.Items) != 2 || page.Next != "" {
		t.Errorf("--all --json: exit %d, %v:\n%s", code, err, stdout)
	}
}

func TestLinkStatusDeleteLog(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	disabled := testLink()
	disabled.Status = "disabled"
	g.on("POST /api/v1/links/"+linkID+"/disable", 200, mustJSON(t, disabled))
	g.on("POST /api/v1/links/"+linkID+"/enable", 200, mustJSON(t, testLink()))
	g.on("DELETE /api/v1/links/"+linkID, 204, "")
	g.on("GET /api/v1/links/"+linkID+"/log", 200, mustJSON(t, ownerapi.Page[ownerapi.Access]{Items: []ownerapi.Access{
		{At: t0, Event: "session", Session: "s1", IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11)"},
	}}))

	if code, stdout, _ := g.run(runLink, "disable", linkID); code != exitOK || !strings.Contains(stdout, "status:       disabled") {
		t.Errorf("disable: exit %d:\n%s", code, stdout)
	}
	if code, stdout, _ := g.run(runLink, "enable", linkID); code != exitOK || !strings.Contains(stdout, "status:       active") {
		t.Errorf("enable: exit %d:\n%s", code, stdout)
	}
	if code, stdout, _ := g.run(runLink, "delete", linkID); code != exitOK || stdout != "deleted link "+linkID+"\n" {
		t.Errorf("delete: exit %d: %q", code, stdout)
	}
	code, stdout, _ := g.run(runLink, "log", linkID, "--limit", "5")
	want := "TIME                  EVENT    SESSION  IP         USER AGENT\n2026-11-22 10:00 UTC  session  s1       192.0.2.1  Mozilla/5.0 (X11)\n"
	if code != exitOK || stdout != want {
		t.Errorf("log: exit %d:\n%s\nwant:\n%s", code, stdout, want)
	}
	var got []string
	for _, r := range g.requests() {
		got = append(got, r.method+" "+r.path+"?"+r.query)
	}
	wantReqs := []string{
		"POST /api/v1/links/" + linkID + "/disable?",
		"POST /api/v1/links/" + linkID + "/enable?",
		"DELETE /api/v1/links/" + linkID + "?",
		"GET /api/v1/links/" + linkID + "/log?limit=5",
	}
	if !slices.Equal(got, wantReqs) {
		t.Errorf("requests:\n%v\nwant\n%v", got, wantReqs)
	}
}

const deviceNodes = `[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]}]`

func testDevice(t *testing.T) string {
	return `{"id":"dev1","name":"Plug","type":"plug","kind":"device","nodes":` + deviceNodes +
		`,"version":1,"createdAt":"2026-11-22T10:00:00Z","updatedAt":"2026-11-22T10:00:00Z"}`
}

func TestDeviceCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nodesFile := write("nodes.json", `{"nodes":`+deviceNodes+`}`)
	bareFile := write("bare.json", deviceNodes)
	wholeFile := write("whole.json", `{"name":"From file","type":"light","nodes":`+deviceNodes+`}`)
	typoFile := write("typo.json", `{"nodes":`+deviceNodes+`,"nodse":[]}`)
	want := `{"name":"Plug","type":"plug","nodes":` + deviceNodes + `}`

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"nodes file", []string{"--name", "Plug", "--type", "plug", "--file", nodesFile}, want},
		{"bare nodes", []string{"--file", bareFile, "--name", "Plug", "--type", "plug"}, want},
		{"whole request", []string{"--file", wholeFile}, `{"name":"From file","type":"light","nodes":` + deviceNodes + `}`},
		{"flags override the file", []string{"--file", wholeFile, "--name", "Plug", "--type", "plug"}, want},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway(t)
			g.on("POST /api/v1/devices", 201, testDevice(t))
			code, stdout, stderr := g.run(runDevice, append([]string{"create"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			reqs := g.requests()
			if len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].path != "/api/v1/devices" {
				t.Fatalf("requests %v", reqs)
			}
			sameJSON(t, reqs[0].body, tt.want)
			wantOut := "id:         dev1\nname:       Plug\ntype:       plug\nkind:       device\nproperties: 1\n" +
				"created:    2026-11-22 10:00 UTC\nupdated:    2026-11-22 10:00 UTC\nversion:    1\n\n" +
				"PROPERTY   NAME  DATATYPE  UNIT  FORMAT  SETTABLE\nswitch/on  On    boolean   -     -       yes\n"
			if stdout != wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, wantOut)
			}
		})
	}

	t.Run("stdin", func(t *testing.T) {
		g := newFakeGateway(t)
		g.on("POST /api/v1/devices", 201, testDevice(t))
		var out, errOut bytes.Buffer
		e := &cliEnv{stdin: strings.NewReader(`{"nodes":` + deviceNodes + `}`), stdout: &out, stderr: &errOut}
		code := deviceGroup.run(context.Background(), e, []string{"create", "--name", "Plug", "--type", "plug", "--file", "-",
			"--server", g.url, "--api-key", testAPIKey})
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		sameJSON(t, g.requests()[0].body, want)
	})

	t.Run("unknown field", func(t *testing.T) {
		g := newFakeGateway(t)
		code, _, stderr := g.run(runDevice, "create", "--name", "Plug", "--type", "plug", "--file", typoFile)
		if code != exitUsage || !strings.Contains(stderr, `unknown field "nodse"`) || len(g.requests()) != 0 {
			t.Errorf("exit %d, stderr %q, requests %v", code, stderr, g.requests())
		}
	})
}

func TestDeviceListEditDelete(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	g.on("GET /api/v1/devices?type=plug", 200, `{"items":[`+testDevice(t)+`],"next":""}`)
	g.on("PATCH /api/v1/devices/dev1", 200, testDevice(t))
	g.on("DELETE /api/v1/devices/dev1", 409, `{"error":{"code":"device-in-use","message":"2 link(s) point at this device"}}`)

	code, stdout, stderr := g.run(runDevice, "list", "--type", "plug")
	want := "ID    NAME  TYPE  KIND    PROPERTIES  UPDATED\ndev1  Plug  plug  device  1           2026-11-22 10:00 UTC\n"
	if code != exitOK || stdout != want {
		t.Errorf("list: exit %d %s:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
	if code, _, stderr := g.run(runDevice, "edit", "dev1", "--name", "Lamp"); code != exitOK {
		t.Errorf("edit: exit %d: %s", code, stderr)
	}
	code, _, stderr = g.run(runDevice, "delete", "dev1")
	if code != exitInvalid || !strings.Contains(stderr, "device-in-use") {
		t.Errorf("delete in use: exit %d: %s", code, stderr)
	}
	reqs := g.requests()
	if len(reqs) != 3 || reqs[1].body != `{"name":"Lamp"}` || reqs[2].method != "DELETE" {
		t.Errorf("requests %v", reqs)
	}
}

func TestCamera(t *testing.T) {
	t.Parallel()
	const secretURL = "rtsp://admin:hunter2@192.0.2.10:554/stream1"
	camera := `{"id":"cam1","name":"Yard","type":"camera","kind":"camera","nodes":[],
		"rtsp":{"url":"rtsp://xxxxx:xxxxx@192.0.2.10:554/stream1","transport":"udp","hasCredentials":true},
		"version":1,"createdAt":"2026-11-22T10:00:00Z","updatedAt":"2026-11-22T10:00:00Z"}`
	g := newFakeGateway(t)
	g.on("POST /api/v1/cameras", 201, camera)
	g.on("GET /api/v1/cameras", 200, `{"items":[`+camera+`],"next":""}`)
	g.on("PATCH /api/v1/cameras/cam1", 400, `{"error":{"code":"invalid-field","message":"rtsp.url: bad `+secretURL+`","field":"rtsp.url"}}`)

	code, stdout, stderr := g.run(runCamera, "create", "--name", "Yard", "--url", secretURL, "--transport", "udp")
	if code != exitOK {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	sameJSON(t, g.requests()[0].body, `{"name":"Yard","type":"camera","rtsp":{"url":"`+secretURL+`","transport":"udp"}}`)
	if strings.Contains(stdout, "hunter2") || !strings.Contains(stdout, "rtsp:        rtsp://xxxxx:xxxxx@192.0.2.10:554/stream1") ||
		!strings.Contains(stdout, "credentials: yes") {
		t.Errorf("create printed:\n%s", stdout)
	}

	code, stdout, _ = g.run(runCamera, "list")
	want := "ID    NAME  RTSP                                       TRANSPORT  UPDATED\n" +
		"cam1  Yard  rtsp://xxxxx:xxxxx@192.0.2.10:554/stream1  udp        2026-11-22 10:00 UTC\n"
	if code != exitOK || stdout != want {
		t.Errorf("list: exit %d:\n%s\nwant:\n%s", code, stdout, want)
	}

	// A server that quotes the URL back does not get it onto the terminal.
	code, _, stderr = g.run(runCamera, "edit", "cam1", "--url", secretURL)
	if code != exitInvalid || strings.Contains(stderr, "hunter2") || !strings.Contains(stderr, "[redacted]") {
		t.Errorf("edit: exit %d: %s", code, stderr)
	}
	if r := g.requests()[2]; r.path != "/api/v1/cameras/cam1" || r.body != `{"rtsp":{"url":"`+secretURL+`"}}` {
		t.Errorf("edit sent %v", r)
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec string
		want []tokens.Slot // nil: an error
	}{
		{"mon,tue,wed 08:00-18:00;sat 10:00-12:00", []tokens.Slot{
			{Days: []string{"mon", "tue", "wed"}, Start: "08:00", End: "18:00"}, {Days: []string{"sat"}, Start: "10:00", End: "12:00"}}},
		{" Mon-Fri  08:00-18:00 ; ", []tokens.Slot{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "08:00", End: "18:00"}}},
		{"mon,tue,wed,thu,sat,sun 08:00-09:00", []tokens.Slot{{Days: []string{"mon", "tue", "wed", "thu", "sat", "sun"}, Start: "08:00", End: "09:00"}}},
		{"sat-fri 08:00-09:00", []tokens.Slot{{Days: []string{"sat", "sun", "mon", "tue", "wed", "thu", "fri"}, Start: "08:00", End: "09:00"}}},
		{"fri-mon 22:00-24:00", []tokens.Slot{{Days: []string{"fri", "sat", "sun", "mon"}, Start: "22:00", End: "24:00"}}},
		{"mon,mon-tue,sun 00:00-06:00", []tokens.Slot{{Days: []string{"mon", "tue", "sun"}, Start: "00:00", End: "06:00"}}},
		{"", nil},
		{";", nil},
		{"mon", nil},
		{"mon 08:00", nil},
		{"mon 08:00-18:00 extra", nil},
		{"xyz 08:00-18:00", nil},
		{"mon-xyz 08:00-18:00", nil},
		{"mon 0800-1800", nil},
		{"mon, 08:00-18:00", nil},
	}
	for _, tt := range tests {
		s, err := parseSchedule("Europe/Berlin", tt.spec)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("%q: no error, got %+v", tt.spec, s.Slots)
		case tt.want != nil && err != nil:
			t.Errorf("%q: %v", tt.spec, err)
		case tt.want != nil:
			if mustJSON(t, s.Slots) != mustJSON(t, tt.want) || s.TimeZone != "Europe/Berlin" {
				t.Errorf("%q: %+v, want %+v", tt.spec, s.Slots, tt.want)
			}
			// What show prints parses back to the same slots.
			back, err := parseSchedule("UTC", formatSlots(s.Slots))
			if err != nil || mustJSON(t, back.Slots) != mustJSON(t, s.Slots) {
				t.Errorf("%q: round trip %q: %v", tt.spec, formatSlots(s.Slots), err)
			}
		}
	}
}

func TestFormatSlots(t *testing.T) {
	t.Parallel()
	s, err := parseSchedule("UTC", "mon,tue,wed,thu,sat,sun 08:00-18:00;tue,wed 10:00-12:00;fri-mon 22:00-02:00")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := formatSlots(s.Slots), "mon-thu,sat,sun 08:00-18:00; tue,wed 10:00-12:00; fri-mon 22:00-02:00"; got != want {
		t.Errorf("formatSlots = %q, want %q", got, want)
	}
}

func TestFormatWindow(t *testing.T) {
	t.Parallel()
	s, e := t0, t1.Add(30*time.Second)
	for _, tt := range []struct {
		w    ownerapi.Window
		want string
	}{
		{ownerapi.Window{}, "eternal"},
		{ownerapi.Window{Start: &s}, "from 2026-11-22 10:00 UTC"},
		{ownerapi.Window{End: &e}, "until 2026-11-29 10:00:30 UTC"},
		{ownerapi.Window{Start: &s, End: &e}, "2026-11-22 10:00 → 2026-11-29 10:00:30 UTC"},
	} {
		if got := formatWindow(tt.w); got != tt.want {
			t.Errorf("formatWindow = %q, want %q", got, tt.want)
		}
	}
}

// TestOwnerCreate creates an owner on a real redis-server and checks that
// the printed key authenticates.
func TestOwnerCreate(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("LINKGATE_REDIS_URL", "")
	t.Setenv("LINKGATE_REDIS_SENTINEL_MASTER", "")
	t.Setenv("LINKGATE_REDIS_CLUSTER", "")

	code, stdout, stderr := runCLI(runOwner, "create", "Acme Corp", "--redis", "redis://"+srv.Addr+"/0")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "owner id: ") || lines[1] != "owner name: Acme Corp" ||
		!strings.HasPrefix(lines[2], "owner api key: lgk_") {
		t.Fatalf("stdout:\n%s", stdout)
	}
	id, key := strings.TrimPrefix(lines[0], "owner id: "), strings.TrimPrefix(lines[2], "owner api key: ")

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	got, err := gateway.NewOwners(rdb).Authenticate(context.Background(), key)
	if err != nil || got != id {
		t.Errorf("Authenticate(printed key) = %q, %v; want %q", got, err, id)
	}

	// The environment twin, a host:port address and --json.
	t.Setenv("LINKGATE_REDIS_URL", srv.Addr)
	code, stdout, stderr = runCLI(runOwner, "create", "Beta", "--json")
	var out struct{ ID, Name, APIKey string }
	if err := json.Unmarshal([]byte(stdout), &out); code != exitOK || err != nil || out.Name != "Beta" || !strings.HasPrefix(out.APIKey, "lgk_") {
		t.Errorf("--json: exit %d, %v, %s: %s", code, err, stdout, stderr)
	}

	// Usage never shows the environment's Redis password.
	t.Setenv("LINKGATE_REDIS_URL", "redis://user:s3cret@"+srv.Addr)
	if _, _, stderr := runCLI(runOwner, "create", "-h"); strings.Contains(stderr, "s3cret") {
		t.Errorf("usage shows the Redis password:\n%s", stderr)
	}
	t.Setenv("LINKGATE_REDIS_URL", srv.Addr)

	// A name the registry refuses is invalid; no Redis is a usage error.
	if code, _, stderr := runCLI(runOwner, "create", "   "); code != exitInvalid {
		t.Errorf("blank name: exit %d: %s", code, stderr)
	}
	t.Setenv("LINKGATE_REDIS_URL", "")
	if code, _, stderr := runCLI(runOwner, "create", "Gamma"); code != exitUsage || !strings.Contains(stderr, "LINKGATE_REDIS_URL") {
		t.Errorf("no redis: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(runOwner, "create", "Gamma", "--redis", "redis://u:pa%zzss@x/"); code != exitUsage || strings.Contains(stderr, "pa%zzss") {
		t.Errorf("bad URL: exit %d: %s", code, stderr)
	}
}
