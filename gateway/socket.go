package gateway

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/tokens"
)

// socket is what every live socket of a link has, whatever it carries
// (device pages, camera viewers): the connection with its deadlines, the
// link as the session last saw it, the timer that closes the session when
// the link closes by itself, and the closing handshake. The session's
// writer goroutine owns every write; its reader goroutine owns every read.
// A camera viewer's writer runs for the socket's life; a device page's
// runs only while it has something to send (wsSession.kick).
type socket struct {
	srv    *Server
	conn   wsConn
	id     string        // session id
	linkID tokens.LinkID // fixed
	device string        // the link's device when the socket opened; fixed
	close  chan string   // a reason; the writer sends the closing
	done   chan struct{} // closed when the reader has ended
	// kick, if set, is called after a reason is sent on close: it starts
	// the writer of a session whose writer runs on demand. Set before use.
	kick func()

	mu        sync.Mutex // guards link and timer (and what embedders say)
	link      *tokens.Link
	timer     *time.Timer
	closeOnce sync.Once
	shutAt    time.Time // when shut was first called; written before the send on close

	readMu sync.Mutex   // guards seen, and is held while the read deadline is set from it
	seen   time.Time    // the page's last sign of life the read deadline counts from
	pongAt atomic.Int64 // unix ns of the page's last pong, for the next ping's extendRead
}

func newSocket(s *Server, conn wsConn, l *tokens.Link, sessionID string) *socket {
	return &socket{srv: s, conn: conn, id: sessionID, linkID: l.ID, device: l.Device, link: l,
		close: make(chan string, 1), done: make(chan struct{})}
}

func (k *socket) linkKey() tokens.LinkID { return k.linkID }
func (k *socket) sessionKey() string     { return k.id }
func (k *socket) deviceKey() string      { return k.device }

// shut closes the session with a reason, once.
func (k *socket) shut(reason string) {
	k.closeOnce.Do(func() {
		k.shutAt = time.Now()
		k.close <- reason
		if k.kick != nil {
			k.kick()
		}
	})
}

// currentLink returns the link as the session last saw it.
func (k *socket) currentLink() *tokens.Link {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.link
}

// swapLink stores l as the session's link unless it is stale, and returns
// the link it replaces, or nil when l brings nothing new.
func (k *socket) swapLink(l *tokens.Link, deviceChanged bool) *tokens.Link {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.Version < k.link.Version || (l.Version == k.link.Version && !deviceChanged) {
		return nil // stale, or nothing new
	}
	old := k.link
	k.link = l
	return old
}

// armTimer closes the session when its link next closes by itself: the
// window's end, or the end of the schedule slot it is in.
func (k *socket) armTimer(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	at := k.link.ClosesAt(now)
	if at.IsZero() {
		return
	}
	k.timer = time.AfterFunc(at.Sub(now), func() {
		if err := k.currentLink().Check(k.srv.cfg.Now()); err != nil && !errors.Is(err, tokens.ErrUsedUp) {
			k.shut(reasonFor(err))
			return
		}
		k.armTimer(k.srv.cfg.Now()) // a schedule slot ended into the next one
	})
}

func (k *socket) stopTimer() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.timer != nil {
		k.timer.Stop()
	}
}

// run runs the session's writer beside body, which reads; when body
// returns, it ends the writer and the connection.
func (k *socket) run(writer, body func()) {
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); writer() }()
	body()
	close(k.done)
	<-writerDone
	_ = k.conn.Close()
}

// ignoreFrame is for sockets whose page has nothing to say (or may no
// longer say it): frames are read, for pongs and the close, and dropped.
func ignoreFrame(int, []byte) {}

// readFrames reads until the page goes, handing each frame to handle.
func (k *socket) readFrames(handle func(typ int, frame []byte)) {
	k.startReading()
	for {
		typ, frame, err := k.conn.ReadMessage()
		if err != nil {
			k.linger(err)
			return
		}
		k.extendRead(time.Now())
		handle(typ, frame)
	}
}

// startReading sets the socket up for its reader. A page that shows no
// sign of life (a message, or a pong to a ping) for 2.5 ping intervals is
// gone: its read fails.
//
// The pong handler runs on the reader's goroutine, deep in its read, and
// only notes the time (setting a deadline takes the runtime's timer code,
// which would grow a device page reader's stack, wsSession.read); the
// next ping moves the deadline to it, well before the deadline passes
// (the pong to the previous ping puts it 1.5 intervals past the next
// one). A page is thus dropped when it was before, 2.5 intervals after its
// last pong or message.
func (k *socket) startReading() {
	k.conn.SetReadLimit(k.srv.cfg.WS.MaxFrame)
	k.extendRead(time.Now())
	k.conn.SetPongHandler(func(string) error {
		k.pongAt.Store(time.Now().UnixNano())
		return nil
	})
}

// extendRead counts the page alive at t: the read deadline is 2.5 ping
// intervals past the latest such time.
func (k *socket) extendRead(t time.Time) {
	k.readMu.Lock()
	defer k.readMu.Unlock()
	if t.After(k.seen) {
		k.seen = t
	}
	_ = k.conn.SetReadDeadline(k.seen.Add(k.srv.cfg.WS.PingInterval * 5 / 2))
}

// linger is for a reader that ended on the page's fault, a frame over
// MaxFrame or a protocol error: the WebSocket has sent the close frame
// with the code (1009, 1002), and the page may still be sending. What it
// sends is read and dropped, for at most a second, so that closing the
// connection ends it cleanly: closing it with unread data would reset it,
// and a reset can overtake the close frame.
func (k *socket) linger(err error) {
	var closed *websocket.CloseError
	var ne net.Error
	if errors.As(err, &closed) || errors.As(err, &ne) {
		return // the page closed, went, or was silent: nothing to read
	}
	nc := k.conn.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, nc, 64<<10)
}

// write sends one message within the write timeout; a failed write closes
// the connection, which ends the reader.
func (k *socket) write(typ int, b []byte) error {
	_ = k.conn.SetWriteDeadline(time.Now().Add(k.srv.cfg.WS.WriteTimeout))
	err := k.conn.WriteMessage(typ, b)
	if err != nil {
		_ = k.conn.Close()
	}
	return err
}

// ping pings the page, moves the read deadline to the last pong
// (startReading) and renews the session's place on the link.
func (k *socket) ping() error {
	if err := k.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(k.srv.cfg.WS.WriteTimeout)); err != nil {
		_ = k.conn.Close()
		return err
	}
	if at := k.pongAt.Load(); at != 0 {
		k.extendRead(time.Unix(0, at))
	}
	return nil
}

// finish tells the page why it closes (the closing message, then the close
// frame with the reason's code) and waits for the reader to end: the page
// answers the close frame, or the deadline ends it.
func (k *socket) finish(reason string) {
	msg, code := emulator.Closing(reason)
	_ = k.write(websocket.TextMessage, msg)
	if k.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second)) == nil {
		k.srv.metrics.closeWrite.Observe(time.Since(k.shutAt).Seconds())
	}
	_ = k.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	<-k.done
}
