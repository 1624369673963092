package tokens

import (
	"testing"
	"time"
)

// fuzzRings verify the fuzzed tokens. Each has one key, so that a token it
// accepts can be minted again by it: the round-trip oracle needs the key the
// token names to be the ring's newest.
func fuzzRings(t testing.TB) []*KeyRing {
	return []*KeyRing{testRing(t, testKey(1)), testRing(t, testKey(2))}
}

// FuzzVerify checks that Verify never panics, refuses with exactly
// ErrForged, and accepts only the one encoding Mint produces: the token is
// canonical, so Mint(Verify(s)) == s.
func FuzzVerify(f *testing.F) {
	r := testRing(f, testKey(1))
	for _, tc := range forgedLinkTokens(f) {
		f.Add(tc.token)
	}
	f.Add(r.Mint(fullClaims()))
	f.Add(r.Mint(Claims{}))
	f.Add(testRing(f, testKey(2)).Mint(fullClaims()))
	rings := fuzzRings(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range rings {
			c, err := r.Verify(s)
			if err != nil {
				if err != ErrForged {
					t.Fatalf("Verify(%q) = %v, want ErrForged", s, err)
				}
				if c != (Claims{}) {
					t.Fatalf("Verify(%q) failed but returned claims %+v", s, c)
				}
				continue
			}
			if again := r.Mint(c); again != s {
				t.Fatalf("Verify accepts a non-canonical token:\n got  %q\n mint %q", s, again)
			}
		}
	})
}

// FuzzVerifySession is FuzzVerify for session tokens; an expired session
// still returns its claims, so it is held to the same oracle.
func FuzzVerifySession(f *testing.F) {
	r := testRing(f, testKey(1))
	for _, tc := range forgedSessionTokens(f) {
		f.Add(tc.token)
	}
	f.Add(r.MintSession(SessionClaims{Link: fixedID, Session: [8]byte{1}, Generation: 1, Expires: t0.Add(time.Hour)}))
	f.Add(r.MintSession(SessionClaims{Link: fixedID, Expires: t0.Add(-time.Hour)}))
	f.Add(r.Mint(fullClaims()))
	rings := fuzzRings(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range rings {
			c, err := r.VerifySession(s, t0)
			switch err {
			case nil:
				if !t0.Before(c.Expires) {
					t.Fatalf("VerifySession(%q) accepted a session that expired at %v", s, c.Expires)
				}
			case ErrExpired:
				if t0.Before(c.Expires) {
					t.Fatalf("VerifySession(%q) = ErrExpired, but it expires at %v", s, c.Expires)
				}
			case ErrForged:
				continue
			default:
				t.Fatalf("VerifySession(%q) = %v", s, err)
			}
			if again := r.MintSession(c); again != s {
				t.Fatalf("VerifySession accepts a non-canonical token:\n got  %q\n mint %q", s, again)
			}
		}
	})
}

// FuzzMint checks the other direction of the round trip: any claims Mint
// signs come back from Verify, with times as whole UTC seconds.
func FuzzMint(f *testing.F) {
	f.Add(fixedID[:], uint32(7), t0.Unix(), t0.Add(time.Hour).Unix(), int64(0))
	f.Add([]byte{}, uint32(0), int64(0), int64(0), int64(0))
	f.Add([]byte{1, 2, 3}, uint32(1<<32-1), int64(-1), int64(1<<32), int64(999_999_999))
	r := testRing(f, testKey(1))
	f.Fuzz(func(t *testing.T, link []byte, gen uint32, nb, na, nanos int64) {
		var c Claims
		copy(c.Link[:], link)
		c.Generation = gen
		if nb != 0 {
			c.NotBefore = time.Unix(nb, nanos%1e9)
		}
		if na != 0 {
			c.NotAfter = time.Unix(na, 0)
		}
		tok := r.Mint(c)
		got, err := r.Verify(tok)
		if err != nil {
			t.Fatalf("Verify(Mint(%+v)) = %v", c, err)
		}
		if got.Link != c.Link || got.Generation != c.Generation {
			t.Fatalf("Verify(Mint(%+v)) = %+v", c, got)
		}
		for _, p := range []struct{ in, out time.Time }{{c.NotBefore, got.NotBefore}, {c.NotAfter, got.NotAfter}} {
			s := p.in.Unix()
			switch {
			case p.in.IsZero():
				if !p.out.IsZero() {
					t.Fatalf("zero time came back as %v", p.out)
				}
			case s >= 1 && s <= 1<<32-1:
				if p.out != time.Unix(s, 0).UTC() {
					t.Fatalf("%v came back as %v", p.in, p.out)
				}
			case p.out.IsZero():
				t.Fatalf("%v (out of range) came back as an open bound", p.in)
			}
		}
		if r.Mint(got) != tok {
			t.Fatalf("Mint(Verify(Mint(c))) != Mint(c) for %+v", c)
		}
	})
}
