package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/linkgate/linkgate/tokens"
)

// testDevice returns a valid device with one property of every datatype.
func testDevice() *Device {
	return &Device{
		Owner: "owner-a",
		Name:  "Test device",
		Type:  "plug",
		Nodes: []Node{
			{ID: "switch", Name: "Switch", Properties: []Property{
				{ID: "on", Name: "On", Datatype: DatatypeBoolean, Settable: true},
				{ID: "level", Name: "Level", Datatype: DatatypeInteger, Unit: "%", Format: "0:100"},
			}},
			{ID: "misc", Name: "Misc", Type: "Everything else", Properties: []Property{
				{ID: "temp", Name: "Temperature", Datatype: DatatypeFloat, Unit: "°C", Format: "5:30:0.5"},
				{ID: "mode", Name: "Mode", Datatype: DatatypeEnum, Format: "off,heat,cool"},
				{ID: "color", Name: "Color", Datatype: DatatypeColor},
				{ID: "label", Name: "Label", Datatype: DatatypeString},
			}},
		},
	}
}

func testCamera() *Device {
	return &Device{
		Owner: "owner-a",
		Name:  "Porch camera",
		Type:  TypeCamera,
		RTSP:  &RTSPSource{URL: "rtsp://admin-user:s3cret-pw@cam.local:554/stream1?channel=1"},
	}
}

func TestValidate(t *testing.T) {
	prop := func(d *Device) *Property { return &d.Nodes[0].Properties[0] }
	format := func(dt Datatype, f string) func(*Device) {
		return func(d *Device) { prop(d).Datatype, prop(d).Format = dt, f }
	}
	manyNodes := func(n int) []Node {
		var nodes []Node
		for i := range n {
			nodes = append(nodes, Node{ID: fmt.Sprintf("n%d", i), Name: "N", Properties: []Property{
				{ID: "p", Name: "P", Datatype: DatatypeBoolean},
			}})
		}
		return nodes
	}
	manyProps := func(n int) []Property {
		var props []Property
		for i := range n {
			props = append(props, Property{ID: fmt.Sprintf("p%d", i), Name: "P", Datatype: DatatypeBoolean})
		}
		return props
	}

	tests := []struct {
		name   string
		camera bool
		change func(*Device)
		field  string // "" when valid
	}{
		{"valid device", false, func(*Device) {}, ""},
		{"valid camera without nodes", true, func(*Device) {}, ""},
		{"valid camera with a light", true, func(d *Device) { d.Nodes = testDevice().Nodes[:1] }, ""},
		{"rtsps and udp", true, func(d *Device) { d.RTSP = &RTSPSource{URL: "rtsps://cam.local/s", Transport: "udp"} }, ""},
		{"tcp", true, func(d *Device) { d.RTSP.Transport = "tcp" }, ""},

		{"name missing", false, func(d *Device) { d.Name = "" }, "name"},
		{"name blank", false, func(d *Device) { d.Name = "  " }, "name"},
		{"name 100 runes", false, func(d *Device) { d.Name = strings.Repeat("é", 100) }, ""},
		{"name 101 runes", false, func(d *Device) { d.Name = strings.Repeat("é", 101) }, "name"},
		{"name control char", false, func(d *Device) { d.Name = "a\nb" }, "name"},
		{"name DEL", false, func(d *Device) { d.Name = "a\x7fb" }, "name"},
		{"name invalid UTF-8", false, func(d *Device) { d.Name = "a\xffb" }, "name"},

		{"type missing", false, func(d *Device) { d.Type = "" }, "type"},
		{"type upper case", false, func(d *Device) { d.Type = "Plug" }, "type"},
		{"type underscore", false, func(d *Device) { d.Type = "smart_plug" }, "type"},
		{"type with hyphen and digit", false, func(d *Device) { d.Type = "rgb-lamp2" }, ""},
		{"type 40 chars", false, func(d *Device) { d.Type = strings.Repeat("a", 40) }, ""},
		{"type 41 chars", false, func(d *Device) { d.Type = strings.Repeat("a", 41) }, "type"},

		{"no nodes", false, func(d *Device) { d.Nodes = nil }, "nodes"},
		{"32 nodes", false, func(d *Device) { d.Nodes = manyNodes(32) }, ""},
		{"33 nodes", false, func(d *Device) { d.Nodes = manyNodes(33) }, "nodes"},
		{"node id missing", false, func(d *Device) { d.Nodes[1].ID = "" }, "nodes[1].id"},
		{"node id upper case", false, func(d *Device) { d.Nodes[1].ID = "Switch" }, "nodes[1].id"},
		{"node id leading hyphen", false, func(d *Device) { d.Nodes[1].ID = "-a" }, "nodes[1].id"},
		{"node id trailing hyphen", false, func(d *Device) { d.Nodes[1].ID = "a-" }, "nodes[1].id"},
		{"node id double hyphen", false, func(d *Device) { d.Nodes[1].ID = "a--b" }, "nodes[1].id"},
		{"node id underscore", false, func(d *Device) { d.Nodes[1].ID = "a_b" }, "nodes[1].id"},
		{"node id Homie attribute", false, func(d *Device) { d.Nodes[1].ID = "$name" }, "nodes[1].id"},
		{"node id slash", false, func(d *Device) { d.Nodes[1].ID = "a/b" }, "nodes[1].id"},
		{"node id hyphenated", false, func(d *Device) { d.Nodes[1].ID = "a-1-b2" }, ""},
		{"node id 64 chars", false, func(d *Device) { d.Nodes[1].ID = strings.Repeat("a", 64) }, ""},
		{"node id 65 chars", false, func(d *Device) { d.Nodes[1].ID = strings.Repeat("a", 65) }, "nodes[1].id"},
		{"node id duplicate", false, func(d *Device) { d.Nodes[1].ID = "switch" }, "nodes[1].id"},
		{"node name missing", false, func(d *Device) { d.Nodes[1].Name = "" }, "nodes[1].name"},
		{"node name too long", false, func(d *Device) { d.Nodes[1].Name = strings.Repeat("x", 101) }, "nodes[1].name"},
		{"node type control char", false, func(d *Device) { d.Nodes[1].Type = "a\tb" }, "nodes[1].type"},
		{"node type too long", false, func(d *Device) { d.Nodes[1].Type = strings.Repeat("x", 65) }, "nodes[1].type"},
		{"node without properties", false, func(d *Device) { d.Nodes[1].Properties = nil }, "nodes[1].properties"},
		{"64 properties", false, func(d *Device) { d.Nodes[1].Properties = manyProps(64) }, ""},
		{"65 properties", false, func(d *Device) { d.Nodes[1].Properties = manyProps(65) }, "nodes[1].properties"},

		{"property id missing", false, func(d *Device) { d.Nodes[1].Properties[2].ID = "" }, "nodes[1].properties[2].id"},
		{"property id bad", false, func(d *Device) { d.Nodes[1].Properties[2].ID = "Color" }, "nodes[1].properties[2].id"},
		{"property id duplicate", false, func(d *Device) { d.Nodes[1].Properties[2].ID = "temp" }, "nodes[1].properties[2].id"},
		{"property id reused in another node", false, func(d *Device) { d.Nodes[1].Properties[2].ID = "on" }, ""},
		{"property name missing", false, func(d *Device) { prop(d).Name = "" }, "nodes[0].properties[0].name"},
		{"datatype missing", false, func(d *Device) { prop(d).Datatype = "" }, "nodes[0].properties[0].datatype"},
		{"datatype unknown", false, func(d *Device) { prop(d).Datatype = "number" }, "nodes[0].properties[0].datatype"},
		{"unit 16 runes", false, func(d *Device) { prop(d).Unit = strings.Repeat("°", 16) }, ""},
		{"unit 17 runes", false, func(d *Device) { prop(d).Unit = strings.Repeat("°", 17) }, "nodes[0].properties[0].unit"},
		{"unit control char", false, func(d *Device) { prop(d).Unit = "W\n" }, "nodes[0].properties[0].unit"},

		{"boolean with format", false, format(DatatypeBoolean, "0:1"), "nodes[0].properties[0].format"},
		{"string with format", false, format(DatatypeString, "x"), "nodes[0].properties[0].format"},
		{"integer no format", false, format(DatatypeInteger, ""), ""},
		{"integer range", false, format(DatatypeInteger, "-10:10"), ""},
		{"integer open min", false, format(DatatypeInteger, ":10"), ""},
		{"integer open max", false, format(DatatypeInteger, "0:"), ""},
		{"integer open both", false, format(DatatypeInteger, ":"), ""},
		{"integer step only", false, format(DatatypeInteger, "::5"), ""},
		{"float range step", false, format(DatatypeFloat, "-5.5:5.5:0.25"), ""},
		{"float exponent", false, format(DatatypeFloat, "1e-3:1e3"), ""},
		{"float min equals max", false, format(DatatypeFloat, "1:1"), ""},
		{"range one part", false, format(DatatypeInteger, "100"), "nodes[0].properties[0].format"},
		{"range four parts", false, format(DatatypeInteger, "0:1:1:1"), "nodes[0].properties[0].format"},
		{"range not a number", false, format(DatatypeFloat, "a:b"), "nodes[0].properties[0].format"},
		{"range min above max", false, format(DatatypeFloat, "10:0"), "nodes[0].properties[0].format"},
		{"range NaN", false, format(DatatypeFloat, "NaN:1"), "nodes[0].properties[0].format"},
		{"range Inf", false, format(DatatypeFloat, "0:Inf"), "nodes[0].properties[0].format"},
		{"step zero", false, format(DatatypeFloat, "0:10:0"), "nodes[0].properties[0].format"},
		{"step negative", false, format(DatatypeFloat, "0:10:-1"), "nodes[0].properties[0].format"},
		{"step empty", false, format(DatatypeFloat, "0:10:"), "nodes[0].properties[0].format"},
		{"enum one value", false, format(DatatypeEnum, "on"), ""},
		{"enum values", false, format(DatatypeEnum, "a,b-c,d e"), ""},
		{"enum missing", false, format(DatatypeEnum, ""), "nodes[0].properties[0].format"},
		{"enum empty value", false, format(DatatypeEnum, "a,,b"), "nodes[0].properties[0].format"},
		{"enum trailing comma", false, format(DatatypeEnum, "a,b,"), "nodes[0].properties[0].format"},
		{"enum only comma", false, format(DatatypeEnum, ","), "nodes[0].properties[0].format"},
		{"enum duplicate", false, format(DatatypeEnum, "a,b,a"), "nodes[0].properties[0].format"},
		{"enum spaces", false, format(DatatypeEnum, "a, b"), "nodes[0].properties[0].format"},
		{"enum control char", false, format(DatatypeEnum, "a,\x01"), "nodes[0].properties[0].format"},
		{"format too long", false, format(DatatypeEnum, strings.Repeat("a,", 512)+"b"), "nodes[0].properties[0].format"},
		{"color default", false, format(DatatypeColor, ""), ""},
		{"color rgb", false, format(DatatypeColor, "rgb"), ""},
		{"color hsv", false, format(DatatypeColor, "hsv"), ""},
		{"color upper case", false, format(DatatypeColor, "RGB"), "nodes[0].properties[0].format"},
		{"color unknown", false, format(DatatypeColor, "cmyk"), "nodes[0].properties[0].format"},

		{"device with rtsp", false, func(d *Device) { d.RTSP = &RTSPSource{URL: "rtsp://cam.local/"} }, "rtsp"},
		{"camera without rtsp", true, func(d *Device) { d.RTSP = nil }, "rtsp"},
		{"camera url missing", true, func(d *Device) { d.RTSP.URL = "" }, "rtsp.url"},
		{"camera url http", true, func(d *Device) { d.RTSP.URL = "http://admin-user:s3cret-pw@cam.local/" }, "rtsp.url"},
		{"camera url no scheme", true, func(d *Device) { d.RTSP.URL = "cam.local:554/stream" }, "rtsp.url"},
		{"camera url no host", true, func(d *Device) { d.RTSP.URL = "rtsp://admin-user:s3cret-pw@/stream" }, "rtsp.url"},
		{"camera url only port", true, func(d *Device) { d.RTSP.URL = "rtsp://:554/stream" }, "rtsp.url"},
		{"camera url unparsable", true, func(d *Device) { d.RTSP.URL = "rtsp://admin-user:s3cret-pw@cam.local:port/" }, "rtsp.url"},
		{"camera url control char", true, func(d *Device) { d.RTSP.URL = "rtsp://admin-user:s3cret-pw@cam.local/\n" }, "rtsp.url"},
		{"camera transport", true, func(d *Device) { d.RTSP.Transport = "TCP" }, "rtsp.transport"},
		{"camera bad node", true, func(d *Device) { d.Nodes = []Node{{ID: "light", Name: "Light"}} }, "nodes[0].properties"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDevice()
			if tt.camera {
				d = testCamera()
			}
			tt.change(d)
			err := d.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			fe, ok := tokens.AsFieldError(err)
			if !ok {
				t.Fatalf("Validate() = %v, want a *tokens.FieldError for %q", err, tt.field)
			}
			if fe.Field != tt.field {
				t.Errorf("Validate() field = %q (%v), want %q", fe.Field, err, tt.field)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Validate() = %q, quotes the RTSP password", err)
			}
		})
	}
}

func TestKind(t *testing.T) {
	if got := testDevice().Kind(); got != tokens.KindDevice {
		t.Errorf("device Kind() = %q", got)
	}
	if got := testCamera().Kind(); got != tokens.KindCamera {
		t.Errorf("camera Kind() = %q", got)
	}
}

func TestPropertyPaths(t *testing.T) {
	d := testDevice()
	want := []string{"switch/on", "switch/level", "misc/temp", "misc/mode", "misc/color", "misc/label"}
	if got := d.PropertyPaths(); !slices.Equal(got, want) {
		t.Errorf("PropertyPaths() = %q, want %q", got, want)
	}
	for _, path := range want {
		p, ok := d.Property(path)
		if !ok || !strings.HasSuffix(path, "/"+p.ID) {
			t.Errorf("Property(%q) = %+v, %v", path, p, ok)
		}
	}
	for _, path := range []string{"", "switch", "switch/", "/on", "misc/on", "switch/on/x", "nope/on"} {
		if p, ok := d.Property(path); ok {
			t.Errorf("Property(%q) = %+v, want none", path, p)
		}
	}
}

func TestCheckValue(t *testing.T) {
	boolean := Property{ID: "on", Datatype: DatatypeBoolean}
	integer := Property{ID: "level", Datatype: DatatypeInteger, Format: "0:100"}
	stepped := Property{ID: "pos", Datatype: DatatypeInteger, Format: "10:50:5"}
	openInt := Property{ID: "count", Datatype: DatatypeInteger}
	float := Property{ID: "target", Datatype: DatatypeFloat, Format: "5:30:0.5"}
	decimal := Property{ID: "gain", Datatype: DatatypeFloat, Format: "::0.1"}
	upper := Property{ID: "power", Datatype: DatatypeFloat, Format: ":3680"}
	enum := Property{ID: "mode", Datatype: DatatypeEnum, Format: "off,heat,cool"}
	rgb := Property{ID: "color", Datatype: DatatypeColor}
	hsv := Property{ID: "color", Datatype: DatatypeColor, Format: ColorHSV}
	str := Property{ID: "label", Datatype: DatatypeString}

	tests := []struct {
		p    Property
		v    any
		want error // nil, ErrValueType or ErrValueRange
	}{
		{boolean, true, nil},
		{boolean, false, nil},
		{boolean, "true", ErrValueType},
		{boolean, 1.0, ErrValueType},
		{boolean, nil, ErrValueType},

		{integer, 0.0, nil},
		{integer, 100.0, nil},
		{integer, 42.0, nil},
		{integer, 42, nil},
		{integer, int64(42), nil},
		{integer, json.Number("42"), nil},
		{integer, json.Number("4x"), ErrValueType},
		{integer, 42.5, ErrValueType},
		{integer, "42", ErrValueType},
		{integer, true, ErrValueType},
		{integer, nil, ErrValueType},
		{integer, -1.0, ErrValueRange},
		{integer, 101.0, ErrValueRange},
		{stepped, 10.0, nil},
		{stepped, 35.0, nil},
		{stepped, 50.0, nil},
		{stepped, 12.0, ErrValueRange},
		{stepped, 55.0, ErrValueRange},
		{openInt, -1e15, nil},
		{openInt, 1e300, ErrValueRange},

		{float, 5.0, nil},
		{float, 21.5, nil},
		{float, 30.0, nil},
		{float, 21.25, ErrValueRange},
		{float, 4.5, ErrValueRange},
		{float, 30.5, ErrValueRange},
		{float, float32(21.5), nil},
		{float, "21.5", ErrValueType},
		{decimal, 0.3, nil},
		{decimal, -0.7, nil},
		{decimal, 0.35, ErrValueRange},
		{upper, -1e9, nil},
		{upper, 3680.0, nil},
		{upper, 3680.01, ErrValueRange},

		{enum, "heat", nil},
		{enum, "off", nil},
		{enum, "Heat", ErrValueRange},
		{enum, "", ErrValueRange},
		{enum, "off,heat", ErrValueRange},
		{enum, 1.0, ErrValueType},

		{rgb, "255,128,0", nil},
		{rgb, "0,0,0", nil},
		{rgb, "#ff8000", nil},
		{rgb, "#FF8000", nil},
		{rgb, "256,0,0", ErrValueRange},
		{rgb, "0,0,99999999999999999999", ErrValueRange},
		{rgb, "-1,0,0", ErrValueType},
		{rgb, "1,2", ErrValueType},
		{rgb, "1,2,3,4", ErrValueType},
		{rgb, "1, 2, 3", ErrValueType},
		{rgb, "1,,3", ErrValueType},
		{rgb, "#ff800", ErrValueType},
		{rgb, "#gg8000", ErrValueType},
		{rgb, "red", ErrValueType},
		{rgb, 255.0, ErrValueType},
		{hsv, "360,100,100", nil},
		{hsv, "120,50,0", nil},
		{hsv, "361,0,0", ErrValueRange},
		{hsv, "0,101,0", ErrValueRange},
		{hsv, "0,0,101", ErrValueRange},
		{hsv, "#ff8000", ErrValueType},

		{str, "", nil},
		{str, "hello", nil},
		{str, strings.Repeat("x", 256), nil},
		{str, strings.Repeat("x", 257), ErrValueRange},
		{str, "a\xffb", ErrValueType},
		{str, 1.0, ErrValueType},

		{Property{ID: "x", Datatype: "number"}, 1.0, ErrValueType},
		{Property{ID: "x", Datatype: DatatypeFloat, Format: "bad"}, 1.0, ErrValueRange},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %#v", tt.p.Datatype, tt.p.Format, tt.v), func(t *testing.T) {
			err := tt.p.CheckValue(tt.v)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckValue(%#v) = %v, want nil", tt.v, err)
				}
				return
			}
			var ve *ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("CheckValue(%#v) = %v, want a *ValueError", tt.v, err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("CheckValue(%#v) = %v, want it to wrap %v", tt.v, err, tt.want)
			}
			if ve.Code != CodeInvalidValue || ve.Property != tt.p.ID || ve.Reason == "" {
				t.Errorf("CheckValue(%#v) = %+v", tt.v, ve)
			}
		})
	}
}

// TestDecodedValues checks values as the WebSocket reader will hand them
// over: decoded by encoding/json into an any.
func TestDecodedValues(t *testing.T) {
	d := DemoDevices()[3] // thermostat
	target, _ := d.Property("thermostat/target")
	for msg, want := range map[string]bool{`21.5`: true, `21`: true, `2.15e1`: true, `21.3`: false, `"21.5"`: false, `null`: false} {
		var v any
		if err := json.Unmarshal([]byte(msg), &v); err != nil {
			t.Fatal(err)
		}
		if err := target.CheckValue(v); (err == nil) != want {
			t.Errorf("CheckValue(%s) = %v, want ok=%v", msg, err, want)
		}
	}
}

func TestFilter(t *testing.T) {
	d := testCamera()
	d.ID, d.Version = "0123456789abcdef0123456789abcdef", 3
	d.Nodes = testDevice().Nodes
	visible := map[string]bool{"switch/level": true, "misc/mode": true, "misc/label": true}
	got := d.Filter(func(path string) bool { return visible[path] })

	if got.RTSP != nil || got.Owner != "" {
		t.Errorf("Filter() kept RTSP %v or owner %q", got.RTSP, got.Owner)
	}
	if got.ID != d.ID || got.Name != d.Name || got.Type != d.Type || got.Version != d.Version {
		t.Errorf("Filter() = %+v, lost the description", got)
	}
	want := []string{"switch/level", "misc/mode", "misc/label"}
	if paths := got.PropertyPaths(); !slices.Equal(paths, want) {
		t.Errorf("Filter() paths = %q, want %q", paths, want)
	}
	data, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, hidden := range []string{`"on"`, `"temp"`, `"color"`, "s3cret", "admin-user", "rtsp", "owner-a"} {
		if bytes.Contains(data, []byte(hidden)) {
			t.Errorf("filtered JSON %s contains %s", data, hidden)
		}
	}

	// A deep copy: changing it leaves the original alone.
	got.Nodes[0].Properties[0].Name = "changed"
	if p, _ := d.Property("switch/level"); p.Name != "Level" {
		t.Errorf("Filter() shares properties with the original")
	}

	none := d.Filter(func(string) bool { return false })
	if len(none.Nodes) != 0 {
		t.Errorf("Filter(nothing) nodes = %+v, want none", none.Nodes)
	}
}

func TestRedacted(t *testing.T) {
	tests := []struct{ url, want string }{
		{"rtsp://admin-user:s3cret-pw@cam.local:554/stream1", "rtsp://xxxxx:xxxxx@cam.local:554/stream1"},
		{"rtsp://admin-user@cam.local/stream1", "rtsp://xxxxx@cam.local/stream1"},
		{"rtsp://cam.local/stream1", "rtsp://cam.local/stream1"},
		{"rtsp://admin-user:@cam.local/", "rtsp://xxxxx:xxxxx@cam.local/"},
		{"rtsp://:s3cret-pw@cam.local/", "rtsp://xxxxx:xxxxx@cam.local/"},
		{"rtsps://admin-user:s3cret%40pw@[::1]:322/live", "rtsps://xxxxx:xxxxx@[::1]:322/live"},
		{"rtsp://cam.local/live?channel=1&password=s3cret-pw&User=admin-user&subtype=0",
			"rtsp://cam.local/live?channel=1&password=xxxxx&User=xxxxx&subtype=0"},
		{"rtsp://cam.local/live?token=s3cret-pw", "rtsp://cam.local/live?token=xxxxx"},
		{"rtsp://cam.local/live?channel=1&passwd", "rtsp://cam.local/live?channel=1&xxxxx"},
		{"rtsp://cam.local/live#s3cret-pw", "rtsp://cam.local/live"},
		{"rtsp:admin-user:s3cret-pw@cam.local", "xxxxx"},
		{"admin-user:s3cret-pw@cam.local", "xxxxx"},
		{"rtsp://admin-user:s3cret-pw@cam.local:port/", "xxxxx"},
		{"rtsp://admin-user:s3c ret-pw@cam.local/", "xxxxx"},
		{"rtsp://admin-user:s3cret-pw@cam.local/\x00", "xxxxx"},
		{"", ""},
	}
	for _, tt := range tests {
		s := RTSPSource{URL: tt.url}
		got := s.Redacted()
		if got != tt.want {
			t.Errorf("Redacted(%q) = %q, want %q", tt.url, got, tt.want)
		}
		for _, secret := range []string{"s3cret", "admin-user"} {
			if strings.Contains(got, secret) {
				t.Errorf("Redacted(%q) = %q shows %q", tt.url, got, secret)
			}
		}
	}
}

// TestNoCredentialsPrinted prints and logs a camera every way a careless
// caller might and checks that the RTSP credentials never show.
func TestNoCredentialsPrinted(t *testing.T) {
	d := testCamera()
	d.ID = "0123456789abcdef0123456789abcdef"
	d.RTSP.URL = "rtsp://admin-user:s3cret-pw@cam.local:554/live?password=s3cret-pw"
	var outputs []string
	for _, v := range []any{d, *d, d.RTSP, *d.RTSP, []*Device{d}, map[string]RTSPSource{"x": *d.RTSP}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		outputs = append(outputs, fmt.Sprint(v), fmt.Sprintln(v))
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		log := slog.New(h)
		log.Info("device", "device", d, "rtsp", d.RTSP, "source", *d.RTSP)
		log.Info("value", "device", *d)
		log.With("device", d).Info("with")
	}
	outputs = append(outputs, buf.String())
	for _, out := range outputs {
		if strings.Contains(out, "s3cret") || strings.Contains(out, "admin-user") {
			t.Errorf("output shows credentials: %s", out)
		}
	}
	if !strings.Contains(buf.String(), "rtsp://xxxxx:xxxxx@cam.local:554/live?password=xxxxx") {
		t.Errorf("log lacks the redacted URL:\n%s", buf.String())
	}
}

func TestDemoDevices(t *testing.T) {
	devs := DemoDevices()
	wantTypes := []string{"plug", "light", "rgb-lamp", "thermostat", "garage-door", "lock", "sensor"}
	var types []string
	for _, d := range devs {
		types = append(types, d.Type)
		if err := d.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v", d.Name, err)
		}
		if d.ID != "" || d.Owner != "" || d.Version != 0 || d.Kind() != tokens.KindDevice {
			t.Errorf("%s: not a fresh description: %+v", d.Name, d)
		}
	}
	if !slices.Equal(types, wantTypes) {
		t.Errorf("types = %q, want %q", types, wantTypes)
	}
	settable := func(d *Device, path string) bool {
		p, ok := d.Property(path)
		if !ok {
			t.Errorf("%s: no property %s", d.Name, path)
		}
		return p.Settable
	}
	for path, want := range map[string]bool{"thermostat/target": true, "thermostat/temperature": false} {
		if got := settable(devs[3], path); got != want {
			t.Errorf("%s settable = %v, want %v", path, got, want)
		}
	}

	// Each call returns fresh values.
	devs[0].Nodes[0].Properties[0].Name = "changed"
	devs[0].Name = "changed"
	again := DemoDevices()
	if again[0].Name == "changed" || again[0].Nodes[0].Properties[0].Name == "changed" {
		t.Error("DemoDevices() shares values between calls")
	}
}

// FuzzValidate decodes a device as the owner API would and validates it.
// Validate must not panic, and a valid device must stay valid through a JSON
// round trip, resolve each of its paths and survive Filter.
func FuzzValidate(f *testing.F) {
	for _, d := range append(DemoDevices(), testDevice(), testCamera()) {
		data, err := json.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Device
		if json.Unmarshal(data, &d) != nil {
			return
		}
		if d.RTSP != nil {
			_ = d.RTSP.Redacted()
		}
		if err := d.Validate(); err != nil {
			if _, ok := tokens.AsFieldError(err); !ok {
				t.Fatalf("Validate() = %v, not a *tokens.FieldError", err)
			}
			return
		}
		for _, path := range d.PropertyPaths() {
			if _, ok := d.Property(path); !ok {
				t.Fatalf("Property(%q) not found", path)
			}
		}
		all := d.Filter(func(string) bool { return true })
		if !slices.Equal(all.PropertyPaths(), d.PropertyPaths()) {
			t.Fatalf("Filter(all) paths = %q, want %q", all.PropertyPaths(), d.PropertyPaths())
		}
		again, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		var d2 Device
		if err := json.Unmarshal(again, &d2); err != nil {
			t.Fatal(err)
		}
		if err := d2.Validate(); err != nil {
			t.Fatalf("valid device invalid after a JSON round trip: %v", err)
		}
	})
}

// FuzzCheckValue checks a JSON value against a property: CheckValue must
// not panic and must answer nil or a *ValueError with a known cause.
func FuzzCheckValue(f *testing.F) {
	seeds := []struct {
		datatype Datatype
		format   string
		value    string
	}{
		{DatatypeBoolean, "", "true"},
		{DatatypeInteger, "0:100", "42"},
		{DatatypeInteger, "10:50:5", "12"},
		{DatatypeFloat, "5:30:0.5", "21.5"},
		{DatatypeFloat, "::0.1", "0.30000000000000004"},
		{DatatypeEnum, "off,heat,cool", `"heat"`},
		{DatatypeColor, "", `"#ff8000"`},
		{DatatypeColor, "rgb", `"255,0,256"`},
		{DatatypeColor, "hsv", `"360,100,100"`},
		{DatatypeString, "", `"hello"`},
		{DatatypeFloat, "bad", "1"},
	}
	for _, s := range seeds {
		f.Add(string(s.datatype), s.format, []byte(s.value))
	}
	f.Fuzz(func(t *testing.T, datatype, format string, value []byte) {
		var v any
		if json.Unmarshal(value, &v) != nil {
			return
		}
		p := Property{ID: "p", Datatype: Datatype(datatype), Format: format}
		err := p.CheckValue(v)
		if err == nil {
			return
		}
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Code != CodeInvalidValue {
			t.Fatalf("CheckValue(%s) = %v, not a *ValueError", value, err)
		}
		if !errors.Is(err, ErrValueType) && !errors.Is(err, ErrValueRange) {
			t.Fatalf("CheckValue(%s) = %v, wraps neither cause", value, err)
		}
	})
}
