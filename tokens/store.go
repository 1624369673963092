package tokens

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout of link records. Keys of one link share the hash tag {<id>},
// so a Redis Cluster keeps them in one slot and scripts may touch them
// together.
//
//	lg:link:{<id>}           JSON of Link (without Uses)
//	lg:link:{<id>}:uses      number of sessions handed out (INCR)
//	lg:link:{<id>}:log       stream of access log entries (capped)
//	lg:link:{<id>}:live      sorted set of open sessions, score = lease end (unix ms)
//	lg:owner:{<owner>}:links sorted set, scores 0, members "<seq, 15 digits>:<id>"
//	lg:owner:{<owner>}:seq   counter giving each of the owner's links its place
//	lg:devlinks:{<device>}   set of ids of links that point at the device
//
// The invalidation feed has its own keys; see Feed.
func linkKey(id LinkID) string        { return "lg:link:{" + id.String() + "}" }
func usesKey(id LinkID) string        { return linkKey(id) + ":uses" }
func logKey(id LinkID) string         { return linkKey(id) + ":log" }
func liveKey(id LinkID) string        { return linkKey(id) + ":live" }
func ownerSeqKey(own string) string   { return "lg:owner:{" + own + "}:seq" }
func ownerLinksKey(own string) string { return "lg:owner:{" + own + "}:links" }
func deviceLinksKey(dev string) string {
	return "lg:devlinks:{" + dev + "}"
}

// AccessLogLen is how many access log entries a link keeps (approximately).
const AccessLogLen = 1000

// Store reads and writes link records in Redis. Every write also publishes to
// the invalidation feed. Store is safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	feed *Publisher
	now  func() time.Time
	// local are told of every write of this store before it is published:
	// this instance's caches, so that it reads its own writes at once while
	// other instances learn of them from the feed. Set up before use.
	local []func(LinkID)
}

// publish tells this instance's caches, then every instance, of a write.
func (s *Store) publish(ctx context.Context, e Event) error {
	if e.Link != (LinkID{}) {
		for _, f := range s.local {
			f(e.Link)
		}
	}
	return s.feed.Publish(ctx, e)
}

// NewStore returns a store on rdb that publishes invalidations to pub.
func NewStore(rdb redis.UniversalClient, pub *Publisher) *Store {
	return &Store{rdb: rdb, feed: pub, now: time.Now}
}

// Get reads a link and its use count with one Redis command.
func (s *Store) Get(ctx context.Context, id LinkID) (*Link, error) {
	vals, err := s.rdb.MGet(ctx, linkKey(id), usesKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	raw, ok := vals[0].(string)
	if !ok {
		return nil, ErrNotFound
	}
	l := new(Link)
	if err := json.Unmarshal([]byte(raw), l); err != nil {
		return nil, fmt.Errorf("link %s: corrupt record: %w", id, err)
	}
	if u, ok := vals[1].(string); ok {
		l.Uses, _ = strconv.ParseInt(u, 10, 64)
	}
	return l, nil
}

// GetOwned reads a link that must belong to owner; another owner's link is
// ErrNotFound, as if it did not exist.
func (s *Store) GetOwned(ctx context.Context, owner string, id LinkID) (*Link, error) {
	l, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if l.Owner != owner {
		return nil, ErrNotFound
	}
	return l, nil
}

// Create stores a new link. The caller fills Owner, Device, Kind, Name,
// Permissions, Window, Schedule and limits; Create sets ID, Status,
// Generation, Version, Token (minted by ring) and the times.
func (s *Store) Create(ctx context.Context, ring *KeyRing, l *Link) error {
	now := s.now().UTC().Truncate(time.Millisecond)
	l.ID = NewLinkID()
	l.Status = StatusActive
	l.Generation = 1
	l.Version = 1
	l.Created, l.Updated = now, now
	l.Token = ring.Mint(l.Claims())
	// The owner's counter orders the listing: creation times tie within a
	// millisecond, counters never do.
	seq, err := s.rdb.Incr(ctx, ownerSeqKey(l.Owner)).Result()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.Seq = seq
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	ok, err := s.rdb.SetNX(ctx, linkKey(l.ID), data, 0).Result()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !ok {
		return ErrConflict // a random 128-bit id collided: practically never
	}
	// Indexes are written after the record: a crash in between leaves a record
	// that is reachable by token only, never an index entry to nothing.
	if err := s.rdb.ZAdd(ctx, ownerLinksKey(l.Owner), redis.Z{Member: indexMember(l.Seq, l.ID)}).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := s.rdb.SAdd(ctx, deviceLinksKey(l.Device), l.ID.String()).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return s.publish(ctx, Event{Link: l.ID, Op: OpCreated})
}

func indexMember(seq int64, id LinkID) string {
	return fmt.Sprintf("%015d:%s", seq, id)
}

// casScript replaces a record only if its stored version is still ARGV[1].
// It returns 1 on success, 0 on a version mismatch and -1 if the key is gone.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if tostring(cjson.decode(cur).version) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`)

// Update applies fn to the owner's link and stores the result, retrying on
// concurrent writes. fn must not change ID, Owner or Created. Update bumps
// Version and Updated and publishes op (OpUpdated when empty).
func (s *Store) Update(ctx context.Context, owner string, id LinkID, op Op, fn func(*Link) error) (*Link, error) {
	if op == "" {
		op = OpUpdated
	}
	for range 8 {
		l, err := s.GetOwned(ctx, owner, id)
		if err != nil {
			return nil, err
		}
		prevVersion, prevDevice := l.Version, l.Device
		if err := fn(l); err != nil {
			return nil, err
		}
		l.Version = prevVersion + 1
		l.Updated = s.now().UTC().Truncate(time.Millisecond)
		data, err := json.Marshal(l)
		if err != nil {
			return nil, err
		}
		res, err := casScript.Run(ctx, s.rdb, []string{linkKey(id)}, strconv.FormatInt(prevVersion, 10), data).Int()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		switch res {
		case -1:
			return nil, ErrNotFound
		case 0:
			continue // lost a race; read again
		}
		if l.Device != prevDevice {
			s.rdb.SRem(ctx, deviceLinksKey(prevDevice), id.String())
			if err := s.rdb.SAdd(ctx, deviceLinksKey(l.Device), id.String()).Err(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
		}
		return l, s.publish(ctx, Event{Link: id, Op: op})
	}
	return nil, ErrConflict
}

// Delete removes the owner's link, its counters and its log.
func (s *Store) Delete(ctx context.Context, owner string, id LinkID) error {
	l, err := s.GetOwned(ctx, owner, id)
	if err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, linkKey(id), usesKey(id), logKey(id), liveKey(id)).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.rdb.ZRem(ctx, ownerLinksKey(owner), indexMember(l.Seq, id))
	s.rdb.SRem(ctx, deviceLinksKey(l.Device), id.String())
	return s.publish(ctx, Event{Link: id, Op: OpDeleted})
}

// PublishDevice tells every instance that a device's description changed.
func (s *Store) PublishDevice(ctx context.Context, device string) error {
	return s.publish(ctx, Event{Device: device, Op: OpDevice})
}

// MaxPageSize bounds List's limit.
const MaxPageSize = 200

// List returns a page of the owner's links, newest first. cursor is "" for
// the first page or the next value of the previous page; next is "" after
// the last page. A malformed cursor is a *FieldError.
func (s *Store) List(ctx context.Context, owner, cursor string, limit int) (items []*Link, next string, err error) {
	limit = clampLimit(limit)
	max := "+"
	if cursor != "" {
		m, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(m) < 17 || !strings.Contains(string(m), ":") {
			return nil, "", &FieldError{Field: "cursor", Reason: "malformed"}
		}
		max = "(" + string(m)
	}
	members, err := s.rdb.ZRevRangeByLex(ctx, ownerLinksKey(owner), &redis.ZRangeBy{
		Max: max, Min: "-", Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	more := len(members) > limit
	if more {
		members = members[:limit]
	}
	for _, m := range members {
		_, idStr, _ := strings.Cut(m, ":")
		id, err := ParseLinkID(idStr)
		if err != nil {
			continue
		}
		l, err := s.GetOwned(ctx, owner, id)
		if errors.Is(err, ErrNotFound) {
			s.rdb.ZRem(ctx, ownerLinksKey(owner), m) // index entry left by an interrupted delete
			continue
		}
		if err != nil {
			return nil, "", err
		}
		items = append(items, l)
	}
	if more {
		next = base64.RawURLEncoding.EncodeToString([]byte(members[len(members)-1]))
	}
	return items, next, nil
}

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return 50
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// LinksOfDevice returns the ids of the links that point at a device.
func (s *Store) LinksOfDevice(ctx context.Context, device string) ([]LinkID, error) {
	ids, err := s.rdb.SMembers(ctx, deviceLinksKey(device)).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	out := make([]LinkID, 0, len(ids))
	for _, s := range ids {
		if id, err := ParseLinkID(s); err == nil {
			out = append(out, id)
		}
	}
	return out, nil
}

// Access is one access log entry.
type Access struct {
	At        time.Time `json:"at"`
	Event     string    `json:"event"` // "session"
	Session   string    `json:"session,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
}

// useScript counts one use of a link, unless it has reached its maximum or
// its record is no longer the one the caller read, and appends the access
// log entry; the three keys share the link's slot.
// KEYS: link, uses, log. ARGV: max (0 = none), log length, the version read,
// then log fields. Returns the new count, -1 when the link is used up, -2
// when the record is gone or has another version.
var useScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur or tostring(cjson.decode(cur).version) ~= ARGV[3] then return -2 end
local max = tonumber(ARGV[1])
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if max > 0 and n >= max then return -1 end
n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'at', ARGV[4], 'event', ARGV[5], 'session', ARGV[6], 'ip', ARGV[7], 'ua', ARGV[8])
return n`)

// Use counts a use of the link and logs it. It returns ErrUsedUp when the
// link has already handed out maxUses sessions. When this use is the last
// one, the link's cache entries are invalidated so that pages answer 410.
//
// l must be the record as read (from a cache, say): if the stored record
// has changed since (an owner disabled the link on another instance, and
// this instance's feed has not said so yet), no use is counted and Use
// returns ErrStale. An open that succeeds was thus valid at the moment it
// was counted, on every instance, feed or no feed.
func (s *Store) Use(ctx context.Context, l *Link, a Access) (int64, error) {
	ua := a.UserAgent
	if len(ua) > 256 {
		ua = ua[:256]
	}
	n, err := useScript.Run(ctx, s.rdb, []string{linkKey(l.ID), usesKey(l.ID), logKey(l.ID)},
		l.MaxUses, AccessLogLen, l.Version, a.At.UTC().Format(time.RFC3339Nano), a.Event, a.Session, a.IP, ua).Int64()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	switch {
	case n == -2:
		return 0, ErrStale
	case n < 0:
		return 0, ErrUsedUp
	}
	if l.MaxUses > 0 && n >= int64(l.MaxUses) {
		if err := s.publish(ctx, Event{Link: l.ID, Op: OpUsedUp}); err != nil {
			return n, err
		}
	}
	return n, nil
}

// AccessLog returns up to limit of the newest access log entries of the
// owner's link, newest first.
func (s *Store) AccessLog(ctx context.Context, owner string, id LinkID, limit int) ([]Access, error) {
	if _, err := s.GetOwned(ctx, owner, id); err != nil {
		return nil, err
	}
	msgs, err := s.rdb.XRevRangeN(ctx, logKey(id), "+", "-", int64(clampLimit(limit))).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	out := make([]Access, 0, len(msgs))
	for _, m := range msgs {
		str := func(k string) string { v, _ := m.Values[k].(string); return v }
		at, _ := time.Parse(time.RFC3339Nano, str("at"))
		out = append(out, Access{At: at, Event: str("event"), Session: str("session"), IP: str("ip"), UserAgent: str("ua")})
	}
	return out, nil
}

// ErrTooManySessions: the link has as many open sessions as its owner allows.
var ErrTooManySessions = errors.New("too many open sessions on this link")

// SessionLease is how long an open session holds its place without renewal.
// A gateway that dies leaves places that free themselves after this.
const SessionLease = 60 * time.Second

// acquireScript takes a place for a session unless the link is full.
// KEYS: live. ARGV: now ms, lease end ms, max (0 = none), session id.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local max = tonumber(ARGV[3])
if max > 0 and redis.call('ZSCORE', KEYS[1], ARGV[4]) == false and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1`)

// AcquireSession takes one of the link's session places for session, or
// returns ErrTooManySessions. Places are leased: RenewSession keeps one, and
// a place not renewed within SessionLease is free again.
func (s *Store) AcquireSession(ctx context.Context, l *Link, session string) error {
	now := s.now()
	ok, err := acquireScript.Run(ctx, s.rdb, []string{liveKey(l.ID)},
		now.UnixMilli(), now.Add(SessionLease).UnixMilli(), l.MaxSessions, session).Int()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if ok == 0 {
		return ErrTooManySessions
	}
	return nil
}

// RenewSessions extends the leases of many sessions, by link, in one
// pipeline: an instance renews all of its sessions at once (two commands a
// link) rather than each on its own. A session whose place is gone (it
// was released, or its lease had lapsed) is not given one back.
func (s *Store) RenewSessions(ctx context.Context, leases map[LinkID][]string) error {
	if len(leases) == 0 {
		return nil
	}
	end := s.now().Add(SessionLease).UnixMilli()
	pipe := s.rdb.Pipeline()
	for id, sessions := range leases {
		members := make([]redis.Z, len(sessions))
		for i, session := range sessions {
			members[i] = redis.Z{Score: float64(end), Member: session}
		}
		pipe.ZAddXX(ctx, liveKey(id), members...)
		pipe.PExpireAt(ctx, liveKey(id), time.UnixMilli(end))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// ReleaseSession frees a session's place.
func (s *Store) ReleaseSession(ctx context.Context, id LinkID, session string) error {
	if err := s.rdb.ZRem(ctx, liveKey(id), session).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}
