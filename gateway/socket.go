package gateway

import (
	"context"
	"errors"
	"sync"
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
}

func newSocket(s *Server, conn wsConn, l *tokens.Link, sessionID string) *socket {
	return &socket{srv: s, conn: conn, id: sessionID, linkID: l.ID, device: l.Device, link: l,
		close: make(chan string, 1), done: make(chan struct{})}
}

func (k *socket) linkKey() tokens.LinkID { return k.linkID }
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

// readFrames reads until the page goes, handing each frame to handle. A page
// that answers no ping for 2.5 ping intervals is gone.
func (k *socket) readFrames(handle func(typ int, frame []byte)) {
	cfg := k.srv.cfg.WS
	wait := cfg.PingInterval * 5 / 2
	k.conn.SetReadLimit(cfg.MaxFrame)
	_ = k.conn.SetReadDeadline(time.Now().Add(wait))
	k.conn.SetPongHandler(func(string) error { return k.conn.SetReadDeadline(time.Now().Add(wait)) })
	for {
		typ, frame, err := k.conn.ReadMessage()
		if err != nil {
			return
		}
		_ = k.conn.SetReadDeadline(time.Now().Add(wait))
		handle(typ, frame)
	}
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

// ping pings the page and renews the session's place on the link.
func (k *socket) ping() error {
	if err := k.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(k.srv.cfg.WS.WriteTimeout)); err != nil {
		_ = k.conn.Close()
		return err
	}
	_ = k.srv.links.RenewSession(context.Background(), k.linkID, k.id)
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
