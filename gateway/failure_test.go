package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/tokens/redistest"
)

// TestRedisDown stops Redis under a running gateway: new opens get a clear
// 503, readiness fails, forged tokens still need no Redis, and everything
// recovers when Redis returns.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	in := startGateway(t, srv.Client(t), testRing(t))
	owner := newTenant(t, in, "owner")
	plug := owner.device(t, plugBody)
	l := owner.link(t, map[string]any{"device": plug.ID})
	want(t, call(t, "GET", l.URL, "", nil), http.StatusOK) // warm
	want(t, call(t, "GET", in.url+"/readyz", "", nil), http.StatusOK)

	srv.Stop(t)
	eventually(t, 10*time.Second, "open answers 503", func() bool {
		return call(t, "GET", l.URL, "", nil).StatusCode == http.StatusServiceUnavailable
	})
	p := call(t, "GET", l.URL, "", nil)
	if !strings.Contains(p.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(p.body), "unavailable") {
		t.Errorf("503 is not a clear page: %s %.300s", p.Header.Get("Content-Type"), p.body)
	}
	if p.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	wantError(t, call(t, "POST", l.URL+"/session", "", nil), http.StatusServiceUnavailable, "unavailable")
	r := want(t, call(t, "GET", in.url+"/readyz", "", nil), http.StatusServiceUnavailable)
	if !strings.Contains(string(r.body), "unavailable") {
		t.Errorf("readyz body: %s", r.body)
	}
	want(t, call(t, "GET", in.url+"/healthz", "", nil), http.StatusOK)
	forged := in.url + "/l/" + strings.Repeat("A", len(l.Token))
	want(t, call(t, "GET", forged, "", nil), http.StatusNotFound)

	srv.Restart(t)
	eventually(t, 15*time.Second, "open recovers", func() bool {
		return call(t, "GET", l.URL, "", nil).StatusCode == http.StatusOK
	})
	eventually(t, 5*time.Second, "readyz recovers", func() bool {
		return call(t, "GET", in.url+"/readyz", "", nil).StatusCode == http.StatusOK
	})
	want(t, call(t, "POST", l.URL+"/session", "", nil), http.StatusOK)
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	in := startGateway(t, redistest.Start(t).Client(t), testRing(t), func(c *gateway.Config) {
		c.FailedOpens = gateway.RateLimit{Rate: 0.01, Burst: 3}
		c.Sessions = gateway.RateLimit{Rate: 0.01, Burst: 2}
	})
	owner := newTenant(t, in, "owner")
	plug := owner.device(t, plugBody)
	l := owner.link(t, map[string]any{"device": plug.ID})

	forged := in.url + "/l/" + strings.Repeat("B", len(l.Token))
	for range 3 {
		want(t, call(t, "GET", forged, "", nil), http.StatusNotFound)
	}
	p := want(t, call(t, "GET", forged, "", nil), http.StatusTooManyRequests)
	if p.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// A valid link still opens: only failures are limited.
	want(t, call(t, "GET", l.URL, "", nil), http.StatusOK)

	want(t, call(t, "POST", l.URL+"/session", "", nil), http.StatusOK)
	want(t, call(t, "POST", l.URL+"/session", "", nil), http.StatusOK)
	wantError(t, call(t, "POST", l.URL+"/session", "", nil), http.StatusTooManyRequests, "rate-limited")
}

func TestTrustedProxy(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ring := testRing(t)
	limited := func(c *gateway.Config) { c.FailedOpens = gateway.RateLimit{Rate: 0.01, Burst: 1} }
	direct := startGateway(t, rdb, ring, limited)
	proxied := startGateway(t, rdb, ring, limited, func(c *gateway.Config) { c.TrustedProxies = []string{"127.0.0.1"} })

	// Behind a trusted proxy each forwarded client has its own budget.
	for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
		want(t, call(t, "GET", proxied.url+"/l/x", "", nil, "X-Forwarded-For", ip), http.StatusNotFound)
	}
	want(t, call(t, "GET", proxied.url+"/l/x", "", nil, "X-Forwarded-For", "203.0.113.1"), http.StatusTooManyRequests)
	// IPv6 clients are counted by /64: one subscriber's addresses share a
	// budget, the next /64 has its own.
	want(t, call(t, "GET", proxied.url+"/l/x", "", nil, "X-Forwarded-For", "2001:db8:1:2::1"), http.StatusNotFound)
	want(t, call(t, "GET", proxied.url+"/l/x", "", nil, "X-Forwarded-For", "2001:db8:1:2:ffff::7"), http.StatusTooManyRequests)
	want(t, call(t, "GET", proxied.url+"/l/x", "", nil, "X-Forwarded-For", "2001:db8:1:3::1"), http.StatusNotFound)
	// Without trust the header is ignored: the peer is the client.
	want(t, call(t, "GET", direct.url+"/l/x", "", nil, "X-Forwarded-For", "203.0.113.1"), http.StatusNotFound)
	want(t, call(t, "GET", direct.url+"/l/x", "", nil, "X-Forwarded-For", "203.0.113.2"), http.StatusTooManyRequests)
}

func TestSessionOrigin(t *testing.T) {
	t.Parallel()
	in := startGateway(t, redistest.Start(t).Client(t), testRing(t))
	owner := newTenant(t, in, "owner")
	l := owner.link(t, map[string]any{"device": owner.device(t, plugBody).ID})
	wantError(t, call(t, "POST", l.URL+"/session", "", nil, "Origin", "https://evil.example"), http.StatusForbidden, "forbidden-origin")
	want(t, call(t, "POST", l.URL+"/session", "", nil, "Origin", in.url), http.StatusOK)
}
