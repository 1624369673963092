package gateway

import (
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a token bucket: Rate events per second on average, Burst at
// once. A zero Rate disables the limit.
type RateLimit struct {
	Rate  float64
	Burst int
}

// ipLimiter keeps one token bucket per client IP, in shards so that
// concurrent requests from different IPs rarely share a lock. Buckets idle
// long enough to be full again are dropped by sweep.
type ipLimiter struct {
	limit  RateLimit
	seed   maphash.Seed
	shards [32]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(l RateLimit) *ipLimiter {
	r := &ipLimiter{limit: l, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].buckets = make(map[string]*bucket)
	}
	return r
}

// allow takes one token from ip's bucket and reports whether there was one.
// ip is the client address in any stable byte form; a refusal flood from one
// address looks it up without allocating.
func (r *ipLimiter) allow(ip []byte, now time.Time) bool {
	if r.limit.Rate <= 0 {
		return true
	}
	sh := &r.shards[maphash.Bytes(r.seed, ip)%uint64(len(r.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[string(ip)]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(r.limit.Rate), r.limit.Burst)}
		sh.buckets[string(ip)] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// sweep drops buckets not used for long enough to have refilled.
func (r *ipLimiter) sweep(now time.Time) {
	if r.limit.Rate <= 0 {
		return
	}
	idle := time.Duration(float64(r.limit.Burst)/r.limit.Rate*float64(time.Second)) + time.Second
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for ip, b := range sh.buckets {
			if now.Sub(b.seen) > idle {
				delete(sh.buckets, ip)
			}
		}
		sh.mu.Unlock()
	}
}
