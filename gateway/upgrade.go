package gateway

import (
	"bufio"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/tokens"
)

// upgrade answers an admitted WebSocket request (socketAuth let it through)
// and hands the socket to start, with the link and session socketAuth left
// in the locals. start runs on a goroutine that ends when it returns; it
// starts the goroutines that serve the socket.
//
// The socket runs on the bare TCP connection, not on the one fasthttp
// hands a hijack handler: that one reads through fasthttp's connection
// buffer (Fiber's ReadBufferSize, 8 KiB) and keeps the request context
// (about 1.5 KiB) until the handler returns, so a socket served from the
// handler held both for its life. Here the handler only makes the
// WebSocket, calls start and returns (the server keeps hijacked
// connections open, KeepHijackedConns), so fasthttp takes its buffer and
// context back at once. What an idle socket holds is then its WebSocket connection (a
// 256-byte read buffer; writes take a pooled buffer), the session and the
// reader's stack (BENCHMARKS.md, "WebSocket sessions").
//
// The handshake is checked here as fasthttp/websocket's upgrader checked
// it, with the same answer to a bad one (426, from the error handler); the
// 101 carries the headers the route's middleware set (pageHeaders) and a
// Date, as fasthttp wrote them.
func (s *Server) upgrade(start func(conn wsConn, l *tokens.Link, session string)) fiber.Handler {
	up := &websocket.Upgrader{
		// Reads go through a buffer just large enough for a control frame
		// (what the protocol reads whole: at most 125 bytes), larger
		// frames straight into the message. Writes take their buffer from
		// a pool and give it back once the message is out, so an idle
		// socket holds no write buffer (32 KiB each otherwise).
		ReadBufferSize:  128,
		WriteBufferSize: 32 << 10,
		WriteBufferPool: &sync.Pool{},
		// socketAuth checked the Origin against AllowedOrigins.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return func(c *fiber.Ctx) error {
		key := strings.Clone(c.Get("Sec-WebSocket-Key"))
		if c.Method() != fiber.MethodGet || !hasToken(c.Get("Sec-WebSocket-Version"), "13") || !validKey(key) {
			return fiber.ErrUpgradeRequired
		}
		l, session := c.Locals(localLink).(*tokens.Link), c.Locals(localSession).(string)
		// What the upgrader reads of the request, checked above.
		req := &http.Request{Method: http.MethodGet, Header: http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {key},
		}}
		answer := http.Header{"Date": {time.Now().UTC().Format(http.TimeFormat)}}
		c.Response().Header.VisitAll(func(k, v []byte) {
			switch name := string(k); name {
			case fiber.HeaderContentType, fiber.HeaderContentLength, fiber.HeaderServer, fiber.HeaderDate:
			default:
				answer[name] = append(answer[name], string(v))
			}
		})
		ctx := c.Context()
		ctx.HijackSetNoResponse(true) // the upgrader writes the 101
		ctx.Hijack(func(hc net.Conn) {
			nc, ok := bareConn(hc)
			if !ok {
				s.log.Error("websocket: the hijacked connection is not fasthttp's; closed")
				_ = hc.Close()
				return
			}
			conn, err := up.Upgrade(&handshake{conn: nc}, req, answer)
			if err != nil {
				_ = nc.Close()
				return
			}
			start(conn, l, session)
		})
		return nil
	}
}

// keepHijackedConns has the server leave a hijacked connection open when
// its handler returns: the socket upgrade made on it closes it.
func keepHijackedConns(app *fiber.App) { app.Server().KeepHijackedConns = true }

// bareConn returns the TCP connection under fasthttp's hijacked one, with
// the bytes fasthttp had read past the request (a client that did not wait
// for the 101, which RFC 6455 forbids but the upgrader used to pass on) in
// front of it. It reports false when hc is not fasthttp's (whose reads
// would go through a buffer fasthttp reuses once the handler returns).
func bareConn(hc net.Conn) (net.Conn, bool) {
	u, ok := hc.(interface{ UnsafeConn() net.Conn })
	if !ok {
		return nil, false
	}
	nc := u.UnsafeConn()
	if wc, ok := nc.(*watchedConn); ok {
		nc = wc.Conn // it left the watch when fasthttp hijacked it (connState)
	}
	// hc reads from fasthttp's buffer, then from nc: with a deadline in the
	// past, what is buffered comes out and nc's read fails at once, taking
	// nothing from the socket.
	_ = nc.SetReadDeadline(time.Unix(1, 0))
	var early []byte
	var buf [512]byte
	for {
		n, err := hc.Read(buf[:])
		early = append(early, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	if len(early) > 0 {
		return &earlyConn{Conn: nc, early: early}, true
	}
	return nc, true
}

// earlyConn reads early, then from Conn.
type earlyConn struct {
	net.Conn
	early []byte
}

func (c *earlyConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// handshake hands the connection to websocket.Upgrader, which writes the
// 101 on it. It is an http.ResponseWriter only for the upgrader's errors,
// which cannot come: the request was checked before the hijack, and a
// failed write closes the connection.
type handshake struct{ conn net.Conn }

func (h *handshake) Header() http.Header         { return http.Header{} }
func (h *handshake) Write(b []byte) (int, error) { return len(b), nil }
func (h *handshake) WriteHeader(int)             {}

func (h *handshake) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// Nothing buffered to read (bareConn took it); the writer's buffer is
	// where the upgrader builds the 101.
	return h.conn, bufio.NewReadWriter(bufio.NewReaderSize(nil, 16), bufio.NewWriterSize(h.conn, 1<<10)), nil
}

// hasToken reports whether the comma-separated header value v has token t.
func hasToken(v, t string) bool {
	for f := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(f), t) {
			return true
		}
	}
	return false
}

// validKey reports whether k is a Sec-WebSocket-Key: 16 bytes, base64.
func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}
