package tokens

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// testKey returns a fixed key, so that tokens in tables and in the fuzz
// corpus stay valid from run to run.
func testKey(id byte) Key {
	sum := sha256.Sum256([]byte{'l', 'g', id})
	return Key{ID: id, Secret: sum[:]}
}

func testRing(t testing.TB, keys ...Key) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sealed returns raw (payload followed by room for the MAC) signed with
// secret and encoded as a token: a way to make tokens that Mint never makes.
func sealed(secret, raw []byte) string {
	raw = bytes.Clone(raw)
	n := len(raw) - macSize
	m := hmac.New(sha256.New, secret)
	m.Write(raw[:n])
	copy(raw[n:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(raw)
}

// decoded returns the raw bytes of a token.
func decoded(t testing.TB, tok string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("decode %q: %v", tok, err)
	}
	return b
}

// flipBit returns tok with one bit of its raw byte i inverted.
func flipBit(t testing.TB, tok string, i int) string {
	t.Helper()
	b := decoded(t, tok)
	b[i] ^= 0x10
	return base64.RawURLEncoding.EncodeToString(b)
}

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fixedID = LinkID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
)

func fullClaims() Claims {
	return Claims{Link: fixedID, Generation: 7, NotBefore: t0, NotAfter: t0.Add(30 * 24 * time.Hour)}
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	r := testRing(t, testKey(1))
	berlin := mustLoc(t, "Europe/Berlin")
	cases := []struct {
		name string
		in   Claims
		want Claims // zero: same as in
	}{
		{name: "full", in: fullClaims()},
		{name: "zero windows stay zero", in: Claims{Link: fixedID, Generation: 1}},
		{name: "zero claims", in: Claims{}},
		{name: "only not-before", in: Claims{Link: fixedID, NotBefore: t0}},
		{name: "only not-after", in: Claims{Link: fixedID, NotAfter: t0}},
		{name: "largest generation", in: Claims{Link: fixedID, Generation: 1<<32 - 1}},
		{name: "last second of uint32", in: Claims{NotAfter: time.Unix(1<<32-1, 0).UTC()}},
		{
			name: "times truncated to seconds, in UTC",
			in:   Claims{Link: fixedID, NotBefore: t0.Add(999 * time.Millisecond).In(berlin), NotAfter: t0.Add(time.Hour + time.Nanosecond)},
			want: Claims{Link: fixedID, NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		},
		{
			name: "wall clock with monotonic reading",
			in:   Claims{NotBefore: time.Now()},
		},
		{
			name: "epoch and earlier become one second after it",
			in:   Claims{NotBefore: time.Unix(0, 0), NotAfter: time.Unix(-5, 0)},
			want: Claims{NotBefore: time.Unix(1, 0).UTC(), NotAfter: time.Unix(1, 0).UTC()},
		},
		{
			name: "after 2106 clamps to the last second",
			in:   Claims{NotAfter: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)},
			want: Claims{NotAfter: time.Unix(1<<32-1, 0).UTC()},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == (Claims{}) {
				want = tc.in
				want.NotBefore = utcSeconds(want.NotBefore)
				want.NotAfter = utcSeconds(want.NotAfter)
			}
			tok := r.Mint(tc.in)
			if len(tok) != TokenLen {
				t.Fatalf("len(Mint) = %d, want TokenLen = %d", len(tok), TokenLen)
			}
			got, err := r.Verify(tok)
			if err != nil {
				t.Fatalf("Verify(Mint(%+v)) = %v", tc.in, err)
			}
			// == and not Equal: the times must come back as plain UTC values.
			if got != want {
				t.Fatalf("Verify(Mint(c)) =\n %+v, want\n %+v", got, want)
			}
			if again := r.Mint(got); again != tok {
				t.Fatalf("Mint(Verify(tok)) = %q, want %q", again, tok)
			}
		})
	}
}

// utcSeconds is t without its fraction of a second, in UTC; zero stays zero.
func utcSeconds(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.Unix(t.Unix(), 0).UTC()
}

func TestSessionRoundTrip(t *testing.T) {
	t.Parallel()
	r := testRing(t, testKey(1))
	in := SessionClaims{Link: fixedID, Session: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Generation: 3, Expires: t0.Add(90*time.Minute + 5*time.Millisecond)}
	tok := r.MintSession(in)
	if len(tok) != SessionLen {
		t.Fatalf("len(MintSession) = %d, want SessionLen = %d", len(tok), SessionLen)
	}
	got, err := r.VerifySession(tok, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Expires = t0.Add(90 * time.Minute)
	if got != want {
		t.Fatalf("VerifySession(MintSession(s)) = %+v, want %+v", got, want)
	}
	if got.SessionID() != "0102030405060708" {
		t.Fatalf("SessionID = %q", got.SessionID())
	}
}

type badToken struct {
	name  string
	token string
}

// forgedLinkTokens returns tokens that Verify must refuse, for a ring of
// testKey(1). They are also fuzz seeds.
func forgedLinkTokens(t testing.TB) []badToken {
	k1 := testKey(1)
	r := testRing(t, k1)
	valid := r.Mint(fullClaims())
	raw := decoded(t, valid)
	withKind := func(kind byte) string {
		b := bytes.Clone(raw)
		b[0] = kind
		return sealed(k1.Secret, b)
	}
	withKeyID := func(id byte, secret []byte) string {
		b := bytes.Clone(raw)
		b[1] = id
		return sealed(secret, b)
	}
	replace := func(i int, c string) string { return valid[:i] + c + valid[i+1:] }
	// The last character carries 2 bits of the MAC and 4 unused bits that
	// must be zero.
	last := strings.IndexByte(alphabet, valid[TokenLen-1])
	nonCanonical := valid[:TokenLen-1] + string(alphabet[last|1])
	if last&1 != 0 {
		nonCanonical = valid[:TokenLen-1] + string(alphabet[last&^1])
	}
	other := testKey(2)
	return []badToken{
		{"empty", ""},
		{"one character", "A"},
		{"too short", valid[:20]},
		{"one short", valid[:TokenLen-1]},
		{"one long", valid + "A"},
		{"too long", valid + valid},
		{"very long", strings.Repeat("A", 4096)},
		{"padded", valid + "=="},
		{"bad base64 char", replace(10, "!")},
		{"standard alphabet plus", replace(10, "+")},
		{"standard alphabet slash", replace(10, "/")},
		{"padding inside", replace(TokenLen-2, "=")},
		{"space", replace(30, " ")},
		{"newline (ignored by lax decoders)", replace(30, "\n")},
		{"carriage return in header", replace(1, "\r")},
		{"non-ASCII", replace(5, "é")[:TokenLen]},
		{"NUL", replace(0, "\x00")},
		{"session token", r.MintSession(SessionClaims{Link: fixedID, Expires: t0})},
		{"unknown key id", withKeyID(9, other.Secret)},
		{"known key id, other secret", withKeyID(1, other.Secret)},
		{"minted by another ring", testRing(t, Key{ID: 1, Secret: other.Secret}).Mint(fullClaims())},
		{"flipped bit in kind", flipBit(t, valid, 0)},
		{"flipped bit in key id", flipBit(t, valid, 1)},
		{"flipped bit in link id", flipBit(t, valid, 5)},
		{"flipped bit in generation", flipBit(t, valid, 20)},
		{"flipped bit in not-after", flipBit(t, valid, 28)},
		{"flipped bit in MAC", flipBit(t, valid, 40)},
		{"flipped bit in last MAC byte", flipBit(t, valid, linkRawSize-1)},
		{"non-canonical trailing bits", nonCanonical},
		{"session kind, signed", withKind(kindSession)},
		{"kind 0, signed", withKind(0)},
		{"kind 0xff, signed", withKind(0xff)},
		{"all A", strings.Repeat("A", TokenLen)},
		{"all underscores", strings.Repeat("_", TokenLen)},
	}
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	r := testRing(t, testKey(1))
	for _, tc := range forgedLinkTokens(t) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := r.Verify(tc.token)
			if err != ErrForged { // exactly the sentinel: callers compare
				t.Fatalf("Verify(%q) = %v, want ErrForged", tc.token, err)
			}
			if c != (Claims{}) {
				t.Fatalf("Verify(%q) returned claims %+v with its error", tc.token, c)
			}
		})
	}
}

// forgedSessionTokens returns tokens that VerifySession must refuse, for a
// ring of testKey(1).
func forgedSessionTokens(t testing.TB) []badToken {
	k1 := testKey(1)
	r := testRing(t, k1)
	valid := r.MintSession(SessionClaims{Link: fixedID, Session: [8]byte{9}, Generation: 2, Expires: t0.Add(time.Hour)})
	raw := decoded(t, valid)
	link := bytes.Clone(raw)
	link[0] = kindLink
	last := strings.IndexByte(alphabet, valid[SessionLen-1])
	return []badToken{
		{"empty", ""},
		{"one short", valid[:SessionLen-1]},
		{"one long", valid + "A"},
		{"link token", r.Mint(fullClaims())},
		{"link token padded to session length", r.Mint(fullClaims()) + "AAAAA"},
		{"link kind, signed", sealed(k1.Secret, link)},
		{"unknown key id", sealed(testKey(2).Secret, append([]byte{kindSession, 2}, raw[2:]...))},
		{"bad base64 char", valid[:3] + "*" + valid[4:]},
		{"flipped bit in session id", flipBit(t, valid, 20)},
		{"flipped bit in expiry", flipBit(t, valid, 33)},
		{"flipped bit in MAC", flipBit(t, valid, 40)},
		{"non-canonical trailing bits", valid[:SessionLen-1] + string(alphabet[last^1])},
	}
}

func TestVerifySessionRejects(t *testing.T) {
	t.Parallel()
	r := testRing(t, testKey(1))
	for _, tc := range forgedSessionTokens(t) {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.VerifySession(tc.token, t0); err != ErrForged {
				t.Fatalf("VerifySession(%q) = %v, want ErrForged", tc.token, err)
			}
		})
	}
}

func TestVerifySessionExpiry(t *testing.T) {
	t.Parallel()
	r := testRing(t, testKey(1))
	exp := t0.Add(time.Hour)
	in := SessionClaims{Link: fixedID, Generation: 1, Expires: exp}
	tok := r.MintSession(in)
	cases := []struct {
		now  time.Time
		want error
	}{
		{t0, nil},
		{exp.Add(-time.Nanosecond), nil},
		{exp, ErrExpired},
		{exp.Add(time.Nanosecond), ErrExpired},
		{exp.Add(24 * time.Hour), ErrExpired},
	}
	for _, tc := range cases {
		got, err := r.VerifySession(tok, tc.now)
		if err != tc.want {
			t.Errorf("VerifySession at %v = %v, want %v", tc.now, err, tc.want)
		}
		// An expired session still names its link, for the log.
		if got != in {
			t.Errorf("VerifySession at %v claims = %+v, want %+v", tc.now, got, in)
		}
	}
	// A session minted without an expiry has none to honour: it is expired.
	if _, err := r.VerifySession(r.MintSession(SessionClaims{Link: fixedID}), t0); err != ErrExpired {
		t.Errorf("session with zero Expires: %v, want ErrExpired", err)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(1), testKey(2)
	c := fullClaims()

	old := testRing(t, k1)
	t1 := old.Mint(c)

	both := testRing(t, k1, k2)
	if got, err := both.Verify(t1); err != nil || got != c {
		t.Fatalf("ring [k1 k2] Verify(t1) = %+v, %v; want %+v", got, err, c)
	}
	t2 := both.Mint(c)
	if t2 == t1 {
		t.Fatal("ring [k1 k2] minted with k1; want the newest key, k2")
	}
	if id := decoded(t, t2)[1]; id != k2.ID {
		t.Fatalf("ring [k1 k2] minted with key id %d, want %d", id, k2.ID)
	}
	s2 := both.MintSession(SessionClaims{Link: fixedID, Expires: t0.Add(time.Hour)})

	// Before the rotation finished, the old ring must not accept new tokens
	// either: instances are updated one by one, so the new key is added
	// everywhere before anyone mints with it.
	if _, err := old.Verify(t2); err != ErrForged {
		t.Fatalf("ring [k1] Verify(t2) = %v, want ErrForged", err)
	}

	newer := testRing(t, k2)
	if _, err := newer.Verify(t1); err != ErrForged {
		t.Fatalf("ring [k2] Verify(t1) = %v, want ErrForged", err)
	}
	if got, err := newer.Verify(t2); err != nil || got != c {
		t.Fatalf("ring [k2] Verify(t2) = %+v, %v; want %+v", got, err, c)
	}
	if _, err := newer.VerifySession(s2, t0); err != nil {
		t.Fatalf("ring [k2] VerifySession(s2) = %v", err)
	}
	if newer.Mint(c) != t2 {
		t.Fatal("ring [k2] and ring [k1 k2] mint different tokens for the same claims")
	}
}

func TestNewKeyRingCopiesSecret(t *testing.T) {
	t.Parallel()
	k := testKey(1)
	secret := bytes.Clone(k.Secret)
	k.Secret = secret
	r := testRing(t, k)
	tok := r.Mint(fullClaims())
	clear(secret) // the caller reuses its buffer
	if _, err := r.Verify(tok); err != nil {
		t.Fatalf("after the caller cleared its secret: %v", err)
	}
	if r.Mint(fullClaims()) != tok {
		t.Fatal("after the caller cleared its secret, Mint changed")
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	s1 := testKey(1).Secret
	s2 := testKey(2).Secret
	url := base64.RawURLEncoding.EncodeToString
	good := []struct {
		in   string
		want []Key
	}{
		{"1:" + url(s1), []Key{{1, s1}}},
		{"0:" + url(s1), []Key{{0, s1}}},
		{"255:" + url(s1), []Key{{255, s1}}},
		{"1:" + base64.URLEncoding.EncodeToString(s1), []Key{{1, s1}}},
		{"1:" + base64.StdEncoding.EncodeToString(s2), []Key{{1, s2}}},
		{"1:" + base64.RawStdEncoding.EncodeToString(s2), []Key{{1, s2}}},
		{"1:" + url(s1) + ",2:" + url(s2), []Key{{1, s1}, {2, s2}}},
		{" 1:" + url(s1) + " ,\t2:" + url(s2) + "\n", []Key{{1, s1}, {2, s2}}},
	}
	for _, tc := range good {
		got, err := ParseKeys(tc.in)
		if err != nil {
			t.Errorf("ParseKeys(%q) = %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseKeys(%q) = %d keys, want %d", tc.in, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if got[i].ID != tc.want[i].ID || !bytes.Equal(got[i].Secret, tc.want[i].Secret) {
				t.Errorf("ParseKeys(%q)[%d] = id %d, want id %d and its secret", tc.in, i, got[i].ID, tc.want[i].ID)
			}
		}
		if _, err := NewKeyRing(got...); err != nil {
			t.Errorf("NewKeyRing(ParseKeys(%q)) = %v", tc.in, err)
		}
	}

	bad := []string{
		"",
		",",
		"1",
		"1" + url(s1),
		":" + url(s1),
		"x:" + url(s1),
		"256:" + url(s1),
		"-1:" + url(s1),
		"0x1:" + url(s1),
		"1:not base64!",
		"1:" + url(s1) + ",",
		"1:" + url(s1) + ",,2:" + url(s2),
	}
	for _, in := range bad {
		if keys, err := ParseKeys(in); err == nil {
			t.Errorf("ParseKeys(%q) = %d keys, want an error", in, len(keys))
		} else if strings.Contains(err.Error(), url(s1)) {
			t.Errorf("ParseKeys(%q) error quotes the secret: %v", in, err)
		}
	}

	// Parsed, but not a usable ring.
	refused := []string{
		"1:" + url(s1[:MinSecretLen-1]),  // short secret
		"1:",                             // empty secret
		"1:" + url(s1) + ",1:" + url(s2), // duplicate id
	}
	for _, in := range refused {
		keys, err := ParseKeys(in)
		if err != nil {
			t.Errorf("ParseKeys(%q) = %v, want keys for NewKeyRing to refuse", in, err)
			continue
		}
		if _, err := NewKeyRing(keys...); err == nil {
			t.Errorf("NewKeyRing(ParseKeys(%q)) succeeded, want an error", in)
		}
	}
	if _, err := NewKeyRing(); err == nil {
		t.Error("NewKeyRing() with no keys succeeded")
	}
}

func TestParseKeysNewestMints(t *testing.T) {
	t.Parallel()
	url := base64.RawURLEncoding.EncodeToString
	keys, err := ParseKeys("3:" + url(testKey(3).Secret) + ",4:" + url(testKey(4).Secret))
	if err != nil {
		t.Fatal(err)
	}
	r := testRing(t, keys...)
	if id := decoded(t, r.Mint(fullClaims()))[1]; id != 4 {
		t.Fatalf("minted with key %d, want the last one, 4", id)
	}
	if s := NewSecret(); len(decoded(t, s)) != MinSecretLen {
		t.Fatalf("NewSecret() = %q: want %d bytes base64url", s, MinSecretLen)
	}
	//lint:ignore SA4000 two calls: two random secrets must differ
	if NewSecret() == NewSecret() {
		t.Fatal("NewSecret repeats")
	}
}

func TestCheckWindow(t *testing.T) {
	t.Parallel()
	start, end := t0, t0.Add(time.Hour)
	c := Claims{Link: fixedID, NotBefore: start, NotAfter: end}

	err := c.CheckWindow(start.Add(-time.Second))
	var ce *ClosedError
	if !errors.As(err, &ce) || !errors.Is(err, ErrNotYetActive) || !ce.Opens.Equal(start) {
		t.Fatalf("before start: %v, want *ClosedError wrapping ErrNotYetActive, opening at %v", err, start)
	}
	if want := "link not yet active; opens at 2026-03-01T12:00:00Z"; err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
	for _, now := range []time.Time{start, start.Add(time.Minute), end.Add(-time.Nanosecond)} {
		if err := c.CheckWindow(now); err != nil {
			t.Errorf("inside at %v: %v", now, err)
		}
	}
	for _, now := range []time.Time{end, end.Add(time.Nanosecond), end.Add(1000 * time.Hour)} {
		if err := c.CheckWindow(now); err != ErrExpired {
			t.Errorf("at/after end %v: %v, want ErrExpired", now, err)
		}
	}
	open := Claims{Link: fixedID}
	for _, now := range []time.Time{{}, time.Unix(1, 0), t0, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if err := open.CheckWindow(now); err != nil {
			t.Errorf("open window at %v: %v", now, err)
		}
	}
	if err := (Claims{NotAfter: end}).CheckWindow(start.Add(-24 * time.Hour)); err != nil {
		t.Errorf("no start, before end: %v", err)
	}
	if got := (&ClosedError{Err: ErrOutsideSchedule}).Error(); got != ErrOutsideSchedule.Error() {
		t.Errorf("ClosedError without Opens: %q", got)
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(1), testKey(2)
	r := testRing(t, k1, k2)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("keys", "key", k1, "keyptr", &k2, "ring", r)
	log.Info("group", slog.Group("cfg", "key", k2))
	out := buf.String()
	for _, k := range []Key{k1, k2} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if s := enc.EncodeToString(k.Secret); strings.Contains(out, s[:16]) {
				t.Fatalf("log output holds secret of key %d: %s", k.ID, out)
			}
		}
		if bytes.Contains(buf.Bytes(), k.Secret[:8]) {
			t.Fatalf("log output holds raw secret bytes of key %d", k.ID)
		}
	}
	for _, want := range []string{`"key":{"id":1,"secret":"REDACTED"}`, `"ring":{"newest":2}`, `"cfg":{"key":{"id":2`} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %s: %s", want, out)
		}
	}
}

// TestVerifyAllocs runs alone (no t.Parallel): AllocsPerRun reads the
// process-wide allocation count.
func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, and so allocate")
	}
	r := testRing(t, testKey(1), testKey(2))
	valid := r.Mint(fullClaims())
	unknownKey := decoded(t, valid)
	unknownKey[1] = 9
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", valid, nil},
		{"bad MAC", flipBit(t, valid, 40), ErrForged},
		{"wrong length", valid[1:], ErrForged},
		{"bad character", valid[:50] + "!" + valid[51:], ErrForged},
		{"unknown key", base64.RawURLEncoding.EncodeToString(unknownKey), ErrForged},
	}
	for _, tc := range cases {
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := r.Verify(tc.token); err != tc.want {
				t.Fatalf("Verify(%q) = %v, want %v", tc.token, err, tc.want)
			}
		})
		if allocs != 0 {
			t.Errorf("Verify, %s: %v allocs per run, want 0", tc.name, allocs)
		}
	}
	session := r.MintSession(SessionClaims{Link: fixedID, Expires: t0.Add(time.Hour)})
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.VerifySession(session, t0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("VerifySession: %v allocs per run, want 0", allocs)
	}
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestKeysNeverPrinted: a key list logged or printed by accident, in any
// form, shows no secret.
func TestKeysNeverPrinted(t *testing.T) {
	secret := NewSecret()
	keys, err := ParseKeys("1:" + secret + ",2:" + NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	raw := string(keys[0].Secret)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "keys", keys, "first", keys[0])
	slog.New(slog.NewTextHandler(&logged, nil)).Info("keys", "keys", keys)
	printed := fmt.Sprint(keys) + fmt.Sprintf("%v %+v %#v %s %x", keys, keys, keys, keys[0].Secret, keys[0].Secret)
	js, _ := json.Marshal(keys)
	for _, out := range []string{logged.String(), printed, string(js)} {
		if strings.Contains(out, secret) || strings.Contains(out, raw) || strings.Contains(out, base64.StdEncoding.EncodeToString(keys[0].Secret)) {
			t.Fatalf("secret printed: %s", out)
		}
	}
}
