package gateway

import (
	"testing"
	"time"

	"github.com/linkgate/linkgate/media"
)

// nopConn is a socket whose writes succeed at once.
type nopConn struct{ wsConn }

func (nopConn) WriteMessage(int, []byte) error            { return nil }
func (nopConn) SetWriteDeadline(time.Time) error          { return nil }
func (nopConn) WriteControl(int, []byte, time.Time) error { return nil }

// Writing a live fragment and observing its added latency allocates
// nothing: it runs once per viewer per fragment.
func TestCameraSendAllocs(t *testing.T) {
	s := &Server{metrics: &metrics{}}
	s.metrics.cameraLatency, s.metrics.cameraSendLatency = newCameraLatency()
	s.cfg.WS.WriteTimeout = time.Second
	v := &viewer{&socket{srv: s, conn: nopConn{}}}
	m := media.Message{Binary: make([]byte, 1500), RTPIn: time.Now(), Muxed: time.Now()}
	if n := testing.AllocsPerRun(1000, func() { _ = v.send(m) }); n != 0 {
		t.Errorf("send allocates %.1f times per fragment", n)
	}
}

func BenchmarkCameraSend(b *testing.B) {
	s := &Server{metrics: &metrics{}}
	s.metrics.cameraLatency, s.metrics.cameraSendLatency = newCameraLatency()
	s.cfg.WS.WriteTimeout = time.Second
	v := &viewer{&socket{srv: s, conn: nopConn{}}}
	m := media.Message{Binary: make([]byte, 1500), RTPIn: time.Now(), Muxed: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		_ = v.send(m)
	}
}
