package loadtest_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/loadtest"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/tokens/redistest"
)

// wsEnv is a real redis-server, a device fleet and two gateway instances
// on it, serving on loopback.
type wsEnv struct {
	urls   []string
	apiKey string
}

func startWSEnv(t *testing.T) wsEnv {
	t.Helper()
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	keys, err := tokens.ParseKeys("1:" + tokens.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := tokens.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var env wsEnv
	var first *gateway.Server
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + ln.Addr().String()
		srv, err := gateway.New(gateway.Config{Keys: ring, PublicURL: base, Logger: quiet,
			Feed: tokens.FeedConfig{Block: 200 * time.Millisecond, Backoff: 50 * time.Millisecond}}, rdb)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-srv.Feed().Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("feed never ready")
		}
		env.urls = append(env.urls, base)
		if first == nil {
			first = srv
		}
	}
	_, key, err := first.Owners().Create(context.Background(), "loadtest")
	if err != nil {
		t.Fatal(err)
	}
	env.apiKey = key
	ctx, cancel := context.WithCancel(context.Background())
	fleet := emulator.NewFleet(emulator.NewBus(rdb), emulator.NewStore(rdb), emulator.FleetOptions{
		Rescan: 50 * time.Millisecond, Logger: quiet, Sim: emulator.SimOptions{Tick: 50 * time.Millisecond},
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = fleet.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return env
}

// TestSocketsEndToEnd: sessions open, send commands and get their acks and
// echoes; then, in the revocation mode over two instances, disabling the
// links closes every session with "disabled", and new opens are refused.
func TestSocketsEndToEnd(t *testing.T) {
	env := startWSEnv(t)
	ctx := context.Background()

	sc, err := loadtest.NewSockets(loadtest.SocketsConfig{APIKey: env.apiKey, LinkCount: 3, Devices: 6, Rate: 5, Settle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := loadtest.Run(ctx, loadtest.Config{Target: env.urls[0], Connections: 6, Duration: 2 * time.Second}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["session ok"] != 6 || r.Info["sessions_opened"] != 6 {
		t.Errorf("sessions: %v, info %v; want 6 opened", r.Counts, r.Info)
	}
	if r.Counts["ack ok"] < 6*5 || r.Metrics["command"].Count != r.Counts["ack ok"] {
		t.Errorf("acks: counts %v, command %+v; want at least 30, each timed", r.Counts, r.Metrics["command"])
	}
	for _, m := range []string{"handshake", "connect", "echo", "delivery"} {
		if r.Metrics[m].Count == 0 {
			t.Errorf("no %s measured: %v", m, r.Metrics)
		}
	}
	for k, v := range r.Counts {
		if len(k) > 5 && k[:5] == "error" || k == "ack device-offline" {
			t.Errorf("%s: %d", k, v)
		}
	}
	if _, ok := r.Info["rss_per_session_kib"]; !ok {
		t.Errorf("memory not sampled: %v", r.Info)
	}

	// The revocation, over both instances, the two disables 50 ms apart.
	var ready bool
	r, err = loadtest.RunRevocation(ctx, loadtest.Config{Target: env.urls[0], Connections: 8, Duration: time.Minute},
		loadtest.SocketsConfig{APIKey: env.apiKey, LinkCount: 2, Instances: env.urls[1:], Settle: 100 * time.Millisecond, RevokeRate: 20,
			Ready: func(opened, failed int) { ready = opened == 8 && failed == 0 }})
	if err != nil {
		t.Fatal(err)
	}
	if !ready {
		t.Error("Ready was not called with 8 sessions opened")
	}
	if r.Counts["close 4001 disabled"] != 8 || r.Counts["unclosed"] != 0 || r.Metrics["revoke"].Count != 8 {
		t.Errorf("closes: counts %v, revoke %+v; want 8 closed with 4001 disabled", r.Counts, r.Metrics["revoke"])
	}
	if r.Counts["refused 410"] != 4 || r.Metrics["refuse"].Count != 4 || r.Metrics["disable"].Count != 2 {
		t.Errorf("refusals: counts %v, metrics %v; want 2 links x 2 instances refused", r.Counts, r.Metrics)
	}
	if r.Counts["open after-disable"] != 0 {
		t.Errorf("%d opens succeeded after their link's disable returned", r.Counts["open after-disable"])
	}
	for _, k := range []string{"feed_lag_p99_ms", "relink_p99_ms", "close_write_p99_ms"} {
		if _, ok := r.Info[k]; !ok {
			t.Errorf("no %s from the gateways' metrics: %v", k, r.Info)
		}
	}
}
