package emulator

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// demoDevice returns the demo device of type typ, with id typ.
func demoDevice(t testing.TB, typ string) *Device {
	t.Helper()
	for _, d := range DemoDevices() {
		if d.Type == typ {
			d.ID = typ
			return d
		}
	}
	t.Fatalf("no demo device of type %q", typ)
	return nil
}

func newState(d *Device) *simState {
	return newSimState(d, rand.New(rand.NewPCG(1, 2)), 5*time.Second, t0)
}

// set applies a command that must succeed.
func set(t testing.TB, st *simState, path, value string, now time.Time) {
	t.Helper()
	if err := st.command(Command{Property: path, Value: raw(value)}, now); err != nil {
		t.Fatalf("command %s = %s: %v", path, value, err)
	}
}

// taken returns the changes marked since the last take, by property.
func taken(st *simState) map[string]string {
	out := make(map[string]string)
	for _, c := range st.take(t0) {
		out[c.Property] = string(c.Value)
	}
	return out
}

func num(t testing.TB, st *simState, path string) float64 {
	t.Helper()
	f, ok := st.vals[path].(float64)
	if !ok {
		t.Fatalf("%s = %#v, not a number", path, st.vals[path])
	}
	return f
}

func TestSimDefaults(t *testing.T) {
	want := map[string]map[string]string{
		"plug":        {"switch/on": `false`, "meter/power": `0`, "meter/energy": `0`},
		"light":       {"light/on": `false`, "light/brightness": `100`},
		"rgb-lamp":    {"light/on": `false`, "light/color": `"255,255,255"`},
		"thermostat":  {"thermostat/mode": `"off"`, "thermostat/target": `21`, "thermostat/temperature": `21`},
		"garage-door": {"door/command": `"close"`, "door/state": `"closed"`},
		"lock":        {"lock/locked": `true`, "lock/battery": `80`},
		"sensor":      {"climate/temperature": `21`, "climate/humidity": `45`, "climate/co2": `600`},
	}
	for _, d := range DemoDevices() {
		st := newState(d)
		got := st.encode()
		if len(got) != len(d.PropertyPaths()) {
			t.Errorf("%s: state %s, want every property of %v", d.Type, got, d.PropertyPaths())
		}
		for path, v := range want[d.Type] {
			if string(got[path]) != v {
				t.Errorf("%s: %s = %s, want %s", d.Type, path, got[path], v)
			}
		}
		for path, v := range st.vals {
			p, _ := d.Property(path)
			if err := p.CheckValue(v); err != nil {
				t.Errorf("%s: default %s = %v: %v", d.Type, path, v, err)
			}
		}
	}
}

func TestSimPlug(t *testing.T) {
	st := newState(demoDevice(t, "plug"))
	now := t0
	set(t, st, "switch/on", `true`, now)
	// The echo comes at once; the power at the next tick.
	if got := taken(st); len(got) != 1 || got["switch/on"] != `true` {
		t.Fatalf("changes after switching on = %v, want only switch/on", got)
	}
	for range 3600 {
		now = now.Add(time.Second)
		st.tick(now)
		if p := num(t, st, "meter/power"); p < 39 || p > 61 {
			t.Fatalf("power = %v W while on, want 40-60 with noise", p)
		}
	}
	if got := taken(st); got["meter/power"] == "" || got["meter/energy"] == "" {
		t.Fatalf("changes after an hour on = %v, want power and energy", got)
	}
	if e := num(t, st, "meter/energy"); e < 0.039 || e > 0.061 {
		t.Fatalf("energy after an hour at 40-60 W = %v kWh", e)
	}

	// The same value again is echoed all the same.
	set(t, st, "switch/on", `true`, now)
	if got := taken(st); got["switch/on"] != `true` {
		t.Fatalf("changes after switching on again = %v, want the echo", got)
	}

	set(t, st, "switch/on", `false`, now)
	now = now.Add(time.Second)
	st.tick(now)
	if got := taken(st); got["switch/on"] != `false` || got["meter/power"] != `0` {
		t.Fatalf("changes after switching off = %v, want switch/on false, power 0", got)
	}
	energy := num(t, st, "meter/energy")
	for range 100 {
		now = now.Add(time.Second)
		st.tick(now)
	}
	if got := taken(st); len(got) != 0 || num(t, st, "meter/energy") != energy {
		t.Fatalf("changes while off = %v, energy %v → %v; want none", got, energy, num(t, st, "meter/energy"))
	}
}

// TestSimPlugReportsOverHalfWatt checks that small noise is not published.
func TestSimPlugReportsOverHalfWatt(t *testing.T) {
	st := newState(demoDevice(t, "plug"))
	set(t, st, "switch/on", `true`, t0)
	now := t0
	last := 0.0
	for range 1000 {
		now = now.Add(time.Second)
		st.tick(now)
		for _, c := range st.take(now) {
			if c.Property != "meter/power" {
				continue
			}
			p, _ := strconv.ParseFloat(string(c.Value), 64)
			if d := p - last; d > -0.5 && d < 0.5 {
				t.Fatalf("published %v W after %v W", p, last)
			}
			last = p
		}
	}
}

func TestSimThermostat(t *testing.T) {
	st := newState(demoDevice(t, "thermostat"))
	now := t0
	temp := func() float64 { return num(t, st, "thermostat/temperature") }
	// run ticks n times and checks that the temperature moves monotonically
	// toward goal by at most 0.3 °C a tick, and ends there.
	run := func(what string, n int, goal float64) {
		t.Helper()
		for range n {
			before := temp()
			now = now.Add(time.Second)
			st.tick(now)
			after := temp()
			step := after - before
			if goal < before {
				step = -step
			}
			if step < -1e-9 || step > 0.31 {
				t.Fatalf("%s: %v → %v °C, want a step toward %v", what, before, after, goal)
			}
		}
		if temp() != goal {
			t.Fatalf("%s: temperature %v after %d ticks, want %v", what, temp(), n, goal)
		}
	}

	set(t, st, "thermostat/mode", `"heat"`, now)
	set(t, st, "thermostat/target", `24.5`, now)
	if got := taken(st); got["thermostat/mode"] != `"heat"` || got["thermostat/target"] != `24.5` {
		t.Fatalf("changes = %v, want the echoes", got)
	}
	run("heating 21 → 24.5", 40, 24.5)
	if got := taken(st); got["thermostat/temperature"] != `24.5` {
		t.Fatalf("changes = %v, want the temperature published", got)
	}
	run("holding 24.5", 10, 24.5)

	// Heat only warms: above its target, the room cools to the target.
	set(t, st, "thermostat/target", `22`, now)
	run("heat above target", 60, 22)

	// Cool only cools: down to its target, and below, the room drifts to
	// ambient, never up.
	set(t, st, "thermostat/mode", `"cool"`, now)
	set(t, st, "thermostat/target", `19`, now)
	run("cooling 22 → 19 → ambient", 100, ambient)
	set(t, st, "thermostat/target", `25`, now)
	run("cool below target", 20, ambient)

	set(t, st, "thermostat/mode", `"auto"`, now)
	run("auto 18 → 25", 100, 25)
	set(t, st, "thermostat/target", `20`, now)
	run("auto 25 → 20", 100, 20)

	set(t, st, "thermostat/mode", `"off"`, now)
	run("off, toward ambient", 200, ambient)
}

func TestSimGarageDoor(t *testing.T) {
	st := newState(demoDevice(t, "garage-door"))
	state := func() string { return st.str("door/state") }
	alarm := func(want time.Duration) {
		t.Helper()
		if d, ok := st.takeAlarm(); !ok || d != want {
			t.Fatalf("alarm = %v, %v; want %v", d, ok, want)
		}
	}
	noAlarm := func() {
		t.Helper()
		if d, ok := st.takeAlarm(); ok {
			t.Fatalf("alarm set to %v, want none", d)
		}
	}

	set(t, st, "door/command", `"open"`, t0)
	if got := taken(st); got["door/command"] != `"open"` || got["door/state"] != `"opening"` {
		t.Fatalf("changes = %v, want command echoed and state opening", got)
	}
	alarm(5 * time.Second)
	st.alarm(t0.Add(5 * time.Second))
	if got := taken(st); got["door/state"] != `"open"` {
		t.Fatalf("changes at the alarm = %v, want open", got)
	}

	// Toward where it is: nothing moves, the state is published again.
	set(t, st, "door/command", `"open"`, t0.Add(6*time.Second))
	if got := taken(st); got["door/state"] != `"open"` || got["door/command"] != `"open"` {
		t.Fatalf("changes = %v, want open published again", got)
	}
	noAlarm()

	// Closing, reversed after 2 s: back open 2 s later.
	set(t, st, "door/command", `"close"`, t0.Add(10*time.Second))
	alarm(5 * time.Second)
	set(t, st, "door/command", `"close"`, t0.Add(11*time.Second)) // the way it goes already
	noAlarm()
	if state() != "closing" {
		t.Fatalf("state = %s, want closing", state())
	}
	set(t, st, "door/command", `"open"`, t0.Add(12*time.Second))
	if got := taken(st); got["door/state"] != `"opening"` {
		t.Fatalf("changes = %v, want opening", got)
	}
	alarm(2 * time.Second)
	st.alarm(t0.Add(14 * time.Second))
	if state() != "open" {
		t.Fatalf("state = %s, want open", state())
	}
	// A stale alarm changes nothing.
	st.alarm(t0.Add(15 * time.Second))
	if got := taken(st); got["door/state"] != `"open"` || len(got) != 1 {
		t.Fatalf("changes = %v", got)
	}
}

func TestSimLock(t *testing.T) {
	st := newState(demoDevice(t, "lock"))
	set(t, st, "lock/locked", `false`, t0)
	if got := taken(st); len(got) != 1 || got["lock/locked"] != `false` {
		t.Fatalf("changes = %v, want the echo", got)
	}
	st.tick(t0.Add(9 * time.Minute))
	if got := taken(st); len(got) != 0 {
		t.Fatalf("changes after 9 minutes = %v, want none", got)
	}
	st.tick(t0.Add(10 * time.Minute))
	if got := taken(st); got["lock/battery"] != `79` {
		t.Fatalf("changes after 10 minutes = %v, want battery 79", got)
	}
	st.tick(t0.Add(35 * time.Minute)) // 2.5 percents more
	if got := num(t, st, "lock/battery"); got != 77 {
		t.Fatalf("battery after 35 minutes = %v, want 77", got)
	}
	st.tick(t0.Add(35*time.Minute + 72*batteryPercentEvery)) // down to 5: replaced
	if got := num(t, st, "lock/battery"); got != 100 {
		t.Fatalf("battery = %v, want replaced (100)", got)
	}
}

func TestSimSensor(t *testing.T) {
	d := demoDevice(t, "sensor")
	st := newState(d)
	now := t0
	changed := make(map[string]int)
	for range 10000 {
		now = now.Add(time.Second)
		st.tick(now)
		for _, c := range st.take(now) {
			changed[c.Property]++
			p, _ := d.Property(c.Property)
			var v any
			if err := json.Unmarshal(c.Value, &v); err != nil || p.CheckValue(v) != nil {
				t.Fatalf("published %s = %s", c.Property, c.Value)
			}
		}
	}
	for path, r := range map[string][2]float64{
		"climate/temperature": {16, 28}, "climate/humidity": {20, 80}, "climate/co2": {400, 2000},
	} {
		if v := num(t, st, path); v < r[0] || v > r[1] || changed[path] < 100 {
			t.Errorf("%s = %v after %d changes, want a walk within %v", path, v, changed[path], r)
		}
	}
}

func TestSimGenericAndInvalid(t *testing.T) {
	d := &Device{ID: "fan", Type: "fan", Nodes: []Node{{ID: "fan", Properties: []Property{
		{ID: "speed", Datatype: DatatypeInteger, Format: "1:3", Settable: true},
		{ID: "mode", Datatype: DatatypeEnum, Format: "eco,boost", Settable: true},
		{ID: "rpm", Datatype: DatatypeInteger},
	}}}}
	st := newState(d)
	if got := st.encode(); string(got["fan/speed"]) != `1` || string(got["fan/mode"]) != `"eco"` || string(got["fan/rpm"]) != `0` {
		t.Fatalf("defaults = %s", got)
	}
	set(t, st, "fan/speed", `3`, t0)
	set(t, st, "fan/mode", `"boost"`, t0)
	if got := taken(st); got["fan/speed"] != `3` || got["fan/mode"] != `"boost"` {
		t.Fatalf("changes = %v, want the echoes", got)
	}
	for _, cmd := range []Command{
		{Property: "fan/rpm", Value: raw(`100`)},    // read-only
		{Property: "fan/nope", Value: raw(`1`)},     // unknown
		{Property: "fan/speed", Value: raw(`4`)},    // out of range
		{Property: "fan/speed", Value: raw(`1.5`)},  // not whole
		{Property: "fan/speed", Value: raw(`"2"`)},  // wrong type
		{Property: "fan/mode", Value: raw(`"max"`)}, // not in the enum
		{Property: "fan/mode", Value: raw(`{`)},     // not JSON
	} {
		if err := st.command(cmd, t0); err == nil {
			t.Errorf("command %s = %s applied", cmd.Property, cmd.Value)
		}
	}
	st.tick(t0.Add(time.Hour))
	if got := taken(st); len(got) != 0 || num(t, st, "fan/speed") != 3 {
		t.Fatalf("after refused commands and a tick: changes %v, speed %v", got, st.vals["fan/speed"])
	}
}

func TestSimResume(t *testing.T) {
	st := newState(demoDevice(t, "garage-door"))
	st.resume(map[string]json.RawMessage{"door/state": raw(`"opening"`), "door/command": raw(`"open"`)}, t0)
	if st.str("door/state") != "open" || len(st.take(t0)) != 0 {
		t.Fatalf("door resumed %v, want open, nothing to publish", st.vals)
	}

	st = newState(demoDevice(t, "plug"))
	st.resume(map[string]json.RawMessage{
		"switch/on":    raw(`true`),
		"meter/power":  raw(`"lots"`), // the wrong type: the default stays
		"meter/energy": raw(`1.5`),
		"gone/prop":    raw(`1`),
	}, t0)
	if got := st.encode(); string(got["switch/on"]) != `true` || string(got["meter/power"]) != `0` ||
		string(got["meter/energy"]) != `1.5` || len(got) != 3 {
		t.Fatalf("plug resumed %s", got)
	}
	st.tick(t0.Add(time.Second))
	if p := num(t, st, "meter/power"); p < 39 {
		t.Fatalf("power %v after resuming on", p)
	}
}

// runSim runs a Sim of d until the test ends.
func runSim(t testing.TB, b *Bus, d *Device, opts SimOptions) (*Sim, context.CancelFunc) {
	t.Helper()
	s := NewSim(d, b, opts)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Sim.Run(%s) = %v", d.ID, err)
		}
	})
	return s, stop
}

var fastSim = SimOptions{Tick: 20 * time.Millisecond, DoorTransit: 100 * time.Millisecond}

// TestSimOnBus runs every demo device on a real bus.
func TestSimOnBus(t *testing.T) {
	b, _ := newBus(t)
	ctx := t.Context()
	w := b.Watch(ctx)
	defer w.Close()
	sims := make(map[string]*Sim)
	stops := make(map[string]context.CancelFunc)
	for _, d := range DemoDevices() {
		d.ID = d.Type
		if err := w.Add(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
		sims[d.ID], stops[d.ID] = runSim(t, b, d, fastSim)
	}
	for _, d := range DemoDevices() {
		waitOnline(t, b, d.Type, true)
		state, _, err := b.Snapshot(ctx, d.Type)
		if err != nil || len(state) != len(d.PropertyPaths()) {
			t.Fatalf("Snapshot(%s) = %s, %v; want every property", d.Type, state, err)
		}
	}
	send := func(device, prop, value string) {
		t.Helper()
		if err := b.Send(ctx, device, Command{ID: "c", Property: prop, Value: raw(value)}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("plug", func(t *testing.T) {
		send("plug", "switch/on", `true`)
		nextChange(t, w, "switch/on echo", changeOf("plug", "switch/on", `true`))
		c := nextChange(t, w, "power", changeOf("plug", "meter/power", ""))
		if p, _ := strconv.ParseFloat(string(c.Value), 64); p < 39 {
			t.Fatalf("power %s W after switching on", c.Value)
		}
		send("plug", "switch/on", `false`)
		nextChange(t, w, "switch/on echo", changeOf("plug", "switch/on", `false`))
		nextChange(t, w, "no power", changeOf("plug", "meter/power", `0`))
	})

	t.Run("thermostat", func(t *testing.T) {
		send("thermostat", "thermostat/target", `30`)
		send("thermostat", "thermostat/mode", `"heat"`)
		nextChange(t, w, "mode echo", changeOf("thermostat", "thermostat/mode", `"heat"`))
		last := 0.0
		for range 3 {
			c := nextChange(t, w, "temperature", changeOf("thermostat", "thermostat/temperature", ""))
			v, _ := strconv.ParseFloat(string(c.Value), 64)
			if v <= last {
				t.Fatalf("temperature %v after %v while heating", v, last)
			}
			last = v
		}
	})

	t.Run("garage-door", func(t *testing.T) {
		send("garage-door", "door/command", `"open"`)
		nextChange(t, w, "opening", changeOf("garage-door", "door/state", `"opening"`))
		nextChange(t, w, "open", changeOf("garage-door", "door/state", `"open"`))
		send("garage-door", "door/command", `"close"`)
		nextChange(t, w, "closing", changeOf("garage-door", "door/state", `"closing"`))
		send("garage-door", "door/command", `"open"`)
		// Reversed before it closed: opening, then open, never closed.
		c := nextChange(t, w, "reversal", func(c Change) bool { return c.Device == "garage-door" && c.Property == "door/state" })
		if string(c.Value) != `"opening"` {
			t.Fatalf("door/state = %s after the reversal, want opening", c.Value)
		}
		c = nextChange(t, w, "open", func(c Change) bool { return c.Device == "garage-door" && c.Property == "door/state" })
		if string(c.Value) != `"open"` {
			t.Fatalf("door/state = %s, want open", c.Value)
		}
	})

	t.Run("lock", func(t *testing.T) {
		send("lock", "lock/locked", `false`)
		nextChange(t, w, "unlocked", changeOf("lock", "lock/locked", `false`))
	})

	t.Run("light", func(t *testing.T) {
		send("light", "light/brightness", `40`)
		nextChange(t, w, "brightness", changeOf("light", "light/brightness", `40`))
		send("rgb-lamp", "light/color", `"255,0,0"`)
		nextChange(t, w, "color", changeOf("rgb-lamp", "light/color", `"255,0,0"`))
	})

	t.Run("invalid", func(t *testing.T) {
		before := sims["lock"].Stats()
		send("lock", "lock/battery", `100`) // read-only
		send("lock", "lock/locked", `"yes"`)
		send("lock", "lock/locked", `true`) // then a good one
		nextChange(t, w, "locked", changeOf("lock", "lock/locked", `true`))
		after := sims["lock"].Stats()
		if after.Invalid-before.Invalid != 2 || after.Applied-before.Applied != 1 {
			t.Fatalf("stats %+v → %+v, want 2 invalid, 1 applied", before, after)
		}
	})

	t.Run("restart resumes", func(t *testing.T) {
		send("light", "light/on", `true`)
		nextChange(t, w, "light on", changeOf("light", "light/on", `true`))
		stops["light"]()
		nextChange(t, w, "light disconnected", changeOf("light", PropertyState, `"disconnected"`))
		runSim(t, b, demoDevice(t, "light"), fastSim)
		nextChange(t, w, "light ready", changeOf("light", PropertyState, `"ready"`))
		state, online, err := b.Snapshot(ctx, "light")
		if err != nil || !online || string(state["light/on"]) != `true` || string(state["light/brightness"]) != `40` {
			t.Fatalf("Snapshot after restart = %s, %v, %v; want the light as it was", state, online, err)
		}
	})
}
