package gateway

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// connWatch bounds how long an HTTP connection may take over a request and
// how long it may sit idle, in place of fasthttp's ReadTimeout,
// WriteTimeout and IdleTimeout.
//
// Those set a socket deadline three times a request: each reads the clock
// and moves a runtime timer, about 440 ns of a link open's 15 µs of CPU
// here (perf, BENCHMARKS.md), the largest cost a link open had over a bare
// Fiber handler after the page itself. The watch instead notes, with a
// coarse clock, when each connection last changed state (fasthttp reports
// every change through Server.ConnState), and a sweep closes the ones past
// their bound: a connection that has not finished a request (waiting for
// the first, reading it, handling it or writing the answer: a slow sender,
// a client that stops reading) within request, or a keep-alive connection
// idle between requests for longer than idle. The bounds are thus kept to
// within a tick.
//
// WebSockets leave the watch when fasthttp hands their connection over;
// they keep their own pings and deadlines.
type connWatch struct {
	request time.Duration
	idle    time.Duration
	tick    time.Duration

	now atomic.Int64 // the coarse clock: unix ns, moved at each tick

	mu    sync.Mutex
	conns map[*watchedConn]struct{}
}

// watchedConn is an accepted connection under watch. State changes come
// from fasthttp's worker for the connection; the sweep reads them.
type watchedConn struct {
	net.Conn
	w     *connWatch
	state atomic.Int32 // a fasthttp.ConnState
	since atomic.Int64 // the coarse clock at the last state change
	once  sync.Once
}

func newConnWatch(request, idle time.Duration) *connWatch {
	w := &connWatch{request: request, idle: idle, conns: make(map[*watchedConn]struct{})}
	// A quarter of the shorter bound, at most a second: a bound is kept to
	// within 25 %, or a second.
	w.tick = min(min(request, idle)/4, time.Second)
	w.now.Store(time.Now().UnixNano())
	return w
}

// listener wraps ln so that every connection it accepts is watched.
func (w *connWatch) listener(ln net.Listener) net.Listener { return watchedListener{ln, w} }

type watchedListener struct {
	net.Listener
	w *connWatch
}

func (l watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := &watchedConn{Conn: c, w: l.w}
	wc.since.Store(l.w.now.Load())
	wc.state.Store(int32(fasthttp.StateNew))
	l.w.mu.Lock()
	l.w.conns[wc] = struct{}{}
	l.w.mu.Unlock()
	return wc, nil
}

// connState is fasthttp's Server.ConnState hook: it runs on the
// connection's worker at every change, twice a request.
func (w *connWatch) connState(c net.Conn, state fasthttp.ConnState) {
	wc, ok := c.(*watchedConn)
	if !ok {
		return
	}
	switch state {
	case fasthttp.StateHijacked:
		w.forget(wc)
	case fasthttp.StateClosed:
		// fasthttp closed it first (watchedConn.Close): off the watch.
	default:
		wc.since.Store(w.now.Load())
		wc.state.Store(int32(state))
	}
}

func (w *connWatch) forget(wc *watchedConn) {
	w.mu.Lock()
	delete(w.conns, wc)
	w.mu.Unlock()
}

// Close closes the connection and takes it off the watch.
func (c *watchedConn) Close() error {
	c.once.Do(func() { c.w.forget(c) })
	return c.Conn.Close()
}

// run moves the clock and sweeps at every tick until stop is closed.
func (w *connWatch) run(stop <-chan struct{}) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			w.now.Store(now.UnixNano())
			w.sweep(now.UnixNano())
		}
	}
}

// sweep closes the connections past their bound at now (unix ns) and
// returns how many.
func (w *connWatch) sweep(now int64) int {
	var late []*watchedConn
	w.mu.Lock()
	for c := range w.conns {
		bound := w.request // new, or busy with a request
		if fasthttp.ConnState(c.state.Load()) == fasthttp.StateIdle {
			bound = w.idle
		}
		if time.Duration(now-c.since.Load()) > bound {
			late = append(late, c)
		}
	}
	w.mu.Unlock()
	for _, c := range late {
		// The connection's worker sees its read or write fail and lets it
		// go; fasthttp's own Close then finds it closed.
		_ = c.Close()
	}
	return len(late)
}
