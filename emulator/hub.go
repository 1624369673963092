package emulator

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"
)

// Hub fans device changes out to the sessions of one gateway instance: one
// bus subscription for the instance, one entry per watched device, however
// many pages watch it. It also keeps each watched device's liveness: from
// "$state" changes, and from the alive key for devices that died silently.
//
// Deliveries run on the hub's goroutine and must not block (sessions queue
// and drop, see gateway).
type Hub struct {
	bus *Bus
	log *slog.Logger

	mu      sync.Mutex // guards devices
	devices map[string]*watched
	w       *Watcher
}

type watched struct {
	online bool
	subs   map[*Subscription]struct{}
	// ready is closed once the bus confirmed the device's subscription (or
	// failed to, then err says why). The first subscriber adds it, outside
	// the hub's lock; later ones wait on ready before their snapshot, so
	// nothing falls between snapshot and stream for them either.
	ready chan struct{}
	err   error // written before ready is closed
}

// Subscription is one session's interest in one device.
type Subscription struct {
	device  string
	deliver func(Change)
}

// NewHub returns a hub on bus. Call Run.
func NewHub(bus *Bus, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{bus: bus, log: log.With("component", "hub"), devices: make(map[string]*watched)}
}

// Run dispatches changes until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	w := h.bus.Watch(ctx)
	h.mu.Lock()
	h.w = w
	for dev := range h.devices { // sessions that came before Run
		_ = w.Add(ctx, dev) // at start only: nothing to deliver yet
	}
	h.mu.Unlock()
	defer w.Close()

	alive := time.NewTicker(AliveTTL / 3)
	defer alive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-w.Changes():
			if !ok {
				return nil
			}
			if c.Property == PropertyResync {
				// The bus dropped changes for this device: send its state
				// as it is now, so every page ends on the latest values.
				h.resync(ctx, c.Device)
				continue
			}
			h.dispatch(c)
		case <-alive.C:
			h.checkAlive(ctx)
		}
	}
}

func (h *Hub) dispatch(c Change) {
	h.mu.Lock()
	wd := h.devices[c.Device]
	if wd == nil {
		h.mu.Unlock()
		return
	}
	if c.Property == PropertyState {
		var st string
		_ = json.Unmarshal(c.Value, &st)
		wd.online = st == StateReady
	}
	subs := make([]*Subscription, 0, len(wd.subs))
	for s := range wd.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	c.msg = &sharedMessage{} // every subscriber's page gets the same bytes
	for _, s := range subs {
		s.deliver(c)
	}
}

// resync delivers a device's whole current state as changes.
func (h *Hub) resync(ctx context.Context, device string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	state, online, err := h.bus.Snapshot(ctx, device)
	if err != nil {
		h.log.Warn("resync failed", "device", device, "err", err)
		return
	}
	now := time.Now()
	for prop, v := range state {
		h.dispatch(Change{Device: device, Property: prop, Value: v, TS: now})
	}
	st := StateLost
	if online {
		st = StateReady
	}
	v, _ := json.Marshal(st)
	h.dispatch(Change{Device: device, Property: PropertyState, Value: v, TS: now})
}

// checkAlive turns devices whose alive key expired into lost ones.
func (h *Hub) checkAlive(ctx context.Context) {
	h.mu.Lock()
	var devs []string
	for d, wd := range h.devices {
		if wd.online {
			devs = append(devs, d)
		}
	}
	h.mu.Unlock()
	for _, d := range devs {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, online, err := h.bus.Snapshot(ctx, d)
		cancel()
		if err == nil && !online {
			v, _ := json.Marshal(StateLost)
			h.dispatch(Change{Device: d, Property: "$state", Value: v, TS: time.Now()})
		}
	}
}

// Subscribe registers deliver for the device's changes and returns the
// device's state and liveness as of the subscription: changes after it are
// delivered, so nothing falls between snapshot and stream. The bus is asked
// outside the hub's lock, so a slow subscription never holds up deliveries.
func (h *Hub) Subscribe(ctx context.Context, device string, deliver func(Change)) (*Subscription, map[string]json.RawMessage, bool, error) {
	sub := &Subscription{device: device, deliver: deliver}
	h.mu.Lock()
	wd := h.devices[device]
	first := wd == nil
	if first {
		wd = &watched{subs: make(map[*Subscription]struct{}), ready: make(chan struct{})}
		h.devices[device] = wd
	}
	wd.subs[sub] = struct{}{}
	w := h.w // nil before Run: Run adds the devices it finds
	h.mu.Unlock()

	if first {
		if w != nil {
			wd.err = w.Add(ctx, device)
		}
		close(wd.ready)
	}
	<-wd.ready
	if wd.err != nil {
		h.Unsubscribe(sub)
		return nil, nil, false, wd.err
	}
	state, online, err := h.bus.Snapshot(ctx, device)
	if err != nil {
		h.Unsubscribe(sub)
		return nil, nil, false, err
	}
	h.mu.Lock()
	wd.online = online
	h.mu.Unlock()
	return sub, state, online, nil
}

// Unsubscribe ends a subscription; the last one of a device ends the
// instance's interest in it. It is called only once the subscription's
// device is ready (Subscribe returned).
func (h *Hub) Unsubscribe(sub *Subscription) {
	h.mu.Lock()
	wd := h.devices[sub.device]
	if wd == nil {
		h.mu.Unlock()
		return
	}
	delete(wd.subs, sub)
	last := len(wd.subs) == 0
	if last {
		delete(h.devices, sub.device)
	}
	w := h.w
	h.mu.Unlock()
	// Adds and Removes are counted by the watcher, so this Remove, outside
	// the lock, may cross a new Subscribe's Add for the same device.
	if last && w != nil && wd.err == nil {
		_ = w.Remove(context.Background(), sub.device)
	}
}

// Online reports whether a watched device is online.
func (h *Hub) Online(device string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	wd := h.devices[device]
	return wd != nil && wd.online
}

// Snapshot returns a device's current state from the bus.
func (h *Hub) Snapshot(ctx context.Context, device string) (map[string]json.RawMessage, bool, error) {
	return h.bus.Snapshot(ctx, device)
}

// Send hands a command to the device, unless it is offline.
func (h *Hub) Send(ctx context.Context, device string, cmd Command) error {
	if !h.Online(device) {
		return ErrDeviceOffline
	}
	return h.bus.Send(ctx, device, cmd)
}
