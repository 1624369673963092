package loadtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/tokens/redistest"
	"github.com/linkgate/linkgate/web"
)

// testEdge is a gateway on a real redis-server, on a loopback port, with an
// owner and its API key.
type testEdge struct {
	url, redisURL, apiKey string
	rdb                   *redis.Client
}

// startEdge serves a gateway until the test ends; tweak adjusts its config.
func startEdge(t *testing.T, tweak func(*gateway.Config)) *testEdge {
	t.Helper()
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { rdb.Close() })
	keys, err := tokens.ParseKeys("5:" + tokens.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := tokens.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg := gateway.Config{
		Keys:      ring,
		PublicURL: base,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Feed:      tokens.FeedConfig{Block: 200 * time.Millisecond, Backoff: 50 * time.Millisecond},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := gateway.New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-srv.Feed().Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("feed never became ready")
	}
	_, key, err := srv.Owners().Create(t.Context(), "loadtest")
	if err != nil {
		t.Fatal(err)
	}
	return &testEdge{url: base, redisURL: "redis://" + rs.Addr, apiKey: key, rdb: rdb}
}

// noLimits lifts the per-IP limits, so that every kind gets its own status.
func noLimits(c *gateway.Config) {
	c.FailedOpens = gateway.RateLimit{Rate: 1e6, Burst: 1e6}
	c.Sessions = gateway.RateLimit{Rate: 1e6, Burst: 1e6}
}

// TestOpensEndToEnd: minted links of every kind, each answered with its
// status; a warm cache answers valid opens and refusals without Redis; what
// Prepare made is gone after the run.
func TestOpensEndToEnd(t *testing.T) {
	edge := startEdge(t, noLimits)
	sc, err := NewOpens(OpensConfig{Mix: Mix{Valid: 4, Forged: 2, Expired: 1, Disabled: 1}, APIKey: edge.apiKey, RedisURL: edge.redisURL})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(t.Context(), Config{Target: edge.url, Connections: 4, Count: 800}, sc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"ok valid": 400, "ok forged": 200, "ok expired": 100, "ok disabled": 100, "status 200": 400, "status 404": 200, "status 410": 200}
	for k, n := range want {
		if r.Counts[k] != n {
			t.Errorf("%s: %d, want %d (counts %v)", k, r.Counts[k], n, r.Counts)
		}
	}
	for k, n := range r.Counts {
		if _, ok := want[k]; !ok && n != 0 {
			t.Errorf("unexpected count %q: %d", k, n)
		}
	}
	for _, m := range []string{"latency", "latency valid", "latency forged", "latency expired", "latency disabled"} {
		if r.Metrics[m].Count == 0 {
			t.Errorf("no %s samples: %v", m, r.Metrics)
		}
	}
	if calls, ok := r.Info["redis calls"]; !ok || calls != 0 {
		t.Errorf("redis calls %v (present %v), want 0 with a warm cache; info %v", calls, ok, r.Info)
	}
	if r.BytesIn == 0 || r.BytesOut == 0 {
		t.Errorf("bytes in %d out %d", r.BytesIn, r.BytesOut)
	}
	// Finish deleted the links and the device.
	if n, err := edge.rdb.Keys(t.Context(), "lg:link:*").Result(); err != nil || len(n) != 0 {
		t.Errorf("links left after the run: %v, %v", n, err)
	}
	if n, err := edge.rdb.Keys(t.Context(), "lg:dev:*").Result(); err != nil || len(n) != 0 {
		t.Errorf("devices left after the run: %v, %v", n, err)
	}
}

// TestOpensGivenTokens: tokens given without an API key, as link URLs; at
// the gateway's default limits, refusals past the per-IP burst are 429s,
// counted as "limited", and no answer is unexpected. Forged opens make no
// Redis call even on a cold cache.
func TestOpensGivenTokens(t *testing.T) {
	edge := startEdge(t, nil)
	api := ownerClient(edge)
	var toks Tokens
	m, err := mint(t.Context(), api, &toks, []Kind{Valid, Disabled})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.remove(context.Background()) })
	toks.Valid = edge.url + "/l/" + toks.Valid
	sc, err := NewOpens(OpensConfig{Mix: Mix{Forged: 1}, Tokens: toks, RedisURL: edge.redisURL, SameSource: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(t.Context(), Config{Target: edge.url, Connections: 2, Count: 300}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if ok, lim := r.Counts["ok forged"], r.Counts["limited forged"]; ok+lim != 300 || lim == 0 || ok > 25 {
		t.Errorf("forged: %d ok, %d limited; want 300 in all, most limited (burst 20); counts %v", ok, lim, r.Counts)
	}
	if r.Info["redis calls"] != 0 {
		t.Errorf("redis calls %v, want 0 for forged tokens; info %v", r.Info["redis calls"], r.Info)
	}

	// Spread over source addresses, the disabled link's refusals stay
	// below each address's limit (burst 20). Rotate bounds each address to
	// 4 requests: without it, on a busy machine one worker may take more
	// than its share of the 80 and pass 20 refusals from one address.
	sc, err = NewOpens(OpensConfig{Mix: Mix{Valid: 1, Disabled: 1}, Tokens: toks, Rotate: 4})
	if err != nil {
		t.Fatal(err)
	}
	r, err = Run(t.Context(), Config{Target: edge.url, Connections: 8, Count: 80}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["ok valid"] != 40 || r.Counts["ok disabled"] != 40 {
		t.Errorf("counts %v, want 40 ok of each", r.Counts)
	}
}

// TestSessionsEndToEnd: every exchange gets a session cookie, and each
// writes to Redis (the use count and the access log).
func TestSessionsEndToEnd(t *testing.T) {
	edge := startEdge(t, noLimits)
	sc, err := NewSessions(SessionsConfig{APIKey: edge.apiKey, RedisURL: edge.redisURL, Origin: edge.url})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(t.Context(), Config{Target: edge.url, Connections: 4, Count: 200}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["ok session"] != 200 || r.Counts["status 200"] != 200 || len(r.Counts) != 2 {
		t.Errorf("counts %v, want 200 sessions", r.Counts)
	}
	if r.Info["redis calls per 1000 ops"] < 1000 {
		t.Errorf("redis calls per 1000 sessions %v, want at least one a session; info %v", r.Info["redis calls per 1000 ops"], r.Info)
	}
}

// TestSessionsRotate: at the gateway's default session limit (burst 10 per
// IP), workers that move to a fresh address every 10 exchanges are never
// refused.
func TestSessionsRotate(t *testing.T) {
	edge := startEdge(t, nil)
	sc, err := NewSessions(SessionsConfig{APIKey: edge.apiKey, Rotate: 10})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(t.Context(), Config{Target: edge.url, Connections: 3, Count: 90}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["ok session"] != 90 {
		t.Errorf("counts %v, want 90 sessions", r.Counts)
	}
}

// TestBaseline: the baseline server answers the baseline scenario.
func TestBaseline(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- ServeBaseline(ctx, "127.0.0.1:0", nil, func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	sc, err := NewBaseline(BaselineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(t.Context(), Config{Target: "http://" + addr.String(), Connections: 4, Count: 400}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts["ok baseline"] != 400 {
		t.Errorf("counts %v", r.Counts)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/l/x")
	if err == nil {
		resp.Body.Close()
		t.Fatal("baseline still serving after its context ended")
	}
}

func ownerClient(e *testEdge) *ownerapi.Client {
	return &ownerapi.Client{BaseURL: e.url, APIKey: e.apiKey}
}

// TestBaselineLikeForLike: the baseline server answers as the gateway
// answers a valid device link's open, header for header (but the date) and
// byte for byte, so that the opens benchmark compares like with like.
func TestBaselineLikeForLike(t *testing.T) {
	edge := startEdge(t, nil)
	var toks Tokens
	m, err := mint(t.Context(), ownerClient(edge), &toks, []Kind{Valid})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.remove(context.Background()) })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	go func() { _ = ServeBaseline(ctx, "127.0.0.1:0", web.LinkPage("device"), func(a net.Addr) { addrc <- a }) }()
	base := "http://" + (<-addrc).String()

	raw := func(url string) (http.Header, []byte) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		resp.Header.Del("Date")
		return resp.Header, body
	}
	gwHeader, gwBody := raw(edge.url + "/l/" + toks.Valid)
	bareHeader, bareBody := raw(base + "/l/" + toks.Valid)
	if !reflect.DeepEqual(gwHeader, bareHeader) {
		t.Errorf("headers differ:\ngateway  %v\nbaseline %v", gwHeader, bareHeader)
	}
	if !bytes.Equal(gwBody, bareBody) {
		t.Errorf("bodies differ: gateway %d bytes, baseline %d", len(gwBody), len(bareBody))
	}
}
