package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// LinkID is a link's 128-bit random identity.
type LinkID [16]byte

// NewLinkID returns a random link id.
func NewLinkID() LinkID {
	var id LinkID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return id
}

// ParseLinkID parses the 32-hex-digit form of String.
func ParseLinkID(s string) (LinkID, error) {
	var id LinkID
	if len(s) != 2*len(id) {
		return id, ErrNotFound
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, ErrNotFound
	}
	return id, nil
}

func (id LinkID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the id as 32 hex digits.
func (id LinkID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes 32 hex digits.
func (id *LinkID) UnmarshalText(b []byte) error {
	v, err := ParseLinkID(string(b))
	if err != nil {
		return fmt.Errorf("invalid link id %q", b)
	}
	*id = v
	return nil
}

// Claims is what a link token carries. Times are whole seconds; a zero
// NotBefore or NotAfter means that side of the window is open.
type Claims struct {
	Link       LinkID
	Generation uint32
	NotBefore  time.Time
	NotAfter   time.Time
}

// Token layout, before base64url (no padding):
//
//	0      kind (kindLink)
//	1      key id
//	2:18   link id
//	18:22  generation, big endian
//	22:26  not-before, unix seconds, 0 = open
//	26:30  not-after,  unix seconds, 0 = open
//	30:46  HMAC-SHA256(key, bytes 0:30), first 16 bytes
//
// 46 bytes encode to 62 characters.
const (
	kindLink    = 0x01
	kindSession = 0x02

	macSize         = 16
	linkPayloadSize = 30
	linkRawSize     = linkPayloadSize + macSize
	// TokenLen is the length of every link token.
	TokenLen = (linkRawSize*8 + 5) / 6

	sessionPayloadSize = 2 + 16 + 8 + 4 + 4
	sessionRawSize     = sessionPayloadSize + macSize
	// SessionLen is the length of every session token.
	SessionLen = (sessionRawSize*8 + 5) / 6

	maxRawSize = sessionRawSize
)

// Strict: the unused low bits of the last character must be zero, so that
// every token has exactly one spelling (see FuzzVerify).
var b64 = base64.RawURLEncoding.Strict()

// Key is one signing key of a KeyRing.
type Key struct {
	ID     byte
	Secret Secret
}

// LogValue keeps the secret out of logs.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("id", int(k.ID)), slog.String("secret", redacted))
}

// Secret is key material. Every way of printing it prints REDACTED, so a
// key logged by accident, alone or in a slice, leaks nothing.
type Secret []byte

const redacted = "REDACTED"

func (Secret) String() string                { return redacted }
func (Secret) GoString() string              { return redacted }
func (Secret) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + redacted + `"`), nil }
func (Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
func (Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }

// MinSecretLen is the shortest secret a key may have.
const MinSecretLen = 32

// ParseKeys parses "id:secret[,id:secret...]" where id is 0-255 and secret is
// base64url or standard base64 of at least MinSecretLen bytes. The last key
// is the newest: it mints, the others only verify.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		idStr, secStr, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("key %d: want id:secret", i+1)
		}
		id, err := strconv.ParseUint(idStr, 10, 8)
		if err != nil {
			return nil, fmt.Errorf("key %d: id must be 0-255", i+1)
		}
		sec, err := decodeSecret(secStr)
		if err != nil {
			return nil, fmt.Errorf("key %d: secret is not base64", i+1)
		}
		keys = append(keys, Key{ID: byte(id), Secret: sec})
	}
	return keys, nil
}

func decodeSecret(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// NewSecret returns a random secret of MinSecretLen bytes, base64url encoded.
func NewSecret() string {
	b := make([]byte, MinSecretLen)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

// KeyRing signs with its newest key and verifies with any of its keys. It is
// safe for concurrent use.
type KeyRing struct {
	keys   [256]*ringKey // by key id; nil = unknown
	newest *ringKey
}

type ringKey struct {
	id   byte
	pool sync.Pool // of *macState
}

// macState is the scratch space of one verification: a keyed HMAC and the
// buffers it writes into. Pooled so that Verify does not allocate.
type macState struct {
	mac hash.Hash
	raw [maxRawSize]byte
	sum [sha256.Size]byte
}

// NewKeyRing returns a ring of keys; the last one is the newest and mints.
func NewKeyRing(keys ...Key) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("key ring: no keys")
	}
	r := &KeyRing{}
	for _, k := range keys {
		if len(k.Secret) < MinSecretLen {
			return nil, fmt.Errorf("key ring: key %d: secret shorter than %d bytes", k.ID, MinSecretLen)
		}
		if r.keys[k.ID] != nil {
			return nil, fmt.Errorf("key ring: key id %d twice", k.ID)
		}
		secret := append([]byte(nil), k.Secret...)
		rk := &ringKey{id: k.ID}
		rk.pool.New = func() any { return &macState{mac: hmac.New(sha256.New, secret)} }
		r.keys[k.ID] = rk
		r.newest = rk
	}
	return r, nil
}

// LogValue keeps secrets out of logs.
func (r *KeyRing) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("newest", int(r.newest.id)))
}

// mac writes the truncated MAC of st.raw[:n] into st.raw[n:n+macSize] when
// write is set, or compares it there otherwise.
func (k *ringKey) mac(st *macState, n int, write bool) bool {
	st.mac.Reset()
	st.mac.Write(st.raw[:n])
	sum := st.mac.Sum(st.sum[:0])
	if write {
		copy(st.raw[n:], sum[:macSize])
		return true
	}
	return hmac.Equal(sum[:macSize], st.raw[n:n+macSize])
}

func (k *ringKey) get() *macState   { return k.pool.Get().(*macState) }
func (k *ringKey) put(st *macState) { k.pool.Put(st) }

// Mint returns the token for c, signed with the newest key.
func (r *KeyRing) Mint(c Claims) string {
	k := r.newest
	st := k.get()
	defer k.put(st)
	b := st.raw[:linkRawSize]
	b[0] = kindLink
	b[1] = k.id
	copy(b[2:18], c.Link[:])
	binary.BigEndian.PutUint32(b[18:22], c.Generation)
	binary.BigEndian.PutUint32(b[22:26], unixSeconds(c.NotBefore))
	binary.BigEndian.PutUint32(b[26:30], unixSeconds(c.NotAfter))
	k.mac(st, linkPayloadSize, true)
	return b64.EncodeToString(b)
}

// Verify checks a link token, cheapest check first, and returns its claims.
// Every failure is ErrForged. It does not check the window (see
// Claims.CheckWindow) and does not allocate.
func (r *KeyRing) Verify(token string) (Claims, error) {
	var c Claims
	st, k, ok := r.open(token, TokenLen, linkRawSize, kindLink)
	if !ok {
		return c, ErrForged
	}
	defer k.put(st)
	b := st.raw[:linkRawSize]
	copy(c.Link[:], b[2:18])
	c.Generation = binary.BigEndian.Uint32(b[18:22])
	c.NotBefore = fromUnixSeconds(binary.BigEndian.Uint32(b[22:26]))
	c.NotAfter = fromUnixSeconds(binary.BigEndian.Uint32(b[26:30]))
	return c, nil
}

// open decodes and authenticates a token of the given kind. On success the
// caller owns st and must put it back to k.
func (r *KeyRing) open(token string, textLen, rawLen int, kind byte) (*macState, *ringKey, bool) {
	if len(token) != textLen {
		return nil, nil, false
	}
	// The key id is the second byte: bits 8-15, found in characters 1 and 2.
	hdr, err := decodeHeader(token)
	if err != nil || hdr[0] != kind {
		return nil, nil, false
	}
	k := r.keys[hdr[1]]
	if k == nil {
		return nil, nil, false
	}
	st := k.get()
	// The string is only read; viewing it as bytes avoids a copy that would
	// allocate on every request.
	src := unsafe.Slice(unsafe.StringData(token), len(token))
	if n, err := b64.Decode(st.raw[:], src); err != nil || n != rawLen {
		k.put(st)
		return nil, nil, false
	}
	if !k.mac(st, rawLen-macSize, false) {
		k.put(st)
		return nil, nil, false
	}
	return st, k, true
}

// decodeHeader decodes the first two bytes (kind and key id) from the first
// three characters.
func decodeHeader(token string) ([2]byte, error) {
	var in [4]byte
	copy(in[:], token[:3])
	in[3] = 'A'
	var out [3]byte
	src := in[:]
	_, err := b64.Decode(out[:], src)
	return [2]byte{out[0], out[1]}, err
}

// CheckWindow reports whether now lies inside the token's window as minted.
func (c Claims) CheckWindow(now time.Time) error {
	if !c.NotBefore.IsZero() && now.Before(c.NotBefore) {
		return &ClosedError{Err: ErrNotYetActive, Opens: c.NotBefore}
	}
	if !c.NotAfter.IsZero() && !now.Before(c.NotAfter) {
		return ErrExpired
	}
	return nil
}

// SessionClaims is what a session token carries: the recipient's session on
// one link, bound to the link's generation, valid until Expires.
type SessionClaims struct {
	Link       LinkID
	Session    [8]byte
	Generation uint32
	Expires    time.Time
}

// SessionID returns the session id as 16 hex digits.
func (s SessionClaims) SessionID() string { return hex.EncodeToString(s.Session[:]) }

// MintSession returns a session token for s, signed with the newest key.
// Session and link tokens cannot be swapped: they differ in kind and length.
func (r *KeyRing) MintSession(s SessionClaims) string {
	k := r.newest
	st := k.get()
	defer k.put(st)
	b := st.raw[:sessionRawSize]
	b[0] = kindSession
	b[1] = k.id
	copy(b[2:18], s.Link[:])
	copy(b[18:26], s.Session[:])
	binary.BigEndian.PutUint32(b[26:30], s.Generation)
	binary.BigEndian.PutUint32(b[30:34], unixSeconds(s.Expires))
	k.mac(st, sessionPayloadSize, true)
	return b64.EncodeToString(b)
}

// VerifySession checks a session token and its expiry.
func (r *KeyRing) VerifySession(token string, now time.Time) (SessionClaims, error) {
	var s SessionClaims
	st, k, ok := r.open(token, SessionLen, sessionRawSize, kindSession)
	if !ok {
		return s, ErrForged
	}
	defer k.put(st)
	b := st.raw[:sessionRawSize]
	copy(s.Link[:], b[2:18])
	copy(s.Session[:], b[18:26])
	s.Generation = binary.BigEndian.Uint32(b[26:30])
	s.Expires = fromUnixSeconds(binary.BigEndian.Uint32(b[30:34]))
	if !now.Before(s.Expires) {
		return s, ErrExpired
	}
	return s, nil
}

func unixSeconds(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix()
	switch {
	case s <= 0:
		return 1 // the epoch itself means "open"; 1 s later is the earliest bound
	case s > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(s)
}

func fromUnixSeconds(s uint32) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}
