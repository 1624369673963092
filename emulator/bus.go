package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bus is the device bus: how devices and gateway instances talk through
// Redis. Devices may run in another process ("linkgate devices"), in the
// gateway's own process (demo mode), or behind a bridge to real devices;
// any number of gateway instances drive the same device. It is safe for
// concurrent use.
//
// The layout follows the Homie convention, so that an MQTT/Homie bridge
// maps it one to one:
//
//	Homie (MQTT)                          bus (Redis)
//	homie/5/<id>/<node>/<prop>, retained  field "node/prop" of lg:devstate:{<id>},
//	                                      and an event on lg:devevt:{<id>}
//	homie/5/<id>/<node>/<prop>/set        a command on lg:devset:{<id>}
//	homie/5/<id>/$state                   field "$state" of lg:devstate:{<id>},
//	                                      an event on lg:devevt:{<id>}, and
//	                                      the key lg:devalive:{<id>}
//
// <id> is the device id, a Homie id: lowercase letters and digits in groups
// joined by single hyphens, at most 64 characters (the store's ids are 32
// hex digits). Every key and channel of a device carries the hash tag
// {<id>}, so a Redis Cluster keeps a device's keys in one slot. Values are
// JSON, as the page sees them: true, 42.5, "heat", "255,0,0".
//
// The keys:
//
//	lg:devstate:{<id>}  HASH, the device's retained state:
//	                    field "node/prop" -> the property's value as JSON;
//	                    field "$state"    -> "ready" | "disconnected" | "lost"
//	                                         (plain text, not JSON).
//	                    Fields starting with "$" are the device's own; all
//	                    others are properties. linkgate never writes "lost":
//	                    a bridge may, from its broker's last will.
//	lg:devalive:{<id>}  STRING with a TTL of AliveTTL (15 s), refreshed every
//	                    AliveTTL/3 by the process serving the device. It
//	                    exists exactly while the device is online: its
//	                    absence means offline, whatever "$state" says (a
//	                    process that dies cannot write "lost", as MQTT's
//	                    last will would). Its value is a random token of the
//	                    serving process: the key is a lease, so that at most
//	                    one process serves a device and a second one waits as
//	                    a hot standby (see Serve).
//
// The channels (plain PUBLISH/SUBSCRIBE, not sharded, so they work on a
// standalone server, Sentinel, Cluster and miniredis alike; messages are at
// most 64 KiB):
//
//	lg:devset:{<id>}  commands to the device, one JSON object each:
//	                  {"id":"c1","property":"node/prop","value":<json>,"session":"..."}
//	                  "property" and "value" are required; "id" (the page's
//	                  command id) and "session" (the recipient session) let
//	                  the device's answer be traced. The device answers by
//	                  publishing the property's new value, even when it did
//	                  not change; there is no other acknowledgement.
//	lg:devevt:{<id>}  state changes of the device, one JSON object each:
//	                  {"property":"node/prop","value":<json>,"ts":"<RFC 3339, ns>"}
//	                  A "$state" change travels here too, as
//	                  {"property":"$state","value":"ready",...}, its value
//	                  JSON like every other.
//
// The rules a bridge must follow:
//
//   - Write a value to the hash before publishing its event, so that
//     whoever reads the hash after an event sees that value or a newer one.
//     Bus does both in one script, atomically.
//   - To go online: subscribe to the command channel and wait for Redis to
//     confirm it, so that no command sent once the device is seen online is
//     lost. Then, in one script, so that whoever sees the device online sees
//     its state: take the alive key (SET NX PX), replace the hash with the
//     full state and "$state" = "ready", publish each property and then
//     "$state". Keep the key fresh. To go offline on purpose: delete the
//     key, set "$state" = "disconnected", publish it.
//   - Messages are not queued: Redis drops those for a subscriber that is
//     not connected at the moment (and, in a Cluster, those the cluster bus
//     fails to forward). A command sent while the device is offline or
//     reconnecting is lost, so gateways check liveness before sending; the
//     device's echo is the only acknowledgement. A Watcher tells its
//     consumer when it may have missed events (PropertyResync).
type Bus struct {
	rdb redis.UniversalClient

	// aliveTTL is AliveTTL; tests shorten it.
	aliveTTL time.Duration

	commandsDropped atomic.Uint64
	eventsMalformed atomic.Uint64
	changesDropped  atomic.Uint64
	resyncs         atomic.Uint64
}

// Values of a device's "$state", as in Homie.
const (
	StateReady        = "ready"
	StateDisconnected = "disconnected"
	StateLost         = "lost"
)

// AliveTTL is the lifetime of a device's alive key; the serving process
// refreshes it every AliveTTL/3. A device whose process dies is seen
// offline within AliveTTL.
const AliveTTL = 15 * time.Second

// Special properties of a Change.
const (
	// PropertyState is the property of a Change that carries the device's
	// Homie $state: its Value is "ready", "disconnected" or "lost", as JSON.
	PropertyState = "$state"
	// PropertyResync is the property of a Change, without a Value, by which
	// a Watcher says that it may have missed changes of the Device: its
	// consumer was too slow, or its subscription reconnected. The consumer
	// should take a fresh Snapshot.
	PropertyResync = "$resync"
)

// ErrDeviceOffline: the device is not online, so a command cannot reach it.
// The bus does not return it (Send does not check liveness); callers that
// find the device offline through Snapshot or a "$state" change do.
var ErrDeviceOffline = errors.New("device offline")

// ErrServedElsewhere: another process took the device's alive key while
// Serve was serving it, typically after Serve could not refresh the key
// for AliveTTL. Serve stops so that two processes never serve one device.
var ErrServedElsewhere = errors.New("device served by another process")

// errWatcherClosed is returned by Add on a closed Watcher.
var errWatcherClosed = errors.New("device bus: watcher closed")

// Command is a command to a device: set Property to Value.
type Command struct {
	ID       string          `json:"id"`
	Property string          `json:"property"` // "node/prop"
	Value    json.RawMessage `json:"value"`
	Session  string          `json:"session,omitempty"`
}

// Change is a new value of a device's property, or of its "$state"
// (PropertyState), or a Watcher's notice that changes were missed
// (PropertyResync).
type Change struct {
	Device   string          `json:"-"`        // the device id; not in the message, taken from the channel
	Property string          `json:"property"` // "node/prop", or "$state"
	Value    json.RawMessage `json:"value"`
	TS       time.Time       `json:"ts"`

	msg *sharedMessage // set by Hub.dispatch: the state message, once for all
}

// BusStats counts what the bus dropped or noticed, since NewBus.
type BusStats struct {
	// CommandsDropped: command messages Serve dropped as malformed (not
	// JSON, over 64 KiB, or without a property or a value).
	CommandsDropped uint64
	// EventsMalformed: event messages Watchers dropped as malformed.
	EventsMalformed uint64
	// ChangesDropped: changes Watchers dropped because their consumer did
	// not keep up.
	ChangesDropped uint64
	// Resyncs: resync notices Watchers queued (PropertyResync).
	Resyncs uint64
}

const (
	stateKeyPrefix = "lg:devstate:"
	aliveKeyPrefix = "lg:devalive:"
	setChanPrefix  = "lg:devset:"
	evtChanPrefix  = "lg:devevt:"

	// maxMessage bounds a command or event message.
	maxMessage = 64 << 10

	// commandBuffer is how many commands Serve buffers for a handle that
	// is busy; go-redis drops what does not fit within a minute.
	commandBuffer = 64
	// watchBuffer is the size of a Watcher's Changes channel.
	watchBuffer = 1024
	// subscriptionBuffer is the size of the go-redis channel between the
	// connection and a Watcher's goroutine, which drains it at once.
	subscriptionBuffer = 256

	// cleanupTimeout bounds the writes of Serve after its context ended.
	cleanupTimeout = 5 * time.Second
)

func stateKey(id string) string   { return stateKeyPrefix + "{" + id + "}" }
func aliveKey(id string) string   { return aliveKeyPrefix + "{" + id + "}" }
func setChannel(id string) string { return setChanPrefix + "{" + id + "}" }
func evtChannel(id string) string { return evtChanPrefix + "{" + id + "}" }

// checkDevice checks a device id: a Homie id, which cannot break the hash
// tag of the keys.
func checkDevice(id string) error {
	if err := checkID("device", id); err != nil {
		return fmt.Errorf("device bus: %w", err)
	}
	return nil
}

// checkPropertyPath checks "node/prop", both Homie ids.
func checkPropertyPath(path string) error {
	node, prop, ok := strings.Cut(path, "/")
	if !ok || checkID("node", node) != nil || checkID("property", prop) != nil {
		return fmt.Errorf("device bus: property %q: want \"node/prop\"", path)
	}
	return nil
}

// NewBus returns a bus on rdb, a client of a standalone server, of Sentinel
// or of a Cluster.
func NewBus(rdb redis.UniversalClient) *Bus {
	return &Bus{rdb: rdb, aliveTTL: AliveTTL}
}

// Stats returns the bus's counters.
func (b *Bus) Stats() BusStats {
	return BusStats{
		CommandsDropped: b.commandsDropped.Load(),
		EventsMalformed: b.eventsMalformed.Load(),
		ChangesDropped:  b.changesDropped.Load(),
		Resyncs:         b.resyncs.Load(),
	}
}

// Snapshot returns the device's state, property by property, and whether it
// is online (its alive key exists), in one round trip. The state holds the
// last value of every property the device has published, online or not;
// "$state" and other "$" fields are left out, as are values that are not
// JSON.
func (b *Bus) Snapshot(ctx context.Context, device string) (state map[string]json.RawMessage, online bool, err error) {
	if err := checkDevice(device); err != nil {
		return nil, false, err
	}
	var fields *redis.MapStringStringCmd
	var alive *redis.IntCmd
	// Both keys are in the device's slot: one node, one round trip.
	_, err = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, stateKey(device))
		alive = p.Exists(ctx, aliveKey(device))
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("device bus: snapshot %s: %w", device, err)
	}
	state = make(map[string]json.RawMessage, len(fields.Val()))
	for f, v := range fields.Val() {
		if strings.HasPrefix(f, "$") || !json.Valid([]byte(v)) {
			continue
		}
		state[f] = json.RawMessage(v)
	}
	return state, alive.Val() > 0, nil
}

// Send publishes a command to the device. It does not check that the device
// is online, nor that anyone received the command: the caller knows
// liveness from Snapshot and "$state" changes. The command needs a
// property and a JSON value.
func (b *Bus) Send(ctx context.Context, device string, cmd Command) error {
	if err := checkDevice(device); err != nil {
		return err
	}
	if cmd.Property == "" || len(cmd.Value) == 0 {
		return errors.New("device bus: send: a command needs a property and a value")
	}
	msg, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("device bus: send: %w", err)
	}
	if len(msg) > maxMessage {
		return fmt.Errorf("device bus: send: command of %d bytes, over %d", len(msg), maxMessage)
	}
	if err := b.rdb.Publish(ctx, setChannel(device), msg).Err(); err != nil {
		return fmt.Errorf("device bus: send to %s: %w", device, err)
	}
	return nil
}

// publishScript writes values and publishes their events, atomically.
// KEYS[1] is the state hash; ARGV[1] the event channel, then a triple per
// change: field, value, event.
var publishScript = redis.NewScript(`
for i = 2, #ARGV, 3 do
	redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
	redis.call('PUBLISH', ARGV[1], ARGV[i+2])
end
return 1
`)

// Publish records new values of the device's properties and publishes each
// as a change, in order, atomically, in one round trip. Each change's
// Property must be "node/prop" and its Value JSON; Device is ignored and a
// zero TS means now. Publish does not check that the device is online.
func (b *Bus) Publish(ctx context.Context, device string, changes ...Change) error {
	if err := checkDevice(device); err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	args := make([]any, 0, 1+3*len(changes))
	args = append(args, evtChannel(device))
	now := time.Now()
	for _, c := range changes {
		if err := checkPropertyPath(c.Property); err != nil {
			return err
		}
		field, value, event, err := encodeChange(c, now)
		if err != nil {
			return err
		}
		args = append(args, field, value, event)
	}
	if err := publishScript.Run(ctx, b.rdb, []string{stateKey(device)}, args...).Err(); err != nil {
		return fmt.Errorf("device bus: publish %s: %w", device, err)
	}
	return nil
}

// encodeChange returns a change's hash field, its value as stored, and its
// event message.
func encodeChange(c Change, now time.Time) (field, value string, event []byte, err error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, c.Value); err != nil {
		return "", "", nil, fmt.Errorf("device bus: %s: value is not JSON: %w", c.Property, err)
	}
	c.Value = buf.Bytes()
	if c.TS.IsZero() {
		c.TS = now
	}
	event, err = json.Marshal(c)
	if err != nil {
		return "", "", nil, fmt.Errorf("device bus: %s: %w", c.Property, err)
	}
	if len(event) > maxMessage {
		return "", "", nil, fmt.Errorf("device bus: %s: change of %d bytes, over %d", c.Property, len(event), maxMessage)
	}
	return c.Property, buf.String(), event, nil
}

// stateEvent returns the event of a "$state" change.
func stateEvent(state string) []byte {
	v, _ := json.Marshal(state)
	event, _ := json.Marshal(Change{Property: PropertyState, Value: v, TS: time.Now()})
	return event
}

// onlineScript takes the device online if its alive key is free. KEYS[1]
// is the alive key, KEYS[2] the state hash; ARGV[1] the caller's token,
// ARGV[2] the TTL in ms, ARGV[3] the event channel, ARGV[4] the number n of
// properties, then n field-value pairs, then the events to publish. It
// returns 1, or 0 when another process holds the key.
var onlineScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2])
local n = tonumber(ARGV[4])
for i = 5, 4 + 2*n, 2 do
	redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
end
redis.call('HSET', KEYS[2], '$state', 'ready')
for i = 5 + 2*n, #ARGV do
	redis.call('PUBLISH', ARGV[3], ARGV[i])
end
return 1
`)

// refreshScript keeps the caller's alive key fresh. KEYS and ARGV[1..3] as
// for onlineScript; ARGV[4] is the event of "$state" = "ready". It returns 1
// when refreshed; 2 when the key had vanished (a Redis restart or failover
// lost it) and the caller took it again, marking the device ready; 0 when
// another process holds it.
var refreshScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], '$state', 'ready')
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 2
`)

// offlineScript takes the device offline, if the caller still holds its
// alive key. KEYS as for onlineScript; ARGV[1] the token, ARGV[2] the event
// channel, ARGV[3] the event of "$state" = "disconnected".
var offlineScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], '$state', 'disconnected')
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`)

// Serve serves the device until ctx ends, then returns after taking it
// offline.
//
// It subscribes to the device's commands and then, in one step, takes the
// device's alive key, replaces its state with initial (values as JSON by
// "node/prop"), sets "$state" to "ready" and publishes each property and
// then the "$state" change. While another process holds the key, it waits,
// checking every AliveTTL/3: so a second process serving the same devices
// is a hot standby, which takes over within AliveTTL/3 of a clean stop of
// the first and within about AliveTTL of its death. While serving, it
// refreshes the alive key every AliveTTL/3 and calls handle for each
// command, from one goroutine, in order. handle should not block: commands queue behind it,
// and go-redis drops those that wait for more than a minute. Malformed
// command messages (not JSON, over 64 KiB, without a property or a value)
// are dropped and counted in Stats, never passed to handle; handle checks
// the property and value.
//
// When ctx ends, Serve stops taking commands, deletes the alive key, sets
// "$state" to "disconnected" and publishes that change, unless another
// process holds the key by then. It returns nil, or ErrServedElsewhere if
// another process took the key, or the error that kept it from serving.
func (b *Bus) Serve(ctx context.Context, device string, initial map[string]json.RawMessage, handle func(Command)) error {
	return b.serve(ctx, device, serveHooks{
		initial: func(context.Context) (map[string]json.RawMessage, error) { return initial, nil },
		handle:  handle,
	})
}

// serveHooks are what serve calls, in this order.
type serveHooks struct {
	// initial returns the state to go online with. It is called when the
	// device's alive key is free, just before taking it, so it may read the
	// state left by the previous server; again if another process took the
	// key first.
	initial func(ctx context.Context) (map[string]json.RawMessage, error)
	// online, if set, is called once the device is online, before the
	// first call of handle.
	online func()
	handle func(Command)
}

func (b *Bus) serve(ctx context.Context, device string, h serveHooks) error {
	if err := checkDevice(device); err != nil {
		return err
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	token := hex.EncodeToString(raw[:])
	ps, err := b.goOnline(ctx, device, token, h)
	if err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop before the device was ours
		}
		return err
	}
	if h.online != nil {
		h.online()
	}
	// The device is ours: from here on, every way out goes offline.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var keeper sync.WaitGroup
	keeper.Go(func() { b.keepAlive(ctx, device, token, cancel) })
	msgs := ps.Channel(redis.WithChannelSize(commandBuffer))
serving:
	for {
		select {
		case <-ctx.Done():
			break serving
		case m, ok := <-msgs:
			if !ok { // closed only by ps.Close
				break serving
			}
			cmd, ok := parseCommand(m.Payload)
			if !ok {
				b.commandsDropped.Add(1)
				continue
			}
			h.handle(cmd)
		}
	}
	err = nil
	if cause := context.Cause(ctx); errors.Is(cause, ErrServedElsewhere) {
		err = cause
	}
	cancel(nil)
	keeper.Wait() // it must not take the key again once it is released
	ps.Close()
	if rerr := b.release(context.WithoutCancel(ctx), device, token); err == nil {
		err = rerr
	}
	return err
}

// goOnline waits until the device's alive key is free, then takes the
// device online and returns the subscription to its commands. The
// subscription is confirmed before the device goes online, so that no
// command sent to a device seen online is lost; taking the key, writing
// the state and publishing it are one step, so that whoever sees the
// device online sees its state.
func (b *Bus) goOnline(ctx context.Context, device, token string, h serveHooks) (*redis.PubSub, error) {
	t := time.NewTicker(b.aliveTTL / 3)
	defer t.Stop()
	for {
		// Subscribe only when the key looks free, so that a standby does
		// not hold a subscription it would have to drain.
		n, err := b.rdb.Exists(ctx, aliveKey(device)).Result()
		if err != nil {
			return nil, fmt.Errorf("device bus: serve %s: %w", device, err)
		}
		if n == 0 {
			ps, err := b.subscribe(ctx, setChannel(device))
			if err != nil {
				return nil, fmt.Errorf("device bus: serve %s: %w", device, err)
			}
			taken, err := b.takeOnline(ctx, device, token, h)
			if err == nil && taken {
				return ps, nil
			}
			ps.Close()
			if err != nil {
				return nil, err
			}
			// Another process was quicker.
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// subscribe subscribes to channel and waits for Redis to confirm it.
func (b *Bus) subscribe(ctx context.Context, channel string) (*redis.PubSub, error) {
	ps := b.rdb.Subscribe(ctx, channel)
	msg, err := ps.Receive(ctx)
	if err == nil {
		if _, ok := msg.(*redis.Subscription); !ok {
			err = fmt.Errorf("subscribe: unexpected %T", msg)
		}
	}
	if err != nil {
		ps.Close()
		return nil, err
	}
	return ps, nil
}

// takeOnline takes the device's alive key, if free, with the state from
// h.initial, in one script. taken is false when another process holds
// the key.
func (b *Bus) takeOnline(ctx context.Context, device, token string, h serveHooks) (taken bool, err error) {
	state, err := h.initial(ctx)
	if err != nil {
		return false, err
	}
	paths := slices.Sorted(maps.Keys(state))
	args := make([]any, 0, 5+3*len(paths))
	args = append(args, token, b.aliveTTL.Milliseconds(), evtChannel(device), len(paths))
	events := make([]any, 0, len(paths)+1)
	now := time.Now()
	for _, p := range paths {
		if err := checkPropertyPath(p); err != nil {
			return false, err
		}
		field, value, event, err := encodeChange(Change{Property: p, Value: state[p], TS: now}, now)
		if err != nil {
			return false, err
		}
		args = append(args, field, value)
		events = append(events, event)
	}
	args = append(args, events...)
	args = append(args, stateEvent(StateReady))
	res, err := onlineScript.Run(ctx, b.rdb, []string{aliveKey(device), stateKey(device)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("device bus: serve %s: %w", device, err)
	}
	return res == 1, nil
}

// keepAlive refreshes the device's alive key every aliveTTL/3 until ctx
// ends. If another process holds the key, it cancels ctx with
// ErrServedElsewhere. A failed refresh is retried at the next tick; if
// the key expires meanwhile, the device is seen offline until a refresh
// succeeds.
func (b *Bus) keepAlive(ctx context.Context, device, token string, stop context.CancelCauseFunc) {
	every := b.aliveTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	keys := []string{aliveKey(device), stateKey(device)}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		res, err := refreshScript.Run(rctx, b.rdb, keys, token, b.aliveTTL.Milliseconds(),
			evtChannel(device), stateEvent(StateReady)).Int()
		cancel()
		if err == nil && res == 0 {
			stop(ErrServedElsewhere)
			return
		}
	}
}

// release takes the device offline if token still holds its alive key.
func (b *Bus) release(ctx context.Context, device, token string) error {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	err := offlineScript.Run(ctx, b.rdb, []string{aliveKey(device), stateKey(device)},
		token, evtChannel(device), stateEvent(StateDisconnected)).Err()
	if err != nil {
		return fmt.Errorf("device bus: serve %s: going offline: %w", device, err)
	}
	return nil
}

// parseCommand decodes a command message; ok is false for a malformed one.
func parseCommand(payload string) (cmd Command, ok bool) {
	if len(payload) > maxMessage {
		return Command{}, false
	}
	if err := json.Unmarshal([]byte(payload), &cmd); err != nil {
		return Command{}, false
	}
	return cmd, cmd.Property != "" && len(cmd.Value) > 0
}

// Watcher receives the changes of a dynamic set of devices over one Redis
// subscription connection. Add and Remove may be called from any
// goroutine; Changes is meant for one consumer.
//
// A Watcher never makes Redis wait for its consumer: a goroutine drains the
// subscription into Changes, a buffer of 1024, and drops a change when the
// buffer is full. For each device that lost a change it then owes the
// consumer a Change with Property PropertyResync, delivered as soon as
// there is room, before any later change of that device; changes of a
// device owed a resync are dropped until the notice is delivered, as the
// snapshot it calls for covers them. It owes one too when the subscription
// reconnected (go-redis reconnects and resubscribes by itself; what was
// published meanwhile is lost). So a consumer that takes a Snapshot on
// each resync notice never stays out of date.
type Watcher struct {
	bus     *Bus
	ps      *redis.PubSub
	changes chan Change
	done    chan struct{} // closed when run has returned
	stop    func() bool   // unregisters the shutdown at ctx's end

	// opMu serializes Add and Remove, so that SUBSCRIBE and UNSUBSCRIBE
	// reach Redis in the order of the changes of watched.
	opMu sync.Mutex

	mu      sync.Mutex        // guards watched and closed
	watched map[string]*watch // by event channel
	closed  bool
}

// watch is one watched device.
type watch struct {
	device string
	refs   int           // Adds minus Removes
	live   chan struct{} // closed at the first confirmation of the subscription
	// confirmed: live is closed. A later confirmation means that go-redis
	// resubscribed on a new connection.
	confirmed bool
}

// Watch returns a Watcher of no devices yet. It ends when ctx ends or on
// Close.
func (b *Bus) Watch(ctx context.Context) *Watcher {
	w := &Watcher{
		bus:     b,
		ps:      b.rdb.Subscribe(ctx), // no channels yet: it connects on first use
		changes: make(chan Change, watchBuffer),
		done:    make(chan struct{}),
		watched: make(map[string]*watch),
	}
	in := w.ps.ChannelWithSubscriptions(redis.WithChannelSize(subscriptionBuffer))
	go w.run(in)
	w.stop = context.AfterFunc(ctx, func() { w.shutdown() })
	return w
}

// Changes returns the changes of the watched devices, with Device set. It
// is closed after the Watcher ends. See Watcher for what a slow consumer
// loses.
func (w *Watcher) Changes() <-chan Change { return w.changes }

// Add starts watching the device's changes and returns once the
// subscription is confirmed by Redis: every change published from then on
// is delivered, so a Snapshot taken after Add returns misses nothing. Adds
// are counted: the device is watched until Removed as often as Added. If
// Redis does not confirm, Add waits until ctx ends and then undoes itself.
func (w *Watcher) Add(ctx context.Context, device string) error {
	if err := checkDevice(device); err != nil {
		return err
	}
	ch := evtChannel(device)
	w.opMu.Lock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.opMu.Unlock()
		return errWatcherClosed
	}
	e := w.watched[ch]
	if e != nil {
		e.refs++
		w.mu.Unlock()
		w.opMu.Unlock()
		return w.await(ctx, e)
	}
	e = &watch{device: device, refs: 1, live: make(chan struct{})}
	w.watched[ch] = e
	w.mu.Unlock()
	err := w.ps.Subscribe(ctx, ch)
	if err != nil {
		w.mu.Lock()
		delete(w.watched, ch) // opMu is held: nobody else counted on it
		w.mu.Unlock()
		// go-redis remembers the channel even when the write failed, and
		// would subscribe it on the next reconnection; make it forget.
		_ = w.ps.Unsubscribe(context.WithoutCancel(ctx), ch)
	}
	w.opMu.Unlock()
	if err != nil {
		return fmt.Errorf("device bus: watch %s: %w", device, err)
	}
	return w.await(ctx, e)
}

// await waits for the confirmation of e's subscription.
func (w *Watcher) await(ctx context.Context, e *watch) error {
	select {
	case <-e.live:
		return nil
	case <-w.done:
		return errWatcherClosed
	case <-ctx.Done():
		w.Remove(context.WithoutCancel(ctx), e.device)
		return fmt.Errorf("device bus: watch %s: %w", e.device, ctx.Err())
	}
}

// Remove undoes one Add of the device; the last one stops watching it, and
// no change of the device is delivered after that Remove returns. Removing
// a device not watched does nothing.
func (w *Watcher) Remove(ctx context.Context, device string) error {
	ch := evtChannel(device)
	w.opMu.Lock()
	defer w.opMu.Unlock()
	w.mu.Lock()
	e := w.watched[ch]
	if e == nil || w.closed {
		w.mu.Unlock()
		return nil
	}
	if e.refs--; e.refs > 0 {
		w.mu.Unlock()
		return nil
	}
	delete(w.watched, ch)
	w.mu.Unlock()
	if err := w.ps.Unsubscribe(ctx, ch); err != nil {
		// go-redis forgot the channel all the same, so a reconnection
		// will not subscribe it again.
		return fmt.Errorf("device bus: unwatch %s: %w", device, err)
	}
	return nil
}

// Close ends the Watcher: it closes the subscription connection and then
// Changes. It returns once the Watcher's goroutine has ended.
func (w *Watcher) Close() error {
	w.stop()
	return w.shutdown()
}

// shutdown is Close, also when ctx ends.
func (w *Watcher) shutdown() error {
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	if closed {
		<-w.done
		return nil
	}
	err := w.ps.Close() // go-redis then closes in, which ends run
	<-w.done
	return err
}

// run is the Watcher's goroutine and the only sender on changes. It turns
// the subscription's messages into Changes and owns the resync notices
// owed (owed, queue); it never waits for the consumer.
func (w *Watcher) run(in <-chan any) {
	defer close(w.done)
	defer close(w.changes)
	owed := make(map[string]bool) // devices owed a resync notice
	var queue []string            // the same devices, oldest first
	owe := func(device string) {
		if !owed[device] {
			owed[device] = true
			queue = append(queue, device)
			w.bus.resyncs.Add(1)
		}
	}
	for {
		var out chan<- Change // nil, so never ready, when nothing is owed
		var notice Change
		if len(queue) > 0 {
			out = w.changes
			notice = Change{Device: queue[0], Property: PropertyResync, TS: time.Now()}
		}
		select {
		case out <- notice:
			delete(owed, queue[0])
			queue = queue[1:]
		case m, ok := <-in:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if device, again := w.confirm(m); again {
					owe(device)
				}
			case *redis.Message:
				c, ok := w.parse(m)
				if !ok {
					continue
				}
				if owed[c.Device] { // the Snapshot the notice calls for has it
					w.bus.changesDropped.Add(1)
					continue
				}
				select {
				case w.changes <- c:
				default:
					w.bus.changesDropped.Add(1)
					owe(c.Device)
				}
			}
		}
	}
}

// confirm records a subscription's confirmation. again is true when the
// device's subscription had been confirmed before: go-redis resubscribed
// after a reconnection, and changes may have been lost.
func (w *Watcher) confirm(m *redis.Subscription) (device string, again bool) {
	if m.Kind != "subscribe" {
		return "", false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.watched[m.Channel]
	switch {
	case e == nil: // removed since
		return "", false
	case e.confirmed:
		return e.device, true
	}
	// It may be the confirmation of an earlier subscription to the same
	// channel, removed and added again before this one was confirmed. Then
	// the real confirmation follows and takes the branch above: the resync
	// notice covers a Snapshot taken too early.
	e.confirmed = true
	close(e.live)
	return "", false
}

// parse decodes an event of a watched device; ok is false for a device no
// longer watched or a malformed event, which is counted.
func (w *Watcher) parse(m *redis.Message) (c Change, ok bool) {
	w.mu.Lock()
	e := w.watched[m.Channel]
	w.mu.Unlock()
	if e == nil {
		return Change{}, false
	}
	if len(m.Payload) > maxMessage || json.Unmarshal([]byte(m.Payload), &c) != nil ||
		c.Property == "" || len(c.Value) == 0 {
		w.bus.eventsMalformed.Add(1)
		return Change{}, false
	}
	c.Device = e.device
	return c, true
}
