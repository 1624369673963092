package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway"
)

// switchBody is a device with one switch and no telemetry of its own, so
// that benchmarks see only the traffic they cause.
var switchBody = map[string]any{
	"name": "Bench switch", "type": "switch",
	"nodes": []any{map[string]any{"id": "switch", "name": "Switch", "properties": []any{
		map[string]any{"id": "on", "name": "On", "datatype": "boolean", "settable": true},
	}}},
}

func reportLatency(b *testing.B, name string, h *hdrhistogram.Histogram) {
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1e3, name+"-p50-µs")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1e3, name+"-p99-µs")
}

// BenchmarkCommandRoundTrip sends commands at 1,000/s through a real socket
// and measures set → ack and set → state echo (the simulated device answers
// over the Redis bus).
func BenchmarkCommandRoundTrip(b *testing.B) {
	e := newBenchEnv(b)
	d := e.owner.device(b, switchBody)
	l := e.owner.link(b, map[string]any{"device": d.ID, "permissions": map[string]any{"control": []string{"switch/on"}}})
	p := awaitOnline(b, e.in, l.Token)

	acks := hdrhistogram.New(1, int64(time.Second), 3)
	echoes := hdrhistogram.New(1, int64(time.Second), 3)
	tick := time.NewTicker(time.Millisecond) // 1,000 commands a second
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		<-tick.C
		id, v := fmt.Sprint(i), i%2 == 0
		start := time.Now()
		p.set(id, "switch/on", v)
		for acked, echoed := false, false; !acked || !echoed; {
			m, err := p.next(5 * time.Second)
			if err != nil {
				b.Fatal(err)
			}
			switch {
			case m["type"] == "ack" && m["id"] == id:
				if m["ok"] != true {
					b.Fatalf("ack: %v", m)
				}
				acked = true
				_ = acks.RecordValue(int64(time.Since(start)))
			case m["type"] == "state" && m["value"] == v && !echoed:
				echoed = true
				_ = echoes.RecordValue(int64(time.Since(start)))
			}
		}
	}
	reportLatency(b, "ack", acks)
	reportLatency(b, "echo", echoes)
}

// BenchmarkFanOut: one device, 1,000 open pages watching it; each op is one
// state change published by the device, timed until every page has it.
func BenchmarkFanOut(b *testing.B) {
	const pages = 1000
	e := newBenchEnv(b)
	d := e.owner.device(b, switchBody)
	l := e.owner.link(b, map[string]any{"device": d.ID, "permissions": map[string]any{"view": []string{"switch/on"}}})
	awaitOnline(b, e.in, l.Token)

	var wg sync.WaitGroup
	got := make(chan time.Time, pages*4)
	for range pages {
		p := openPage(b, e.in, l.Token)
		p.await("hello", isType("hello"))
		wg.Go(func() {
			for {
				m, err := p.next(time.Minute)
				if err != nil {
					return
				}
				if m["type"] == "state" {
					got <- time.Now()
				}
			}
		})
	}
	bus := emulator.NewBus(e.rdb)
	last := hdrhistogram.New(1, int64(10*time.Second), 3)
	each := hdrhistogram.New(1, int64(10*time.Second), 3)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		v, _ := json.Marshal(i%2 == 0)
		start := time.Now()
		if err := bus.Publish(context.Background(), d.ID, emulator.Change{Property: "switch/on", Value: v, TS: start}); err != nil {
			b.Fatal(err)
		}
		var at time.Time
		for range pages {
			at = <-got
			_ = each.RecordValue(int64(at.Sub(start)))
		}
		_ = last.RecordValue(int64(at.Sub(start)))
	}
	b.StopTimer()
	reportLatency(b, "all-pages", last)
	reportLatency(b, "each-page", each)
}

func newBenchEnv(b *testing.B) *wsEnv {
	e := &wsEnv{}
	e.rdb = startRedis(b)
	e.ring = testRing(b)
	e.in = startGateway(b, e.rdb, e.ring, func(c *gateway.Config) {
		c.WS.Commands = emulator.SessionLimits{Commands: 1e6, Burst: 1e6}
		c.WS.SendQueue = 4096
	})
	e.owner = newTenant(b, e.in, "bench")
	startFleet(b, e.rdb, e.in)
	return e
}

// awaitOnline opens pages until one sees the device online, and returns it.
func awaitOnline(tb testing.TB, in *instance, token string) *page {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := openPage(tb, in, token)
		if h := p.await("hello", isType("hello")); h["online"] == true {
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatal("device never online")
		}
		p.conn.Close()
		time.Sleep(50 * time.Millisecond)
	}
}
