package ownerapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
)

const testKey = "lgk_test-key-0123456789"

// recorded is one request as the fake server saw it.
type recorded struct {
	method, path, rawQuery, auth, contentType string
	body                                      string
}

// fakeAPI answers every request with status and body and records it.
func fakeAPI(t *testing.T, status int, body string) (*ownerapi.Client, *recorded) {
	t.Helper()
	rec := new(recorded)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{
			method: r.Method, path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery,
			auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type"), body: string(b),
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return &ownerapi.Client{BaseURL: srv.URL + "/", APIKey: testKey, HTTP: srv.Client()}, rec
}

func ptr[T any](v T) *T { return &v }

const linkJSON = `{"id":"0123456789abcdef0123456789abcdef","url":"http://gw/l/tok","token":"tok","name":"door",
"device":"dev1","kind":"device","permissions":{"control":["lock/locked"],"view":[],"camera":[]},
"window":{"end":"2026-11-29T10:00:00Z"},"eternal":false,"status":"active","maxUses":0,"maxSessions":0,
"uses":3,"version":2,"createdAt":"2026-11-22T10:00:00Z","updatedAt":"2026-11-22T10:00:00Z"}`

const deviceJSON = `{"id":"dev1","name":"Plug","type":"plug","kind":"device",
"nodes":[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]}],
"version":1,"createdAt":"2026-11-22T10:00:00Z","updatedAt":"2026-11-22T10:00:00Z"}`

func TestClientRequests(t *testing.T) {
	end := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	tests := []struct {
		name     string
		status   int
		reply    string
		call     func(c *ownerapi.Client) (any, error)
		method   string
		path     string
		query    string
		body     string // expected JSON body; "" for none
		wantAuth bool
	}{
		{
			name: "create device", status: 201, reply: deviceJSON,
			call: func(c *ownerapi.Client) (any, error) {
				return c.CreateDevice(ctx, ownerapi.DeviceCreate{Name: "Plug", Type: "plug", Nodes: []emulator.Node{{
					ID: "switch", Name: "Switch", Properties: []emulator.Property{{ID: "on", Name: "On", Datatype: emulator.DatatypeBoolean, Settable: true}},
				}}})
			},
			method: "POST", path: "/api/v1/devices",
			body: `{"name":"Plug","type":"plug","nodes":[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]}]}`,
		},
		{
			name: "list devices", status: 200, reply: `{"items":[` + deviceJSON + `],"next":"c2"}`,
			call:   func(c *ownerapi.Client) (any, error) { return c.ListDevices(ctx, "c1", 10) },
			method: "GET", path: "/api/v1/devices", query: "cursor=c1&limit=10",
		},
		{
			name: "list devices of type, defaults", status: 200, reply: `{"items":[],"next":""}`,
			call:   func(c *ownerapi.Client) (any, error) { return c.ListDevicesOfType(ctx, "plug", "", 0) },
			method: "GET", path: "/api/v1/devices", query: "type=plug",
		},
		{
			name: "get device escapes the id", status: 200, reply: deviceJSON,
			call:   func(c *ownerapi.Client) (any, error) { return c.GetDevice(ctx, "a/b c") },
			method: "GET", path: "/api/v1/devices/a%2Fb%20c",
		},
		{
			name: "update device", status: 200, reply: deviceJSON,
			call: func(c *ownerapi.Client) (any, error) {
				return c.UpdateDevice(ctx, "dev1", ownerapi.DevicePatch{Name: ptr("Lamp")})
			},
			method: "PATCH", path: "/api/v1/devices/dev1", body: `{"name":"Lamp"}`,
		},
		{
			name: "delete device", status: 204,
			call:   func(c *ownerapi.Client) (any, error) { return nil, c.DeleteDevice(ctx, "dev1") },
			method: "DELETE", path: "/api/v1/devices/dev1",
		},
		{
			name: "create camera fills the type", status: 201, reply: deviceJSON,
			call: func(c *ownerapi.Client) (any, error) {
				return c.CreateCamera(ctx, ownerapi.DeviceCreate{Name: "Yard", RTSP: &emulator.RTSPSource{URL: "rtsp://cam/1", Transport: "udp"}})
			},
			method: "POST", path: "/api/v1/cameras",
			body: `{"name":"Yard","type":"camera","rtsp":{"url":"rtsp://cam/1","transport":"udp"}}`,
		},
		{
			name: "list cameras", status: 200, reply: `{"items":[],"next":""}`,
			call:   func(c *ownerapi.Client) (any, error) { return c.ListCameras(ctx, "", 5) },
			method: "GET", path: "/api/v1/cameras", query: "limit=5",
		},
		{
			name: "get camera", status: 200, reply: deviceJSON,
			call:   func(c *ownerapi.Client) (any, error) { return c.GetCamera(ctx, "cam1") },
			method: "GET", path: "/api/v1/cameras/cam1",
		},
		{
			name: "update camera", status: 200, reply: deviceJSON,
			call: func(c *ownerapi.Client) (any, error) {
				return c.UpdateCamera(ctx, "cam1", ownerapi.DevicePatch{RTSP: &emulator.RTSPSource{URL: "rtsp://cam/2"}})
			},
			method: "PATCH", path: "/api/v1/cameras/cam1", body: `{"rtsp":{"url":"rtsp://cam/2"}}`,
		},
		{
			name: "delete camera", status: 204,
			call:   func(c *ownerapi.Client) (any, error) { return nil, c.DeleteCamera(ctx, "cam1") },
			method: "DELETE", path: "/api/v1/cameras/cam1",
		},
		{
			name: "create link", status: 201, reply: linkJSON,
			call: func(c *ownerapi.Client) (any, error) {
				return c.CreateLink(ctx, ownerapi.LinkCreate{
					Device: "dev1", Name: "door",
					Permissions: tokens.Permissions{Control: []string{"lock/locked"}, View: []string{}, Camera: []string{}},
					Window:      &ownerapi.Window{End: &end},
					MaxUses:     5,
				})
			},
			method: "POST", path: "/api/v1/links",
			body: `{"device":"dev1","name":"door","permissions":{"control":["lock/locked"],"view":[],"camera":[]},"window":{"end":"2026-11-29T10:00:00Z"},"maxUses":5}`,
		},
		{
			name: "list links", status: 200, reply: `{"items":[` + linkJSON + `],"next":""}`,
			call:   func(c *ownerapi.Client) (any, error) { return c.ListLinks(ctx, "", 0) },
			method: "GET", path: "/api/v1/links",
		},
		{
			name: "get link", status: 200, reply: linkJSON,
			call:   func(c *ownerapi.Client) (any, error) { return c.GetLink(ctx, "l1") },
			method: "GET", path: "/api/v1/links/l1",
		},
		{
			name: "disable link", status: 200, reply: linkJSON,
			call:   func(c *ownerapi.Client) (any, error) { return c.DisableLink(ctx, "l1") },
			method: "POST", path: "/api/v1/links/l1/disable",
		},
		{
			name: "enable link", status: 200, reply: linkJSON,
			call:   func(c *ownerapi.Client) (any, error) { return c.EnableLink(ctx, "l1") },
			method: "POST", path: "/api/v1/links/l1/enable",
		},
		{
			name: "delete link", status: 204,
			call:   func(c *ownerapi.Client) (any, error) { return nil, c.DeleteLink(ctx, "l1") },
			method: "DELETE", path: "/api/v1/links/l1",
		},
		{
			name: "access log", status: 200,
			reply:  `{"items":[{"at":"2026-11-22T10:00:00Z","event":"session","session":"s1","ip":"192.0.2.1","userAgent":"curl"}],"next":""}`,
			call:   func(c *ownerapi.Client) (any, error) { return c.AccessLog(ctx, "l1", 20) },
			method: "GET", path: "/api/v1/links/l1/log", query: "limit=20",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := fakeAPI(t, tt.status, tt.reply)
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if rec.method != tt.method || rec.path != tt.path || rec.rawQuery != tt.query {
				t.Errorf("request = %s %s?%s, want %s %s?%s", rec.method, rec.path, rec.rawQuery, tt.method, tt.path, tt.query)
			}
			if rec.auth != "Bearer "+testKey {
				t.Errorf("Authorization = %q, want the bearer key", rec.auth)
			}
			if tt.body == "" {
				if rec.body != "" || rec.contentType != "" {
					t.Errorf("sent body %q (Content-Type %q), want none", rec.body, rec.contentType)
				}
			} else {
				if rec.contentType != "application/json" {
					t.Errorf("Content-Type = %q", rec.contentType)
				}
				assertJSON(t, rec.body, tt.body)
			}
			if tt.reply != "" {
				// The decoded answer must carry what the server sent.
				b, err := json.Marshal(got)
				if err != nil {
					t.Fatal(err)
				}
				assertJSONSubset(t, tt.reply, string(b))
			}
		})
	}
}

func TestClientDecodes(t *testing.T) {
	c, _ := fakeAPI(t, 200, linkJSON)
	l, err := c.GetLink(context.Background(), "l1")
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if l.ID != "0123456789abcdef0123456789abcdef" || l.URL != "http://gw/l/tok" || l.Uses != 3 ||
		l.Window.Start != nil || l.Window.End == nil || !l.Window.End.Equal(end) ||
		len(l.Permissions.Control) != 1 || l.Permissions.Control[0] != "lock/locked" {
		t.Errorf("decoded %+v", l)
	}
}

// TestLinkPatchWire checks that absent, null and set fields of a LinkPatch
// travel as such.
func TestLinkPatchWire(t *testing.T) {
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	sched := &tokens.Schedule{TimeZone: "Europe/Berlin", Slots: []tokens.Slot{{Days: []string{"mon"}, Start: "08:00", End: "18:00"}}}
	tests := []struct {
		name  string
		patch ownerapi.LinkPatch
		want  string
	}{
		{"empty", ownerapi.LinkPatch{}, `{}`},
		{"name only", ownerapi.LinkPatch{Name: ptr("x")}, `{"name":"x"}`},
		{"window null", ownerapi.LinkPatch{Window: ownerapi.Null[ownerapi.Window]()}, `{"window":null}`},
		{"window set", ownerapi.LinkPatch{Window: ownerapi.Some(ownerapi.Window{Start: &start})}, `{"window":{"start":"2026-11-22T10:00:00Z"}}`},
		{"schedule null", ownerapi.LinkPatch{Schedule: ownerapi.Null[*tokens.Schedule]()}, `{"schedule":null}`},
		{"schedule set", ownerapi.LinkPatch{Schedule: ownerapi.Some(sched)},
			`{"schedule":{"timeZone":"Europe/Berlin","slots":[{"days":["mon"],"start":"08:00","end":"18:00"}]}}`},
		{"zero limits are sent", ownerapi.LinkPatch{MaxUses: ptr(0), MaxSessions: ptr(0)}, `{"maxUses":0,"maxSessions":0}`},
		{"permissions", ownerapi.LinkPatch{Device: ptr("d2"), Permissions: &tokens.Permissions{Control: []string{}, View: []string{"a/b"}, Camera: []string{}}},
			`{"device":"d2","permissions":{"control":[],"view":["a/b"],"camera":[]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := fakeAPI(t, 200, linkJSON)
			if _, err := c.UpdateLink(context.Background(), "l1", tt.patch); err != nil {
				t.Fatal(err)
			}
			if rec.method != "PATCH" || rec.path != "/api/v1/links/l1" {
				t.Errorf("request = %s %s", rec.method, rec.path)
			}
			if rec.body != tt.want {
				t.Errorf("body = %s, want %s", rec.body, tt.want)
			}

			// And the server side tells them apart again.
			var back ownerapi.LinkPatch
			if err := json.Unmarshal([]byte(rec.body), &back); err != nil {
				t.Fatal(err)
			}
			if back.Window.Set != tt.patch.Window.Set || back.Window.Null != tt.patch.Window.Null ||
				back.Schedule.Set != tt.patch.Schedule.Set || back.Schedule.Null != tt.patch.Schedule.Null {
				t.Errorf("round trip: window %+v schedule set=%v null=%v", back.Window, back.Schedule.Set, back.Schedule.Null)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	opens := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	long := strings.Repeat("é", 2000)
	tests := []struct {
		name   string
		status int
		body   string
		want   ownerapi.Error
	}{
		{
			name: "API error", status: 400,
			body: `{"error":{"code":"invalid-field","message":"window.end: must be after window.start","field":"window.end"}}`,
			want: ownerapi.Error{Status: 400, Code: "invalid-field", Message: "window.end: must be after window.start", Field: "window.end"},
		},
		{
			name: "opens at", status: 403,
			body: `{"error":{"code":"outside-schedule","message":"closed","opensAt":"2026-11-23T08:00:00Z"}}`,
			want: ownerapi.Error{Status: 403, Code: "outside-schedule", Message: "closed", OpensAt: &opens},
		},
		{
			name: "not JSON", status: 502, body: "<html>\n<h1>Bad   Gateway</h1>\n</html>",
			want: ownerapi.Error{Status: 502, Code: "http-502", Message: "<html> <h1>Bad Gateway</h1> </html>"},
		},
		{
			name: "empty body", status: 500,
			want: ownerapi.Error{Status: 500, Code: "http-500", Message: "500 Internal Server Error"},
		},
		{
			name: "JSON but not an error", status: 404, body: `{"detail":"nope"}`,
			want: ownerapi.Error{Status: 404, Code: "http-404", Message: `{"detail":"nope"}`},
		},
		{
			name: "long text is cut on a rune", status: 503, body: long,
			want: ownerapi.Error{Status: 503, Code: "http-503", Message: long[:512] + "…"},
		},
		{
			name: "echoed key is redacted", status: 401,
			body: `{"error":{"code":"unauthorized","message":"bad key Bearer ` + testKey + `"}}`,
			want: ownerapi.Error{Status: 401, Code: "unauthorized", Message: "bad key Bearer [redacted]"},
		},
		{
			name: "echoed key in text is redacted", status: 400, body: "bad key " + testKey,
			want: ownerapi.Error{Status: 400, Code: "http-400", Message: "bad key [redacted]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakeAPI(t, tt.status, tt.body)
			_, err := c.GetLink(context.Background(), "l1")
			var e *ownerapi.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *ownerapi.Error", err, err)
			}
			if e.Status != tt.want.Status || e.Code != tt.want.Code || e.Message != tt.want.Message || e.Field != tt.want.Field ||
				(e.OpensAt == nil) != (tt.want.OpensAt == nil) || (e.OpensAt != nil && !e.OpensAt.Equal(*tt.want.OpensAt)) {
				t.Errorf("err = %#v\nwant  %#v", *e, tt.want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error shows the API key: %v", err)
			}
		})
	}
}

func TestClientBadAnswers(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		big := `{"items":[],"next":"` + strings.Repeat("x", ownerapi.MaxResponseSize) + `"}`
		c, _ := fakeAPI(t, 200, big)
		if _, err := c.ListLinks(context.Background(), "", 0); err == nil || !strings.Contains(err.Error(), "exceeds") {
			t.Errorf("err = %v, want a size error", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		c, _ := fakeAPI(t, 200, `<html>`)
		_, err := c.GetLink(context.Background(), "l1")
		var e *ownerapi.Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("err = %v, want a decoding error", err)
		}
	})
	t.Run("empty id", func(t *testing.T) {
		c, rec := fakeAPI(t, 200, linkJSON)
		if _, err := c.GetLink(context.Background(), ""); err == nil {
			t.Error("no error for an empty id")
		}
		if rec.method != "" {
			t.Errorf("sent %s %s for an empty id", rec.method, rec.path)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c := &ownerapi.Client{BaseURL: srv.URL, APIKey: testKey}
		_, err := c.GetLink(context.Background(), "l1")
		if err == nil {
			t.Fatal("no error from a closed server")
		}
		if strings.Contains(err.Error(), testKey) {
			t.Errorf("error shows the API key: %v", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		c, _ := fakeAPI(t, 200, linkJSON)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.GetLink(ctx, "l1"); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestOpenSession(t *testing.T) {
	var gotAuth, gotPath, gotMethod string
	var gotBody int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotAuth, gotPath, gotMethod, gotBody = r.Header.Get("Authorization"), r.URL.EscapedPath(), r.Method, len(b)
		http.SetCookie(w, &http.Cookie{Name: "lg_session", Value: "s", Path: "/l/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		io.WriteString(w, `{"name":"door","kind":"device","window":{},"permissions":{"control":[],"view":["a/b"],"camera":[]},
"status":"active","device":{"id":"d","name":"D","type":"plug","kind":"device","nodes":[],"version":0,
"createdAt":"2026-11-22T10:00:00Z","updatedAt":"2026-11-22T10:00:00Z"},"session":{"id":"s1","expiresAt":"2026-11-22T11:00:00Z"}}`)
	}))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	hc := srv.Client()
	hc.Jar = jar
	c := &ownerapi.Client{BaseURL: srv.URL, APIKey: testKey, HTTP: hc}
	pl, err := c.OpenSession(context.Background(), "tok.en_-")
	if err != nil {
		t.Fatal(err)
	}
	if gotMethod != "POST" || gotPath != "/l/tok.en_-/session" || gotBody != 0 {
		t.Errorf("request = %s %s with %d body bytes", gotMethod, gotPath, gotBody)
	}
	if gotAuth != "" {
		t.Errorf("public route got Authorization %q", gotAuth)
	}
	if pl.Name != "door" || pl.Session.ID != "s1" || pl.Device == nil || pl.Device.ID != "d" {
		t.Errorf("decoded %+v", pl)
	}
	u, _ := url.Parse(srv.URL + "/l/tok.en_-")
	if cs := jar.Cookies(u); len(cs) != 1 || cs[0].Name != "lg_session" {
		t.Errorf("jar cookies = %v", cs)
	}
}

func TestClientHidesKey(t *testing.T) {
	c := &ownerapi.Client{BaseURL: "http://gw", APIKey: testKey}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("calling", "client", c)
	for _, s := range []string{buf.String(), fmt.Sprint(c), fmt.Sprintf("%+v", c)} {
		if strings.Contains(s, testKey) || !strings.Contains(s, "http://gw") {
			t.Errorf("printed %q", s)
		}
	}
}

// assertJSON fails unless got and want are the same JSON value.
func assertJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("JSON = %s\nwant   %s", gb, wb)
	}
}

// assertJSONSubset fails unless every member of want, recursively, is in
// got with the same value; times compare as instants.
func assertJSONSubset(t *testing.T, want, got string) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want: %v", err)
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got: %v", err)
	}
	if path, ok := subset(w, g, "$"); !ok {
		t.Errorf("decoded answer differs at %s\nsent    %s\ndecoded %s", path, want, got)
	}
}

func subset(want, got any, path string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range w {
			if p, ok := subset(v, g[k], path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	case string:
		if wt, err := time.Parse(time.RFC3339Nano, w); err == nil {
			gs, _ := got.(string)
			gt, err := time.Parse(time.RFC3339Nano, gs)
			return path, err == nil && gt.Equal(wt)
		}
	}
	return path, want == got
}
