package tokens

import (
	"testing"
	"time"

	"github.com/linkgate/linkgate/tokens/redistest"
)

func BenchmarkVerify(b *testing.B) {
	r := testRing(b, testKey(1), testKey(2))
	tok := r.Mint(fullClaims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyForged(b *testing.B) {
	r := testRing(b, testKey(1), testKey(2))
	tok := flipBit(b, r.Mint(fullClaims()), 40) // bad MAC: the costliest refusal
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Verify(tok); err != ErrForged {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyMalformed(b *testing.B) {
	r := testRing(b, testKey(1), testKey(2))
	tok := r.Mint(fullClaims())[1:] // wrong length: the cheapest refusal
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Verify(tok); err != ErrForged {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySession(b *testing.B) {
	r := testRing(b, testKey(1))
	tok := r.MintSession(SessionClaims{Link: fixedID, Generation: 1, Expires: t0.Add(time.Hour)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.VerifySession(tok, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMint(b *testing.B) {
	r := testRing(b, testKey(1))
	c := fullClaims()
	b.ReportAllocs()
	for b.Loop() {
		r.Mint(c)
	}
}

func BenchmarkScheduleOpen(b *testing.B) {
	s := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("09:00", "17:00", weekdaysMonFri...), slot("22:00", "06:00", "sat")}}
	at := t0
	b.ReportAllocs()
	for b.Loop() {
		s.Open(at)
		at = at.Add(17 * time.Minute)
	}
}

// BenchmarkCacheHit measures a warm Get from many goroutines. b.Loop does
// not apply to RunParallel bodies, which use pb.Next.
func BenchmarkCacheHit(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ring := testRing(b, testKey(1))
	store := newTestStore(rdb)
	feed := startFeed(b, rdb)
	cache := NewCache(store, feed, CacheConfig{})
	rec := &recorder{}
	feed.Subscribe(rec)
	l := create(b, store, ring, "alice", "dev-1", nil)
	// The created event invalidates the id; let it pass before warming.
	waitFor(b, "the created event", func() bool { return rec.has(l.ID, OpCreated) })
	if _, err := cache.Get(b.Context(), l.ID); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := b.Context()
		for pb.Next() {
			if _, err := cache.Get(ctx, l.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if m := cache.Stats().Misses.Load(); m != 1 {
		b.Fatalf("%d misses, want only the first Get", m)
	}
}
