package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens/redistest"
)

var plugBody = map[string]any{
	"name": "Kitchen plug", "type": "plug",
	"nodes": []any{
		map[string]any{"id": "switch", "name": "Switch", "properties": []any{
			map[string]any{"id": "on", "name": "On", "datatype": "boolean", "settable": true},
		}},
		map[string]any{"id": "meter", "name": "Meter", "properties": []any{
			map[string]any{"id": "power", "name": "Power", "datatype": "float", "unit": "W", "format": "0:3680"},
			map[string]any{"id": "energy", "name": "Energy", "datatype": "float", "unit": "kWh"},
		}},
	},
}

var lightBody = map[string]any{
	"name": "Hall light", "type": "light",
	"nodes": []any{
		map[string]any{"id": "light", "name": "Light", "properties": []any{
			map[string]any{"id": "on", "name": "On", "datatype": "boolean", "settable": true},
			map[string]any{"id": "brightness", "name": "Brightness", "datatype": "integer", "unit": "%", "format": "0:100", "settable": true},
		}},
	},
}

// tenant is an owner with its API key, talking to one instance.
type tenant struct {
	key string
	api string // base URL of /api/v1
}

func newTenant(t testing.TB, in *instance, name string) tenant {
	t.Helper()
	_, key, err := in.Owners().Create(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tenant{key: key, api: in.url + "/api/v1"}
}

func (o tenant) do(t testing.TB, method, path string, body any) answer {
	t.Helper()
	return call(t, method, o.api+path, o.key, body)
}

func (o tenant) device(t testing.TB, body any) ownerapi.Device {
	t.Helper()
	var d ownerapi.Device
	want(t, o.do(t, "POST", "/devices", body), http.StatusCreated).json(t, &d)
	return d
}

func (o tenant) link(t testing.TB, body any) ownerapi.Link {
	t.Helper()
	var l ownerapi.Link
	want(t, o.do(t, "POST", "/links", body), http.StatusCreated).json(t, &l)
	return l
}

func TestLinkLifecycle(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	testLifecycle(t, rdb)
}

func TestLinkLifecycleCluster(t *testing.T) {
	t.Parallel()
	rdb := redistest.StartCluster(t).Client(t)
	testLifecycle(t, rdb)
}

// testLifecycle walks one link through every owner route and checks what a
// recipient gets after each change.
func testLifecycle(t *testing.T, rdb redis.UniversalClient) {
	in := startGateway(t, rdb, testRing(t))
	alice := newTenant(t, in, "alice")
	plug := alice.device(t, plugBody)
	light := alice.device(t, lightBody)

	l := alice.link(t, map[string]any{
		"device": plug.ID, "name": "Guest plug",
		"permissions": map[string]any{"control": []string{"switch/on"}, "view": []string{"meter/power"}},
	})
	if l.ID == "" || l.Token == "" || !strings.HasSuffix(l.URL, "/l/"+l.Token) || l.Status != "active" || !l.Eternal || l.Kind != "device" {
		t.Fatalf("created link: %+v", l)
	}
	page := func() answer { return call(t, "GET", l.URL, "", nil) }
	session := func() answer { return call(t, "POST", l.URL+"/session", "", nil) }

	// The recipient's page and session.
	p := want(t, page(), http.StatusOK)
	for h, v := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"} {
		if !strings.Contains(p.Header.Get(h), v) {
			t.Errorf("page header %s = %q, want %q", h, p.Header.Get(h), v)
		}
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("page CSP = %q", csp)
	}
	s := want(t, session(), http.StatusOK)
	var view ownerapi.PublicLink
	s.json(t, &view)
	if view.Name != "Guest plug" || view.Kind != "device" || view.Device == nil {
		t.Fatalf("session view: %s", s.body)
	}
	if strings.Contains(string(s.body), "energy") {
		t.Errorf("session view shows a property the link does not allow: %s", s.body)
	}
	cookie := s.Header.Get("Set-Cookie")
	for _, attr := range []string{"lg_session=", "httponly", "samesite=strict", "path=/l/" + strings.ToLower(l.Token)} {
		if !strings.Contains(strings.ToLower(cookie), attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(string(s.body), l.Token) {
		t.Errorf("the session view repeats the link token")
	}

	// Get, with the use counted; the access log has it.
	var got ownerapi.Link
	linkOf := func(a answer) ownerapi.Link {
		t.Helper()
		var v ownerapi.Link
		a.json(t, &v)
		return v
	}
	got = linkOf(want(t, alice.do(t, "GET", "/links/"+l.ID, nil), http.StatusOK))
	if got.Uses != 1 || got.Token != l.Token {
		t.Errorf("after one session: uses %d, token kept %v", got.Uses, got.Token == l.Token)
	}
	var log ownerapi.Page[ownerapi.Access]
	want(t, alice.do(t, "GET", "/links/"+l.ID+"/log", nil), http.StatusOK).json(t, &log)
	if len(log.Items) != 1 || log.Items[0].Event != "session" || log.Items[0].IP != "127.0.0.1" {
		t.Errorf("access log: %+v", log.Items)
	}

	// Rename.
	got = linkOf(want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"name": "Renamed"}), http.StatusOK))
	if got.Name != "Renamed" || got.Version != l.Version+1 || got.Permissions.Control[0] != "switch/on" {
		t.Errorf("rename: %+v", got)
	}
	// Edit permissions: energy visible now.
	want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{
		"permissions": map[string]any{"view": []string{"meter/energy"}},
	}), http.StatusOK)
	s = want(t, session(), http.StatusOK)
	if !strings.Contains(string(s.body), `"energy"`) || strings.Contains(string(s.body), `"power"`) {
		t.Errorf("after the permission edit the view is wrong: %s", s.body)
	}
	// Swap the device: the old permissions do not fit the light.
	wantError(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"device": light.ID}), http.StatusBadRequest, "invalid-field")
	got = linkOf(want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{
		"device": light.ID, "permissions": map[string]any{"control": []string{"light/brightness"}},
	}), http.StatusOK))
	if got.Device != light.ID {
		t.Errorf("swap: device %s, want %s", got.Device, light.ID)
	}
	s = want(t, session(), http.StatusOK)
	if !strings.Contains(string(s.body), "Hall light") {
		t.Errorf("after the swap the session shows another device: %s", s.body)
	}

	// A window that opens tomorrow: 403 saying when; then eternal again.
	start := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	got = linkOf(want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"window": map[string]any{"start": start}}), http.StatusOK))
	if got.Eternal != true || got.Window.Start == nil || !got.Window.Start.Equal(start) {
		t.Errorf("window: %+v", got.Window)
	}
	pg := want(t, page(), http.StatusForbidden)
	if !strings.Contains(string(pg.body), start.Format(time.RFC3339)) {
		t.Errorf("not-yet-active page does not say when it opens: %.300s", pg.body)
	}
	wantError(t, session(), http.StatusForbidden, "not-yet-active")
	got = linkOf(want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"window": nil}), http.StatusOK))
	if got.Window.Start != nil || !got.Eternal {
		t.Errorf("made eternal: %+v", got.Window)
	}
	want(t, page(), http.StatusOK)

	// A window that ended: 410.
	end := time.Now().Add(-time.Hour)
	want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"window": map[string]any{"start": end.Add(-time.Hour), "end": end}}), http.StatusOK)
	want(t, page(), http.StatusGone)
	wantError(t, session(), http.StatusGone, "expired")
	want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"window": map[string]any{"end": time.Now().Add(time.Hour)}}), http.StatusOK)
	want(t, page(), http.StatusOK)

	// A schedule that is closed now: 403 outside-schedule with when it opens.
	closed := closedSchedule(time.Now())
	want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"schedule": closed}), http.StatusOK)
	want(t, page(), http.StatusForbidden)
	wantError(t, session(), http.StatusForbidden, "outside-schedule")
	want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"schedule": nil}), http.StatusOK)
	want(t, page(), http.StatusOK)

	// Disable and enable.
	got = linkOf(want(t, alice.do(t, "POST", "/links/"+l.ID+"/disable", nil), http.StatusOK))
	if got.Status != "disabled" {
		t.Errorf("disable: status %q", got.Status)
	}
	want(t, page(), http.StatusGone)
	wantError(t, session(), http.StatusGone, "disabled")
	got = linkOf(want(t, alice.do(t, "POST", "/links/"+l.ID+"/enable", nil), http.StatusOK))
	if got.Status != "active" {
		t.Errorf("enable: status %q", got.Status)
	}
	want(t, page(), http.StatusOK)

	// Max uses: allow one more session than the link has handed out.
	got = linkOf(want(t, alice.do(t, "GET", "/links/"+l.ID, nil), http.StatusOK))
	want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"maxUses": got.Uses + 1}), http.StatusOK)
	want(t, session(), http.StatusOK)
	wantError(t, session(), http.StatusGone, "used-up")
	want(t, page(), http.StatusGone)
	want(t, alice.do(t, "PATCH", "/links/"+l.ID, map[string]any{"maxUses": 0}), http.StatusOK)
	want(t, page(), http.StatusOK)

	// A device with links cannot be deleted; one without can.
	wantError(t, alice.do(t, "DELETE", "/devices/"+light.ID, nil), http.StatusConflict, "device-in-use")

	// Delete: the link is gone for everyone.
	want(t, alice.do(t, "DELETE", "/links/"+l.ID, nil), http.StatusNoContent)
	want(t, page(), http.StatusNotFound)
	wantError(t, session(), http.StatusNotFound, "not-found")
	wantError(t, alice.do(t, "GET", "/links/"+l.ID, nil), http.StatusNotFound, "not-found")
	wantError(t, alice.do(t, "DELETE", "/links/"+l.ID, nil), http.StatusNotFound, "not-found")
	want(t, alice.do(t, "DELETE", "/devices/"+light.ID, nil), http.StatusNoContent)
	wantError(t, alice.do(t, "GET", "/devices/"+light.ID, nil), http.StatusNotFound, "not-found")

	// Paging: seven links, three to a page, newest first, nothing twice.
	var made []string
	for i := range 7 {
		made = append(made, alice.link(t, map[string]any{"device": plug.ID, "name": fmt.Sprint("link ", i)}).ID)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		var pg ownerapi.Page[ownerapi.Link]
		want(t, alice.do(t, "GET", "/links?limit=3&cursor="+cursor, nil), http.StatusOK).json(t, &pg)
		for _, it := range pg.Items {
			seen = append(seen, it.ID)
		}
		if pg.Next == "" {
			break
		}
		cursor = pg.Next
	}
	if len(seen) != 7 {
		t.Fatalf("paging saw %d links, want 7", len(seen))
	}
	for i := range seen {
		if seen[i] != made[len(made)-1-i] {
			t.Fatalf("paging order: got %v, want newest first of %v", seen, made)
		}
	}
	// The operator's view: opens counted by outcome, the cache and the feed.
	m := want(t, call(t, "GET", in.url+"/metrics", "", nil), http.StatusOK)
	for _, metric := range []string{`linkgate_link_opens_total{outcome="ok"}`, `linkgate_link_opens_total{outcome="not-found"}`,
		"linkgate_link_cache_hits_total", "linkgate_feed_healthy 1", `linkgate_sessions_total{outcome="used-up"}`} {
		if !strings.Contains(string(m.body), metric) {
			t.Errorf("/metrics lacks %s", metric)
		}
	}
	wantError(t, alice.do(t, "GET", "/links?cursor=%21%21", nil), http.StatusBadRequest, "invalid-field")
	wantError(t, alice.do(t, "GET", "/links?limit=0", nil), http.StatusBadRequest, "invalid-field")
	wantError(t, alice.do(t, "GET", "/links?limit=abc", nil), http.StatusBadRequest, "invalid-field")
}

// closedSchedule returns a schedule whose only slot is twelve hours away.
func closedSchedule(now time.Time) map[string]any {
	at := now.UTC().Add(12 * time.Hour)
	day := strings.ToLower(at.Weekday().String()[:3])
	return map[string]any{"timeZone": "UTC", "slots": []any{map[string]any{
		"days": []string{day}, "start": fmt.Sprintf("%02d:00", at.Hour()), "end": fmt.Sprintf("%02d:59", at.Hour()),
	}}}
}
