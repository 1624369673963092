package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens/redistest"
)

// TestTenantIsolation: on every owner route, another owner's device, camera
// or link answers exactly as one that does not exist.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	in := startGateway(t, redistest.Start(t).Client(t), testRing(t))
	alice, mallory := newTenant(t, in, "alice"), newTenant(t, in, "mallory")
	plug := alice.device(t, plugBody)
	cam := alice.device(t, map[string]any{"name": "Door cam", "type": "camera", "rtsp": map[string]any{"url": "rtsp://admin:hunter2@192.0.2.7/stream"}})
	l := alice.link(t, map[string]any{"device": plug.ID})
	mallory.device(t, lightBody) // mallory has things of her own

	routes := []struct{ method, path string }{
		{"GET", "/devices/" + plug.ID}, {"PATCH", "/devices/" + plug.ID}, {"DELETE", "/devices/" + plug.ID},
		{"GET", "/cameras/" + cam.ID}, {"PATCH", "/cameras/" + cam.ID}, {"DELETE", "/cameras/" + cam.ID},
		{"GET", "/links/" + l.ID}, {"PATCH", "/links/" + l.ID}, {"DELETE", "/links/" + l.ID},
		{"POST", "/links/" + l.ID + "/disable"}, {"POST", "/links/" + l.ID + "/enable"}, {"GET", "/links/" + l.ID + "/log"},
	}
	for _, r := range routes {
		var body any
		if r.method == "PATCH" {
			body = map[string]any{"name": "pwned"}
		}
		wantError(t, mallory.do(t, r.method, r.path, body), http.StatusNotFound, "not-found")
		// The same answer as for an id that exists nowhere.
		missing := strings.NewReplacer(plug.ID, strings.Repeat("0", 32), cam.ID, strings.Repeat("0", 32), l.ID, strings.Repeat("0", 32)).Replace(r.path)
		wantError(t, mallory.do(t, r.method, missing, body), http.StatusNotFound, "not-found")
	}
	// Nothing of alice's in mallory's lists; a link to alice's device is refused.
	for _, path := range []string{"/devices", "/cameras", "/links"} {
		a := want(t, mallory.do(t, "GET", path, nil), http.StatusOK)
		for _, id := range []string{plug.ID, cam.ID, l.ID} {
			if strings.Contains(string(a.body), id) {
				t.Errorf("mallory's %s lists alice's %s", path, id)
			}
		}
	}
	wantError(t, mallory.do(t, "POST", "/links", map[string]any{"device": plug.ID}), http.StatusBadRequest, "invalid-field")
	wantError(t, mallory.do(t, "PATCH", "/links/"+l.ID, map[string]any{"device": plug.ID}), http.StatusNotFound, "not-found")

	// Alice's things are untouched.
	var got ownerapi.Link
	want(t, alice.do(t, "GET", "/links/"+l.ID, nil), http.StatusOK).json(t, &got)
	if got.Name == "pwned" || got.Status != "active" || got.Version != 1 {
		t.Errorf("alice's link was changed: %+v", got)
	}
	// The camera's credentials never come back, not even to its owner.
	c := want(t, alice.do(t, "GET", "/cameras/"+cam.ID, nil), http.StatusOK)
	if strings.Contains(string(c.body), "hunter2") || !strings.Contains(string(c.body), `"hasCredentials":true`) {
		t.Errorf("camera answer: %s", c.body)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	in := startGateway(t, redistest.Start(t).Client(t), testRing(t))
	for _, key := range []string{"", "lgk_nope", "lgk_" + strings.Repeat("A", 43)} {
		wantError(t, call(t, "GET", in.url+"/api/v1/links", key, nil), http.StatusUnauthorized, "unauthorized")
	}
	req := call(t, "GET", in.url+"/api/v1/links", "", nil, "Authorization", "Basic Zm9vOmJhcg==")
	wantError(t, req, http.StatusUnauthorized, "unauthorized")
	// The OpenAPI document is public.
	want(t, call(t, "GET", in.url+"/api/v1/openapi.json", "", nil), http.StatusOK)
}

// TestValidation sends bad bodies; each gets a clear 400 that names the
// field, and nothing is created.
func TestValidation(t *testing.T) {
	t.Parallel()
	in := startGateway(t, redistest.Start(t).Client(t), testRing(t))
	o := newTenant(t, in, "owner")
	plug := o.device(t, plugBody)
	cam := o.device(t, map[string]any{"name": "Cam", "type": "camera", "rtsp": map[string]any{"url": "rtsp://192.0.2.1/s"}})
	now := time.Now().UTC()
	cases := []struct {
		name        string
		body        any
		code, field string
	}{
		{"no body", nil, "invalid-json", ""},
		{"not JSON", "{", "invalid-json", ""},
		{"trailing data", `{"device":"` + plug.ID + `"} {}`, "invalid-json", ""},
		{"unknown field", map[string]any{"device": plug.ID, "colour": "red"}, "invalid-json", "colour"},
		{"wrong type", map[string]any{"device": plug.ID, "name": 7}, "invalid-json", "name"},
		{"wrong nested type", map[string]any{"device": plug.ID, "permissions": map[string]any{"control": "switch/on"}}, "invalid-json", "permissions.control"},
		{"bad time", map[string]any{"device": plug.ID, "window": map[string]any{"end": "tomorrow"}}, "invalid-json", ""},
		{"no device", map[string]any{"name": "x"}, "invalid-field", "device"},
		{"unknown device", map[string]any{"device": strings.Repeat("0", 32)}, "invalid-field", "device"},
		{"end before start", map[string]any{"device": plug.ID, "window": map[string]any{"start": now.Add(2 * time.Hour), "end": now.Add(time.Hour)}}, "invalid-field", "window.end"},
		{"end in the past", map[string]any{"device": plug.ID, "window": map[string]any{"end": now.Add(-time.Hour)}}, "invalid-field", "window.end"},
		{"unknown property", map[string]any{"device": plug.ID, "permissions": map[string]any{"view": []string{"meter/volts"}}}, "invalid-field", "permissions.view[0]"},
		{"read-only control", map[string]any{"device": plug.ID, "permissions": map[string]any{"control": []string{"meter/power"}}}, "invalid-field", "permissions.control[0]"},
		{"camera level on a plug", map[string]any{"device": plug.ID, "permissions": map[string]any{"camera": []string{"live"}}}, "invalid-field", "permissions.camera[0]"},
		{"unknown camera level", map[string]any{"device": cam.ID, "permissions": map[string]any{"camera": []string{"live", "teleport"}}}, "invalid-field", "permissions.camera[1]"},
		{"bad time zone", map[string]any{"device": plug.ID, "schedule": map[string]any{"timeZone": "Mars/Olympus", "slots": []any{map[string]any{"days": []string{"mon"}, "start": "08:00", "end": "17:00"}}}}, "invalid-field", "schedule.timeZone"},
		{"bad day", map[string]any{"device": plug.ID, "schedule": map[string]any{"timeZone": "UTC", "slots": []any{map[string]any{"days": []string{"someday"}, "start": "08:00", "end": "17:00"}}}}, "invalid-field", "schedule.slots[0].days"},
		{"bad clock", map[string]any{"device": plug.ID, "schedule": map[string]any{"timeZone": "UTC", "slots": []any{map[string]any{"days": []string{"mon"}, "start": "8am", "end": "17:00"}}}}, "invalid-field", "schedule.slots[0].start"},
		{"negative max uses", map[string]any{"device": plug.ID, "maxUses": -1}, "invalid-field", "maxUses"},
		{"long name", map[string]any{"device": plug.ID, "name": strings.Repeat("x", 101)}, "invalid-field", "name"},
	}
	for _, tc := range cases {
		a := want(t, o.do(t, "POST", "/links", tc.body), http.StatusBadRequest)
		var e ownerapi.ErrorBody
		a.json(t, &e)
		if e.Error == nil || e.Error.Code != tc.code || e.Error.Field != tc.field {
			t.Errorf("%s: got %s, want code %q field %q", tc.name, a.body, tc.code, tc.field)
		}
	}
	var page ownerapi.Page[ownerapi.Link]
	want(t, o.do(t, "GET", "/links", nil), http.StatusOK).json(t, &page)
	if len(page.Items) != 0 {
		t.Errorf("bad bodies created %d links", len(page.Items))
	}
	// A body over the limit: 413, not a hang or a crash.
	big := `{"device":"` + plug.ID + `","name":"` + strings.Repeat("x", 70<<10) + `"}`
	wantError(t, o.do(t, "POST", "/links", big), http.StatusRequestEntityTooLarge, "too-large")
	// Device bodies are checked the same way.
	wantError(t, o.do(t, "POST", "/devices", map[string]any{"name": "x", "type": "plug", "nodes": []any{map[string]any{"id": "Bad Id", "properties": []any{}}}}), http.StatusBadRequest, "invalid-field")
	wantError(t, o.do(t, "POST", "/devices", map[string]any{"name": "x", "type": "plug", "extra": 1}), http.StatusBadRequest, "invalid-json")
	wantError(t, o.do(t, "PATCH", "/links/"+strings.Repeat("0", 32), map[string]any{"bogus": 1}), http.StatusBadRequest, "invalid-json")
	wantError(t, o.do(t, "GET", "/nowhere", nil), http.StatusNotFound, "not-found")
}
