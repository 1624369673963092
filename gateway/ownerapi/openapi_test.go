package ownerapi_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
)

// loadOpenAPI loads and validates the document the gateway serves at
// /api/v1/openapi.json.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile("../openapi.json")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return doc
}

func TestOpenAPIValid(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, p := range []string{
		"/api/v1/devices", "/api/v1/devices/{id}", "/api/v1/cameras", "/api/v1/cameras/{id}",
		"/api/v1/links", "/api/v1/links/{id}", "/api/v1/links/{id}/disable", "/api/v1/links/{id}/enable",
		"/api/v1/links/{id}/log", "/api/v1/openapi.json", "/l/{token}", "/l/{token}/session", "/l/{token}/hls/{file}",
		"/healthz", "/readyz", "/metrics",
	} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("path %s is not documented", p)
		}
	}
}

// TestOpenAPIMatchesTypes keeps the schemas and the wire types in step: the
// same property names, and for answers the same required fields (those
// without omitempty or omitzero).
func TestOpenAPIMatchesTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	const (
		answer  = iota // required = the fields always marshalled
		request        // required = what the server demands, checked by the server
		shared         // both: required must be fields always marshalled
	)
	tests := []struct {
		schema string
		typ    any
		use    int
	}{
		{"Link", ownerapi.Link{}, answer},
		{"Device", ownerapi.Device{}, answer},
		{"RTSP", ownerapi.RTSP{}, answer},
		{"LinkPage", ownerapi.Page[ownerapi.Link]{}, answer},
		{"DevicePage", ownerapi.Page[ownerapi.Device]{}, answer},
		{"AccessPage", ownerapi.Page[ownerapi.Access]{}, answer},
		{"Access", ownerapi.Access{}, answer},
		{"PublicLink", ownerapi.PublicLink{}, answer},
		{"SessionInfo", ownerapi.SessionInfo{}, answer},
		{"Error", ownerapi.Error{}, answer},
		{"ErrorBody", ownerapi.ErrorBody{}, answer},
		{"LinkCreate", ownerapi.LinkCreate{}, request},
		{"LinkPatch", ownerapi.LinkPatch{}, request},
		{"DeviceCreate", ownerapi.DeviceCreate{}, request},
		{"CameraCreate", ownerapi.DeviceCreate{}, request},
		{"DevicePatch", ownerapi.DevicePatch{}, request},
		{"RTSPSource", emulator.RTSPSource{}, request},
		{"Window", ownerapi.Window{}, shared},
		{"Permissions", tokens.Permissions{}, shared},
		{"Schedule", tokens.Schedule{}, shared},
		{"Slot", tokens.Slot{}, shared},
		{"Node", emulator.Node{}, shared},
		{"Property", emulator.Property{}, shared},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			ref := doc.Components.Schemas[tt.schema]
			if ref == nil || ref.Value == nil {
				t.Fatalf("no schema %s", tt.schema)
			}
			s := ref.Value
			names, always := jsonFields(reflect.TypeOf(tt.typ))
			var props []string
			for name := range s.Properties {
				props = append(props, name)
			}
			sort.Strings(props)
			if !slices.Equal(props, names) {
				t.Errorf("properties = %v, Go fields = %v", props, names)
			}
			required := slices.Sorted(slices.Values(s.Required))
			switch tt.use {
			case answer:
				if !slices.Equal(required, always) {
					t.Errorf("required = %v, always marshalled = %v", required, always)
				}
			case shared:
				for _, r := range required {
					if !slices.Contains(always, r) {
						t.Errorf("required %q may be left out by the Go type", r)
					}
				}
			}
			if tt.use != answer && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
				t.Errorf("request schema %s does not refuse unknown fields", tt.schema)
			}
		})
	}
}

// jsonFields returns the sorted JSON names of t's fields and those of them
// that are always marshalled.
func jsonFields(t reflect.Type) (names, always []string) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			// encoding/json flattens an untagged embedded struct.
			n, a := jsonFields(f.Type)
			names, always = append(names, n...), append(always, a...)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always = append(always, name)
		}
	}
	sort.Strings(names)
	sort.Strings(always)
	return names, always
}

// TestOpenAPIValues validates marshalled Go values against their schemas.
func TestOpenAPIValues(t *testing.T) {
	doc := loadOpenAPI(t)
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	end := at.Add(7 * 24 * time.Hour)
	sched := &tokens.Schedule{TimeZone: "Europe/Berlin", Slots: []tokens.Slot{
		{Days: []string{"mon", "tue", "wed"}, Start: "08:00", End: "18:00"},
		{Days: []string{"sat"}, Start: "22:00", End: "24:00"},
	}}
	perms := tokens.Permissions{Control: []string{"switch/on"}, View: []string{"meter/power"}, Camera: []string{}}
	nodes := []emulator.Node{{ID: "switch", Name: "Switch", Type: "relay", Properties: []emulator.Property{
		{ID: "on", Name: "On", Datatype: emulator.DatatypeBoolean, Settable: true},
		{ID: "power", Name: "Power", Datatype: emulator.DatatypeFloat, Unit: "W", Format: "0:3600"},
	}}}
	link := ownerapi.Link{
		ID: "0123456789abcdef0123456789abcdef", URL: "https://gw/l/tok", Token: "tok", Name: "door", Device: "d1",
		Kind: "device", Permissions: perms, Window: ownerapi.Window{Start: &at, End: &end}, Schedule: sched,
		Status: "active", MaxUses: 10, MaxSessions: 2, Uses: 3, Version: 4, CreatedAt: at, UpdatedAt: at,
	}
	device := ownerapi.Device{ID: "d1", Name: "Plug", Type: "plug", Kind: "device", Nodes: nodes, Version: 1, CreatedAt: at, UpdatedAt: at}
	camera := ownerapi.Device{ID: "c1", Name: "Yard", Type: "camera", Kind: "camera", Nodes: []emulator.Node{},
		RTSP: &ownerapi.RTSP{URL: "rtsp://xxxxx:xxxxx@cam/1", Transport: "tcp", HasCredentials: true}, CreatedAt: at, UpdatedAt: at}

	tests := []struct {
		name   string
		schema string
		value  any
		valid  bool
	}{
		{"link", "Link", link, true},
		{"eternal link", "Link", ownerapi.Link{ID: link.ID, Kind: "camera", Permissions: tokens.Permissions{Control: []string{}, View: []string{}, Camera: []string{"live", "archive"}},
			Eternal: true, Status: "disabled", CreatedAt: at, UpdatedAt: at}, true},
		{"link page", "LinkPage", ownerapi.Page[ownerapi.Link]{Items: []ownerapi.Link{link}, Next: "abc"}, true},
		{"device", "Device", device, true},
		{"camera", "Device", camera, true},
		{"device page", "DevicePage", ownerapi.Page[ownerapi.Device]{Items: []ownerapi.Device{device, camera}}, true},
		{"access page", "AccessPage", ownerapi.Page[ownerapi.Access]{Items: []ownerapi.Access{{At: at, Event: "session", Session: "s", IP: "192.0.2.1", UserAgent: "curl"}}}, true},
		{"public link", "PublicLink", ownerapi.PublicLink{LinkView: ownerapi.LinkView{Name: "door", Kind: "device", Window: ownerapi.Window{End: &end}, Schedule: sched,
			Permissions: perms, Status: "active", ClosesAt: &end}, Device: &device, Session: ownerapi.SessionInfo{ID: "s", ExpiresAt: end}}, true},
		{"error", "ErrorBody", ownerapi.ErrorBody{Error: &ownerapi.Error{Status: 403, Code: "outside-schedule", Message: "closed", OpensAt: &end}}, true},
		{"field error", "ErrorBody", ownerapi.ErrorBody{Error: &ownerapi.Error{Code: "invalid-field", Message: "m", Field: "window.end"}}, true},
		{"http error code", "ErrorBody", ownerapi.ErrorBody{Error: &ownerapi.Error{Code: "http-418", Message: "m"}}, true},
		{"unknown error code", "ErrorBody", ownerapi.ErrorBody{Error: &ownerapi.Error{Code: "oops", Message: "m"}}, false},
		{"link create", "LinkCreate", ownerapi.LinkCreate{Device: "d1", Name: "n", Permissions: perms,
			Window: &ownerapi.Window{Start: &at, End: &end}, Schedule: sched, MaxUses: 1, MaxSessions: 1}, true},
		{"link create, least", "LinkCreate", ownerapi.LinkCreate{Device: "d1"}, true},
		{"link create, bad level", "LinkCreate", ownerapi.LinkCreate{Device: "d1", Permissions: tokens.Permissions{Camera: []string{"all"}}}, false},
		{"link create, bad slot", "LinkCreate", ownerapi.LinkCreate{Device: "d1", Schedule: &tokens.Schedule{TimeZone: "UTC",
			Slots: []tokens.Slot{{Days: []string{"monday"}, Start: "08:00", End: "09:00"}}}}, false},
		{"link patch, nulls", "LinkPatch", ownerapi.LinkPatch{Window: ownerapi.Null[ownerapi.Window](), Schedule: ownerapi.Null[*tokens.Schedule]()}, true},
		{"link patch, values", "LinkPatch", ownerapi.LinkPatch{Name: new(string), Window: ownerapi.Some(ownerapi.Window{End: &end}),
			Schedule: ownerapi.Some(sched), Permissions: &perms}, true},
		{"link patch, empty", "LinkPatch", ownerapi.LinkPatch{}, true},
		{"device create", "DeviceCreate", ownerapi.DeviceCreate{Name: "Plug", Type: "plug", Nodes: nodes}, true},
		{"camera create", "CameraCreate", ownerapi.DeviceCreate{Name: "Yard", RTSP: &emulator.RTSPSource{URL: "rtsp://cam/1", Transport: "udp"}}, true},
		{"camera create, bad transport", "CameraCreate", ownerapi.DeviceCreate{Name: "Yard", RTSP: &emulator.RTSPSource{URL: "rtsp://cam/1", Transport: "http"}}, false},
		{"device patch", "DevicePatch", ownerapi.DevicePatch{Nodes: &nodes}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			err = validateJSON(doc, tt.schema, b)
			if tt.valid && err != nil {
				t.Errorf("%s refused %s: %v", tt.schema, b, err)
			}
			if !tt.valid && err == nil {
				t.Errorf("%s accepted %s", tt.schema, b)
			}
		})
	}

	// Request bodies refuse unknown fields, as the server does.
	for _, body := range []string{
		`{"device":"d1","nmae":"typo"}`,
		`{"device":"d1","window":{"start":"2026-11-22T10:00:00Z","until":"2026-11-29T10:00:00Z"}}`,
		`{"device":"d1","permissions":{"control":[],"admin":true}}`,
	} {
		if err := validateJSON(doc, "LinkCreate", []byte(body)); err == nil {
			t.Errorf("LinkCreate accepted %s", body)
		}
	}
}

func validateJSON(doc *openapi3.T, schema string, b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return doc.Components.Schemas[schema].Value.VisitJSON(v)
}
