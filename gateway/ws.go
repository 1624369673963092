package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	fiberws "github.com/gofiber/websocket/v2"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/tokens"
)

// WSConfig bounds the device WebSocket. The zero value means the defaults.
type WSConfig struct {
	// MaxFrame is the largest frame a page may send; a larger one closes the
	// socket (1009). It defaults to 4 KiB.
	MaxFrame int64
	// SendQueue is how many messages may wait for a page. Past it, state
	// changes are coalesced (the page gets each property's latest value, not
	// every value); other messages overflowing it drop the page (closing
	// "too-slow"), as does a write that stalls past WriteTimeout. It
	// defaults to 256.
	SendQueue int
	// PingInterval defaults to 20 s; a page that answers no ping for
	// 2.5 intervals is gone.
	PingInterval time.Duration
	// WriteTimeout bounds one write. It defaults to 10 s.
	WriteTimeout time.Duration
	// Commands limits each session's commands. It defaults to 20/s, burst 40.
	Commands emulator.SessionLimits
	// ControlBound: while Redis is unreachable, commands are refused after
	// this long. It defaults to 5 s.
	ControlBound time.Duration
	// ViewBound: while Redis is unreachable, sessions are closed after this
	// long. It defaults to 60 s.
	ViewBound time.Duration
}

func (c *WSConfig) setDefaults() {
	if c.MaxFrame <= 0 {
		c.MaxFrame = 4 << 10
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.ControlBound <= 0 {
		c.ControlBound = 5 * time.Second
	}
	if c.ViewBound <= 0 {
		c.ViewBound = 60 * time.Second
	}
}

// wsConn is what a session needs of its socket. *websocket.Conn has it; the
// session code knows nothing else of Fiber.
type wsConn interface {
	ReadMessage() (int, []byte, error)
	NextReader() (int, io.Reader, error)
	NetConn() net.Conn
	WriteMessage(int, []byte) error
	WriteControl(int, []byte, time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	SetReadLimit(int64)
	SetPongHandler(func(string) error)
	Close() error
}

// Locals handed from the pre-upgrade check to the socket.
const (
	localLink    = "lg.link"
	localSession = "lg.session"
)

var (
	errSessionInvalid  = errors.New("session invalid")
	errLevelNotGranted = errors.New("camera level not granted")
)

func init() {
	sentinelErrors[errLevelNotGranted] = &publicError{status: http.StatusForbidden, code: "level-not-granted",
		message: "This link does not include that part of the camera."}
	sentinelErrors[errSessionInvalid] = &publicError{status: http.StatusUnauthorized, code: "session-invalid",
		message: "The session is missing, expired or for another link; open the link again."}
	sentinelErrors[tokens.ErrTooManySessions] = &publicError{status: http.StatusTooManyRequests, code: emulator.ReasonTooManySessions,
		message: "This link has as many open sessions as its owner allows."}
}

// wsRoutes adds the device WebSocket and the camera's live stream.
//
// The two are upgraded differently on purpose. A device page is the case
// of thousands of idle sockets on an instance, so its socket runs on the
// bare connection (upgrade), holding a few KiB. A camera viewer is busy
// and bounded by bandwidth (a viewer's queue is far larger than what a
// socket holds), so its socket runs in gofiber/websocket's handler, which
// keeps fasthttp's connection buffer and request for the socket's life.
// Origins were checked in socketAuth against the same list; the
// middleware's own check is told it too (an empty list would allow every
// origin).
func (s *Server) wsRoutes(l fiber.Router) {
	l.Get("/ws", s.socketAuth(tokens.KindDevice, ""), s.upgrade(s.startDeviceSession))
	live := fiberws.Config{Origins: s.cfg.AllowedOrigins, ReadBufferSize: 256, WriteBufferSize: 32 << 10, WriteBufferPool: &sync.Pool{}}
	l.Get("/live", s.socketAuth(tokens.KindCamera, tokens.LevelLive), fiberws.New(func(c *fiberws.Conn) {
		s.runViewer(c, c.Locals(localLink).(*tokens.Link), c.Locals(localSession).(string))
	}, live))
}

// socketAuth admits a WebSocket for a link of the kind (and camera level):
// an allowed Origin, a link that may be opened now, and the session from
// POST /l/{token}/session (its cookie) or, for clients without one, the
// token itself, which then counts a use like a session exchange.
func (s *Server) socketAuth(kind tokens.Kind, level string) fiber.Handler {
	return func(c *fiber.Ctx) error { return s.authorizeSocket(c, kind, level) }
}

func (s *Server) authorizeSocket(c *fiber.Ctx, kind tokens.Kind, level string) error {
	if !websocket.FastHTTPIsWebSocketUpgrade(c.Context()) {
		return fiber.ErrUpgradeRequired
	}
	if s.stopping.Load() {
		return tokens.ErrUnavailable
	}
	if !s.origins[c.Get(fiber.HeaderOrigin)] {
		return errForbiddenOrig
	}
	now := s.requestTime(c)
	var l *tokens.Link
	var session string
	for attempt := 1; ; attempt++ {
		var err error
		if l, err = s.resolve(c.UserContext(), c.Params("token"), now); err != nil {
			return err
		}
		if l.Kind != kind {
			return tokens.ErrNotFound // devices talk on /ws, cameras play on /live
		}
		if level != "" && !l.Permissions.HasLevel(level) {
			return errLevelNotGranted
		}
		if cookie := c.Cookies(sessionCookie); cookie != "" {
			sc, err := s.keys.VerifySession(cookie, now)
			if err != nil || sc.Link != l.ID || sc.Generation != l.Generation {
				return errSessionInvalid
			}
			// The session holds no use to recount: a record this instance
			// has not yet seen change is caught once the socket is open
			// (open checks the link again after joining the feed).
			session = sc.SessionID()
			break
		}
		if attempt == 1 && !s.sessions.allow(s.clientKey(c), now) {
			return errRateLimited
		}
		var id [8]byte
		_, _ = rand.Read(id[:])
		session = hex.EncodeToString(id[:])
		retry, err := s.countUse(c.UserContext(), l, tokens.Access{
			At: now, Event: "websocket", Session: session, IP: c.IP(), UserAgent: c.Get(fiber.HeaderUserAgent),
		}, attempt)
		if err != nil {
			return err
		}
		if !retry {
			break
		}
	}
	c.Locals(localLink, l)
	c.Locals(localSession, session)
	return c.Next()
}

// wsSession is one open device page: its socket, its emulator session, and
// the queue between the device's changes and the writer.
//
// An idle page holds one goroutine, its reader (read), on the smallest
// stack: the writer is started when there is something to send (a
// message, a ping, the closing) and ends when there is nothing left, so
// that at most one writer runs at a time and owns the socket's writes
// while it does. Pings come from a timer. The queue is a slice, not a
// channel, so that an idle page holds no buffer for it (a channel of 256
// would be 6 KiB for each page).
type wsSession struct {
	*socket
	emu *emulator.Session
	sub *emulator.Subscription // the device's changes; nil when the session did not open

	// Guarded by socket.mu, with the link:
	hello   bool     // the hello is queued; changes may follow it
	pending [][]byte // changes that came before the hello

	qmu     sync.Mutex        // guards the fields below; taken after socket.mu, never before
	outq    [][]byte          // messages for the writer, in order; at most SendQueue
	latest  map[string][]byte // coalesced state messages by property, while the queue is full
	ping    *time.Timer       // sets pingDue and kicks the writer; re-armed by the writer
	pingDue bool              // the writer pings the page
	kicked  bool              // there may be work the running writer has not looked at
	writing bool              // a writer runs, or the session's writes are over
	ended   bool              // the reader has ended: no writer starts any more
	writers sync.WaitGroup    // the running writer, for the reader's end
}

// startDeviceSession opens a device page's session and starts its reader, which
// serves the page until it goes. A session that cannot open says why, and
// its reader waits for the page to leave.
//
// It runs on the goroutine that upgraded the socket, which ends when it
// returns: the stack the opening needs (Redis round trips, JSON) goes
// with it, and the reader starts on a fresh one.
func (s *Server) startDeviceSession(conn wsConn, l *tokens.Link, sessionID string) {
	s.wsWG.Add(1)
	ws := &wsSession{socket: newSocket(s, conn, l, sessionID)}
	ws.socket.kick = ws.kick
	ws.qmu.Lock()
	ws.ping = time.AfterFunc(s.cfg.WS.PingInterval, func() {
		ws.qmu.Lock()
		ws.pingDue = true
		ws.qmu.Unlock()
		ws.kick()
	})
	ws.qmu.Unlock()
	ws.sub = ws.open(context.Background())
	go ws.read()
}

// read is the session's reader: it reads the page's frames until the page
// goes, then ends the session.
//
// It is one shallow loop, and each message is read whole and answered on
// a goroutine of its own (message), so that an idle page's goroutine never
// needs more than the smallest stack (2 KiB; the runtime never shrinks a
// grown stack back to it while the goroutine waits in a read): waiting
// for the next frame in NextReader takes about 1 KiB of it, and a pong
// only notes its time (socket.startReading). A page that pings, or a
// frame the session ignores, may grow it; the page then costs 2 KiB more.
func (ws *wsSession) read() {
	ws.startReading()
	for {
		typ, r, err := ws.conn.NextReader()
		if err != nil {
			ws.stop(err)
			return
		}
		if ws.sub != nil {
			onFreshStack(func() { ws.message(typ, r) })
		}
	}
}

// message reads the rest of a message from the page and answers it. A
// message that cannot be read has failed the connection, and the reader's
// next NextReader with it.
func (ws *wsSession) message(typ int, r io.Reader) {
	frame, err := io.ReadAll(r)
	if err != nil {
		return
	}
	ws.extendRead(time.Now())
	ws.handle(context.Background(), typ, frame)
}

// stop ends the session once its reader has, with err: it undoes the
// opening, waits for the writer and closes the connection.
func (ws *wsSession) stop(err error) {
	if ws.sub != nil {
		ws.end(context.Background(), ws.sub)
	}
	close(ws.done)
	ws.qmu.Lock()
	ws.ended = true
	ws.qmu.Unlock()
	ws.writers.Wait()
	ws.ping.Stop() // after the writers: they re-arm it
	ws.linger(err)
	_ = ws.conn.Close()
	ws.srv.wsWG.Done()
}

// open takes the session's place on the link, joins the open sessions and
// the device's changes, and queues the hello. When the session cannot
// open, it has undone what it did, shut the session with the reason, and
// returns nil.
func (ws *wsSession) open(ctx context.Context) *emulator.Subscription {
	s, l := ws.srv, ws.link
	if err := s.links.AcquireSession(ctx, l, ws.id); err != nil {
		ws.shut(reasonFor(err))
		return nil
	}
	dev, err := s.devices.GetAny(ctx, l.Device)
	if err != nil {
		_ = s.links.ReleaseSession(context.WithoutCancel(ctx), l.ID, ws.id)
		ws.shut(emulator.ReasonDeleted)
		return nil
	}
	ws.emu = emulator.NewSession(ws.id, l.Permissions, s.shared.share(dev), s.cfg.WS.Commands)
	s.join(ctx, ws)
	sub, state, online, err := s.hub.Subscribe(ctx, dev.ID, ws.deliver)
	if err != nil {
		s.live.remove(ws)
		_ = s.links.ReleaseSession(context.WithoutCancel(ctx), l.ID, ws.id)
		ws.shut(emulator.ReasonUnavailable)
		return nil
	}
	ws.sendHello(state, online)
	ws.armTimer(s.cfg.Now())
	return sub
}

// end undoes open, once the page has gone.
func (ws *wsSession) end(ctx context.Context, sub *emulator.Subscription) {
	ws.stopTimer()
	ws.srv.hub.Unsubscribe(sub)
	ws.srv.live.remove(ws)
	_ = ws.srv.links.ReleaseSession(context.WithoutCancel(ctx), ws.linkID, ws.id)
}

// onFreshStack runs f on a goroutine of its own and waits for it.
func onFreshStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// handle answers one frame from the page.
func (ws *wsSession) handle(ctx context.Context, typ int, frame []byte) {
	now := ws.srv.cfg.Now()
	if typ != websocket.TextMessage {
		ws.send(ws.emu.Ack("", emulator.ErrBadMessage))
		return
	}
	// The window and schedule are checked on every command, to the second,
	// not only when the timer fires.
	if err := ws.currentLink().Check(now); err != nil && !errors.Is(err, tokens.ErrUsedUp) {
		ws.shut(reasonFor(err))
		return
	}
	cmd, id, cerr := ws.emu.Command(frame, now)
	if cerr == nil {
		cerr = ws.srv.sendCommand(ctx, ws.device, cmd, now)
	}
	ws.send(ws.emu.Ack(id, cerr))
}

// sendCommand hands a checked command to the device.
func (s *Server) sendCommand(ctx context.Context, device string, cmd emulator.Command, now time.Time) *emulator.CommandError {
	if since := s.unhealthySince(); !since.IsZero() && now.Sub(since) > s.cfg.WS.ControlBound {
		return emulator.ErrUnavailable
	}
	switch err := s.hub.Send(ctx, device, cmd); {
	case errors.Is(err, emulator.ErrDeviceOffline):
		return emulator.ErrOffline
	case err != nil:
		return emulator.ErrUnavailable
	}
	return nil
}

// kick has the writer look at the queue, the ping and the closing: it
// starts one unless one runs, in which case that one looks again before
// it ends.
func (ws *wsSession) kick() {
	ws.qmu.Lock()
	defer ws.qmu.Unlock()
	ws.kicked = true
	if ws.writing || ws.ended {
		return
	}
	ws.writing = true
	ws.writers.Add(1)
	go ws.drain()
}

// drain owns the socket's writes while there is something to write:
// messages, a ping, the closing. It ends when there is nothing left, or for
// good once the session closes or a write fails (which ends the reader).
func (ws *wsSession) drain() {
	defer ws.writers.Done()
	for {
		select {
		case reason := <-ws.close:
			ws.finish(reason)
			return // writing stays set: nothing is written after the closing
		default:
		}
		ws.qmu.Lock()
		if !ws.kicked {
			ws.writing = false
			ws.qmu.Unlock()
			return
		}
		// Queued messages are older than the coalesced ones: they go first.
		queue, latest, ping, timer := ws.outq, ws.latest, ws.pingDue, ws.ping
		ws.outq, ws.latest, ws.pingDue, ws.kicked = nil, nil, false, false
		ws.qmu.Unlock()
		for _, b := range queue {
			if ws.write(websocket.TextMessage, b) != nil {
				return
			}
		}
		for _, b := range latest {
			if ws.write(websocket.TextMessage, b) != nil {
				return
			}
		}
		if ping {
			if ws.socket.ping() != nil {
				return
			}
			timer.Reset(ws.srv.cfg.WS.PingInterval)
		}
	}
}

// send queues a message without waiting; a page too slow to take its
// messages is dropped, so it never holds up a device or other pages.
func (ws *wsSession) send(b []byte) {
	if !ws.enqueue(b) {
		ws.shut(emulator.ReasonTooSlow)
	}
}

// enqueue queues b for the writer unless the queue is full.
func (ws *wsSession) enqueue(b []byte) bool {
	ws.qmu.Lock()
	full := len(ws.outq) >= ws.srv.cfg.WS.SendQueue
	if !full {
		ws.outq = append(ws.outq, b)
	}
	ws.qmu.Unlock()
	if !full {
		ws.kick()
	}
	return !full
}

// sendHello queues the hello, with the link as it is now (an owner change
// may have come since the socket opened), then what waited for it.
func (ws *wsSession) sendHello(state map[string]json.RawMessage, online bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.send(ws.emu.Hello(ws.srv.publicView(ws.link, ws.srv.cfg.Now()), state, online))
	for _, b := range ws.pending {
		ws.send(b)
	}
	ws.pending, ws.hello = nil, true
}

// queue sends b after the hello: before it, b waits.
func (ws *wsSession) queue(b []byte) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.hello {
		ws.pending = append(ws.pending, b)
		return
	}
	ws.send(b)
}

// deliver is the hub's callback: it runs on the hub's goroutine and never
// blocks. A page that cannot keep up gets each property's latest value.
func (ws *wsSession) deliver(c emulator.Change) {
	var b []byte
	if c.Property == "$state" {
		var st string
		_ = json.Unmarshal(c.Value, &st)
		b = []byte(`{"type":"offline"}`)
		if st == emulator.StateReady {
			b = []byte(`{"type":"online"}`)
		}
	} else if b = ws.emu.StateMessage(c); b == nil {
		return // not visible to this link
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.hello {
		ws.pending = append(ws.pending, b)
		return
	}
	// Once a property is coalescing, its later values coalesce too, so that
	// an older value never overtakes a newer one.
	ws.qmu.Lock()
	if _, coalescing := ws.latest[c.Property]; !coalescing && len(ws.outq) < ws.srv.cfg.WS.SendQueue {
		ws.outq = append(ws.outq, b)
	} else {
		if ws.latest == nil {
			ws.latest = make(map[string][]byte)
		}
		ws.latest[c.Property] = b
	}
	ws.qmu.Unlock()
	ws.kick()
}

// reasonFor maps why a link may not be used to the closing reason.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, tokens.ErrDisabled):
		return emulator.ReasonDisabled
	case errors.Is(err, tokens.ErrExpired):
		return emulator.ReasonExpired
	case errors.Is(err, tokens.ErrNotYetActive):
		return emulator.ReasonNotYetActive
	case errors.Is(err, tokens.ErrOutsideSchedule):
		return emulator.ReasonOutsideSchedule
	case errors.Is(err, tokens.ErrTooManySessions):
		return emulator.ReasonTooManySessions
	case errors.Is(err, tokens.ErrNotFound), errors.Is(err, tokens.ErrForged):
		return emulator.ReasonDeleted
	}
	return emulator.ReasonUnavailable
}
