package emulator

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens/redistest"
)

// runFleet runs a fleet until the test ends, and checks that it stops
// cleanly.
func runFleet(t *testing.T, rdb redis.UniversalClient, owner string) *Fleet {
	t.Helper()
	f := NewFleet(NewBus(rdb), NewStore(rdb), FleetOptions{
		Owner:  owner,
		Rescan: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Sim:    fastSim,
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Fleet.Run = %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Fleet.Run still running %v after its context ended", waitTimeout)
		}
	})
	return f
}

func waitRunning(t *testing.T, f *Fleet, want ...string) {
	t.Helper()
	slices.Sort(want)
	waitFor(t, fmt.Sprintf("fleet running %v", want), func() bool {
		return slices.Equal(f.Running(), want)
	})
}

func TestFleet(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	store, b := NewStore(rdb), NewBus(rdb)
	ctx := t.Context()
	plug := create(t, store, ownerA, 0)
	other := create(t, store, ownerB, 1)
	cam := &Device{Owner: ownerA, Name: "Porch camera", Type: TypeCamera, RTSP: &RTSPSource{URL: "rtsp://cam.example/live"}}
	if err := store.Create(ctx, cam); err != nil {
		t.Fatal(err)
	}
	w := b.Watch(ctx)
	defer w.Close()

	// One owner's fleet runs that owner's devices only.
	mine := runFleet(t, rdb, ownerA)
	waitRunning(t, mine, plug.ID)

	// The fleet of all runs every device but the camera without nodes.
	all := runFleet(t, rdb, "")
	waitRunning(t, all, plug.ID, other.ID)
	for _, d := range []*Device{plug, other} {
		waitOnline(t, b, d.ID, true)
		state, _, err := b.Snapshot(ctx, d.ID)
		if err != nil || len(state) != len(d.PropertyPaths()) {
			t.Fatalf("Snapshot(%s) = %s, %v; want every property", d.ID, state, err)
		}
	}

	// A device created after the start is found.
	lock := create(t, store, ownerB, 5)
	waitRunning(t, all, plug.ID, other.ID, lock.ID)
	waitOnline(t, b, lock.ID, true)

	// A changed description restarts the device's Sim, which resumes its
	// state.
	if err := w.Add(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(ctx, other.ID, Command{ID: "c", Property: "light/brightness", Value: raw(`30`)}); err != nil {
		t.Fatal(err)
	}
	nextChange(t, w, "brightness 30", changeOf(other.ID, "light/brightness", `30`))
	if _, err := store.Update(ctx, ownerB, other.ID, func(d *Device) error {
		d.Name = "Renamed light"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nextChange(t, w, "the old Sim stopping", changeOf(other.ID, PropertyState, `"disconnected"`))
	nextChange(t, w, "the new Sim ready", changeOf(other.ID, PropertyState, `"ready"`))
	if state, _, _ := b.Snapshot(ctx, other.ID); string(state["light/brightness"]) != `30` {
		t.Fatalf("brightness after the restart = %s, want 30", state["light/brightness"])
	}

	// A deleted device is stopped and goes offline.
	if err := store.Delete(ctx, ownerB, other.ID); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, all, plug.ID, lock.ID)
	waitOnline(t, b, other.ID, false)
	if got := all.Stats(); got.Applied != 1 {
		t.Fatalf("fleet stats %+v, want the one command applied", got)
	}
}

// testFleetCluster runs a fleet of all devices on a Redis Cluster, whose
// keyspace is scanned master by master.
func testFleetCluster(t *testing.T, cc *redis.ClusterClient) {
	store := NewStore(cc)
	var ids []string
	for i := range 6 {
		ids = append(ids, create(t, store, ownerA, i).ID)
	}
	f := runFleet(t, cc, "")
	waitRunning(t, f, ids...)
	b := NewBus(cc)
	for _, id := range ids {
		waitOnline(t, b, id, true)
	}
}
