package gateway

import (
	"net/netip"
	"testing"
	"time"
)

// addr is the i-th of many distinct client IPs, in the form clientKey
// gives a peer address.
func addr(i int) []byte {
	a := netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)})
	return a.AsSlice()
}

// Viewers that come and go, each from its own address, like the churn
// benchmark (loadtest/bench-churn.sh): the limiter keeps the addresses of
// about the last refill period, not of every client since its last sweep.
func TestIPLimiterForgetsRefilledClients(t *testing.T) {
	lim := newIPLimiter(RateLimit{Rate: 2, Burst: 10}) // the sessions default: refilled in 6 s
	start := time.Unix(1_700_000_000, 0)
	const perSecond = 400
	most := 0
	for i := range 20_000 {
		now := start.Add(time.Duration(i) * time.Second / perSecond)
		if !lim.allow(addr(i), now) {
			t.Fatalf("client %d refused on its first request", i)
		}
		most = max(most, lim.clients())
	}
	// Addresses unused for 6 s are dropped once a shard has not looked for
	// 6 s: at most about 12 s of arrivals are tracked.
	if limit := 12*perSecond + perSecond; most > limit {
		t.Errorf("tracked up to %d clients after %d arrived at %d/s, want at most %d", most, 20_000, perSecond, limit)
	}
}

// More addresses at once than the limiter may track: it stays within its
// bound, and still limits an address it tracks.
func TestIPLimiterBounded(t *testing.T) {
	const maxClients = 1024
	lim := newIPLimiterMax(RateLimit{Rate: 2, Burst: 10}, maxClients)
	now := time.Unix(1_700_000_000, 0)
	for i := range 100 * maxClients {
		if !lim.allow(addr(i), now) {
			t.Fatalf("client %d refused on its first request", i)
		}
	}
	if n := lim.clients(); n > maxClients {
		t.Errorf("tracking %d clients, want at most %d", n, maxClients)
	}
	flood := addr(1 << 20)
	allowed := 0
	for range 100 {
		if lim.allow(flood, now) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("a flooding client got %d of 100 requests through at one instant, want the burst, 10", allowed)
	}
	// Once refilled, the buckets go at the next look.
	lim.sweep(now.Add(time.Minute))
	if n := lim.clients(); n != 0 {
		t.Errorf("tracking %d clients a minute later, want 0", n)
	}
}
