package loadtest

import (
	"encoding/json"
	"testing"
	"time"
)

// total returns what a recorder's sinks hold, for the tests.
func total(r *Recorder) (map[string]Summary, map[string]int64) {
	all := r.total()
	return all.summaries(false), all.counts
}

func TestSocketSessionAcksAndEchoes(t *testing.T) {
	rec := newRecorder(1, time.Now())
	ss := newSocketSession(rec.Sink(0), "light/brightness", true)
	due := time.Now()
	ss.sent("c0", []byte("37"), due)
	ss.sent("c1", []byte("38"), due.Add(10*time.Millisecond))

	ss.handle([]byte(`{"type":"ack","id":"c0","ok":true}`), due.Add(2*time.Millisecond))
	ss.handle([]byte(`{"type":"ack","id":"c1","ok":false,"error":{"code":"rate-limited","message":"slow down"}}`), due.Add(13*time.Millisecond))
	ss.handle([]byte(`{"type":"ack","id":"c9","ok":true}`), due)
	// The device's echo: 37.0 is 37; another property's 38 is not an echo.
	ss.handle([]byte(`{"type":"state","property":"light/on","value":38,"ts":"`+due.UTC().Format(time.RFC3339Nano)+`"}`), due.Add(4*time.Millisecond))
	ss.handle([]byte(`{"type":"state","property":"light/brightness","value":37.0,"ts":"`+due.Add(time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`), due.Add(5*time.Millisecond))
	ss.handle([]byte(`{"type":"online"}`), due)
	ss.handle([]byte(`not json`), due)
	ss.finish()

	m, c := total(rec)
	if got := m["command"]; got.Count != 2 || got.Min < 1.9 || got.Min > 2.1 || got.Max < 2.9 || got.Max > 3.1 {
		t.Errorf("command: %+v, want 2 samples, 2 ms and 3 ms from their due times", got)
	}
	if got := m["echo"]; got.Count != 1 || got.Max < 4.9 || got.Max > 5.1 {
		t.Errorf("echo: %+v, want one of 5 ms", got)
	}
	if got := m["delivery"]; got.Count != 2 || got.Max < 3.9 || got.Max > 4.1 {
		t.Errorf("delivery: %+v, want 2 samples, at most 4 ms (arrival minus ts)", got)
	}
	want := map[string]int64{
		"ack ok": 1, "ack rate-limited": 1, "ack unknown-id": 1, "message state": 2,
		"message online": 1, "error bad-message": 1,
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("count %q = %d, want %d (all: %v)", k, c[k], v, c)
		}
	}
	if c["command unanswered"] != 0 {
		t.Errorf("unanswered: %d", c["command unanswered"])
	}
}

func TestSocketSessionUnansweredAndClose(t *testing.T) {
	rec := newRecorder(1, time.Now())
	ss := newSocketSession(rec.Sink(0), "switch/on", false)
	l := &socketLink{}
	ss.link = l
	now := time.Now()
	ss.sent("c0", []byte("true"), now)
	ss.sent("c1", []byte("false"), now)
	ss.unsend("c1")
	l.disableStart.Store(now.Add(-7 * time.Millisecond).UnixNano())
	ss.handle([]byte(`{"type":"closing","reason":"disabled","code":4001}`), now)
	if !ss.closing() {
		t.Error("closing not seen")
	}
	ss.closedBy(4001, "disabled", now)
	ss.finish()
	m, c := total(rec)
	if c["close 4001 disabled"] != 1 || c["command unanswered"] != 1 {
		t.Errorf("counts %v: want one close 4001 disabled and one unanswered command", c)
	}
	if r := m["revoke"]; r.Count != 1 || r.Max < 6.9 || r.Max > 7.1 {
		t.Errorf("revoke: %+v, want one of 7 ms", r)
	}
	if _, ok := m["echo"]; ok {
		t.Error("echo measured on a shared device")
	}
}

func TestSocketValues(t *testing.T) {
	cases := []struct {
		p    socketProperty
		want []string // values for k = 0, 1, 2...
	}{
		{socketProperty{datatype: "boolean"}, []string{"true", "false", "true"}},
		{socketProperty{datatype: "integer", format: "0:2"}, []string{"0", "1", "2", "0"}},
		{socketProperty{datatype: "float", format: "5:6:0.5"}, []string{"5", "5.5", "6", "5"}},
		{socketProperty{datatype: "enum", format: "off,heat"}, []string{`"off"`, `"heat"`, `"off"`}},
		{socketProperty{datatype: "color", format: "rgb"}, []string{`"0,0,0"`, `"0,0,1"`}},
		{socketProperty{datatype: "string"}, []string{`"v0"`, `"v1"`}},
	}
	for _, c := range cases {
		g := newSocketValues(c.p)
		for k, want := range c.want {
			got := string(g.value(k))
			if got != want {
				t.Errorf("%+v value(%d) = %s, want %s", c.p, k, got, want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("%s is not JSON", got)
			}
		}
	}
}

func TestPickSocketProperty(t *testing.T) {
	nodes := json.RawMessage(deviceNodes["thermostat"])
	p, err := pickSocketProperty(nodes, "", nil)
	if err != nil || p.path != "thermostat/mode" || p.datatype != "enum" {
		t.Errorf("first settable: %+v, %v", p, err)
	}
	if p, err = pickSocketProperty(nodes, "", []string{"thermostat/target"}); err != nil || p.path != "thermostat/target" {
		t.Errorf("first the link controls: %+v, %v", p, err)
	}
	if _, err = pickSocketProperty(nodes, "thermostat/temperature", nil); err == nil {
		t.Error("a read-only property was picked")
	}
	if _, err = pickSocketProperty(nodes, "", []string{}); err == nil {
		t.Error("a link controlling nothing gave a property")
	}
	for typ, prop := range defaultProperty {
		if _, err := pickSocketProperty(json.RawMessage(deviceNodes[typ]), prop, nil); err != nil {
			t.Errorf("%s: default property %s: %v", typ, prop, err)
		}
	}
}

func TestSocketsConfig(t *testing.T) {
	bad := []SocketsConfig{
		{},
		{APIKey: "k", Links: []string{"http://127.0.0.1/l/x"}},
		{Links: []string{"http://127.0.0.1/l/x"}, Revoke: true},
		{APIKey: "k", Rate: -1},
		{APIKey: "k", DeviceType: "toaster"},
	}
	for _, c := range bad {
		if _, err := NewSockets(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	s, err := NewSockets(SocketsConfig{APIKey: "k"})
	if err != nil || s.cfg.LinkCount != 1 || s.cfg.Devices != 1 || s.cfg.DeviceType != "light" || s.Name() != "ws" {
		t.Errorf("defaults: %+v, %v", s.cfg, err)
	}
}
