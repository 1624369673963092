package gateway

import (
	"context"

	"errors"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/media"
	"github.com/linkgate/linkgate/tokens"
)

// viewer is one open camera page: it relays the camera's stream (shared by
// every viewer of the camera on this instance) to one socket. The writer
// goroutine owns the socket's writes; the reader only keeps the socket
// alive (pongs, the page's close).
type viewer struct {
	srv    *Server
	conn   wsConn
	id     string
	linkID tokens.LinkID
	camera string // the link's camera when the viewer opened; fixed
	close  chan string
	done   chan struct{}

	mu        sync.Mutex // guards link
	link      *tokens.Link
	closeOnce sync.Once
}

func (v *viewer) linkKey() tokens.LinkID { return v.linkID }
func (v *viewer) deviceKey() string      { return v.camera }
func (v *viewer) shut(reason string)     { v.closeOnce.Do(func() { v.close <- reason }) }

// apply closes the viewer when its link may no longer show live video: the
// link disabled, deleted, out of its window or schedule, moved to another
// camera, the live level taken away, or the camera's source changed.
func (v *viewer) apply(ctx context.Context, l *tokens.Link, err error, deviceChanged bool) {
	switch {
	case errors.Is(err, tokens.ErrNotFound):
		v.shut(emulator.ReasonDeleted)
		return
	case err != nil:
		return // Redis unreachable: the failure bounds decide (WSConfig)
	}
	old := swapLink(&v.mu, &v.link, l, deviceChanged)
	if old == nil {
		return
	}
	switch reason := closeReason(old, l, v.camera, v.srv.cfg.Now()); {
	case reason != "":
		v.shut(reason)
	case !l.Permissions.HasLevel(tokens.LevelLive):
		v.shut(emulator.ReasonLevelRevoked)
	case deviceChanged:
		v.shut(emulator.ReasonDeviceChanged) // a new source: the page reopens
	}
}

// runViewer serves one camera socket until it closes.
func (s *Server) runViewer(conn wsConn, l *tokens.Link, sessionID string) {
	s.wsWG.Add(1)
	defer s.wsWG.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := &viewer{srv: s, conn: conn, id: sessionID, linkID: l.ID, camera: l.Device, link: l,
		close: make(chan string, 1), done: make(chan struct{})}

	var stream *media.Viewer
	if err := s.links.AcquireSession(ctx, l, sessionID); err != nil {
		v.shut(reasonFor(err))
	} else {
		defer s.links.ReleaseSession(context.WithoutCancel(ctx), l.ID, sessionID)
		cam, err := s.devices.GetAny(ctx, l.Device)
		if err != nil || cam.RTSP == nil {
			v.shut(emulator.ReasonDeleted)
		} else {
			mv, err := s.media.Watch(ctx, cam.ID, media.Source{URL: cam.RTSP.URL, Transport: cam.RTSP.Transport})
			if err != nil {
				v.shut(emulator.ReasonUnavailable)
			} else {
				defer mv.Close()
				stream = mv
				s.live.add(v)
				defer s.live.remove(v)
				v.armTimer(ctx)
			}
		}
	}
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); v.writeLoop(stream) }()
	v.readLoop()
	close(v.done)
	<-writerDone
	_ = conn.Close()
}

// armTimer closes the viewer when the link next closes by itself.
func (v *viewer) armTimer(ctx context.Context) {
	go func() {
		for {
			v.mu.Lock()
			l := v.link
			v.mu.Unlock()
			now := v.srv.cfg.Now()
			at := l.ClosesAt(now)
			wait := time.Minute // and look again: the owner may change the window
			if !at.IsZero() && at.Sub(now) < wait {
				wait = at.Sub(now)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			v.mu.Lock()
			l = v.link
			v.mu.Unlock()
			if err := l.Check(v.srv.cfg.Now()); err != nil && !errors.Is(err, tokens.ErrUsedUp) {
				v.shut(reasonFor(err))
				return
			}
		}
	}()
}

// readLoop reads until the page goes; camera pages send nothing but
// control frames, so anything else is ignored.
func (v *viewer) readLoop() {
	wait := v.srv.cfg.WS.PingInterval * 5 / 2
	v.conn.SetReadLimit(v.srv.cfg.WS.MaxFrame)
	_ = v.conn.SetReadDeadline(time.Now().Add(wait))
	v.conn.SetPongHandler(func(string) error { return v.conn.SetReadDeadline(time.Now().Add(wait)) })
	for {
		if _, _, err := v.conn.ReadMessage(); err != nil {
			return
		}
	}
}

// writeLoop relays the camera's messages, pings, and the closing. A viewer
// too slow for the camera is handled by media (it skips to the next
// keyframe, or is dropped, which ends the stream here).
func (v *viewer) writeLoop(mv *media.Viewer) {
	cfg := v.srv.cfg.WS
	var stream <-chan media.Message
	if mv != nil {
		stream = mv.Messages()
	}
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	write := func(typ int, b []byte) error {
		_ = v.conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		return v.conn.WriteMessage(typ, b)
	}
	for {
		select {
		case <-v.done:
			return
		case m, ok := <-stream:
			if !ok {
				reason := emulator.ReasonUnavailable
				switch err := mv.Err(); {
				case errors.Is(err, media.ErrTooSlow):
					reason = emulator.ReasonTooSlow
				case errors.Is(err, media.ErrClosed):
					reason = emulator.ReasonServerShutdown
				}
				v.shut(reason)
				stream = nil
				continue
			}
			typ, b := websocket.BinaryMessage, m.Binary
			if m.Text != nil {
				typ, b = websocket.TextMessage, m.Text
			}
			if err := write(typ, b); err != nil {
				_ = v.conn.Close()
				return
			}
		case reason := <-v.close:
			msg, code := emulator.Closing(reason)
			_ = write(websocket.TextMessage, msg)
			_ = v.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
			_ = v.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			<-v.done
			return
		case <-ping.C:
			if err := v.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				_ = v.conn.Close()
				return
			}
			_ = v.srv.links.RenewSession(context.Background(), v.linkID, v.id)
		}
	}
}
