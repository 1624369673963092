//go:build !race

package gateway_test

import (
	"fmt"
	"runtime"
	"testing"
)

// TestIdleSessionStack: an idle device page's goroutine keeps the smallest
// stack, 2 KiB, after its opening and after a command (wsSession.read);
// at 4 KiB the 12 KiB a session would not hold. The race detector
// makes every stack larger, so this runs in normal builds only.
func TestIdleSessionStack(t *testing.T) {
	const n = 1000
	e := &wsEnv{}
	e.rdb = startRedis(t)
	e.ring = testRing(t)
	e.in = startGateway(t, e.rdb, e.ring)
	e.owner = newTenant(t, e.in, "stack")
	startFleet(t, e.rdb, e.in)
	d := e.owner.device(t, switchBody)
	l := e.owner.link(t, map[string]any{"device": d.ID, "permissions": map[string]any{"control": []string{"switch/on"}}})
	awaitOnline(t, e.in, l.Token)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		p := openPage(t, e.in, l.Token)
		p.await("hello", isType("hello"))
		// A command the session answers itself: one that reaches the
		// device would send every page the new state, and the writers'
		// ended goroutines would keep stacks the measure counts.
		id := fmt.Sprint("c", i)
		p.set(id, "switch/nope", true)
		if code := p.ack(id); code != "unknown-property" {
			t.Fatalf("set: %q", code)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.StackInuse-before.StackInuse) / n
	t.Logf("goroutine stacks: %.0f bytes a session", per)
	if per > 3<<10 {
		t.Errorf("goroutine stacks: %.0f bytes a session, want about 2 KiB", per)
	}
}
