// Package democam is an in-process RTSP server that publishes a small
// committed H.264 clip in a loop, so that `go run ./cmd/linkgate` shows a
// working demo camera on a fresh machine with nothing but Go.
//
// It is a real gortsplib server on a loopback port with one stream, at
// [Path]: ffmpeg's testsrc2 pattern (moving shapes, a clock, a frame
// counter), 640x360 at 25 fps, H.264 constrained baseline with an IDR every
// second and no B-frames; clip/make.sh regenerates it. The clip is published
// from Start to Close whether anyone watches or not, so a reader gets packets
// as soon as it plays, and can decode from the next IDR (at most a second
// later) or at once behind a GOP cache. The SPS and the PPS are in the SDP
// and before every IDR; RTP timestamps keep growing when the clip starts
// over. Readers receive RTP over the RTSP connection (TCP); UDP is not
// offered, and publishing to the server is refused.
package democam

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// Path is the path of the stream in the server's URL.
const Path = "/demo"

// Server serves the demo clip over RTSP until Close.
type Server struct {
	log    *slog.Logger
	rtsp   *gortsplib.Server
	stream *gortsplib.ServerStream
	url    string

	stop      context.CancelFunc // stops the publisher
	published chan struct{}      // closed when the publisher has returned
	closeOnce sync.Once
}

// Start serves the clip at [Path] on addr ("127.0.0.1:0" for a free port)
// until Close. A nil log discards the server's logs.
func Start(addr string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "democam")

	c, err := loadClip()
	if err != nil {
		return nil, fmt.Errorf("democam: %w", err)
	}

	h := &handler{log: log}
	var ln net.Listener // set by Start below, before it returns
	srv := &gortsplib.Server{
		Handler:     h,
		RTSPAddress: addr,
		Listen: func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			ln = l
			return l, err
		},
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("democam: %w", err)
	}

	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: c.sps, PPS: c.pps}
	medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	stream := &gortsplib.ServerStream{Server: srv, Desc: &description.Session{Medias: []*description.Media{medi}}}
	if err := stream.Initialize(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("democam: %w", err)
	}
	enc, err := forma.CreateEncoder()
	if err != nil {
		stream.Close()
		srv.Close()
		return nil, fmt.Errorf("democam: %w", err)
	}
	h.stream.Store(stream)

	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		log:       log,
		rtsp:      srv,
		stream:    stream,
		url:       "rtsp://" + dialAddr(ln.Addr()) + Path,
		stop:      stop,
		published: make(chan struct{}),
	}
	p := &publisher{
		clip:     c,
		enc:      enc,
		rtpStart: rand.Uint32(),
		write: func(pkt *rtp.Packet, ntp time.Time) error {
			return stream.WritePacketRTPWithNTP(medi, pkt, ntp)
		},
	}
	go func() {
		defer close(s.published)
		if err := p.run(ctx); err != nil {
			log.Error("publishing stopped", "err", err)
		}
	}()

	log.Info("demo camera serving", "url", s.url,
		"width", c.width, "height", c.height, "fps", frameRate,
		"loop", time.Duration(len(c.aus))*frameDuration)
	return s, nil
}

// URL is the stream's URL, such as rtsp://127.0.0.1:41234/demo. When the
// server listens on every interface, the URL names the loopback address.
func (s *Server) URL() string { return s.url }

// Close stops publishing, ends every reader's session, closes the listener
// and waits for the server's goroutines. It always returns nil; later calls
// do nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.published
		s.stream.Close()
		s.rtsp.Close()
		s.log.Info("demo camera closed")
	})
	return nil
}

// dialAddr is a listener's address as a client on this host dials it.
func dialAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

// handler answers the readers' requests for [Path]. Its stream is set once,
// right after the server has started; requests that come before get 503.
type handler struct {
	log    *slog.Logger
	stream atomic.Pointer[gortsplib.ServerStream]
}

// find returns the stream for requests on path, or the response that refuses
// them.
func (h *handler) find(path string) (*base.Response, *gortsplib.ServerStream) {
	if path != Path {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	st := h.stream.Load()
	if st == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	res, st := h.find(ctx.Path)
	return res, st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	res, st := h.find(ctx.Path)
	return res, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.log.Debug("reader playing", "remote", ctx.Conn.NetConn().RemoteAddr())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.log.Debug("reader gone", "err", ctx.Error)
}
