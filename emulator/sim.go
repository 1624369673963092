package emulator

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"
)

// SimOptions tune simulated devices. The zero value is ready to use.
type SimOptions struct {
	// Tick is how often a device updates what it measures (power,
	// temperature, ...). It defaults to 1 s.
	Tick time.Duration
	// DoorTransit is how long a garage door takes to open or close. It
	// defaults to 5 s.
	DoorTransit time.Duration
	// Now returns the time of changes and of what a device integrates over
	// time (energy, battery). It defaults to time.Now. Tick and DoorTransit
	// run on the real clock all the same.
	Now func() time.Time
	// Rand drives noise and random walks. It defaults to a randomly seeded
	// source. A Sim uses it from its goroutine only: running Sims must not
	// share one (a Fleet derives one per Sim from it).
	Rand *rand.Rand
	// Logger receives the Sim's rare events (publishing failing and
	// recovering). It defaults to slog.Default().
	Logger *slog.Logger
}

const (
	defaultTick        = time.Second
	defaultDoorTransit = 5 * time.Second
	// simQueue is how many commands wait for a Sim's goroutine; more are
	// dropped.
	simQueue = 64
)

// withDefaults returns the options with their defaults filled in.
func (o SimOptions) withDefaults() SimOptions {
	if o.Tick <= 0 {
		o.Tick = defaultTick
	}
	if o.DoorTransit <= 0 {
		o.DoorTransit = defaultDoorTransit
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = newRand()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// newRand returns a randomly seeded source.
func newRand() *rand.Rand {
	var seed [16]byte
	_, _ = crand.Read(seed[:]) // crypto/rand.Read never fails
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
}

// SimStats counts a Sim's commands and failures.
type SimStats struct {
	Applied uint64 // commands applied
	// Invalid: commands refused, for an unknown or read-only property or a
	// value the property does not allow.
	Invalid uint64
	// Dropped: commands that found the Sim's queue full.
	Dropped uint64
	// PublishErrors: failed publications of changes; they are retried.
	PublishErrors uint64
}

// simCounters are SimStats as they are counted; a Fleet shares one among
// its Sims.
type simCounters struct {
	applied, invalid, dropped, publishErrors atomic.Uint64
}

func (c *simCounters) stats() SimStats {
	return SimStats{
		Applied:       c.applied.Load(),
		Invalid:       c.invalid.Load(),
		Dropped:       c.dropped.Load(),
		PublishErrors: c.publishErrors.Load(),
	}
}

// Sim is a simulated device on the bus. It starts from sensible defaults
// for every property (off, 0 W, 21 °C, closed, locked, 80 % battery, ...),
// or from the values its device had on the bus, so that a restart does not
// switch a plug off; it then takes commands, echoing each at once, and
// behaves by its device's type:
//
//   - plug: switch/on as sent; meter/power 0 W when off and 40-60 W with
//     noise when on, published when it moved by more than 0.5 W;
//     meter/energy integrates the power (kWh).
//   - light, rgb-lamp: every settable property as sent.
//   - thermostat: thermostat/temperature moves toward thermostat/target by
//     0.1-0.3 °C a tick when thermostat/mode calls for it (heat only warms,
//     cool only cools, auto both), and drifts toward 18 °C otherwise.
//   - garage-door: door/command "open" turns door/state to opening and,
//     after DoorTransit, open ("close": closing, closed). The opposite
//     command during transit reverses the door, which takes as long to
//     come back as it travelled; a command toward where the door already
//     is or goes changes nothing but publishes door/state again.
//   - lock: lock/locked as sent; lock/battery loses 1 % every 10 minutes,
//     and is replaced (100 %) when it reaches 5 %.
//   - sensor: climate/temperature, climate/humidity and climate/co2 walk at
//     random around 21 °C, 45 % and 600 ppm.
//   - any other type: every settable property as sent.
//
// A behaviour needs its properties with fitting datatypes; without them
// the device acts as any other type. Every command is checked with
// Property.CheckValue first; one that fails, or names an unknown or
// read-only property, is dropped and counted.
type Sim struct {
	dev      *Device
	bus      *Bus
	opts     SimOptions
	log      *slog.Logger
	counters *simCounters
	started  atomic.Bool

	cmds  chan Command  // from Serve's goroutine to loop; bounded
	ready chan struct{} // closed when the device is online

	// st is the device's state. Serve's initial hook sets it up before
	// the device goes online, and loop owns it from then on.
	st      *simState
	failing bool // publishing fails; owned by loop
}

// NewSim returns a simulated d on bus; Run runs it. d must have an id and
// must not change while the Sim runs.
func NewSim(d *Device, bus *Bus, opts SimOptions) *Sim {
	return newSim(d, bus, opts, new(simCounters))
}

func newSim(d *Device, bus *Bus, opts SimOptions, counters *simCounters) *Sim {
	opts = opts.withDefaults()
	return &Sim{
		dev:      d,
		bus:      bus,
		opts:     opts,
		log:      opts.Logger,
		counters: counters,
		cmds:     make(chan Command, simQueue),
		ready:    make(chan struct{}),
		st:       newSimState(d, opts.Rand, opts.DoorTransit, opts.Now()),
	}
}

// Stats returns the Sim's counters.
func (s *Sim) Stats() SimStats { return s.counters.stats() }

// Run serves the device on the bus (see Bus.Serve) until ctx ends, then
// takes it offline. It may be called once.
func (s *Sim) Run(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("emulator: Sim.Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.loop(ctx)
	}()
	err := s.bus.serve(ctx, s.dev.ID, serveHooks{
		initial: s.initial,
		online:  func() { close(s.ready) },
		handle:  s.enqueue,
	})
	cancel()
	<-loopDone
	return err
}

// initial resumes from the device's last state on the bus, where it is
// valid, and returns the state to go online with.
func (s *Sim) initial(ctx context.Context) (map[string]json.RawMessage, error) {
	prev, _, err := s.bus.Snapshot(ctx, s.dev.ID)
	if err != nil {
		return nil, err
	}
	s.st.resume(prev, s.opts.Now())
	return s.st.encode(), nil
}

// enqueue is Serve's handle: it passes the command to loop without
// waiting, or drops it when loop is that far behind.
func (s *Sim) enqueue(cmd Command) {
	select {
	case s.cmds <- cmd:
	default:
		s.counters.dropped.Add(1)
	}
}

// loop is the Sim's goroutine and owns the device's state once the device
// is online: it applies commands, ticks and the door's arrival one at a
// time, and publishes what each changed before taking the next.
func (s *Sim) loop(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-s.ready:
	}
	tick := time.NewTicker(s.opts.Tick)
	defer tick.Stop()
	alarm := time.NewTimer(time.Hour)
	alarm.Stop()
	defer alarm.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case cmd := <-s.cmds:
			if err := s.st.command(cmd, s.opts.Now()); err != nil {
				s.counters.invalid.Add(1) // counted, not logged: pages may send many
			} else {
				s.counters.applied.Add(1)
			}
		case <-tick.C:
			s.st.tick(s.opts.Now())
		case <-alarm.C:
			s.st.alarm(s.opts.Now())
		}
		if d, ok := s.st.takeAlarm(); ok {
			alarm.Reset(d) // drops a pending, now stale, expiry
		}
		s.flush(ctx)
	}
}

// flush publishes the changed properties. On failure they stay changed,
// so the next flush (at the latest the next tick) tries again.
func (s *Sim) flush(ctx context.Context) {
	changes := s.st.take(s.opts.Now())
	if len(changes) == 0 {
		return
	}
	err := s.bus.Publish(ctx, s.dev.ID, changes...)
	switch {
	case err != nil && ctx.Err() != nil: // stopping
	case err != nil:
		s.counters.publishErrors.Add(1)
		for _, c := range changes {
			s.st.markDirty(c.Property)
		}
		if !s.failing {
			s.failing = true
			s.log.Warn("device sim: publishing failed; retrying", "device", s.dev.ID, "err", err)
		}
	case s.failing:
		s.failing = false
		s.log.Info("device sim: publishing again", "device", s.dev.ID)
	}
}

// Properties the behaviours drive, as in DemoDevices.
const (
	pathSwitchOn    = "switch/on"
	pathPower       = "meter/power"
	pathEnergy      = "meter/energy"
	pathBrightness  = "light/brightness"
	pathMode        = "thermostat/mode"
	pathTarget      = "thermostat/target"
	pathTemperature = "thermostat/temperature"
	pathDoorCommand = "door/command"
	pathDoorState   = "door/state"
	pathLocked      = "lock/locked"
	pathBattery     = "lock/battery"
	pathClimateTemp = "climate/temperature"
	pathHumidity    = "climate/humidity"
	pathCO2         = "climate/co2"
)

// simState is a simulated device's state and the rules it changes by,
// without clocks, timers or I/O: a Sim feeds it commands and times, and
// publishes what it marks changed. It is not safe for concurrent use.
type simState struct {
	props   map[string]Property // by path
	paths   []string            // in description order
	vals    map[string]any      // current values, as JSON decodes them: bool, float64, string
	dirty   []string            // changed since the last take, in order
	isDirty map[string]bool
	rnd     *rand.Rand
	transit time.Duration // of a garage door
	last    time.Time     // of the last tick
	b       behaviour

	alarmAt  time.Duration // when alarmSet: the behaviour's alarm, from now
	alarmSet bool
}

// behaviour is what a device type does beyond taking the values it is
// sent. Its methods run on the Sim's goroutine, after the simState has
// changed.
type behaviour interface {
	// defaults sets the type's starting values over the generic ones.
	defaults(st *simState)
	// resume adjusts the behaviour to values restored from the bus.
	resume(st *simState, now time.Time)
	// commanded follows a command that set path.
	commanded(st *simState, path string, now time.Time)
	// tick advances the simulation by dt, to now.
	tick(st *simState, now time.Time, dt time.Duration)
	// alarm runs when the time set by simState.setAlarm has come.
	alarm(st *simState, now time.Time)
}

// newSimState returns the state of a fresh d: defaults for every property.
func newSimState(d *Device, rnd *rand.Rand, transit time.Duration, now time.Time) *simState {
	st := &simState{
		props:   make(map[string]Property),
		vals:    make(map[string]any),
		isDirty: make(map[string]bool),
		rnd:     rnd,
		transit: transit,
		last:    now,
	}
	for _, n := range d.Nodes {
		for _, p := range n.Properties {
			path := n.ID + "/" + p.ID
			st.props[path] = p
			st.paths = append(st.paths, path)
			st.vals[path] = defaultValue(p)
		}
	}
	st.b = st.behaviourFor(d.Type)
	st.b.defaults(st)
	return st
}

// behaviourFor returns the behaviour of a device type whose properties the
// state has, or the generic one.
func (st *simState) behaviourFor(typ string) behaviour {
	switch typ {
	case "plug":
		if st.has(pathSwitchOn, DatatypeBoolean) {
			return &plug{}
		}
	case "light", "rgb-lamp":
		return lamp{}
	case "thermostat":
		if st.accepts(pathMode, "off") && st.has(pathTarget, DatatypeFloat, DatatypeInteger) &&
			st.has(pathTemperature, DatatypeFloat, DatatypeInteger) {
			return &thermostat{}
		}
	case "garage-door":
		if st.accepts(pathDoorCommand, "open", "close") && st.accepts(pathDoorState, "open", "opening", "closed", "closing") {
			return &garageDoor{}
		}
	case "lock":
		return &lock{}
	case "sensor":
		return &sensor{}
	}
	return generic{}
}

// defaultValue is a property's value before anything set it: false, 0 (or
// the range's bound nearest to it), the first enum value, white, "".
func defaultValue(p Property) any {
	switch p.Datatype {
	case DatatypeBoolean:
		return false
	case DatatypeInteger, DatatypeFloat:
		if v, ok := fitNumber(p, 0); ok {
			return v
		}
		return 0.0
	case DatatypeEnum:
		first, _, _ := strings.Cut(p.Format, ",")
		return first
	case DatatypeColor:
		if p.Format == ColorHSV {
			return "0,0,100"
		}
		return "255,255,255"
	}
	return ""
}

// fitNumber returns f moved into p's range, onto its step and, for an
// integer, to a whole number; ok is false when no such value passes
// CheckValue.
func fitNumber(p Property, f float64) (v float64, ok bool) {
	r, err := parseRange(p.Format)
	if err != nil {
		return 0, false
	}
	f = math.Max(r.min, math.Min(r.max, f))
	if r.step > 0 {
		base := 0.0
		if r.hasMin {
			base = r.min
		}
		f = base + math.Round((f-base)/r.step)*r.step
		if f > r.max {
			f -= r.step
		}
	}
	if p.Datatype == DatatypeInteger {
		f = math.Round(f)
	}
	return f, p.CheckValue(f) == nil
}

// has reports whether the device has the property at path with one of the
// datatypes.
func (st *simState) has(path string, types ...Datatype) bool {
	p, ok := st.props[path]
	if !ok {
		return false
	}
	for _, t := range types {
		if p.Datatype == t {
			return true
		}
	}
	return false
}

// accepts reports whether the device has an enum at path that allows every
// one of values.
func (st *simState) accepts(path string, values ...string) bool {
	if !st.has(path, DatatypeEnum) {
		return false
	}
	for _, v := range values {
		if st.props[path].CheckValue(v) != nil {
			return false
		}
	}
	return true
}

func (st *simState) bool(path string) bool {
	b, _ := st.vals[path].(bool)
	return b
}

func (st *simState) num(path string) float64 {
	f, _ := st.vals[path].(float64)
	return f
}

func (st *simState) str(path string) string {
	s, _ := st.vals[path].(string)
	return s
}

// preset sets a starting value, if the device has the property and the
// value fits it.
func (st *simState) preset(path string, v any) {
	if p, ok := st.props[path]; ok && p.CheckValue(v) == nil {
		st.vals[path] = v
	}
}

// report sets a value the device produced and marks it changed, if the
// property allows it; a number is first fitted to the property.
func (st *simState) report(path string, v any) {
	p, ok := st.props[path]
	if !ok {
		return
	}
	if f, isNum := v.(float64); isNum {
		if v, ok = fitNumber(p, f); !ok {
			return
		}
	}
	if p.CheckValue(v) != nil {
		return
	}
	st.vals[path] = v
	st.markDirty(path)
}

// measure reports a measured number rounded to decimals, when the rounded
// value differs from the last one reported by more than over.
func (st *simState) measure(path string, f float64, decimals int, over float64) {
	p, ok := st.props[path]
	if !ok || (p.Datatype != DatatypeFloat && p.Datatype != DatatypeInteger) {
		return
	}
	scale := math.Pow10(decimals)
	v, ok := fitNumber(p, math.Round(f*scale)/scale)
	if !ok {
		return
	}
	if old, known := st.vals[path].(float64); known && math.Abs(v-old) <= over {
		return
	}
	st.vals[path] = v
	st.markDirty(path)
}

func (st *simState) markDirty(path string) {
	if !st.isDirty[path] {
		st.isDirty[path] = true
		st.dirty = append(st.dirty, path)
	}
}

// setAlarm asks for the behaviour's alarm after d, replacing any earlier
// request.
func (st *simState) setAlarm(d time.Duration) { st.alarmAt, st.alarmSet = max(d, 0), true }

// takeAlarm returns the alarm asked for since the last call, if any.
func (st *simState) takeAlarm() (time.Duration, bool) {
	d, ok := st.alarmAt, st.alarmSet
	st.alarmSet = false
	return d, ok
}

// errCommand is the cause of a refused command.
var errCommand = errors.New("command refused")

// command applies a command: the property takes the value, which is
// published even if it did not change, and the behaviour follows.
func (st *simState) command(cmd Command, now time.Time) error {
	p, ok := st.props[cmd.Property]
	switch {
	case !ok:
		return fmt.Errorf("%w: unknown property %q", errCommand, cmd.Property)
	case !p.Settable:
		return fmt.Errorf("%w: property %q is read-only", errCommand, cmd.Property)
	}
	var v any
	if err := json.Unmarshal(cmd.Value, &v); err != nil {
		return fmt.Errorf("%w: %s: value is not JSON", errCommand, cmd.Property)
	}
	if err := p.CheckValue(v); err != nil {
		return fmt.Errorf("%w: %w", errCommand, err)
	}
	st.vals[cmd.Property] = v
	st.markDirty(cmd.Property)
	st.b.commanded(st, cmd.Property, now)
	return nil
}

// tick advances the simulation to now.
func (st *simState) tick(now time.Time) {
	dt := max(now.Sub(st.last), 0)
	st.last = now
	st.b.tick(st, now, dt)
}

func (st *simState) alarm(now time.Time) { st.b.alarm(st, now) }

// resume takes the values of prev, the device's state on the bus, that
// its properties still allow, and lets the behaviour adjust to them.
// Nothing is marked changed: going online publishes everything.
func (st *simState) resume(prev map[string]json.RawMessage, now time.Time) {
	for _, path := range st.paths {
		raw, ok := prev[path]
		if !ok {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) == nil && st.props[path].CheckValue(v) == nil {
			st.vals[path] = v
		}
	}
	st.last = now
	st.b.resume(st, now)
	clear(st.isDirty)
	st.dirty = st.dirty[:0]
}

// encode returns every value as JSON.
func (st *simState) encode() map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(st.vals))
	for path, v := range st.vals {
		out[path] = mustJSON(v)
	}
	return out
}

// take returns the changes marked since the last take, at now.
func (st *simState) take(now time.Time) []Change {
	if len(st.dirty) == 0 {
		return nil
	}
	changes := make([]Change, len(st.dirty))
	for i, path := range st.dirty {
		changes[i] = Change{Property: path, Value: mustJSON(st.vals[path]), TS: now}
	}
	clear(st.isDirty)
	st.dirty = st.dirty[:0]
	return changes
}

// mustJSON encodes a bool, float64 or string, which always encode: values
// are checked finite before they are stored.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("emulator: encoding %T: %v", v, err))
	}
	return b
}

// generic takes the values it is sent and does nothing else.
type generic struct{}

func (generic) defaults(*simState)                       {}
func (generic) resume(*simState, time.Time)              {}
func (generic) commanded(*simState, string, time.Time)   {}
func (generic) tick(*simState, time.Time, time.Duration) {}
func (generic) alarm(*simState, time.Time)               {}

// lamp starts at full brightness.
type lamp struct{ generic }

func (lamp) defaults(st *simState) { st.preset(pathBrightness, 100.0) }

// plug draws 40-60 W while on and meters the energy.
type plug struct {
	generic
	base   float64 // W drawn while on, before noise
	power  float64 // W, the last measure
	energy float64 // kWh, unrounded
}

const (
	plugMinPower = 40.0
	plugMaxPower = 60.0
	plugNoise    = 1.0 // W, each way
	plugReport   = 0.5 // W: the change that is published
)

func (p *plug) resume(st *simState, _ time.Time) {
	p.power = st.num(pathPower)
	p.energy = st.num(pathEnergy)
	if p.power >= plugMinPower && p.power <= plugMaxPower {
		p.base = p.power
	}
}

func (p *plug) tick(st *simState, _ time.Time, dt time.Duration) {
	p.energy += p.power * dt.Hours() / 1000 // over dt, the power was the last measure
	st.measure(pathEnergy, p.energy, 3, 0)
	if !st.bool(pathSwitchOn) {
		p.power = 0
	} else {
		if p.base == 0 {
			p.base = plugMinPower + (plugMaxPower-plugMinPower)*st.rnd.Float64()
		}
		p.base = math.Max(plugMinPower, math.Min(plugMaxPower, p.base+st.rnd.NormFloat64()*0.2))
		p.power = p.base + plugNoise*(2*st.rnd.Float64()-1)
	}
	st.measure(pathPower, p.power, 1, plugReport)
}

// thermostat heats or cools toward its target, or drifts toward ambient.
type thermostat struct {
	generic
	temp float64 // °C, unrounded
}

const ambient = 18.0 // °C

func (th *thermostat) defaults(st *simState) {
	st.preset(pathTarget, 21.0)
	st.preset(pathTemperature, 21.0)
	th.temp = st.num(pathTemperature)
}

func (th *thermostat) resume(st *simState, _ time.Time) { th.temp = st.num(pathTemperature) }

func (th *thermostat) tick(st *simState, _ time.Time, _ time.Duration) {
	target := st.num(pathTarget)
	active := 0.1 + 0.2*st.rnd.Float64() // °C a tick
	passive := active / 2
	switch st.str(pathMode) {
	case "heat": // warms up to the target; above it, cools no further than it
		if th.temp < target {
			th.temp = approach(th.temp, target, active)
		} else {
			th.temp = approach(th.temp, math.Max(target, ambient), passive)
		}
	case "cool":
		if th.temp > target {
			th.temp = approach(th.temp, target, active)
		} else {
			th.temp = approach(th.temp, math.Min(target, ambient), passive)
		}
	case "auto":
		th.temp = approach(th.temp, target, active)
	default: // off, or a mode we do not know
		th.temp = approach(th.temp, ambient, passive)
	}
	st.measure(pathTemperature, th.temp, 1, 0)
}

// approach moves x toward goal by at most step.
func approach(x, goal, step float64) float64 {
	if x < goal {
		return math.Min(x+step, goal)
	}
	return math.Max(x-step, goal)
}

// garageDoor opens and closes over time.
type garageDoor struct {
	generic
	started time.Time     // of the current transit
	dur     time.Duration // of the current transit
}

func (*garageDoor) defaults(st *simState) {
	st.preset(pathDoorState, "closed")
	st.preset(pathDoorCommand, "close")
}

// resume ends a transit the previous server left unfinished.
func (*garageDoor) resume(st *simState, _ time.Time) {
	switch st.str(pathDoorState) {
	case "opening":
		st.vals[pathDoorState] = "open"
	case "closing":
		st.vals[pathDoorState] = "closed"
	}
}

func (d *garageDoor) commanded(st *simState, path string, now time.Time) {
	if path != pathDoorCommand {
		return
	}
	want := st.str(pathDoorCommand) // "open" or "close"
	end, moving := "open", "opening"
	if want == "close" {
		end, moving = "closed", "closing"
	}
	switch state := st.str(pathDoorState); state {
	case end, moving: // there already, or on the way
		st.markDirty(pathDoorState)
	case "opening", "closing": // the other way: come back
		travelled := min(max(now.Sub(d.started), 0), d.dur)
		d.started, d.dur = now, travelled
		st.report(pathDoorState, moving)
		st.setAlarm(travelled)
	default: // at the other end
		d.started, d.dur = now, st.transit
		st.report(pathDoorState, moving)
		st.setAlarm(st.transit)
	}
}

func (*garageDoor) alarm(st *simState, _ time.Time) {
	switch st.str(pathDoorState) {
	case "opening":
		st.report(pathDoorState, "open")
	case "closing":
		st.report(pathDoorState, "closed")
	}
}

// lock drains its battery.
type lock struct {
	generic
	drained time.Duration // toward the next percent
}

const (
	batteryPercentEvery = 10 * time.Minute
	batteryReplacedAt   = 5.0 // %
)

func (*lock) defaults(st *simState) {
	st.preset(pathLocked, true)
	st.preset(pathBattery, 80.0)
}

func (l *lock) tick(st *simState, _ time.Time, dt time.Duration) {
	l.drained += dt
	n := l.drained / batteryPercentEvery
	if n == 0 {
		return
	}
	l.drained -= n * batteryPercentEvery
	level := st.num(pathBattery) - float64(n)
	if level <= batteryReplacedAt {
		level = 100
	}
	st.report(pathBattery, level)
}

// sensor measures a room whose climate wanders.
type sensor struct {
	generic
	temp, humidity, co2 float64 // unrounded
}

func (s *sensor) defaults(st *simState) {
	st.preset(pathClimateTemp, 21.0)
	st.preset(pathHumidity, 45.0)
	st.preset(pathCO2, 600.0)
	s.resume(st, time.Time{})
}

func (s *sensor) resume(st *simState, _ time.Time) {
	s.temp, s.humidity, s.co2 = st.num(pathClimateTemp), st.num(pathHumidity), st.num(pathCO2)
}

func (s *sensor) tick(st *simState, _ time.Time, _ time.Duration) {
	s.temp = walk(st.rnd, s.temp, 21, 0.05, 16, 28)
	s.humidity = walk(st.rnd, s.humidity, 45, 0.3, 20, 80)
	s.co2 = walk(st.rnd, s.co2, 600, 8, 400, 2000)
	st.measure(pathClimateTemp, s.temp, 1, 0)
	st.measure(pathHumidity, s.humidity, 1, 0)
	st.measure(pathCO2, s.co2, 0, 0)
}

// walk takes a random step from x, pulled back toward mean, within lo and
// hi.
func walk(rnd *rand.Rand, x, mean, sd, lo, hi float64) float64 {
	x += rnd.NormFloat64()*sd + 0.02*(mean-x)
	return math.Max(lo, math.Min(hi, x))
}
