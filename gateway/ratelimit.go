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

// maxLimiterClients bounds the client IPs an ipLimiter tracks at once (a
// bucket is about 160 bytes, so 10 MiB a limiter at most).
const maxLimiterClients = 1 << 16

// ipLimiter keeps one token bucket per client (an IP, or an IPv6 /64: see
// limitKey), in shards so that concurrent requests from different clients
// rarely share a lock. A bucket idle
// long enough to be full again is worth no more than none: such buckets are
// dropped by sweep, and by a shard itself when it takes a new IP and has
// not looked for that long. A shard holding its share of the bound, none of
// it refilled, makes room for a new IP by dropping an arbitrary bucket:
// past that many addresses at once the limit fails open for a few of them
// rather than refusing every new one.
type ipLimiter struct {
	limit       RateLimit
	idle        time.Duration // a bucket unused this long is full again
	maxPerShard int
	seed        maphash.Seed
	shards      [32]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex // guards buckets and swept
	buckets map[string]*bucket
	swept   time.Time // when buckets were last cleared of full ones
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(l RateLimit) *ipLimiter { return newIPLimiterMax(l, maxLimiterClients) }

// newIPLimiterMax returns a limiter that tracks at most about maxClients
// IPs at once.
func newIPLimiterMax(l RateLimit, maxClients int) *ipLimiter {
	r := &ipLimiter{limit: l, seed: maphash.MakeSeed()}
	r.maxPerShard = max(1, maxClients/len(r.shards))
	if l.Rate > 0 {
		r.idle = time.Duration(float64(l.Burst)/l.Rate*float64(time.Second)) + time.Second
	}
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
		if now.Sub(sh.swept) > r.idle {
			sh.sweep(now, r.idle)
		}
		if len(sh.buckets) >= r.maxPerShard {
			for k := range sh.buckets { // an arbitrary one
				delete(sh.buckets, k)
				break
			}
		}
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
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		sh.sweep(now, r.idle)
		sh.mu.Unlock()
	}
}

// sweep drops the shard's buckets unused for idle. The caller holds mu.
func (sh *limiterShard) sweep(now time.Time, idle time.Duration) {
	for ip, b := range sh.buckets {
		if now.Sub(b.seen) > idle {
			delete(sh.buckets, ip)
		}
	}
	sh.swept = now
}

// clients returns the number of IPs tracked, for tests.
func (r *ipLimiter) clients() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
