package emulator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens"
)

// ErrDeviceNotFound: no such device, or it belongs to another owner. The two
// are indistinguishable on purpose.
var ErrDeviceNotFound = errors.New("device not found")

// Redis layout of device records:
//
//	lg:dev:{<id>}               string: the Device as JSON
//	lg:owner:{<owner>}:devices  sorted set, all scores 0, members
//	                            "<created unix ms, 15 digits>:<id>"
//
// The owner's index sorts by member, so ZREVRANGEBYLEX pages through it
// newest first; a List cursor is the last member of the page, base64url
// encoded.
//
// Every key carries its own hash tag and no command or script touches two
// keys, so the layout works on a Redis Cluster. Steps that touch both keys
// are separate commands, ordered so that a crash between them leaves at
// worst an index entry without a record: Create adds the entry before the
// record, Delete removes the record before the entry. List skips such
// entries and removes them once they are older than danglingAfter.
const (
	deviceKeyPrefix = "lg:dev:"
	ownerKeyPrefix  = "lg:owner:"

	// danglingAfter is how old an index entry without a record must be
	// before List removes it. A younger one may belong to a Create between
	// its two writes. Generous, as it also absorbs clock skew between
	// instances.
	danglingAfter = 10 * time.Minute

	// updateAttempts bounds the optimistic retries of Update.
	updateAttempts = 10
	// listRounds bounds the index reads of one List call, so that a run of
	// dangling entries cannot make it scan without end.
	listRounds = 8

	defaultListLimit = 50
	maxListLimit     = 200

	idBytes       = 16
	memberTimeLen = 15
	memberLen     = memberTimeLen + 1 + 2*idBytes
)

func deviceKey(id string) string { return deviceKeyPrefix + "{" + id + "}" }

func ownerKey(owner string) string { return ownerKeyPrefix + "{" + owner + "}:devices" }

func indexMember(d *Device) string {
	return fmt.Sprintf("%0*d:%s", memberTimeLen, d.Created.UnixMilli(), d.ID)
}

// parseMember splits an index member into its creation time and device id.
func parseMember(m string) (created time.Time, id string, ok bool) {
	if len(m) != memberLen || m[memberTimeLen] != ':' {
		return time.Time{}, "", false
	}
	ms, err := strconv.ParseInt(m[:memberTimeLen], 10, 64)
	if err != nil || ms < 0 || !validID(m[memberTimeLen+1:]) {
		return time.Time{}, "", false
	}
	return time.UnixMilli(ms), m[memberTimeLen+1:], true
}

// validID reports whether id has the shape of a device id: 32 lowercase hex
// digits. Other ids cannot exist, so they are not looked up.
func validID(id string) bool {
	if len(id) != 2*idBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// casScript replaces a device record if its version is still the expected
// one. KEYS[1] is the device key, ARGV[1] the expected version, ARGV[2] the
// new record. It returns 1 when written, 0 when the version differs and -1
// when the record is gone.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cjson.decode(cur).version ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`)

// Store keeps device records in Redis, scoped to their owner: every method
// that takes an owner treats another owner's device exactly as a missing
// one. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
}

// NewStore returns a store on rdb, which may be a client of a standalone
// server, of Sentinel or of a Cluster.
func NewStore(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb}
}

// now returns the store's timestamps: UTC, whole milliseconds, as the index
// keeps them.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Create validates d and stores it as a new device of d.Owner. On success it
// sets d's ID (32 random lowercase hex digits), Version (1) and the Created
// and Updated times; on failure d is unchanged.
func (s *Store) Create(ctx context.Context, d *Device) error {
	if d.Owner == "" {
		return &tokens.FieldError{Field: "owner", Reason: "required"}
	}
	if err := d.Validate(); err != nil {
		return err
	}
	var raw [idBytes]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	rec := *d
	rec.ID = hex.EncodeToString(raw[:])
	rec.Version = 1
	rec.Created = now()
	rec.Updated = rec.Created
	data, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("device store: encode: %w", err)
	}
	idx, member := ownerKey(rec.Owner), indexMember(&rec)
	if err := s.rdb.ZAdd(ctx, idx, redis.Z{Member: member}).Err(); err != nil {
		return fmt.Errorf("device store: create: %w", err)
	}
	// List removes an entry without a record once it is danglingAfter old;
	// a record written later would be lost to the index, so give up well
	// before that.
	if time.Since(rec.Created) > danglingAfter/2 {
		s.rdb.ZRem(ctx, idx, member)
		return fmt.Errorf("device store: create: took longer than %v", danglingAfter/2)
	}
	ok, err := s.rdb.SetNX(ctx, deviceKey(rec.ID), data, 0).Result()
	if err != nil {
		// The record may have been written all the same, so the entry
		// stays; if the record is missing, List drops the entry later.
		return fmt.Errorf("device store: create: %w", err)
	}
	if !ok { // 128 random bits collided: never in practice
		s.rdb.ZRem(ctx, idx, member)
		return errors.New("device store: create: device id taken")
	}
	*d = rec
	return nil
}

// Get returns the owner's device id, or ErrDeviceNotFound.
func (s *Store) Get(ctx context.Context, owner, id string) (*Device, error) {
	d, err := s.GetAny(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.Owner != owner {
		return nil, ErrDeviceNotFound
	}
	return d, nil
}

// GetAny returns device id whoever owns it, or ErrDeviceNotFound. It is for
// the gateway, which reaches a device through a link, never for the owner
// API.
func (s *Store) GetAny(ctx context.Context, id string) (*Device, error) {
	if !validID(id) {
		return nil, ErrDeviceNotFound
	}
	data, err := s.rdb.Get(ctx, deviceKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrDeviceNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("device store: get: %w", err)
	}
	return decodeDevice(data)
}

func decodeDevice(data []byte) (*Device, error) {
	d := new(Device)
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("device store: decode: %w", err)
	}
	return d, nil
}

// List returns a page of the owner's devices, newest first, and the cursor
// of the next page, or "" after the last page. cursor is "" for the first
// page or a next returned before; a malformed cursor is a
// *tokens.FieldError for the field "cursor". limit is clamped to 1..200; 0
// means 50. A page may be shorter than limit with a next cursor when List
// stepped over many entries without a record; it never repeats a device.
func (s *Store) List(ctx context.Context, owner, cursor string, limit int) (items []*Device, next string, err error) {
	switch {
	case limit == 0:
		limit = defaultListLimit
	case limit < 1:
		limit = 1
	case limit > maxListLimit:
		limit = maxListLimit
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	idx := ownerKey(owner)
	var members []string // members[i] is the entry of items[i]
	var dangling []string
	defer func() {
		// Best effort: an entry left behind is skipped and tried again.
		if len(dangling) > 0 {
			s.rdb.ZRem(ctx, idx, dangling)
		}
	}()
	// Read one entry past the page to know whether another page follows.
	for range listRounds {
		want := limit + 1 - len(items)
		upper := "+"
		if after != "" {
			upper = "(" + after
		}
		batch, err := s.rdb.ZRevRangeByLex(ctx, idx, &redis.ZRangeBy{Min: "-", Max: upper, Count: int64(want)}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("device store: list: %w", err)
		}
		devs, err := s.getMembers(ctx, batch)
		if err != nil {
			return nil, "", err
		}
		for i, m := range batch {
			switch d := devs[i]; {
			case d == nil:
				if created, _, ok := parseMember(m); !ok || time.Since(created) > danglingAfter {
					dangling = append(dangling, m)
				}
			case d.Owner == owner: // always, unless the data was tampered with
				items = append(items, d)
				members = append(members, m)
			}
		}
		if len(items) > limit {
			return items[:limit], encodeCursor(members[limit-1]), nil
		}
		if len(batch) < want {
			return items, "", nil
		}
		after = batch[len(batch)-1]
	}
	// Out of rounds: let the caller go on from the last entry looked at.
	return items, encodeCursor(after), nil
}

// getMembers reads the records of index entries in one pipeline; the
// record of an entry without one, or of a malformed entry, is nil. The
// pipeline sends one GET per key, so a Cluster client splits it by slot.
func (s *Store) getMembers(ctx context.Context, members []string) ([]*Device, error) {
	cmds := make([]*redis.StringCmd, len(members))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			if _, id, ok := parseMember(m); ok {
				cmds[i] = p.Get(ctx, deviceKey(id))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("device store: list: %w", err)
	}
	devs := make([]*Device, len(members))
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		data, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("device store: list: %w", err)
		}
		if devs[i], err = decodeDevice(data); err != nil {
			return nil, err
		}
	}
	return devs, nil
}

func encodeCursor(member string) string { return base64.RawURLEncoding.EncodeToString([]byte(member)) }

// decodeCursor returns the index member a cursor stands for; "" for "".
func decodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		if _, _, ok := parseMember(string(b)); ok {
			return string(b), nil
		}
	}
	return "", &tokens.FieldError{Field: "cursor", Reason: "malformed; pass a next value from a previous page"}
}

// Update changes the owner's device id: it reads the record, calls fn on it,
// validates the result and writes it back if nobody wrote it meanwhile,
// bumping Version and Updated. On a conflict it starts over, so fn may run
// more than once and must only change the device it is given. An error
// from fn is returned as is. fn may not change the ID, Owner or Created
// time (a *tokens.FieldError); the store sets Version and Updated. After
// repeated conflicts Update gives up with an error wrapping
// tokens.ErrConflict.
func (s *Store) Update(ctx context.Context, owner, id string, fn func(*Device) error) (*Device, error) {
	for attempt := range updateAttempts {
		if attempt > 0 {
			// Jitter apart from the writer we collided with.
			t := time.NewTimer(mrand.N(time.Duration(attempt) * 2 * time.Millisecond))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		d, err := s.Get(ctx, owner, id)
		if err != nil {
			return nil, err
		}
		version, created := d.Version, d.Created
		if err := fn(d); err != nil {
			return nil, err
		}
		switch {
		case d.ID != id:
			return nil, &tokens.FieldError{Field: "id", Reason: "cannot be changed"}
		case d.Owner != owner:
			return nil, &tokens.FieldError{Field: "owner", Reason: "cannot be changed"}
		case !d.Created.Equal(created):
			return nil, &tokens.FieldError{Field: "createdAt", Reason: "cannot be changed"}
		}
		if err := d.Validate(); err != nil {
			return nil, err
		}
		d.Version = version + 1
		d.Updated = now()
		data, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("device store: encode: %w", err)
		}
		res, err := casScript.Run(ctx, s.rdb, []string{deviceKey(id)}, version, data).Int()
		if err != nil {
			return nil, fmt.Errorf("device store: update: %w", err)
		}
		switch res {
		case 1:
			return d, nil
		case -1: // deleted since the read
			return nil, ErrDeviceNotFound
		}
	}
	return nil, fmt.Errorf("device store: update %s: %w", id, tokens.ErrConflict)
}

// Delete removes the owner's device id, or returns ErrDeviceNotFound.
func (s *Store) Delete(ctx context.Context, owner, id string) error {
	d, err := s.Get(ctx, owner, id)
	if err != nil {
		return err
	}
	n, err := s.rdb.Del(ctx, deviceKey(id)).Result()
	if err != nil {
		return fmt.Errorf("device store: delete: %w", err)
	}
	// The entry goes after the record. If this fails, the device is gone
	// all the same and List drops the entry later.
	s.rdb.ZRem(ctx, ownerKey(owner), indexMember(d))
	if n == 0 { // a concurrent Delete won
		return ErrDeviceNotFound
	}
	return nil
}
