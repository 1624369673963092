package gateway

import (
	"context"

	"errors"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/media"
	"github.com/linkgate/linkgate/tokens"
)

// viewer is one open camera page: its socket relays the camera's stream,
// shared by every viewer of the camera on this instance. Camera pages send
// nothing; the reader only keeps the socket alive.
type viewer struct {
	*socket
}

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
	old := v.swapLink(l, deviceChanged)
	if old == nil {
		return
	}
	now := v.srv.cfg.Now()
	switch reason := closeReason(old, l, v.device, now); {
	case reason != "":
		v.shut(reason)
	case !l.Permissions.HasLevel(tokens.LevelLive):
		v.shut(emulator.ReasonLevelRevoked)
	case deviceChanged:
		v.shut(emulator.ReasonDeviceChanged) // a new source: the page reopens
	default:
		v.armTimer(now)
	}
}

// runViewer serves one camera socket until it closes.
func (s *Server) runViewer(conn wsConn, l *tokens.Link, sessionID string) {
	s.wsWG.Add(1)
	defer s.wsWG.Done()
	v := &viewer{newSocket(s, conn, l, sessionID)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mv := v.open(ctx)
	if mv != nil {
		defer mv.Close()
		defer s.links.ReleaseSession(context.WithoutCancel(ctx), l.ID, sessionID)
		s.join(ctx, v)
		defer s.live.remove(v)
		v.armTimer(s.cfg.Now())
		defer v.stopTimer()
	}
	v.run(func() { v.writeLoop(mv) }, func() { v.readFrames(ignoreFrame) })
}

// open takes the viewer's place on the link and attaches it to the camera,
// or shuts it with the reason it cannot play.
func (v *viewer) open(ctx context.Context) *media.Viewer {
	s, l := v.srv, v.link
	if err := s.links.AcquireSession(ctx, l, v.id); err != nil {
		v.shut(reasonFor(err))
		return nil
	}
	cam, err := s.devices.GetAny(ctx, l.Device)
	var mv *media.Viewer
	if err == nil && cam.RTSP != nil {
		mv, err = s.media.Watch(ctx, cam.ID, media.Source{URL: cam.RTSP.URL, Transport: cam.RTSP.Transport})
	}
	switch {
	case err == nil && mv != nil:
		return mv
	case err == nil, errors.Is(err, emulator.ErrDeviceNotFound):
		v.shut(emulator.ReasonDeleted)
	default:
		v.shut(emulator.ReasonUnavailable)
	}
	_ = s.links.ReleaseSession(context.WithoutCancel(ctx), l.ID, v.id)
	return nil
}

// writeLoop relays the camera's messages, pings, and the closing. A viewer
// too slow for the camera is handled by media (it skips to the next
// keyframe, or is dropped, which ends the stream here).
func (v *viewer) writeLoop(mv *media.Viewer) {
	ping := time.NewTicker(v.srv.cfg.WS.PingInterval)
	defer ping.Stop()
	var stream <-chan media.Message
	if mv != nil {
		stream = mv.Messages()
	}
	for {
		select {
		case <-v.done:
			return
		case m, ok := <-stream:
			if !ok {
				v.shut(streamEndReason(mv.Err()))
				stream = nil
				continue
			}
			if v.send(m) != nil {
				return
			}
		case reason := <-v.close:
			v.finish(reason)
			return
		case <-ping.C:
			if v.ping() != nil {
				return
			}
		}
	}
}

// send writes one message of the camera's stream; for a live fragment it
// observes the latency the server added, up to the write's return, and the
// part of it after the fragment was made.
func (v *viewer) send(m media.Message) error {
	typ, b := websocket.BinaryMessage, m.Binary
	if m.Text != nil {
		typ, b = websocket.TextMessage, m.Text
	}
	if err := v.write(typ, b); err != nil {
		return err
	}
	if !m.RTPIn.IsZero() {
		now := time.Now()
		v.srv.metrics.cameraLatency.Observe(now.Sub(m.RTPIn).Seconds())
		v.srv.metrics.cameraSendLatency.Observe(now.Sub(m.Muxed).Seconds())
	}
	return nil
}

// streamEndReason says why a camera stream ended, as a closing reason.
func streamEndReason(err error) string {
	switch {
	case errors.Is(err, media.ErrTooSlow):
		return emulator.ReasonTooSlow
	case errors.Is(err, media.ErrClosed):
		return emulator.ReasonServerShutdown
	}
	return emulator.ReasonUnavailable
}
