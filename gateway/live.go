package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/tokens"
)

// liveSession is an open socket of a link: a device page or a camera
// viewer. Owner changes arriving on the feed reach it through apply.
type liveSession interface {
	linkKey() tokens.LinkID
	sessionKey() string // its place among the link's sessions (renewLeases)
	deviceKey() string
	// apply brings the session in line with its link's record (or the
	// error reading it): it closes the session or pushes the change.
	apply(ctx context.Context, l *tokens.Link, err error, deviceChanged bool)
	shut(reason string)
}

// liveSessions are the open sockets of this instance, by link.
type liveSessions struct {
	mu     sync.Mutex // guards byLink
	byLink map[tokens.LinkID]map[liveSession]struct{}
}

func newLiveSessions() *liveSessions {
	return &liveSessions{byLink: make(map[tokens.LinkID]map[liveSession]struct{})}
}

func (r *liveSessions) add(ls liveSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ls.linkKey()
	if r.byLink[id] == nil {
		r.byLink[id] = make(map[liveSession]struct{})
	}
	r.byLink[id][ls] = struct{}{}
}

func (r *liveSessions) remove(ls liveSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ls.linkKey()
	delete(r.byLink[id], ls)
	if len(r.byLink[id]) == 0 {
		delete(r.byLink, id)
	}
}

// of returns the sessions of one link, or of every link when id is nil.
func (r *liveSessions) of(id *tokens.LinkID) []liveSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id != nil {
		set := r.byLink[*id]
		if len(set) == 0 {
			return nil
		}
		out := make([]liveSession, 0, len(set))
		for ls := range set {
			out = append(out, ls)
		}
		return out
	}
	var out []liveSession
	for _, set := range r.byLink {
		for ls := range set {
			out = append(out, ls)
		}
	}
	return out
}

// has reports whether the link has open sessions here.
func (r *liveSessions) has(id tokens.LinkID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byLink[id]) > 0
}

func (r *liveSessions) links() []tokens.LinkID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]tokens.LinkID, 0, len(r.byLink))
	for id := range r.byLink {
		out = append(out, id)
	}
	return out
}

// leases returns the open sessions' IDs by link, for renewLeases.
func (r *liveSessions) leases() map[tokens.LinkID][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[tokens.LinkID][]string, len(r.byLink))
	for id, set := range r.byLink {
		ids := make([]string, 0, len(set))
		for ls := range set {
			ids = append(ids, ls.sessionKey())
		}
		out[id] = ids
	}
	return out
}

// renewLeases keeps the leases of this instance's open sessions (their
// places under a link's maxSessions) until ctx ends: every third of a
// lease, all of them in one Redis pipeline. Each session renewing its own
// at its ping cost a pipeline a session every ping interval (500 a second
// for 10,000 pages) and most of an idle gateway's garbage. A renewal that
// fails is logged; the next one may succeed before the leases lapse.
func (s *Server) renewLeases(ctx context.Context) {
	every(ctx, tokens.SessionLease/3, func() {
		rctx, cancel := context.WithTimeout(ctx, tokens.SessionLease/3)
		defer cancel()
		if err := s.links.RenewSessions(rctx, s.live.leases()); err != nil {
			s.log.Warn("renewing session leases", "err", err)
		}
	})
}

// Count returns the number of open device sessions on this instance.
func (r *liveSessions) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, set := range r.byLink {
		n += len(set)
	}
	return n
}

// join adds ls to the open sessions, then applies its link's record as it
// is now: an owner change the feed brought between the socket's admission
// and now found no session of the link here to apply to. The cache drops
// a changed link before liveFeed looks for the link's sessions (it
// subscribed first), so once ls is in, either relink sees it or this read
// sees the change.
func (s *Server) join(ctx context.Context, ls liveSession) {
	s.live.add(ls)
	l, err := s.cache.Get(ctx, ls.linkKey())
	ls.apply(ctx, l, err, false)
}

// liveFeed hands feed events to the open sessions. It subscribes after the
// cache, so the cache has dropped a changed link before relink reads it.
// The feed's goroutine must not block: the work runs on its own goroutines.
type liveFeed struct{ s *Server }

func (f liveFeed) Event(e tokens.Event) {
	now := time.Now()
	if !e.At.IsZero() {
		f.s.metrics.feedLag.Observe(max(now.Sub(e.At), 0).Seconds())
	}
	switch {
	case e.Op == tokens.OpDevice:
		go f.s.refreshDevice(e.Device)
	case e.Link == (tokens.LinkID{}) || !f.s.live.has(e.Link):
	case e.Op == tokens.OpDisabled, e.Op == tokens.OpDeleted:
		// The event says it all: the sessions close now, without reading
		// the record again (which a quick enable may already have changed:
		// the disable happened, and ends them all the same). shut never
		// blocks.
		reason := emulator.ReasonDisabled
		if e.Op == tokens.OpDeleted {
			reason = emulator.ReasonDeleted
		}
		for _, ls := range f.s.live.of(&e.Link) {
			ls.shut(reason)
		}
		f.s.metrics.relink.Observe(time.Since(now).Seconds())
	default:
		go func() {
			f.s.relink(e.Link)
			f.s.metrics.relink.Observe(time.Since(now).Seconds())
		}()
	}
}

// Reset revalidates every open session: events may have been missed.
func (f liveFeed) Reset() {
	go func() {
		for _, id := range f.s.live.links() {
			f.s.relink(id)
		}
	}()
}

// relink applies a link's current record to its open sessions.
func (s *Server) relink(id tokens.LinkID) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := s.cache.Get(ctx, id)
	for _, ls := range s.live.of(&id) {
		ls.apply(ctx, l, err, false)
	}
}

// refreshDevice re-sends the description of a device whose owner changed it.
func (s *Server) refreshDevice(device string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ls := range s.live.of(nil) {
		if ls.deviceKey() == device {
			l, err := s.cache.Get(ctx, ls.linkKey())
			ls.apply(ctx, l, err, true)
		}
	}
}

func (ws *wsSession) linkKey() tokens.LinkID { return ws.linkID }
func (ws *wsSession) deviceKey() string      { return ws.device }

// closeReason says whether a link's new record ends a session that opened
// on old for device: the closing reason, or "" when the session goes on.
func closeReason(old, l *tokens.Link, device string, now time.Time) string {
	switch err := l.Check(now); {
	case l.Generation != old.Generation:
		return emulator.ReasonDeleted
	case l.Device != device:
		return emulator.ReasonDeviceChanged
	case err != nil && !errors.Is(err, tokens.ErrUsedUp): // uses count at the start only
		return reasonFor(err)
	}
	return ""
}

// apply brings a device page in line with its link's record: it closes the
// session if the link may no longer be used, or pushes the new permissions.
func (ws *wsSession) apply(ctx context.Context, l *tokens.Link, err error, deviceChanged bool) {
	s := ws.srv
	switch {
	case errors.Is(err, tokens.ErrNotFound):
		ws.shut(emulator.ReasonDeleted)
		return
	case err != nil:
		return // Redis unreachable: the failure bounds decide (WSConfig)
	}
	old := ws.swapLink(l, deviceChanged)
	if old == nil {
		return
	}
	now := s.cfg.Now()
	if reason := closeReason(old, l, ws.device, now); reason != "" {
		ws.shut(reason)
		return
	}
	dev, err := s.devices.GetAny(ctx, l.Device)
	if err != nil {
		return
	}
	state, _, err := s.hub.Snapshot(ctx, dev.ID)
	if err != nil {
		return
	}
	ws.queue(ws.emu.Update(s.publicView(l, now), l.Permissions, s.shared.share(dev), state))
	ws.armTimer(now)
}

// watchHealth tracks how long the feed has been unhealthy, and closes the
// open sessions when that passes the view bound.
func (s *Server) watchHealth(ctx context.Context) {
	every(ctx, 250*time.Millisecond, func() {
		if s.feed.Healthy() {
			s.unhealthy.Store(0)
			return
		}
		now := s.cfg.Now()
		s.unhealthy.CompareAndSwap(0, now.UnixNano())
		if now.Sub(s.unhealthySince()) > s.cfg.WS.ViewBound {
			for _, ls := range s.live.of(nil) {
				ls.shut(emulator.ReasonUnavailable)
			}
		}
	})
}

// unhealthySince returns when the feed became unhealthy, or zero.
func (s *Server) unhealthySince() time.Time {
	if n := s.unhealthy.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
