package emulator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/tokens"
)

func testSession(t testing.TB) *Session {
	t.Helper()
	d := DemoDevices()[3] // thermostat: enum, ranged float with a step, read-only float
	d.ID = "dev"
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	perms := tokens.Permissions{Control: []string{"thermostat/mode", "thermostat/target"}}
	return NewSession("s1", perms, d, SessionLimits{Commands: 1000, Burst: 1000})
}

func TestSessionCommand(t *testing.T) {
	s := testSession(t)
	now := time.Now()
	for _, tc := range []struct {
		frame, id, code string
	}{
		{`{"type":"set","id":"a","property":"thermostat/mode","value":"heat"}`, "a", ""},
		{`{"type":"set","id":"b","property":"thermostat/target","value":21.5}`, "b", ""},
		{`{"type":"set","id":"c","property":"thermostat/target","value":99}`, "c", "invalid-value"},
		{`{"type":"set","id":"d","property":"thermostat/target","value":20.3}`, "d", "invalid-value"},
		{`{"type":"set","id":"e","property":"thermostat/mode","value":"boil"}`, "e", "invalid-value"},
		{`{"type":"set","id":"f","property":"thermostat/mode","value":true}`, "f", "invalid-value"},
		{`{"type":"set","id":"g","property":"thermostat/temperature","value":20}`, "g", "forbidden"},
		{`{"type":"set","id":"h","property":"nope/nope","value":1}`, "h", "unknown-property"},
		{`{"type":"set","id":"i","property":"thermostat/mode"}`, "i", "invalid-value"},
		{`{"type":"set","id":"j","property":"thermostat/mode","value":"heat","x":1}`, "j", "invalid-message"},
		{`{"type":"get","id":"k"}`, "k", "invalid-message"},
		{`not json`, "", "invalid-message"},
		{`{"type":"set","id":"` + strings.Repeat("x", MaxCommandID+1) + `","property":"thermostat/mode","value":"heat"}`, "", "invalid-message"},
	} {
		cmd, id, err := s.Command([]byte(tc.frame), now)
		code := ""
		if err != nil {
			code = err.Code
		}
		if code != tc.code || id != tc.id {
			t.Errorf("%s: id %q code %q, want id %q code %q", tc.frame, id, code, tc.id, tc.code)
		}
		if err == nil && (cmd.Session != "s1" || cmd.Property == "") {
			t.Errorf("%s: command %+v", tc.frame, cmd)
		}
	}
}

func TestSessionRateLimit(t *testing.T) {
	d := DemoDevices()[0]
	s := NewSession("s", tokens.Permissions{Control: []string{"switch/on"}}, d, SessionLimits{Commands: 1, Burst: 3})
	now := time.Now()
	frame := []byte(`{"type":"set","id":"x","property":"switch/on","value":true}`)
	limited := 0
	for range 10 {
		if _, _, err := s.Command(frame, now); err == ErrRateLimited {
			limited++
		}
	}
	if limited != 7 {
		t.Errorf("%d of 10 limited, want 7", limited)
	}
	if _, _, err := s.Command(frame, now.Add(2*time.Second)); err != nil {
		t.Errorf("after the bucket refilled: %v", err)
	}
}

// TestSessionFilter: what a link may not see never leaves a session, in the
// hello, in state changes or after a permission change.
func TestSessionFilter(t *testing.T) {
	d := DemoDevices()[0] // plug
	s := NewSession("s", tokens.Permissions{Control: []string{"switch/on"}, View: []string{"meter/power"}}, d, SessionLimits{})
	state := map[string]json.RawMessage{"switch/on": []byte("true"), "meter/power": []byte("50"), "meter/energy": []byte("1.25")}
	hello := string(s.Hello(map[string]any{"name": "x"}, state, true))
	if strings.Contains(hello, "energy") || !strings.Contains(hello, "meter/power") {
		t.Errorf("hello: %s", hello)
	}
	if b := s.StateMessage(Change{Property: "meter/energy", Value: []byte("2")}); b != nil {
		t.Errorf("energy change sent: %s", b)
	}
	if b := s.StateMessage(Change{Property: "meter/power", Value: []byte("51")}); b == nil {
		t.Error("power change not sent")
	}
	upd := string(s.Update(nil, tokens.Permissions{View: []string{"meter/energy"}}, d, state))
	if !strings.Contains(upd, "1.25") || strings.Contains(upd, `"meter/power"`) {
		t.Errorf("permissions message: %s", upd)
	}
	if b := s.StateMessage(Change{Property: "meter/power", Value: []byte("52")}); b != nil {
		t.Errorf("power change sent after it was hidden: %s", b)
	}
}

// FuzzSessionCommand: no frame from a page crashes the session, and no
// refused or malformed frame yields a command.
func FuzzSessionCommand(f *testing.F) {
	for _, seed := range []string{
		`{"type":"set","id":"a","property":"thermostat/mode","value":"heat"}`,
		`{"type":"set","id":"b","property":"thermostat/target","value":1e308}`,
		`{"type":"set","id":"c","property":"thermostat/target","value":-0}`,
		`{"type":"set","id":"d","property":"thermostat/mode","value":{"a":[1,2]}}`,
		`{"type":"set","id":"e","property":"../../etc","value":null}`,
		`{"type":"set","id":"f","property":"thermostat/target","value":"21"}`,
		`[]`, `null`, `"set"`, `{"type":"set","value":` + strings.Repeat("[", 1000),
	} {
		f.Add([]byte(seed))
	}
	s := testSession(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		cmd, _, err := s.Command(frame, time.Now())
		if err != nil {
			return
		}
		p, ok := s.device.Property(cmd.Property)
		if !ok || !p.Settable || !s.perms.CanControl(cmd.Property) {
			t.Fatalf("accepted a command for %q", cmd.Property)
		}
		var v any
		if json.Unmarshal(cmd.Value, &v) != nil || p.CheckValue(v) != nil {
			t.Fatalf("accepted an invalid value %s for %s", cmd.Value, cmd.Property)
		}
	})
}

// TestStateMessageShared: the sessions a change is dispatched to send the
// same bytes, encoded once; a session that may not see the property sends
// nothing, and a change made outside the hub is encoded on its own.
func TestStateMessageShared(t *testing.T) {
	d := DemoDevices()[0] // plug
	viewer := func() *Session {
		return NewSession("s", tokens.Permissions{View: []string{"meter/power"}}, d, SessionLimits{})
	}
	a, b := viewer(), viewer()
	blind := NewSession("s", tokens.Permissions{View: []string{"meter/energy"}}, d, SessionLimits{})
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.FixedZone("x", 3600))
	c := Change{Device: d.ID, Property: "meter/power", Value: []byte("51"), TS: ts, msg: &sharedMessage{}}

	if m := blind.StateMessage(c); m != nil {
		t.Errorf("a session that may not see the property sent %s", m)
	}
	ma, mb := a.StateMessage(c), b.StateMessage(c)
	want := `{"type":"state","property":"meter/power","value":51,"ts":"2026-11-22T09:00:00Z"}`
	if string(ma) != want {
		t.Errorf("message %s, want %s", ma, want)
	}
	if len(ma) == 0 || &ma[0] != &mb[0] {
		t.Error("two sessions encoded the same change twice")
	}
	c.msg = nil
	if m := a.StateMessage(c); string(m) != want || &m[0] == &ma[0] {
		t.Errorf("a change without a shared message: %s (shared: %v)", m, len(m) > 0 && &m[0] == &ma[0])
	}
}
