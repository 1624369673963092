package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/tokens"
)

// testRing is a key ring for tests; every instance of one test shares it.
func testRing(t testing.TB) *tokens.KeyRing {
	t.Helper()
	keys, err := tokens.ParseKeys("7:" + tokens.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := tokens.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// instance is one gateway serving on a loopback port.
type instance struct {
	*gateway.Server
	url string
}

// startGateway serves a gateway on rdb, on a free loopback port, until the
// test ends, and waits until its feed follows the stream.
func startGateway(t testing.TB, rdb redis.UniversalClient, ring *tokens.KeyRing, tweak ...func(*gateway.Config)) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in, _ := serveGateway(t, rdb, ring, ln, tweak...)
	return in
}

// serveGateway serves a gateway on ln until the test ends, waits until its
// feed follows the stream, and returns a func that shuts it down earlier
// (sessions get "server-shutdown") and waits.
func serveGateway(t testing.TB, rdb redis.UniversalClient, ring *tokens.KeyRing, ln net.Listener, tweak ...func(*gateway.Config)) (*instance, func()) {
	t.Helper()
	base := "http://" + ln.Addr().String()
	cfg := gateway.Config{
		Keys:      ring,
		PublicURL: base,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Tests open many links from one IP; the rate limit tests set their own.
		FailedOpens: gateway.RateLimit{Rate: 1e6, Burst: 1e6},
		Sessions:    gateway.RateLimit{Rate: 1e6, Burst: 1e6},
		Feed:        tokens.FeedConfig{Block: 200 * time.Millisecond, Backoff: 50 * time.Millisecond},
	}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := gateway.New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(stop)
	select {
	case <-srv.Feed().Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("feed never became ready")
	}
	return &instance{Server: srv, url: base}, stop
}

// answer is an HTTP response with its body read.
type answer struct {
	*http.Response
	body []byte
}

// json decodes the body into v, failing the test if it is not JSON.
func (a answer) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("%s %s: body is not JSON (%v): %s", a.Request.Method, a.Request.URL.Path, err, a.body)
	}
}

// errorCode returns error.code of a JSON error body.
func (a answer) errorCode(t testing.TB) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	a.json(t, &e)
	if e.Error.Message == "" {
		t.Errorf("error without message: %s", a.body)
	}
	return e.Error.Code
}

var client = &http.Client{Timeout: 10 * time.Second}

// call sends a request; body is JSON-encoded unless it is a string or nil.
func call(t testing.TB, method, url, apiKey string, body any, header ...string) answer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{Response: resp, body: data}
}

// want fails the test unless the answer has the status.
func want(t testing.TB, a answer, status int) answer {
	t.Helper()
	if a.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body: %.500s", a.Request.Method, a.Request.URL.Path, a.StatusCode, status, a.body)
	}
	return a
}

// wantError fails the test unless the answer is the JSON error status/code.
func wantError(t testing.TB, a answer, status int, code string) {
	t.Helper()
	want(t, a, status)
	if got := a.errorCode(t); got != code {
		t.Fatalf("%s %s: error code %q, want %q; body: %s", a.Request.Method, a.Request.URL.Path, got, code, a.body)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}
