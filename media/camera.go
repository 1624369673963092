package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// cameraState is what viewers have been told about the upstream.
type cameraState int

const (
	stateConnecting cameraState = iota // first connect in progress: nothing said yet
	stateOnline                        // fragments flow
	stateOffline                       // the upstream failed; viewers were sent offline
)

// addRequest attaches a viewer; src is the source as the caller knows it now.
type addRequest struct {
	v   *Viewer
	src Source
}

// hlsRequest asks the camera for its LL-HLS output, started if need be.
type hlsRequest struct {
	src   Source
	reply chan<- *hlsOutput // buffered
}

// upstreamHandle is a running upstream, as its camera sees it.
type upstreamHandle struct {
	cancel context.CancelFunc
	done   chan struct{}      // closed when the upstream goroutine has returned
	events chan upstreamEvent // from this upstream only
}

// camera is one camera's live state. Its run goroutine owns everything below
// the channels: the viewers, the upstream's on-demand life (started by the
// first viewer or HLS request, stopped Linger after the last one leaves),
// the muxer, the cached group of pictures and the LL-HLS output's life.
// Others talk to it only through chAdd, chRemove and chHLS; the upstream
// talks to it through its events channel. It never waits for a viewer or
// an HLS client.
type camera struct {
	id    string
	m     *Manager
	ctx   context.Context // the manager's: ends at Manager.Close
	cfg   Config
	log   *slog.Logger
	stats *cameraStats

	chAdd    chan addRequest
	chRemove chan *Viewer
	chHLS    chan hlsRequest
	quit     chan struct{}  // closed when run starts shutting down
	pumps    sync.WaitGroup // viewer pumps

	// Owned by run.
	src      Source
	up       *upstreamHandle
	viewers  map[*Viewer]struct{}
	state    cameraState
	mux      muxer
	gop      []*fragment // from the last keyframe; valid if gopValid
	gopBytes int
	gopValid bool
	hls      *hlsOutput // nil while no HLS client comes
}

func newCamera(ctx context.Context, m *Manager, id string, stats *cameraStats) *camera {
	return &camera{
		id:       id,
		m:        m,
		ctx:      ctx,
		cfg:      m.cfg,
		log:      m.log.With("camera", id),
		stats:    stats,
		chAdd:    make(chan addRequest),
		chRemove: make(chan *Viewer),
		chHLS:    make(chan hlsRequest),
		quit:     make(chan struct{}),
		viewers:  make(map[*Viewer]struct{}),
	}
}

// run is the camera goroutine. It returns when the manager closes, or when
// the camera has had no viewer for Linger (also right after creation, should
// the first viewer never arrive).
func (c *camera) run() {
	defer c.shutdown()

	linger := time.NewTimer(c.cfg.Linger)
	defer linger.Stop()
	lingering := true
	hlsIdle := time.NewTimer(c.cfg.Linger)
	defer hlsIdle.Stop()

	for {
		var events <-chan upstreamEvent
		if c.up != nil {
			events = c.up.events
		}
		var lingerC, hlsIdleC <-chan time.Time
		if lingering {
			lingerC = linger.C
		}
		if c.hls != nil {
			hlsIdleC = hlsIdle.C
		}

		select {
		case req := <-c.chAdd:
			c.add(req)
		case v := <-c.chRemove:
			c.remove(v)
		case req := <-c.chHLS:
			if c.hls == nil {
				hlsIdle.Reset(c.cfg.Linger)
			}
			c.serveHLS(req)
		case <-hlsIdleC:
			if wait := c.hlsIdle(); wait > 0 {
				hlsIdle.Reset(wait)
			} else if len(c.viewers) == 0 {
				// It has been Linger since the last HLS request.
				c.log.Debug("no viewers: stopping camera upstream")
				return
			}
		case ev := <-events:
			c.handle(ev)
		case <-lingerC:
			c.log.Debug("no viewers: stopping camera upstream")
			return
		case <-c.ctx.Done():
			return
		}

		switch idle := len(c.viewers) == 0 && c.hls == nil; {
		case idle && !lingering:
			linger.Reset(c.cfg.Linger)
			lingering = true
		case !idle && lingering:
			linger.Stop()
			lingering = false
		}
	}
}

// shutdown stops the upstream and ends every viewer.
func (c *camera) shutdown() {
	c.m.forget(c) // from now on, Watch starts a new camera
	close(c.quit)
	c.stopHLS()
	c.stopUpstream()
	for v := range c.viewers {
		v.end(ErrClosed)
	}
	clear(c.viewers)
	c.stats.viewers.Store(0)
	c.stats.online.Store(false)
	c.pumps.Wait()
	c.m.wg.Done()
}

func (c *camera) startUpstream() {
	u, transport, err := c.src.parse()
	if err != nil { // Watch checked it
		c.log.Error("camera source", "error", err)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	h := &upstreamHandle{
		cancel: cancel,
		done:   make(chan struct{}),
		events: make(chan upstreamEvent, 64),
	}
	up := &upstream{
		src:       c.src,
		url:       u,
		transport: transport,
		retryMin:  c.cfg.RetryMin,
		retryMax:  c.cfg.RetryMax,
		events:    h.events,
		stats:     c.stats,
		log:       c.log,
	}
	go func() {
		defer close(h.done)
		up.run(ctx)
	}()
	c.up = h
	c.stats.running.Store(true)
	c.log.Info("camera upstream started", "source", c.src)
}

func (c *camera) stopUpstream() {
	if c.up == nil {
		return
	}
	c.up.cancel()
	<-c.up.done
	c.up = nil
	c.stats.running.Store(false)
	c.log.Info("camera upstream stopped")
}

// pull makes sure the upstream runs, from src: the newest source wins.
func (c *camera) pull(src Source) {
	if c.up == nil || !src.same(c.src) {
		if c.up != nil {
			c.log.Info("camera source changed: reconnecting")
			c.stopUpstream()
			c.mux.resync()
			c.clearGOP()
		}
		c.src = src
		c.startUpstream()
	}
}

// add attaches a viewer and starts it from the cached group of pictures.
func (c *camera) add(req addRequest) {
	c.pull(req.src)

	v := req.v
	c.viewers[v] = struct{}{}
	c.stats.viewers.Store(int64(len(c.viewers)))
	c.pumps.Add(1)
	go func() {
		defer c.pumps.Done()
		v.pump()
	}()

	switch {
	case c.state == stateOffline:
		v.push(offlineMsg)
		v.skipping = true
	case c.gopValid && len(c.gop) > 0:
		init := c.gop[0].init
		v.push(Message{Text: init.codecs}, Message{Binary: init.data})
		for _, f := range c.gop { // replayed: no times, they are not live
			v.push(Message{Binary: f.data})
		}
		v.init = init
	default: // connecting, or the group is too large to cache
		v.skipping = true
	}
}

func (c *camera) remove(v *Viewer) {
	if _, ok := c.viewers[v]; !ok {
		return
	}
	delete(c.viewers, v)
	c.stats.viewers.Store(int64(len(c.viewers)))
}

// drop ends a viewer that cannot keep up.
func (c *camera) drop(v *Viewer) {
	delete(c.viewers, v)
	v.end(ErrTooSlow)
	c.stats.viewers.Store(int64(len(c.viewers)))
	c.stats.dropped.Add(1)
	c.log.Debug("viewer dropped: too slow")
}

func (c *camera) handle(ev upstreamEvent) {
	switch ev.kind {
	case evSession:
		c.stats.connects.Add(1)
		c.mux.startSession(ev.tracks)
		c.hlsSession()
	case evVideo:
		var held, f *fragment
		err := guard(func() (err error) {
			held, f, err = c.mux.video(ev.au, ev.pts, ev.in)
			return err
		})
		if err != nil {
			c.stats.resyncs.Add(1)
			c.checkPanic(err)
		}
		c.publish(held)
		c.publish(f)
		c.hlsVideo()
	case evAudio:
		var held *fragment
		err := guard(func() (err error) {
			held, err = c.mux.audioUnits(ev.au, ev.pts)
			return err
		})
		if err != nil {
			c.stats.decodeErrors.Add(1)
			c.checkPanic(err)
		}
		c.publish(held)
		c.hlsAudio()
	case evVideoGap:
		c.stats.resyncs.Add(1)
		// A held keyframe is whole: it goes out, and what follows it waits
		// for the next keyframe.
		var held *fragment
		err := guard(func() (err error) {
			held, err = c.mux.release()
			return err
		})
		c.checkPanic(err)
		c.publish(held)
		c.mux.resync()
	case evDown:
		c.mux.resync()
		c.stats.failures.Add(1)
		c.setOffline(ev.err)
	}
}

// checkPanic logs a panic of the codec libraries and resynchronizes the
// muxer, whose session state the panic may have left half-updated.
func (c *camera) checkPanic(err error) {
	if errors.Is(err, errPanic) {
		c.log.Error("camera data crashed a parser", "error", err)
		c.mux.resync()
	}
}

// publish hands a fragment to the cache and to every viewer.
func (c *camera) publish(f *fragment) {
	if f == nil {
		return
	}
	if c.state != stateOnline {
		if c.state == stateOffline {
			c.log.Info("camera online")
			c.broadcast(onlineMsg)
		}
		c.state = stateOnline
		c.stats.online.Store(true)
	}

	if f.key {
		clear(c.gop)
		c.gop, c.gopBytes, c.gopValid = c.gop[:0], 0, true
	}
	if c.gopValid {
		if c.gopBytes+len(f.data) <= c.cfg.QueueBytes/2 {
			c.gop = append(c.gop, f)
			c.gopBytes += len(f.data)
		} else {
			c.clearGOP()
		}
	}

	for v := range c.viewers {
		if c.offer(v, f) {
			c.drop(v)
		}
	}
}

// offer is the slow-viewer policy. A fragment goes to a viewer if it fits
// under QueueBytes; the first that does not puts the viewer into skipping,
// where it gets nothing until a keyframe fits (with the codecs message and
// init segment first if they changed). A viewer that finds its queue still
// too full at hopelessStrikes keyframes in a row is hopeless: offer
// returns true and the caller drops it.
func (c *camera) offer(v *Viewer, f *fragment) (hopeless bool) {
	bound := c.cfg.QueueBytes
	if !f.key {
		if v.skipping {
			return false
		}
		if !v.tryPush(bound, f.message()) {
			v.skipping = true
			c.stats.skips.Add(1)
		}
		return false
	}

	var ok bool
	if v.init != f.init {
		ok = v.tryPush(bound, Message{Text: f.init.codecs}, Message{Binary: f.init.data}, f.message())
	} else {
		ok = v.tryPush(bound, f.message())
	}
	if ok {
		v.init, v.skipping, v.strikes = f.init, false, 0
		return false
	}
	if !v.skipping {
		v.skipping = true
		c.stats.skips.Add(1)
	}
	v.strikes++
	return v.strikes >= hopelessStrikes
}

func (c *camera) clearGOP() {
	clear(c.gop)
	c.gop, c.gopBytes, c.gopValid = c.gop[:0], 0, false
}

// setOffline tells viewers the upstream is down, once per outage.
func (c *camera) setOffline(err error) {
	c.clearGOP()
	if c.state == stateOffline {
		return
	}
	c.log.Warn("camera offline", "error", redactError(err, c.src.URL))
	c.state = stateOffline
	c.stats.online.Store(false)
	c.broadcast(offlineMsg)
}

func (c *camera) broadcast(m Message) {
	for v := range c.viewers {
		v.push(m)
	}
}

// errPanic marks a panic recovered by guard.
var errPanic = errors.New("panic")

// guard runs f, turning a panic into an error. The codec libraries parse
// camera data (access units, slice headers, parameter sets); they are
// fuzzed, and so is this package's path through them, but a panic left in
// them must cost one camera a resync, not the instance every viewer.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanic, r)
		}
	}()
	return f()
}

// cameraStats are a camera's counters, kept by the manager across the
// camera's runs. Written by the camera and its upstream, read by Stats.
type cameraStats struct {
	viewers      atomic.Int64
	connects     atomic.Int64
	failures     atomic.Int64
	resyncs      atomic.Int64
	dropped      atomic.Int64
	skips        atomic.Int64
	packetsLost  atomic.Int64
	decodeErrors atomic.Int64
	running      atomic.Bool
	online       atomic.Bool
	hls          atomic.Bool
}

func (s *cameraStats) snapshot() CameraStats {
	return CameraStats{
		Viewers:      int(s.viewers.Load()),
		Running:      s.running.Load(),
		HLS:          s.hls.Load(),
		Online:       s.online.Load(),
		Connects:     int(s.connects.Load()),
		Failures:     int(s.failures.Load()),
		Resyncs:      int(s.resyncs.Load()),
		Dropped:      int(s.dropped.Load()),
		Skips:        int(s.skips.Load()),
		PacketsLost:  int(s.packetsLost.Load()),
		DecodeErrors: int(s.decodeErrors.Load()),
	}
}
