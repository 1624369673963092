package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/tokens"
)

// liveSessions are the open device pages of this instance, by link, so that
// owner changes arriving on the feed reach them.
type liveSessions struct {
	mu     sync.Mutex // guards byLink
	byLink map[tokens.LinkID]map[*wsSession]struct{}
}

func newLiveSessions() *liveSessions {
	return &liveSessions{byLink: make(map[tokens.LinkID]map[*wsSession]struct{})}
}

func (r *liveSessions) add(ws *wsSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ws.linkID
	if r.byLink[id] == nil {
		r.byLink[id] = make(map[*wsSession]struct{})
	}
	r.byLink[id][ws] = struct{}{}
}

func (r *liveSessions) remove(ws *wsSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := ws.linkID
	delete(r.byLink[id], ws)
	if len(r.byLink[id]) == 0 {
		delete(r.byLink, id)
	}
}

// of returns the sessions of one link, or of every link when id is nil.
func (r *liveSessions) of(id *tokens.LinkID) []*wsSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*wsSession
	for lid, set := range r.byLink {
		if id != nil && lid != *id {
			continue
		}
		for ws := range set {
			out = append(out, ws)
		}
	}
	return out
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

// liveFeed hands feed events to the open sessions. It subscribes after the
// cache, so the cache has dropped a changed link before relink reads it.
// The feed's goroutine must not block: the work runs on its own goroutines.
type liveFeed struct{ s *Server }

func (f liveFeed) Event(e tokens.Event) {
	switch {
	case e.Op == tokens.OpDevice:
		go f.s.refreshDevice(e.Device)
	case e.Link != (tokens.LinkID{}) && len(f.s.live.of(&e.Link)) > 0:
		go f.s.relink(e.Link)
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
	for _, ws := range s.live.of(&id) {
		ws.apply(ctx, l, err, false)
	}
}

// refreshDevice re-sends the description of a device whose owner changed it.
func (s *Server) refreshDevice(device string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ws := range s.live.of(nil) {
		if ws.device == device {
			l, err := s.cache.Get(ctx, ws.linkID)
			ws.apply(ctx, l, err, true)
		}
	}
}

// apply brings a session in line with its link's record: it closes the
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
	ws.mu.Lock()
	if l.Version < ws.link.Version || (l.Version == ws.link.Version && !deviceChanged) {
		ws.mu.Unlock()
		return // stale, or nothing new
	}
	old := ws.link
	ws.link = l
	ws.mu.Unlock()

	now := s.cfg.Now()
	switch err := l.Check(now); {
	case l.Generation != old.Generation:
		ws.shut(emulator.ReasonDeleted)
		return
	case l.Device != ws.device:
		ws.shut(emulator.ReasonDeviceChanged)
		return
	case err != nil && !errors.Is(err, tokens.ErrUsedUp): // uses count at the start only
		ws.shut(reasonFor(err))
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
	ws.send(ws.emu.Update(s.publicView(l, now), l.Permissions, dev, state))
	ws.armTimer(now)
}

// watchHealth tracks how long the feed has been unhealthy, and closes the
// open sessions when that passes the view bound.
func (s *Server) watchHealth(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.feed.Healthy() {
			s.unhealthy.Store(0)
			continue
		}
		now := s.cfg.Now()
		s.unhealthy.CompareAndSwap(0, now.UnixNano())
		if now.Sub(s.unhealthySince()) > s.cfg.WS.ViewBound {
			for _, ws := range s.live.of(nil) {
				ws.shut(emulator.ReasonUnavailable)
			}
		}
	}
}

// unhealthySince returns when the feed became unhealthy, or zero.
func (s *Server) unhealthySince() time.Time {
	if n := s.unhealthy.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
