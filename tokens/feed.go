package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The invalidation feed is one Redis stream. Both keys carry the hash tag
// {feed}, so the publish script runs in one slot of a Redis Cluster.
//
//	lg:{feed}:seq     counter; every entry takes the next number
//	lg:{feed}:stream  entries: seq, link (id hex), device, op, at (the
//	                  publisher's clock, unix ns: for the feed's lag)
//
// A reader that sees a sequence number other than the one it expects has
// missed entries (trimmed, or Redis lost its data): that is a gap.
const (
	feedStreamKey = "lg:{feed}:stream"
	feedSeqKey    = "lg:{feed}:seq"
	// FeedMaxLen is how many entries the stream keeps (approximately). A
	// reader further behind than this sees a gap.
	FeedMaxLen = 100_000
)

// Op is what happened to a link.
type Op string

// Feed operations.
const (
	OpCreated  Op = "created"
	OpUpdated  Op = "updated"
	OpDisabled Op = "disabled"
	OpEnabled  Op = "enabled"
	OpDeleted  Op = "deleted"
	OpUsedUp   Op = "used-up"
	// OpDevice: a device's description changed; Event.Device names it.
	OpDevice Op = "device"
)

// Event is one entry of the invalidation feed.
type Event struct {
	Seq    int64
	Link   LinkID
	Device string // set for device events; Link is zero then
	Op     Op
	// At is when the event was published, by the publisher's clock; zero
	// for entries written without it. Readers measure the feed's lag
	// with it (meaningful when the instances share a clock).
	At time.Time
}

// Publisher appends events to the feed.
type Publisher struct {
	rdb    redis.UniversalClient
	maxLen int64
}

// NewPublisher returns a publisher on rdb.
func NewPublisher(rdb redis.UniversalClient) *Publisher {
	return &Publisher{rdb: rdb, maxLen: FeedMaxLen}
}

var publishScript = redis.NewScript(`
local s = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'seq', s, 'link', ARGV[2], 'device', ARGV[3], 'op', ARGV[4], 'at', ARGV[5])
return s`)

// Publish appends e to the feed.
func (p *Publisher) Publish(ctx context.Context, e Event) error {
	link := ""
	if e.Link != (LinkID{}) {
		link = e.Link.String()
	}
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	err := publishScript.Run(ctx, p.rdb, []string{feedStreamKey, feedSeqKey}, p.maxLen, link, e.Device, string(e.Op), at.UnixNano()).Err()
	if err != nil {
		return fmt.Errorf("%w: publish invalidation: %v", ErrUnavailable, err)
	}
	return nil
}

// FeedConfig configures a Feed. The zero value means the defaults.
type FeedConfig struct {
	// Block is how long one XREAD waits for entries. It defaults to 1 s and
	// bounds how long Run takes to notice a cancelled context.
	Block time.Duration
	// Backoff is the wait between reconnect attempts. It defaults to 250 ms.
	Backoff time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Feed follows the invalidation stream and hands each event to its
// subscribers. While it cannot read the stream it is unhealthy: caches must
// not answer from memory then. On every (re)connect and on every gap it
// calls the subscribers' reset, since any number of events may be lost.
type Feed struct {
	rdb redis.UniversalClient
	cfg FeedConfig
	log *slog.Logger

	mu   sync.Mutex // guards subs
	subs []Subscriber

	healthy atomic.Bool
	ready   chan struct{} // closed on the first successful sync
	once    sync.Once
	stats   FeedStats
}

// Subscriber receives feed events. Event and Reset are called from the
// feed's goroutine and must not block.
type Subscriber interface {
	Event(Event)
	Reset()
}

// FeedStats counts what the feed has seen.
type FeedStats struct {
	Events     atomic.Int64
	Gaps       atomic.Int64
	Reconnects atomic.Int64
}

// NewFeed returns a feed reader on rdb. Call Run to start it.
func NewFeed(rdb redis.UniversalClient, cfg FeedConfig) *Feed {
	if cfg.Block <= 0 {
		cfg.Block = time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Feed{rdb: rdb, cfg: cfg, log: cfg.Logger.With("component", "feed"), ready: make(chan struct{})}
}

// Subscribe adds s to the subscribers.
func (f *Feed) Subscribe(s Subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, s)
}

// Healthy reports whether the feed is following the stream now.
func (f *Feed) Healthy() bool { return f.healthy.Load() }

// Ready is closed once the feed has synced with the stream for the first time.
func (f *Feed) Ready() <-chan struct{} { return f.ready }

// Stats returns the feed's counters.
func (f *Feed) Stats() *FeedStats { return &f.stats }

func (f *Feed) each(fn func(Subscriber)) {
	f.mu.Lock()
	subs := f.subs
	f.mu.Unlock()
	for _, s := range subs {
		fn(s)
	}
}

// Run follows the stream until ctx is cancelled, reconnecting after errors.
func (f *Feed) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		pos, err := f.tail(ctx)
		if err == nil {
			f.each(Subscriber.Reset)
			f.healthy.Store(true)
			f.once.Do(func() { close(f.ready) })
			err = f.follow(ctx, pos)
			f.healthy.Store(false)
			f.each(Subscriber.Reset)
		}
		if ctx.Err() != nil {
			break
		}
		f.stats.Reconnects.Add(1)
		f.log.Warn("invalidation feed interrupted; caches flushed, reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(f.cfg.Backoff):
		}
	}
	return nil
}

type position struct {
	id  string
	seq int64
}

// tail returns the position of the stream's last entry.
func (f *Feed) tail(ctx context.Context) (position, error) {
	msgs, err := f.rdb.XRevRangeN(ctx, feedStreamKey, "+", "-", 1).Result()
	if err != nil {
		return position{}, err
	}
	if len(msgs) == 0 {
		return position{id: "0-0"}, nil
	}
	seq, _ := strconv.ParseInt(str(msgs[0].Values["seq"]), 10, 64)
	return position{id: msgs[0].ID, seq: seq}, nil
}

func (f *Feed) follow(ctx context.Context, pos position) error {
	for ctx.Err() == nil {
		res, err := f.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{feedStreamKey, pos.id},
			Count:   512,
			Block:   f.cfg.Block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return err
		}
		for _, s := range res {
			for _, m := range s.Messages {
				e := parseEvent(m)
				if e.Seq != pos.seq+1 {
					f.stats.Gaps.Add(1)
					f.log.Warn("invalidation feed gap; caches flushed", "want_seq", pos.seq+1, "got_seq", e.Seq)
					f.each(Subscriber.Reset)
				}
				pos = position{id: m.ID, seq: e.Seq}
				f.stats.Events.Add(1)
				f.each(func(s Subscriber) { s.Event(e) })
			}
		}
	}
	return ctx.Err()
}

func parseEvent(m redis.XMessage) Event {
	e := Event{Op: Op(str(m.Values["op"])), Device: str(m.Values["device"])}
	e.Seq, _ = strconv.ParseInt(str(m.Values["seq"]), 10, 64)
	if at, err := strconv.ParseInt(str(m.Values["at"]), 10, 64); err == nil {
		e.At = time.Unix(0, at)
	}
	if l := str(m.Values["link"]); l != "" {
		e.Link, _ = ParseLinkID(l)
	}
	return e
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
