package gateway

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestConnWatchSweep: each connection is held to the bound of the state it
// is in, counted from its last change; connections that leave the watch
// (WebSockets, closed ones) are never swept.
func TestConnWatchSweep(t *testing.T) {
	w := newConnWatch(10*time.Second, 60*time.Second)
	if w.tick != time.Second {
		t.Errorf("tick %v, want 1s (a quarter of 10 s, at most a second)", w.tick)
	}
	if short := newConnWatch(400*time.Millisecond, time.Minute); short.tick != 100*time.Millisecond {
		t.Errorf("tick %v, want 100ms", short.tick)
	}
	start := time.Unix(1_000_000, 0)
	w.now.Store(start.UnixNano())

	ln := &fakeListener{}
	wl := w.listener(ln)
	accept := func() (*watchedConn, net.Conn) {
		mine, theirs := net.Pipe()
		ln.next = mine
		c, err := wl.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c.(*watchedConn), theirs
	}
	fresh, _ := accept()  // accepted, no request yet
	busy, _ := accept()   // a request under way
	idle, _ := accept()   // between requests
	hijack, _ := accept() // a WebSocket now
	closed, _ := accept() // closed by the server
	w.connState(busy, fasthttp.StateActive)
	w.connState(idle, fasthttp.StateActive)
	w.connState(hijack, fasthttp.StateActive)
	w.connState(closed, fasthttp.StateActive)
	w.now.Store(start.Add(5 * time.Second).UnixNano())
	w.connState(idle, fasthttp.StateIdle) // answered at 5 s
	w.connState(hijack, fasthttp.StateHijacked)
	_ = closed.Close()
	w.connState(closed, fasthttp.StateClosed)
	if n := len(w.conns); n != 3 {
		t.Fatalf("%d connections watched, want 3 (new, busy, idle)", n)
	}

	open := func(c *watchedConn) bool {
		_, ok := w.conns[c]
		return ok
	}
	at := func(d time.Duration) int64 { return start.Add(d).UnixNano() }
	if n := w.sweep(at(10 * time.Second)); n != 0 {
		t.Fatalf("swept %d at exactly the request bound, want 0", n)
	}
	if n := w.sweep(at(10*time.Second + time.Millisecond)); n != 2 || open(fresh) || open(busy) || !open(idle) {
		t.Fatalf("past the request bound: swept %d; new %v, busy %v, idle %v open; want the new and busy ones closed", n, open(fresh), open(busy), open(idle))
	}
	if _, err := busy.Conn.Write([]byte("x")); err == nil {
		t.Error("a swept connection still writes")
	}
	if n := w.sweep(at(65 * time.Second)); n != 0 {
		t.Fatalf("idle for exactly its bound: swept %d, want 0", n)
	}
	if n := w.sweep(at(65*time.Second + time.Millisecond)); n != 1 || open(idle) {
		t.Fatalf("past the idle bound: swept %d, idle open %v", n, open(idle))
	}
	if n := w.sweep(at(time.Hour)); n != 0 {
		t.Fatalf("swept %d hijacked or closed connections", n)
	}
}

type fakeListener struct{ next net.Conn }

func (l *fakeListener) Accept() (net.Conn, error) { return l.next, nil }
func (l *fakeListener) Close() error              { return nil }
func (l *fakeListener) Addr() net.Addr            { return &net.TCPAddr{} }
