// Command viewers watches one camera link with many simulated viewers, the
// way the live page does: each viewer opens a session (POST
// /l/{token}/session), then the stream socket (/l/{token}/live) with the
// session cookie and the link's Origin, and reads everything it is sent.
//
// It reports the time to first fragment (from the socket dial to the first
// binary frame after the init segment) as p50/p99 over all viewers, the same
// measured from the session request, and what each viewer received (bytes,
// fragments, fragments a second: about 25 for a 25 fps camera, a little more
// over a short watch, as a joining viewer is first sent the frames since the
// last keyframe at once). It prints "ready" on stderr once every viewer has
// had its first fragment, so that a script can start measuring the gateway
// in steady state.
//
// The gateway allows a few sessions a second per client IP; on a loopback
// link each viewer therefore connects from its own 127.x.y.z address
// (-spread=false turns that off).
//
// With -churn N it measures what viewers leave behind instead: N viewers,
// -concurrency at a time, each opening a session and the stream socket,
// reading until its first fragment and leaving (a close frame, then the
// TCP close). Before the first, after every -every viewers (once those in
// flight have left and a second has passed) and during -settle after the
// last, it prints the gateway's RSS (VmRSS of /proc/-pid/status, so the
// gateway must run on this machine), its heap in use and goroutines (from
// its /metrics), and, with -redis, the open session leases of every link
// (the lg:link:{id}:live sorted sets), which must come back to 0.
//
//	go run ./loadtest/viewers -link http://127.0.0.1:8080/l/AQF... -churn 10000 -pid 1234 -redis 127.0.0.1:6379
//
// With -serve-clip FILE it is the camera instead: an RTSP server at
// -rtsp-addr that plays an Annex-B H.264 file (one access unit delimiter
// before each frame, SPS and PPS before each IDR, no B-frames) in a loop at
// -fps, to any number of readers over TCP. bench-viewers.sh uses it, since
// ffmpeg's RTSP muxer can only push to a server, not be one.
//
//	go run ./loadtest/viewers -link http://127.0.0.1:8080/l/AQF... -n 100 -duration 30s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"
)

type result struct {
	ttff, join  time.Duration // zero: no fragment
	first, last time.Time     // first and last fragment
	bytes       int64
	fragments   int64
	err         error
}

func main() {
	link := flag.String("link", "", "the camera link URL, http://host/l/{token}")
	n := flag.Int("n", 100, "viewers")
	duration := flag.Duration("duration", 30*time.Second, "how long each viewer watches, from the first viewer's start")
	origin := flag.String("origin", "", "Origin header; default the link's origin")
	ramp := flag.Duration("ramp", 5*time.Millisecond, "pause between viewer starts")
	spread := flag.Bool("spread", true, "on a loopback link, connect each viewer from its own 127.x.y.z address")
	clipFile := flag.String("serve-clip", "", "instead of watching, serve this Annex-B H.264 file over RTSP")
	rtspAddr := flag.String("rtsp-addr", "127.0.0.1:8554", "with -serve-clip: listen address; the stream is rtsp://ADDR/cam")
	fps := flag.Int("fps", 25, "with -serve-clip: the clip's frame rate")
	churnN := flag.Int("churn", 0, "instead of watching: this many viewers that each leave at their first fragment")
	conc := flag.Int("concurrency", 20, "with -churn: viewers at a time")
	every := flag.Int("every", 1000, "with -churn: sample the gateway after this many viewers")
	pid := flag.Int("pid", 0, "with -churn: the gateway's process id, for its RSS")
	settle := flag.Duration("settle", 15*time.Second, "with -churn: how long to keep sampling after the last viewer, every 5 s")
	redisAddr := flag.String("redis", "", "with -churn: Redis host:port, to count open session leases")
	flag.Parse()
	if *clipFile != "" {
		log.Fatal(serveClip(*clipFile, *rtspAddr, *fps))
	}
	u, err := url.Parse(*link)
	if err != nil || u.Host == "" || !strings.HasPrefix(u.Path, "/l/") {
		log.Fatalf("-link: want http://host/l/{token}, got %q", *link)
	}
	if *origin == "" {
		*origin = u.Scheme + "://" + u.Host
	}
	ip := net.ParseIP(u.Hostname())
	*spread = *spread && ip != nil && ip.IsLoopback()

	// SIGINT or SIGTERM ends the watch early, with a report.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *churnN > 0 {
		c := &churner{link: u, origin: *origin, spread: *spread, pid: *pid,
			metrics: u.Scheme + "://" + u.Host + "/metrics"}
		if *redisAddr != "" {
			c.rdb = redis.NewClient(&redis.Options{Addr: *redisAddr})
		}
		if err := c.run(ctx, *churnN, max(1, *conc), max(1, *every), *settle); err != nil {
			log.Fatal(err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	results := make([]result, *n)
	var wg sync.WaitGroup
	var started atomic.Int64
	for i := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local net.IP
			if *spread {
				local = localIP(i)
			}
			results[i] = watch(ctx, u, *origin, local, false, func() {
				if started.Add(1) == int64(*n) {
					fmt.Fprintln(os.Stderr, "ready")
				}
			})
		}()
		select {
		case <-ctx.Done():
		case <-time.After(*ramp):
		}
	}
	wg.Wait()
	report(results)
}

// localIP is viewer i's own loopback address: 127.1.0.2 on, a different one
// for each of the first 62,500 viewers.
func localIP(i int) net.IP {
	return net.IPv4(127, byte(1+(i+2)/62500), byte((i+2)/250%250), byte(2+(i+2)%250))
}

// watch runs one viewer until ctx ends, or with leave until its first
// fragment; firstFragment is called once.
func watch(ctx context.Context, u *url.URL, origin string, local net.IP, leave bool, firstFragment func()) (r result) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		if local != nil {
			d.LocalAddr = &net.TCPAddr{IP: local}
		}
		return d.DialContext(ctx, network, addr)
	}
	start := time.Now()
	client := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 10 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, "POST", u.String()+"/session", nil)
	req.Header.Set("Origin", origin)
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		return result{err: fmt.Errorf("session: %s", resp.Status)}
	}
	h := http.Header{"Origin": {origin}}
	for _, c := range resp.Cookies() {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	ws := "ws" + strings.TrimPrefix(u.String(), "http") + "/live"
	dialer := websocket.Dialer{NetDialContext: dial, HandshakeTimeout: 10 * time.Second}
	dialStart := time.Now()
	conn, _, err := dialer.DialContext(ctx, ws, h)
	if err != nil {
		return result{err: fmt.Errorf("live: %w", err)}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	wantInit := false // the binary frame after a codecs message is an init segment
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() == nil {
				r.err = err
			}
			return r
		}
		r.bytes += int64(len(data))
		switch {
		case typ == websocket.TextMessage:
			wantInit = wantInit || strings.Contains(string(data), `"codecs"`)
		case wantInit:
			wantInit = false
		default:
			now := time.Now()
			if r.fragments == 0 {
				r.ttff, r.join, r.first = now.Sub(dialStart), now.Sub(start), now
				firstFragment()
				if leave {
					r.fragments, r.last = 1, now
					_ = conn.WriteControl(websocket.CloseMessage,
						websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
					return r
				}
			}
			r.fragments++
			r.last = now
		}
	}
}

func report(results []result) {
	ttff := hdrhistogram.New(1, 60_000_000, 3) // µs
	join := hdrhistogram.New(1, 60_000_000, 3)
	var bytes, frags []float64
	var rates []float64
	errs, failed := map[string]int{}, 0
	for _, r := range results {
		if r.err != nil {
			errs[r.err.Error()]++
			failed++
		}
		if r.fragments == 0 {
			continue
		}
		_ = ttff.RecordValue(r.ttff.Microseconds())
		_ = join.RecordValue(r.join.Microseconds())
		bytes = append(bytes, float64(r.bytes))
		frags = append(frags, float64(r.fragments))
		if d := r.last.Sub(r.first).Seconds(); d > 0 {
			rates = append(rates, float64(r.fragments-1)/d)
		}
	}
	ms := func(h *hdrhistogram.Histogram, q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	fmt.Printf("viewers %d, watching %d, errors %d\n", len(results), len(frags), failed)
	fmt.Printf("ttff_ms p50 %.1f p99 %.1f max %.1f (socket dial to first fragment)\n", ms(ttff, 50), ms(ttff, 99), ms(ttff, 100))
	fmt.Printf("join_ms p50 %.1f p99 %.1f max %.1f (session request to first fragment)\n", ms(join, 50), ms(join, 99), ms(join, 100))
	fmt.Printf("per viewer: bytes %s, fragments %s, fragments/s %s (min/median/max)\n", spread(bytes), spread(frags), spread(rates))
	for e, c := range errs {
		fmt.Printf("error x%d: %s\n", c, e)
	}
}

func spread(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	slices.Sort(v)
	return fmt.Sprintf("%.4g/%.4g/%.4g", v[0], v[len(v)/2], v[len(v)-1])
}

// serveClip plays an Annex-B H.264 file over RTSP in a loop until killed.
func serveClip(file, addr string, fps int) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(data); err != nil {
		return err
	}
	var aus [][][]byte
	var sps, pps []byte
	for _, nalu := range nalus {
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
			aus = append(aus, nil)
			continue
		case h264.NALUTypeSPS:
			sps = cmpOr(sps, nalu)
		case h264.NALUTypePPS:
			pps = cmpOr(pps, nalu)
		}
		if len(aus) == 0 {
			return fmt.Errorf("%s: no access unit delimiter before the first NAL unit", file)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], nalu)
	}
	if sps == nil || pps == nil {
		return fmt.Errorf("%s: no SPS or PPS", file)
	}
	h := &rtspHandler{}
	srv := &gortsplib.Server{Handler: h, RTSPAddress: addr}
	if err := srv.Start(); err != nil {
		return err
	}
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
	medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	h.stream = &gortsplib.ServerStream{Server: srv, Desc: &description.Session{Medias: []*description.Media{medi}}}
	if err := h.stream.Initialize(); err != nil {
		return err
	}
	enc, err := forma.CreateEncoder()
	if err != nil {
		return err
	}
	log.Printf("serving %d frames of %s at rtsp://%s/cam", len(aus), file, addr)
	start, frame := time.Now(), time.Second/time.Duration(fps)
	for n := int64(0); ; n++ {
		due := start.Add(time.Duration(n) * frame)
		time.Sleep(time.Until(due))
		pkts, err := enc.Encode(aus[n%int64(len(aus))])
		if err != nil {
			return err
		}
		for _, pkt := range pkts {
			pkt.Timestamp = uint32(n * 90000 / int64(fps))
			if err := h.stream.WritePacketRTPWithNTP(medi, pkt, due); err != nil {
				return err
			}
		}
	}
}

func cmpOr(a, b []byte) []byte {
	if a != nil {
		return a
	}
	return b
}

// rtspHandler serves its one stream to every reader.
type rtspHandler struct{ stream *gortsplib.ServerStream }

func (h *rtspHandler) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

func (h *rtspHandler) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

func (h *rtspHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}
