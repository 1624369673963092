package gateway_test

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/linkgate/linkgate/gateway"
)

// BenchmarkIdleSessions opens 2,000 idle device pages (each op is the whole
// batch) and reports the live heap, the goroutine stacks and the
// goroutines per session, after a GC, with the default WSConfig. The
// clients live in the same process and count in the heap too (their
// buffers, about 10.5 KiB a page; they hold no goroutine, so the stacks
// and goroutines are the gateway's); with WS_HEAP_PROFILE=FILE a heap
// profile (inuse_space) is
// written while the pages are open, to read the gateway's part by function.
// loadtest/bench-ws.sh measures the RSS of a gateway process.
func BenchmarkIdleSessions(b *testing.B) {
	const n = 2000
	runtime.MemProfileRate = 4096
	defer func() { runtime.MemProfileRate = 512 * 1024 }()
	e := &wsEnv{}
	e.rdb = startRedis(b)
	e.ring = testRing(b)
	e.in = startGateway(b, e.rdb, e.ring, func(c *gateway.Config) { c.WS = gateway.WSConfig{} })
	e.owner = newTenant(b, e.in, "bench")
	startFleet(b, e.rdb, e.in)
	d := e.owner.device(b, switchBody)
	l := e.owner.link(b, map[string]any{"device": d.ID, "permissions": map[string]any{"control": []string{"switch/on"}}})
	awaitOnline(b, e.in, l.Token)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		pages := make([]*page, n)
		for i := range pages {
			pages[i] = openPage(b, e.in, l.Token)
			pages[i].await("hello", isType("hello"))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n/1024, "heap-KiB/session")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n/1024, "stack-KiB/session")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/session")
		if f := os.Getenv("WS_HEAP_PROFILE"); f != "" {
			out, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			_ = pprof.Lookup("heap").WriteTo(out, 0)
			out.Close()
		}
	}
}
