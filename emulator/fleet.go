package emulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// FleetOptions configure a Fleet. The zero value runs every device.
type FleetOptions struct {
	// Owner limits the fleet to one owner's devices. Empty means every
	// device of every owner, found by scanning the keyspace: fine for a
	// demo or a test, costly on a big shared Redis.
	Owner string
	// Rescan is how often the fleet looks for new, changed and deleted
	// devices. It defaults to 5 s.
	Rescan time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Sim configures each device. If Sim.Rand is set, each Sim gets its
	// own source seeded from it, so a fleet is deterministic too. Sims log
	// to Logger; Sim.Logger is ignored.
	Sim SimOptions
}

const (
	defaultRescan = 5 * time.Second
	// scanCount is the COUNT hint of the discovery SCAN, and the number of
	// records read per pipeline.
	scanCount = 500
	// listPage is the page size of the discovery by owner.
	listPage = 200
)

// Fleet runs a simulated device (a Sim) for every device of the store, or
// of one owner: it starts Sims for new devices, stops those of deleted
// ones, restarts a Sim whose device's description changed (its Version),
// and restarts one that ended with an error. Cameras without nodes have
// nothing to simulate and are skipped. Two fleets over the same devices do
// not fight: each device is served by one, and the other's Sim waits as a
// hot standby (see Bus.Serve).
type Fleet struct {
	bus      *Bus
	store    *Store
	opts     FleetOptions
	log      *slog.Logger
	counters *simCounters
	corrupt  map[string]bool // ids of corrupt records, logged once; owned by Run's goroutine
	started  atomic.Bool

	mu      sync.Mutex // guards running, the ids Run's goroutine keeps Sims for
	running []string
}

// fleetSim is one running Sim, as Run's goroutine keeps it.
type fleetSim struct {
	version int64
	cancel  context.CancelFunc
	done    chan struct{} // closed when the Sim's Run has returned
	err     error         // Run's result, set before done closes
}

// NewFleet returns a fleet of the devices in devices, on bus.
func NewFleet(bus *Bus, devices *Store, opts FleetOptions) *Fleet {
	if opts.Rescan <= 0 {
		opts.Rescan = defaultRescan
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Fleet{
		bus:      bus,
		store:    devices,
		opts:     opts,
		log:      opts.Logger.With("component", "fleet"),
		counters: new(simCounters),
		corrupt:  make(map[string]bool),
	}
}

// Running returns the ids of the devices the fleet runs, sorted.
func (f *Fleet) Running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.running)
}

// Stats returns the counters of all the fleet's Sims, past and present.
func (f *Fleet) Stats() SimStats { return f.counters.stats() }

// Run runs the fleet until ctx ends, then stops every Sim, taking its
// device offline, and returns nil. It may be called once. A failed
// discovery is logged and retried at the next rescan; the running Sims go
// on meanwhile.
func (f *Fleet) Run(ctx context.Context) error {
	if f.started.Swap(true) {
		return errors.New("emulator: Fleet.Run called twice")
	}
	sims := make(map[string]*fleetSim)
	defer func() {
		f.stop(sims, slices.Collect(maps.Keys(sims)))
		f.setRunning(sims)
	}()
	t := time.NewTicker(f.opts.Rescan)
	defer t.Stop()
	failing := false
	for {
		devs, err := f.discover(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !failing {
				f.log.Warn("fleet: discovery failed; retrying", "err", err)
			}
			failing = true
		default:
			if failing {
				f.log.Info("fleet: discovery works again")
			}
			failing = false
			f.reconcile(ctx, sims, devs)
			f.setRunning(sims)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reconcile stops the Sims of devices gone, changed or ended, and starts
// Sims for the devices without one.
func (f *Fleet) reconcile(ctx context.Context, sims map[string]*fleetSim, devs map[string]*Device) {
	var stale []string
	for id, s := range sims {
		d := devs[id]
		select {
		case <-s.done:
			if s.err != nil {
				f.log.Warn("fleet: device sim ended; restarting", "device", id, "err", s.err)
			}
			stale = append(stale, id)
			continue
		default:
		}
		if d == nil || d.Version != s.version {
			stale = append(stale, id)
		}
	}
	f.stop(sims, stale)
	for _, id := range slices.Sorted(maps.Keys(devs)) {
		d := devs[id]
		if _, ok := sims[id]; ok || (d.Type == TypeCamera && len(d.Nodes) == 0) {
			continue
		}
		sims[id] = f.start(ctx, d)
	}
}

// start runs a Sim of d in a goroutine of its own.
func (f *Fleet) start(ctx context.Context, d *Device) *fleetSim {
	opts := f.opts.Sim
	if opts.Rand != nil { // used by Run's goroutine only
		opts.Rand = rand.New(rand.NewPCG(opts.Rand.Uint64(), opts.Rand.Uint64()))
	}
	opts.Logger = f.log
	sim := newSim(d, f.bus, opts, f.counters)
	ctx, cancel := context.WithCancel(ctx)
	s := &fleetSim{version: d.Version, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = sim.Run(ctx)
	}()
	f.log.Info("fleet: device sim started", "device", d.ID, "type", d.Type, "version", d.Version)
	return s
}

// stop stops the Sims of ids and waits until each has taken its device
// offline, so that a new Sim of the same device finds its alive key free.
func (f *Fleet) stop(sims map[string]*fleetSim, ids []string) {
	for _, id := range ids {
		sims[id].cancel()
	}
	for _, id := range ids {
		<-sims[id].done
		delete(sims, id)
		f.log.Info("fleet: device sim stopped", "device", id)
	}
}

func (f *Fleet) setRunning(sims map[string]*fleetSim) {
	ids := slices.Sorted(maps.Keys(sims))
	f.mu.Lock()
	f.running = ids
	f.mu.Unlock()
}

// discover returns the devices to run, by id.
func (f *Fleet) discover(ctx context.Context) (map[string]*Device, error) {
	if f.opts.Owner != "" {
		return f.listOwner(ctx)
	}
	return f.scanAll(ctx)
}

// listOwner pages through the owner's devices.
func (f *Fleet) listOwner(ctx context.Context) (map[string]*Device, error) {
	devs := make(map[string]*Device)
	cursor := ""
	for {
		items, next, err := f.store.List(ctx, f.opts.Owner, cursor, listPage)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		for _, d := range items {
			devs[d.ID] = d
		}
		if next == "" {
			return devs, nil
		}
		cursor = next
	}
}

// scanAll finds every device record by scanning for its key, on each
// master of a Cluster, and reads the records.
func (f *Fleet) scanAll(ctx context.Context) (map[string]*Device, error) {
	var mu sync.Mutex // guards ids: ForEachMaster scans the masters at once
	var ids []string
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		it := c.Scan(ctx, 0, deviceKeyPrefix+"{*", scanCount).Iterator()
		for it.Next(ctx) {
			id := strings.TrimPrefix(it.Val(), deviceKeyPrefix+"{") // the SCAN pattern guarantees the prefix
			if id, ok := strings.CutSuffix(id, "}"); ok && validID(id) {
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}
		return it.Err()
	}
	var err error
	if cc, ok := f.store.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, f.store.rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: scan: %w", err)
	}
	devs := make(map[string]*Device, len(ids))
	for chunk := range slices.Chunk(ids, scanCount) {
		if err := f.readDevices(ctx, chunk, devs); err != nil {
			return nil, err
		}
	}
	return devs, nil
}

// readDevices reads the records of ids into devs, in one pipeline; a
// record deleted since the scan is left out, a corrupt one skipped and
// logged once.
func (f *Fleet) readDevices(ctx context.Context, ids []string, devs map[string]*Device) error {
	cmds := make([]*redis.StringCmd, len(ids))
	// The errors are the commands'; a failed one fails the discovery, as
	// taking it for a deleted device would stop its Sim.
	_, _ = f.store.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, deviceKey(id))
		}
		return nil
	})
	for i, cmd := range cmds {
		data, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) { // deleted since the scan
			continue
		}
		if err != nil {
			return fmt.Errorf("fleet: read devices: %w", err)
		}
		d, err := decodeDevice(data)
		if err != nil {
			if !f.corrupt[ids[i]] {
				f.corrupt[ids[i]] = true
				f.log.Warn("fleet: skipping a corrupt device record", "device", ids[i], "err", err)
			}
			continue
		}
		devs[d.ID] = d
	}
	return nil
}
