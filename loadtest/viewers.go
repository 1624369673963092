package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
)

// Defaults of ViewersConfig.
const (
	DefaultStallAfter    = 500 * time.Millisecond
	DefaultViewerTimeout = 10 * time.Second
	DefaultRetryPause    = time.Second
	DefaultSettle        = 3 * time.Second
)

// ViewersConfig configures the camera viewers scenario. The zero value of a
// field means its default.
type ViewersConfig struct {
	// Link is the camera link to watch, http://host/l/{token}. When it is
	// empty, Prepare registers a camera (RTSPURL) and mints a link to it
	// through the owner API of Config.Target (APIKey), and Finish deletes
	// both.
	Link string
	// APIKey is an owner's API key, for Prepare when Link is empty.
	APIKey string
	// RTSPURL is the camera Prepare registers when Link is empty, such as
	// rtsp://127.0.0.1:8554/cam.
	RTSPURL string
	// RTSPTransport is the registered camera's transport, "tcp" or "udp".
	// It defaults to the gateway's default (tcp).
	RTSPTransport string
	// Origin is the Origin header of the session request and the socket.
	// It defaults to the link's origin, as the live page sends.
	Origin string

	// Hold is how long a viewer watches before it leaves; the engine then
	// starts the next viewer (closed model: at once, in the worker's place;
	// open model: at the next arrival). It defaults to watching until the
	// run ends, which suits the closed model; the open model needs it.
	Hold time.Duration
	// Ramp spreads the closed model's first viewers: worker i starts its
	// first session i*Ramp after the run's start. It defaults to none, all
	// at once.
	Ramp time.Duration
	// StallAfter is the longest gap between two fragments that is not a
	// stall. It defaults to 500 ms (12.5 frame intervals at 25 fps); 3
	// frame intervals (120 ms at 25 fps) is a stricter choice.
	StallAfter time.Duration
	// Timeout bounds the session request and the socket's handshake. It
	// defaults to 10 s.
	Timeout time.Duration
	// RetryPause is how long a viewer whose session failed before its
	// first fragment waits before the engine starts the next one, so that
	// a refusing server is not hammered. It defaults to 1 s.
	RetryPause time.Duration
	// SameSource turns off the spreading of source addresses: by default,
	// on a loopback target, each session connects from its own 127.x.y.z
	// address, since the gateway limits sessions per client IP.
	SameSource bool

	// NoServerMetrics turns off the server's figures: by default the
	// target's /metrics is read before and after the measured window, and
	// the report's Info gets "server cpu %" (of one core) and "server rss
	// MiB".
	NoServerMetrics bool
	// Settle is how long the server's figures wait, in the closed model,
	// after every worker's viewer has had its first fragment, so that they
	// cover the steady state rather than the connecting. It defaults to
	// 3 s. In the open model, or when the run ends first, the figures cover
	// the whole run.
	Settle time.Duration
	// Window is how long the server's figures are measured once settled.
	// It defaults to until the run ends.
	Window time.Duration
	// Ready, when set, is called once, in the closed model, when every
	// worker's viewer has had its first fragment.
	Ready func()
	// Measured, when set, is called once the Window has been measured, so
	// that a script may start other load (joiners) after it.
	Measured func()
}

// withDefaults fills in the defaults and checks the config; errors name
// the field.
func (c ViewersConfig) withDefaults() (ViewersConfig, error) {
	if c.StallAfter <= 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultViewerTimeout
	}
	if c.RetryPause <= 0 {
		c.RetryPause = DefaultRetryPause
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSettle
	}
	if c.Hold < 0 || c.Ramp < 0 || c.Window < 0 {
		return c, errors.New("loadtest: viewers: Hold, Ramp and Window must not be negative")
	}
	switch c.RTSPTransport {
	case "", "tcp", "udp":
	default:
		return c, fmt.Errorf("loadtest: viewers: RTSPTransport: %q is neither tcp nor udp", c.RTSPTransport)
	}
	if c.Link != "" {
		if _, err := parseLinkURL(c.Link); err != nil {
			return c, err
		}
	} else if c.APIKey == "" || c.RTSPURL == "" {
		return c, errors.New("loadtest: viewers: Link: give a camera link, or an APIKey and an RTSPURL to make one")
	}
	return c, nil
}

// parseLinkURL checks a link URL: http(s)://host/l/{token}.
func parseLinkURL(link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasPrefix(u.Path, "/l/") {
		return nil, fmt.Errorf("loadtest: viewers: Link: want http://host/l/{token}, got %q", link)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// Viewers is the camera viewers scenario: each worker is one viewer of a
// camera link at a time, watching it the way the live page does (POST
// /l/{token}/session, then the /l/{token}/live socket with the cookie and
// the link's Origin), reading everything it is sent. One operation is one
// viewer's whole watch.
//
// It records:
//   - "ttff": time to first frame, from the socket dial to the first
//     fragment after the init segment; "ttff-session": the same from the
//     viewer's arrival (its session request; in the open model, when it
//     was due);
//   - "stall": gaps between fragments longer than StallAfter (counted
//     "event stall"), and "offline": how long the camera was offline;
//   - counts "fragments", "event watch" (sockets opened), "event
//     first-fragment", "event offline", "event online", "event codecs",
//     "event left" (left after Hold), "session <status>" for refused
//     session requests, "dial <status>" for refused sockets, and
//     "close <code> <reason>" for every close the server initiated;
//   - the bytes received;
//   - in the report's Info: each viewer's rate of bytes and fragments a
//     second (min, p50, max), from 1 s after its first fragment, so that
//     the kept keyframe group a joiner is sent at once is left out;
//     "fragments/s", all viewers' together over the run; and the server's
//     figures (see NoServerMetrics).
type Viewers struct {
	cfg ViewersConfig

	// Set by Prepare, read by the workers.
	link   *url.URL
	origin string
	spread bool
	model  Model
	conns  int
	api    *ownerapi.Client
	made   struct{ camera, link string } // what Prepare made, for Finish

	ready    atomic.Int64 // workers whose first viewer has had a fragment
	measure  sync.WaitGroup
	rates    viewerRates
	server   serverWindow
	fragsAll atomic.Int64 // fragments received by every viewer
}

// NewViewers returns the scenario for cfg.
func NewViewers(cfg ViewersConfig) (*Viewers, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	v := &Viewers{cfg: cfg}
	if cfg.Link != "" {
		v.link, _ = parseLinkURL(cfg.Link)
	}
	return v, nil
}

// Name implements Scenario.
func (v *Viewers) Name() string { return "viewers" }

// Prepare implements Preparer: it mints the link if it was not given,
// checks that the link's host is loopback (unless the run allows remote
// targets), and reads the server's metrics before the run.
func (v *Viewers) Prepare(ctx context.Context, cfg Config) error {
	if cfg.Model == Open && v.cfg.Hold == 0 {
		return errors.New("loadtest: viewers: Hold: the open model needs a hold time (each arriving viewer watches for Hold)")
	}
	v.model, v.conns = cfg.Model, cfg.Connections
	if v.link == nil {
		if cfg.Target == "" {
			return errors.New("loadtest: viewers: Target: needed to mint a link through the owner API")
		}
		if err := v.mint(ctx, cfg.Target); err != nil {
			return err
		}
	}
	if err := CheckTarget(ctx, v.link.String(), cfg.AllowRemote); err != nil {
		return err
	}
	v.origin = v.cfg.Origin
	if v.origin == "" {
		v.origin = v.link.Scheme + "://" + v.link.Host
	}
	ip := net.ParseIP(v.link.Hostname())
	v.spread = !v.cfg.SameSource && ip != nil && ip.IsLoopback() && ip.To4() != nil
	if !v.cfg.NoServerMetrics {
		base := cfg.Target
		if base == "" {
			base = v.link.Scheme + "://" + v.link.Host
		}
		v.server.start(ctx, base)
	}
	return nil
}

// mint registers the camera and creates a live link to it, eternal and
// without limits on uses or sessions.
func (v *Viewers) mint(ctx context.Context, target string) error {
	v.api = &ownerapi.Client{BaseURL: strings.TrimSuffix(target, "/"), APIKey: v.cfg.APIKey}
	dc := ownerapi.DeviceCreate{Name: "loadtest viewers"}
	// The source's type lives in emulator, which the load tool does not
	// import (gateway/arch_test.go); it is set through the field.
	src := alloc(&dc.RTSP)
	src.URL, src.Transport = v.cfg.RTSPURL, v.cfg.RTSPTransport
	cam, err := v.api.CreateCamera(ctx, dc)
	if err != nil {
		return fmt.Errorf("loadtest: viewers: registering the camera: %w", err)
	}
	v.made.camera = cam.ID
	l, err := v.api.CreateLink(ctx, ownerapi.LinkCreate{
		Device:      cam.ID,
		Name:        "loadtest viewers",
		Permissions: tokens.Permissions{Camera: []string{tokens.LevelLive}},
	})
	if err != nil {
		return fmt.Errorf("loadtest: viewers: minting the link: %w", err)
	}
	v.made.link = l.ID
	if v.link, err = parseLinkURL(l.URL); err != nil {
		return err
	}
	return nil
}

// alloc points *p at a new T and returns it.
func alloc[T any](p **T) *T {
	*p = new(T)
	return *p
}

// Finish implements Finisher: it adds the viewers' rates and the server's
// figures to the report and deletes what Prepare made.
func (v *Viewers) Finish(ctx context.Context, r *Report) error {
	v.measure.Wait()
	if r != nil {
		v.rates.report(r)
		if r.Elapsed > 0 {
			r.SetInfo("fragments/s", float64(v.fragsAll.Load())/r.Elapsed)
		}
		if !v.cfg.NoServerMetrics {
			v.server.finish(ctx, r)
		}
	}
	var errs []error
	if v.made.link != "" {
		if err := v.api.DeleteLink(ctx, v.made.link); err != nil {
			errs = append(errs, fmt.Errorf("deleting link %s: %w", v.made.link, err))
		}
	}
	if v.made.camera != "" {
		if err := v.api.DeleteCamera(ctx, v.made.camera); err != nil {
			errs = append(errs, fmt.Errorf("deleting camera %s: %w", v.made.camera, err))
		}
	}
	return errors.Join(errs...)
}

// Link returns the camera link the viewers watch: the configured one, or
// after Prepare the one it minted.
func (v *Viewers) Link() string {
	if v.link == nil {
		return ""
	}
	return v.link.String()
}

// Worker implements Scenario.
func (v *Viewers) Worker(ctx context.Context, i int) (Worker, error) {
	return &viewerWorker{v: v, i: i}, nil
}

// viewerWorker is one worker: one viewer at a time. Its fields are owned by
// the engine's goroutine for it.
type viewerWorker struct {
	v       *Viewers
	i       int
	started bool // its first session has begun (Ramp applies before it)
	watched bool // one of its viewers has had a fragment
}

// Close implements Worker.
func (w *viewerWorker) Close() error { return nil }

// Do implements Worker: one viewer's whole watch.
func (w *viewerWorker) Do(ctx context.Context, op Op) error {
	v := w.v
	arrival := op.Due
	if !w.started {
		w.started = true
		if v.model != Open && v.cfg.Ramp > 0 && w.i > 0 {
			if !sleepCtx(ctx, time.Duration(w.i)*v.cfg.Ramp) {
				return nil
			}
			arrival = time.Now()
		}
	}
	watched, err := v.watch(ctx, op, arrival, func() {
		if !w.watched {
			w.watched = true
			if v.model != Open && v.ready.Add(1) == int64(v.conns) {
				v.onReady(ctx)
			}
		}
	})
	if !watched && ctx.Err() == nil {
		sleepCtx(ctx, v.cfg.RetryPause) // a failed viewer: pause before the next
	}
	return err
}

// sleepCtx sleeps for d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// onReady marks the closed model's steady state: every worker watching.
// The server's window starts Settle later.
func (v *Viewers) onReady(ctx context.Context) {
	if v.cfg.Ready != nil {
		v.cfg.Ready()
	}
	if v.cfg.NoServerMetrics && v.cfg.Measured == nil {
		return
	}
	v.measure.Go(func() {
		if !sleepCtx(ctx, v.cfg.Settle) {
			return
		}
		if !v.cfg.NoServerMetrics {
			v.server.restart(ctx)
		}
		if v.cfg.Window == 0 || !sleepCtx(ctx, v.cfg.Window) {
			return
		}
		if !v.cfg.NoServerMetrics {
			v.server.stop(ctx)
		}
		if v.cfg.Measured != nil {
			v.cfg.Measured()
		}
	})
}

// viewerSourceIP returns the loopback source address of session seq:
// 127.1.0.2 and on, a fresh one per session (the gateway limits sessions
// per client IP), wrapping after about 15 million.
func viewerSourceIP(seq int64) net.IP {
	k := seq % 15_000_000
	return net.IPv4(127, byte(1+k/62500), byte(k/250%250), byte(2+k%250))
}

// flushEvery is how often a viewer adds its bytes and fragments to the
// sink, so that the per-second series stays right without a lock per
// frame.
const flushEvery = 250 * time.Millisecond

// watch runs one viewer until it leaves (Hold), the run ends, or the
// server closes its socket. It calls firstFragment on the viewer's first
// fragment, and reports whether there was one.
func (v *Viewers) watch(ctx context.Context, op Op, arrival time.Time, firstFragment func()) (watched bool, err error) {
	sink := op.Sink
	var local net.IP
	if v.spread {
		local = viewerSourceIP(op.Seq)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: v.cfg.Timeout}
		if local != nil {
			d.LocalAddr = &net.TCPAddr{IP: local}
		}
		return d.DialContext(ctx, network, addr)
	}

	// The session, as the page opens it.
	client := &http.Client{
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
		Timeout:   v.cfg.Timeout,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.link.String()+"/session", nil)
	if err != nil {
		return watched, err
	}
	req.Header.Set("Origin", v.origin)
	resp, err := client.Do(req)
	if err != nil {
		return watched, fmt.Errorf("session: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		sink.Count("session "+strconv.Itoa(resp.StatusCode), 1)
		return watched, nil
	}
	h := http.Header{"Origin": {v.origin}}
	for _, c := range resp.Cookies() {
		h.Add("Cookie", c.Name+"="+c.Value)
	}

	// The stream.
	ws := "ws" + strings.TrimPrefix(v.link.String(), "http") + "/live"
	dialer := websocket.Dialer{NetDialContext: dial, HandshakeTimeout: v.cfg.Timeout, ReadBufferSize: 32 << 10, WriteBufferSize: 1 << 10}
	dialStart := time.Now()
	conn, wresp, err := dialer.DialContext(ctx, ws, h)
	if err != nil {
		if wresp != nil {
			sink.Count("dial "+strconv.Itoa(wresp.StatusCode), 1)
			return watched, nil
		}
		return watched, fmt.Errorf("live: %w", err)
	}
	defer conn.Close()
	sink.Count("event watch", 1)

	watchCtx, cancel := ctx, context.CancelFunc(func() {})
	if v.cfg.Hold > 0 {
		watchCtx, cancel = context.WithTimeout(ctx, v.cfg.Hold)
	}
	defer cancel()
	// Leaving: the closing handshake's first half, then the socket.
	stop := context.AfterFunc(watchCtx, func() {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = conn.Close()
	})
	defer stop()

	var (
		st         = stallTracker{after: v.cfg.StallAfter}
		needInit   = true // no fragment counts before an init segment
		closing    liveText
		first      time.Time // the first fragment
		steadyFrom time.Time // first + 1 s: the rates start here
		steadyN    int64     // fragments since steadyFrom
		steadyB    int64     // bytes since steadyFrom
		lastFrag   time.Time
		pendN      int64 // fragments not yet flushed to the sink
		pendB      int64 // bytes not yet flushed
		lastFlush  = time.Now()
		head       [liveHead]byte
		text       []byte
	)
	flush := func() {
		if pendN > 0 {
			sink.Count("fragments", pendN)
			v.fragsAll.Add(pendN)
		}
		if pendB > 0 {
			sink.Bytes(pendB, 0)
		}
		pendN, pendB = 0, 0
	}
	defer func() {
		now := time.Now()
		flush()
		if gap, stall := st.end(now); stall {
			sink.Count("event stall", 1)
			sink.Observe("stall", gap)
		}
		if !steadyFrom.IsZero() && lastFrag.Sub(steadyFrom) >= time.Second {
			secs := lastFrag.Sub(steadyFrom).Seconds()
			v.rates.add(float64(steadyB)/secs, float64(steadyN)/secs)
		}
	}()

	for {
		typ, r, err := conn.NextReader()
		if err != nil {
			if watchCtx.Err() != nil {
				if ctx.Err() == nil {
					sink.Count("event left", 1)
				}
				return watched, nil
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				sink.Count(closeKind(ce, closing), 1)
				return watched, nil
			}
			return watched, err
		}
		var n int64
		kind := liveOther
		var msg liveText
		if typ == websocket.TextMessage {
			text, err = readText(r, text[:0])
			n = int64(len(text))
			if err == nil {
				kind, msg = classifyLiveText(text)
			}
		} else {
			var m int
			m, err = io.ReadFull(r, head[:])
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) { // shorter than a box header
				kind = classifyLiveBinary(head[:m])
				var rest int64
				rest, err = io.Copy(io.Discard, r)
				n = int64(m) + rest
			}
		}
		if err != nil {
			continue // the next NextReader returns the socket's error
		}
		now := time.Now()
		pendB += n
		switch kind {
		case liveCodecs:
			sink.Count("event codecs", 1)
			needInit = true
		case liveInit:
			needInit = false
		case liveOffline:
			sink.Count("event offline", 1)
			if gap, stall := st.goOffline(now); stall {
				sink.Count("event stall", 1)
				sink.Observe("stall", gap)
			}
		case liveOnline:
			sink.Count("event online", 1)
			if d := st.goOnline(now); d > 0 {
				sink.Observe("offline", d)
			}
		case liveClosing:
			closing = msg
		case liveFragment:
			if needInit {
				sink.Count("event fragment-before-init", 1)
				break
			}
			pendN++
			lastFrag = now
			if gap, stall := st.fragment(now); stall {
				sink.Count("event stall", 1)
				sink.Observe("stall", gap)
			}
			if first.IsZero() {
				first, steadyFrom = now, now.Add(time.Second)
				watched = true
				firstFragment()
				sink.Count("event first-fragment", 1)
				sink.Observe("ttff", now.Sub(dialStart))
				sink.Observe("ttff-session", now.Sub(arrival))
			} else if !now.Before(steadyFrom) {
				steadyN++
				steadyB += n
			}
		default:
			sink.Count("event other-message", 1)
		}
		if now.Sub(lastFlush) >= flushEvery {
			flush()
			lastFlush = now
		}
	}
}

// readText reads a text message into buf, bounded by maxLiveText (the rest
// is dropped).
func readText(r io.Reader, buf []byte) ([]byte, error) {
	var chunk [512]byte
	for {
		m, err := r.Read(chunk[:])
		if len(buf) < maxLiveText+1 {
			buf = append(buf, chunk[:min(m, maxLiveText+1-len(buf))]...)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// closeKind names a close the server initiated: "close <code> <reason>",
// the reason from the closing message, or the close frame's text.
func closeKind(ce *websocket.CloseError, closing liveText) string {
	reason := closing.Reason
	if reason == "" {
		reason = ce.Text
	}
	if reason == "" {
		return "close " + strconv.Itoa(ce.Code)
	}
	return "close " + strconv.Itoa(ce.Code) + " " + reason
}

// viewerRates are the rates of the viewers that watched for long enough.
type viewerRates struct {
	mu    sync.Mutex // guards bytes and frags
	bytes []float64  // bytes a second, one per viewer
	frags []float64  // fragments a second, one per viewer
}

func (vr *viewerRates) add(bytes, frags float64) {
	vr.mu.Lock()
	vr.bytes = append(vr.bytes, bytes)
	vr.frags = append(vr.frags, frags)
	vr.mu.Unlock()
}

// report puts the rates' min, median and max in the report's Info.
func (vr *viewerRates) report(r *Report) {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	if len(vr.bytes) == 0 {
		return
	}
	r.SetInfo("viewers measured", float64(len(vr.bytes)))
	for _, s := range []struct {
		name string
		v    []float64
	}{{"viewer bytes/s", vr.bytes}, {"viewer fragments/s", vr.frags}} {
		v := slices.Clone(s.v)
		slices.Sort(v)
		r.SetInfo(s.name+" min", v[0])
		r.SetInfo(s.name+" p50", v[len(v)/2])
		r.SetInfo(s.name+" max", v[len(v)-1])
	}
}

// serverWindow measures the server's CPU and memory between two scrapes of
// its /metrics, and the generator's own CPU over the same window.
type serverWindow struct {
	mu      sync.Mutex // guards the fields below
	target  string
	before  map[string]float64
	t0      time.Time
	cpu0    time.Duration
	after   map[string]float64
	t1      time.Time
	cpu1    time.Duration
	stopped bool // after is final
}

// scrapeCtx bounds a scrape: it goes on for a while when the run's context
// has ended, so that the window's end can be read.
func scrapeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), scrapeTimeout)
}

// start reads the metrics at the beginning of the run.
func (s *serverWindow) start(ctx context.Context, target string) {
	s.mu.Lock()
	s.target = target
	s.mu.Unlock()
	s.restart(ctx)
}

// restart begins the window afresh (the steady state is reached).
func (s *serverWindow) restart(ctx context.Context) {
	ctx, cancel := scrapeCtx(ctx)
	defer cancel()
	cpu := cpuTime()
	m, err := ScrapeMetrics(ctx, s.target)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return // keep the earlier start, if any
	}
	s.before, s.t0, s.cpu0 = m, time.Now(), cpu
}

// stop ends the window.
func (s *serverWindow) stop(ctx context.Context) {
	ctx, cancel := scrapeCtx(ctx)
	defer cancel()
	m, err := ScrapeMetrics(ctx, s.target)
	cpu := cpuTime()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		return
	}
	s.after, s.t1, s.cpu1, s.stopped = m, time.Now(), cpu, true
}

// Info names of the server's figures.
const (
	InfoServerCPU          = "server cpu %"
	InfoServerRSS          = "server rss MiB"
	InfoServerWindow       = "server window s"
	InfoGeneratorCPUWindow = "generator cpu % (window)"
)

// finish ends the window if it has not ended and puts the figures in r.
func (s *serverWindow) finish(ctx context.Context, r *Report) {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if !stopped {
		s.stop(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.before == nil || s.after == nil {
		r.SetInfo("server metrics failed", 1)
		return
	}
	secs := s.t1.Sub(s.t0).Seconds()
	if secs <= 0 {
		return
	}
	const cpuName, rssName = "process_cpu_seconds_total", "process_resident_memory_bytes"
	if c1, ok := s.after[cpuName]; ok {
		r.SetInfo(InfoServerCPU, 100*(c1-s.before[cpuName])/secs)
	}
	if rss, ok := s.after[rssName]; ok {
		r.SetInfo(InfoServerRSS, rss/(1<<20))
	}
	r.SetInfo(InfoServerWindow, secs)
	r.SetInfo(InfoGeneratorCPUWindow, 100*(s.cpu1-s.cpu0).Seconds()/secs)
}
