package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/linkgate/linkgate/gateway/ownerapi"
)

// Defaults of SocketsConfig.
const (
	DefaultSocketDeviceType = "light"
	DefaultSocketTimeout    = 10 * time.Second
	DefaultSocketOnlineWait = 30 * time.Second
	DefaultSocketSettle     = 2 * time.Second
	DefaultSocketCloseWait  = 10 * time.Second
	DefaultSocketRefuseWait = 2 * time.Second
)

// SocketsConfig configures the WebSocket scenario ("ws"): N device-page
// sessions (N is Config.Connections), each opened as the page opens it
// (POST /l/{token}/session for the cookie, then /l/{token}/ws with the
// cookie and the link's Origin), sending "set" commands at Rate and reading
// everything it is sent. The zero value of a field means its default.
type SocketsConfig struct {
	// APIKey is an owner API key of the target (Config.Target). With it,
	// Prepare mints what the run needs: Devices devices of DeviceType (or
	// links to Device) and LinkCount links without use or session limits,
	// and Finish deletes them. Either APIKey or Links is required.
	APIKey string
	// Links are link URLs (http://host/l/{token}) to use as they are,
	// instead of minting: session i opens Links[i % len(Links)] on the
	// link's own host. Not with Revoke.
	Links []string
	// Instances are more gateway base URLs (http://host:port) sharing the
	// target's Redis: session i opens its link on instance i % (1 +
	// len(Instances)), the target being instance 0, with that instance's
	// origin as Origin. Minted links only.
	Instances []string
	// LinkCount is the number of links minted; session i opens link
	// i % LinkCount. It defaults to 1.
	LinkCount int
	// Device is an existing device of the owner (a demo device, say) to
	// mint the links to. Empty: Prepare creates Devices devices.
	Device string
	// Devices is the number of devices created when Device is empty; link
	// j goes to device j % Devices. It defaults to LinkCount. The target's
	// device fleet must simulate them (the demo fleet of `linkgate serve`
	// for the demo owner, or `linkgate devices`).
	Devices int
	// DeviceType is the type of the devices created: "light", "plug",
	// "rgb-lamp", "thermostat" or "lock", with the nodes of the demo
	// devices of that type. It defaults to "light".
	DeviceType string
	// Property is the settable property ("node/prop") the commands set. It
	// defaults to the first settable property the link may control.
	Property string
	// Rate is each session's command rate, per second; 0 keeps the
	// sessions idle. Commands are due at fixed times (each session offset
	// by a fraction of the period), and the command latency is measured
	// from the due time, so a slow answer delays no measurement.
	Rate float64
	// Ramp is how many sessions start per second at the run's start; 0
	// starts them all at once. Later sessions (reconnects) start at once.
	Ramp float64
	// SameAddress connects every session from the default source address.
	// By default, on a loopback target each session connects from its own
	// 127.x.y.z address, since the gateway limits sessions per client IP.
	SameAddress bool
	// Timeout bounds a session's opening: the POST, the dial and the
	// hello. It defaults to 10 s.
	Timeout time.Duration
	// OnlineWait is how long Prepare waits for minted devices to come
	// online. It defaults to 30 s.
	OnlineWait time.Duration
	// Settle is how long after the last session opened the memory of the
	// target is sampled (and, with Revoke, the links are disabled). It
	// defaults to 2 s.
	Settle time.Duration
	// Keep keeps the minted devices and links after the run.
	Keep bool
	// Ready, if set, is called once, when every one of the run's sessions
	// has opened (or failed to) for the first time.
	Ready func(opened, failed int)

	// Revoke runs the revocation test instead of a steady run: once every
	// session is open and Settle has passed, every minted link is disabled
	// through the owner API (at RevokeRate), and each session's close is
	// timed from the start of its link's disable call ("revoke"). Right after
	// each disable call returns, opens of that link are tried on every
	// instance, back to back from fresh source addresses, until one is
	// refused ("refuse": from the call's return to the refusal's arrival).
	// Each session runs once: Config.Count must equal Config.Connections
	// (RunRevocation sets it). Needs APIKey.
	Revoke bool
	// CloseWait bounds the wait for the sessions to close after the
	// disable calls (Revoke). It defaults to 10 s.
	CloseWait time.Duration
	// RefuseWait bounds the wait for an open to be refused (Revoke). It
	// defaults to 2 s.
	RefuseWait time.Duration
	// RevokeRate paces the disable calls (Revoke): link j's call starts
	// j/RevokeRate seconds after the first, as owners acting one at a
	// time would, each call on its own (a slow one delays no other). 0
	// disables every link at the same instant: the stress case. The CLI
	// defaults to DefaultRevokeRate.
	RevokeRate float64
}

// DefaultRevokeRate is the CLI's default SocketsConfig.RevokeRate: 20
// disables a second.
const DefaultRevokeRate = 20

func (c SocketsConfig) withDefaults() (SocketsConfig, error) {
	switch {
	case c.APIKey == "" && len(c.Links) == 0:
		return c, errors.New("loadtest: ws: APIKey or Links is required")
	case c.APIKey != "" && len(c.Links) > 0:
		return c, errors.New("loadtest: ws: APIKey and Links: mint links or use given ones, not both")
	case c.Revoke && c.APIKey == "":
		return c, errors.New("loadtest: ws: Revoke: needs APIKey (it mints and disables links)")
	case len(c.Links) > 0 && len(c.Instances) > 0:
		return c, errors.New("loadtest: ws: Instances: only with minted links")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return c, errors.New("loadtest: ws: Rate must be a number of at least 0")
	case c.RevokeRate < 0 || math.IsNaN(c.RevokeRate) || math.IsInf(c.RevokeRate, 0):
		return c, errors.New("loadtest: ws: RevokeRate must be a number of at least 0")
	case c.Ramp < 0:
		return c, errors.New("loadtest: ws: Ramp must not be negative")
	case c.LinkCount < 0 || c.Devices < 0:
		return c, errors.New("loadtest: ws: LinkCount and Devices must not be negative")
	}
	if c.LinkCount == 0 {
		c.LinkCount = 1
	}
	if c.Devices == 0 {
		c.Devices = c.LinkCount
	}
	if c.DeviceType == "" {
		c.DeviceType = DefaultSocketDeviceType
	}
	if c.APIKey != "" && c.Device == "" && deviceNodes[c.DeviceType] == "" {
		return c, fmt.Errorf("loadtest: ws: DeviceType: %q is not one of light, plug, rgb-lamp, thermostat, lock", c.DeviceType)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultSocketTimeout
	}
	if c.OnlineWait <= 0 {
		c.OnlineWait = DefaultSocketOnlineWait
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSocketSettle
	}
	if c.CloseWait <= 0 {
		c.CloseWait = DefaultSocketCloseWait
	}
	if c.RefuseWait <= 0 {
		c.RefuseWait = DefaultSocketRefuseWait
	}
	return c, nil
}

// deviceNodes are the nodes of the devices Prepare creates, by type: those
// of the demo devices, which the device fleet simulates.
var deviceNodes = map[string]string{
	"light": `[{"id":"light","name":"Light","properties":[
		{"id":"on","name":"On","datatype":"boolean","settable":true},
		{"id":"brightness","name":"Brightness","datatype":"integer","unit":"%","format":"0:100","settable":true}]}]`,
	"plug": `[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]},
		{"id":"meter","name":"Meter","properties":[
		{"id":"power","name":"Power","datatype":"float","unit":"W","format":"0:3680"},
		{"id":"energy","name":"Energy","datatype":"float","unit":"kWh"}]}]`,
	"rgb-lamp": `[{"id":"light","name":"Light","properties":[
		{"id":"on","name":"On","datatype":"boolean","settable":true},
		{"id":"color","name":"Color","datatype":"color","format":"rgb","settable":true}]}]`,
	"thermostat": `[{"id":"thermostat","name":"Thermostat","properties":[
		{"id":"mode","name":"Mode","datatype":"enum","format":"off,heat,cool,auto","settable":true},
		{"id":"target","name":"Target temperature","datatype":"float","unit":"°C","format":"5:30:0.5","settable":true},
		{"id":"temperature","name":"Temperature","datatype":"float","unit":"°C"}]}]`,
	"lock": `[{"id":"lock","name":"Lock","properties":[
		{"id":"locked","name":"Locked","datatype":"boolean","settable":true},
		{"id":"battery","name":"Battery","datatype":"integer","unit":"%","format":"0:100"}]}]`,
}

// defaultProperty is the property commanded on a created device of a type
// when Property is empty: one with many values, so that echoes match.
var defaultProperty = map[string]string{
	"light": "light/brightness", "plug": "switch/on", "rgb-lamp": "light/color",
	"thermostat": "thermostat/target", "lock": "lock/locked",
}

// Sockets is the WebSocket scenario; see SocketsConfig. Its metrics, in
// milliseconds:
//
//   - "handshake": from the start of the session POST to the arrival of
//     the first server message (the hello), through the WebSocket dial;
//     "connect" is the part from the start of the dial.
//   - "command": from a set's due time to the arrival of its ack.
//   - "echo": from a set's due time to the arrival of the first state
//     message carrying the value it set, on the property it set. It is
//     measured only when each session has a device of its own (devices
//     minted, Devices >= Connections): on a shared device another
//     session's command may carry the same value.
//   - "delivery": from a state message's ts (the time the device
//     published the change, by its clock) to its arrival; meaningful when
//     the device runs on the load generator's machine, as on loopback.
//   - with Revoke, "revoke", "disable" and "refuse" (SocketsConfig.Revoke);
//     and, from the gateways' own histograms summed over the instances,
//     the info figures feed_lag, relink and close_write (p50 and p99, ms):
//     the stages between a disable's publish and a session's close frame
//     (see revokeStages).
//
// Counts: "session ok", "ack ok" or "ack <code>", "message <type>",
// "close <code> <reason>" for closes by the server, "command unanswered"
// for sets without an ack when the session ended, and errors by kind
// ("error session-410", "error dial-403", "error timeout", ...).
type Sockets struct {
	cfg SocketsConfig

	// Set by Prepare, read-only afterwards:
	run      Config
	links    []*socketLink
	bases    []string // instance base URLs; minted links only
	prop     string
	values   socketValues
	echo     bool
	client   *ownerapi.Client
	devices  []string // created by Prepare, deleted by Finish
	sessions int
	before   socketMemory // the target's memory before the sessions opened

	start     sync.Once
	startedAt time.Time     // set by start: the run's first operation
	opened    atomic.Int64  // sessions that had their hello, first sessions only
	failed    atomic.Int64  // first sessions that failed to open
	closed    atomic.Int64  // Revoke: sessions the server closed
	allOpen   chan struct{} // closed when every first session opened or failed
	phaseDone chan struct{} // Revoke: closed when the revocation is measured
	addrs     atomic.Int64  // the next fresh source address (probes)

	mu   sync.Mutex // guards info
	info map[string]float64
}

// socketLink is one link sessions open.
type socketLink struct {
	id    string // empty for given links
	token string
	base  string // the link's own host, for given links

	disableStart atomic.Int64 // Revoke: unix ns when its disable call started
}

// NewSockets returns the WebSocket scenario.
func NewSockets(cfg SocketsConfig) (*Sockets, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Sockets{cfg: cfg, allOpen: make(chan struct{}), phaseDone: make(chan struct{}), info: map[string]float64{}}, nil
}

// RunRevocation runs the revocation test (SocketsConfig.Revoke): each of
// cfg.Connections sessions opens once.
func RunRevocation(ctx context.Context, cfg Config, sc SocketsConfig) (*Report, error) {
	sc.Revoke = true
	s, err := NewSockets(sc)
	if err != nil {
		return nil, err
	}
	if cfg.Connections <= 0 {
		cfg.Connections = DefaultConnections
	}
	cfg.Count = int64(cfg.Connections)
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Minute // a bound; the run ends when measured
	}
	return Run(ctx, cfg, s)
}

// Name implements Scenario.
func (s *Sockets) Name() string {
	if s.cfg.Revoke {
		return "ws-revoke"
	}
	return "ws"
}

// Prepare implements Preparer: it mints the devices and links (or reads
// the given links), picks the property and waits for the devices.
func (s *Sockets) Prepare(ctx context.Context, cfg Config) error {
	s.run = cfg
	s.sessions = cfg.Connections
	if s.cfg.Revoke && cfg.Count != int64(cfg.Connections) {
		return errors.New("Count: the revocation runs each session once: set Count to Connections (RunRevocation does)")
	}
	if len(s.cfg.Links) > 0 {
		return s.prepareGiven(ctx)
	}
	if cfg.Target == "" {
		return errors.New("Target: the owner API's gateway is required to mint links")
	}
	s.bases = []string{strings.TrimRight(cfg.Target, "/")}
	for _, in := range s.cfg.Instances {
		if err := CheckTarget(ctx, in, cfg.AllowRemote); err != nil {
			return fmt.Errorf("Instances: %w", err)
		}
		s.bases = append(s.bases, strings.TrimRight(in, "/"))
	}
	s.client = &ownerapi.Client{BaseURL: s.bases[0], APIKey: s.cfg.APIKey}
	if err := s.mint(ctx); err != nil {
		return err
	}
	if err := s.awaitOnline(ctx); err != nil {
		return err
	}
	s.before, _ = sampleSocketMemory(ctx, s.bases[0])
	return nil
}

// mint creates the devices and links.
func (s *Sockets) mint(ctx context.Context) error {
	devices := []string{s.cfg.Device}
	prop := s.cfg.Property
	var nodes json.RawMessage
	if s.cfg.Device == "" {
		devices = nil
		var d ownerapi.DeviceCreate
		raw := `{"type":` + strconv.Quote(s.cfg.DeviceType) + `,"nodes":` + deviceNodes[s.cfg.DeviceType] + `}`
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			return fmt.Errorf("DeviceType: %w", err) // our own table: never
		}
		for i := range s.cfg.Devices {
			d.Name = fmt.Sprintf("loadtest %s %d", d.Type, i)
			dev, err := s.client.CreateDevice(ctx, d)
			if err != nil {
				return fmt.Errorf("creating device %d: %w", i, err)
			}
			s.devices = append(s.devices, dev.ID)
			devices = append(devices, dev.ID)
		}
		if prop == "" {
			prop = defaultProperty[s.cfg.DeviceType]
		}
		nodes = json.RawMessage(deviceNodes[s.cfg.DeviceType])
		s.echo = s.cfg.Devices >= s.sessions
	} else {
		dev, err := s.client.GetDevice(ctx, s.cfg.Device)
		if err != nil {
			return fmt.Errorf("Device: %w", err)
		}
		if nodes, err = json.Marshal(dev.Nodes); err != nil {
			return err
		}
	}
	p, err := pickSocketProperty(nodes, prop, nil)
	if err != nil {
		return err
	}
	s.prop, s.values = p.path, newSocketValues(p)
	for j := range s.cfg.LinkCount {
		var lc ownerapi.LinkCreate
		lc.Device = devices[j%len(devices)]
		lc.Name = fmt.Sprintf("loadtest ws %d", j)
		lc.Permissions.Control = []string{s.prop}
		lc.Permissions.View = []string{s.prop}
		l, err := s.client.CreateLink(ctx, lc)
		if err != nil {
			return fmt.Errorf("creating link %d: %w", j, err)
		}
		s.links = append(s.links, &socketLink{id: l.ID, token: l.Token})
	}
	return nil
}

// prepareGiven reads the given links and picks the property from the
// first one's public view.
func (s *Sockets) prepareGiven(ctx context.Context) error {
	for _, raw := range s.cfg.Links {
		u, err := url.Parse(raw)
		token, ok := strings.CutPrefix(u.Path, "/l/")
		if err != nil || u.Host == "" || !ok || token == "" || strings.Contains(token, "/") {
			return fmt.Errorf("Links: want http://host/l/{token}, got %q", raw)
		}
		base := u.Scheme + "://" + u.Host
		if err := CheckTarget(ctx, base, s.run.AllowRemote); err != nil {
			return fmt.Errorf("Links: %w", err)
		}
		s.links = append(s.links, &socketLink{token: token, base: base})
	}
	l := s.links[0]
	view, err := s.openView(ctx, l.base, l.token, socketSource(1<<23))
	if err != nil {
		return fmt.Errorf("Links: opening %s: %w", s.cfg.Links[0], err)
	}
	var nodes json.RawMessage
	if view.Device != nil {
		if nodes, err = json.Marshal(view.Device.Nodes); err != nil {
			return err
		}
	}
	p, err := pickSocketProperty(nodes, s.cfg.Property, view.Permissions.Control)
	if err != nil {
		return fmt.Errorf("Links: %w", err)
	}
	s.prop, s.values = p.path, newSocketValues(p)
	s.before, _ = sampleSocketMemory(ctx, l.base)
	return nil
}

// awaitOnline opens a session on one link of each device until its hello
// says the device is online.
func (s *Sockets) awaitOnline(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OnlineWait)
	defer cancel()
	seen := map[int]bool{} // by device index
	ndev := max(len(s.devices), 1)
	for j, l := range s.links {
		if seen[j%ndev] {
			continue
		}
		seen[j%ndev] = true
		for {
			online, err := s.probeOnline(ctx, l)
			if online {
				break
			}
			select {
			case <-ctx.Done():
				if err == nil {
					err = errors.New("the device never came online: does the target's fleet simulate its devices?")
				}
				return fmt.Errorf("device of link %s: %w", l.id, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// probeOnline opens one session on l and reports whether its hello says
// the device is online.
func (s *Sockets) probeOnline(ctx context.Context, l *socketLink) (bool, error) {
	w := s.newWorker(s.freshSource())
	defer w.Close()
	conn, hello, _, err := w.open(ctx, s.bases[0], l)
	if err != nil {
		return false, err
	}
	conn.Close()
	return hello.Online, nil
}

// Worker implements Scenario.
func (s *Sockets) Worker(_ context.Context, i int) (Worker, error) {
	var src net.IP
	if !s.cfg.SameAddress {
		src = socketSource(i)
	}
	w := s.newWorker(src)
	w.i = i
	w.link = s.links[i%len(s.links)]
	w.base = w.link.base
	if len(s.bases) > 0 {
		w.base = s.bases[i%len(s.bases)]
	}
	return w, nil
}

// newWorker returns a worker connecting from src (nil: the default).
func (s *Sockets) newWorker(src net.IP) *socketWorker {
	w := &socketWorker{s: s}
	if src != nil && s.loopback() {
		w.local = &net.TCPAddr{IP: src}
	}
	w.http = &http.Client{
		Transport: &http.Transport{DialContext: w.dial, DisableKeepAlives: true},
		Timeout:   s.cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return w
}

// loopback reports whether the sessions' hosts are loopback addresses, so
// that source addresses may be spread.
func (s *Sockets) loopback() bool {
	host := ""
	switch {
	case len(s.bases) > 0:
		host = s.bases[0]
	case len(s.links) > 0:
		host = s.links[0].base
	}
	u, err := url.Parse(host)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost"
}

// freshSource returns a source address no session uses, or nil.
func (s *Sockets) freshSource() net.IP {
	if s.cfg.SameAddress {
		return nil
	}
	return socketSource(1<<22 + int(s.addrs.Add(1)))
}

// socketSource returns the i-th loopback source address of the ws
// scenario, 127.1.0.2 onwards (about 15 million before it wraps).
func socketSource(i int) net.IP {
	const per = 250
	i %= per * per * per
	return net.IPv4(127, byte(1+i/(per*per)), byte(i/per%per), byte(2+i%per))
}

// socketWorker opens one session at a time for worker i.
type socketWorker struct {
	s     *Sockets
	i     int
	link  *socketLink
	base  string
	local *net.TCPAddr // nil: the default source address
	http  *http.Client
	runs  int // sessions opened by this worker; owned by the worker
}

func (w *socketWorker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: w.s.cfg.Timeout}
	if w.local != nil {
		d.LocalAddr = w.local
	}
	return d.DialContext(ctx, network, addr)
}

// Close implements Worker.
func (w *socketWorker) Close() error {
	w.http.CloseIdleConnections()
	return nil
}

// socketError is an error with a kind for the counts.
type socketError struct {
	kind string
	err  error
}

func (e *socketError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *socketError) Unwrap() error { return e.err }
func (e *socketError) Kind() string  { return e.kind }

// Do implements Worker: one whole session, until the server closes it or
// the run ends.
func (w *socketWorker) Do(ctx context.Context, op Op) error {
	s := w.s
	s.start.Do(func() {
		s.startedAt = time.Now()
		go s.watchOpens(ctx, op.Sink)
	})
	first := w.runs == 0
	w.runs++
	if !first && s.cfg.Revoke {
		<-ctx.Done() // each session runs once
		return nil
	}
	if first && s.cfg.Ramp > 0 {
		at := s.startedAt.Add(time.Duration(float64(w.i) / s.cfg.Ramp * float64(time.Second)))
		if !socketSleep(ctx, at) {
			return nil
		}
	}
	start := time.Now()
	conn, hello, dialStart, err := w.open(ctx, w.base, w.link)
	if first {
		if err != nil {
			s.firstDone(&s.failed)
		} else {
			s.firstDone(&s.opened)
		}
	}
	if err != nil {
		if s.cfg.Revoke { // the worker's one session: wait for the others
			op.Sink.Count("error "+ErrorKind(err), 1)
			socketWait(ctx, s.phaseDone)
			return nil
		}
		return err
	}
	defer conn.Close()
	now := time.Now()
	op.Sink.Observe("handshake", now.Sub(start))
	op.Sink.Observe("connect", now.Sub(dialStart))
	op.Sink.Count("session ok", 1)
	if hello.Type != "hello" {
		op.Sink.Count("message "+hello.Type, 1)
	}

	ss := newSocketSession(op.Sink, s.prop, s.echo)
	ss.link = w.link
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var sender sync.WaitGroup
	senderCtx, cancel := context.WithCancel(ctx)
	if s.cfg.Rate > 0 && !s.cfg.Revoke {
		sender.Go(func() { w.send(senderCtx, conn, ss) })
	}
	w.read(ctx, conn, ss)
	cancel()
	conn.Close()
	sender.Wait()
	ss.finish()
	if s.cfg.Revoke {
		if ss.closeCode != 0 {
			s.closed.Add(1)
		}
		socketWait(ctx, s.phaseDone)
	}
	return nil
}

// firstDone counts a first session opened or failed, and closes allOpen
// with the last one.
func (s *Sockets) firstDone(n *atomic.Int64) {
	n.Add(1)
	if s.opened.Load()+s.failed.Load() == int64(s.sessions) {
		close(s.allOpen)
	}
}

// watchOpens waits for every first session, calls Ready, samples the
// target's memory after Settle and, with Revoke, runs the revocation.
func (s *Sockets) watchOpens(ctx context.Context, sink *Sink) {
	if !socketWait(ctx, s.allOpen) {
		return
	}
	opened, failed := s.opened.Load(), s.failed.Load()
	s.setInfo("sessions_opened", float64(opened))
	s.setInfo("sessions_failed", float64(failed))
	if s.cfg.Ready != nil {
		s.cfg.Ready(int(opened), int(failed))
	}
	if !socketSleep(ctx, time.Now().Add(s.cfg.Settle)) {
		return
	}
	base := s.memoryBase()
	if after, err := sampleSocketMemory(ctx, base); err == nil && s.before.rss > 0 && opened > 0 {
		s.setInfo("rss_before_kib", s.before.rss/1024)
		s.setInfo("rss_open_kib", after.rss/1024)
		s.setInfo("rss_per_session_kib", (after.rss-s.before.rss)/1024/float64(opened))
		s.setInfo("goroutines_per_session", (after.goroutines-s.before.goroutines)/float64(opened))
		s.setInfo("heap_per_session_kib", (after.heap-s.before.heap)/1024/float64(opened))
	}
	if s.cfg.Revoke {
		s.revoke(ctx, sink)
		close(s.phaseDone)
	}
}

// memoryBase is the instance whose memory is sampled: the target, or the
// given links' host. With several instances, the figures are the first
// one's, which holds 1/len(Instances+1) of the sessions.
func (s *Sockets) memoryBase() string {
	if len(s.bases) > 0 {
		return s.bases[0]
	}
	return s.links[0].base
}

func (s *Sockets) setInfo(name string, v float64) {
	s.mu.Lock()
	s.info[name] = v
	s.mu.Unlock()
}

// open opens one session on link l of the instance at base: the POST, the
// dial, the first message. It returns the connection, the first message
// and when the dial started.
func (w *socketWorker) open(ctx context.Context, base string, l *socketLink) (*websocket.Conn, socketMessage, time.Time, error) {
	var hello socketMessage
	ctx, cancel := context.WithTimeout(ctx, w.s.cfg.Timeout)
	defer cancel()
	origin := socketOrigin(base)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/l/"+l.token+"/session", nil)
	if err != nil {
		return nil, hello, time.Time{}, err
	}
	req.Header.Set("Origin", origin)
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, hello, time.Time{}, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, hello, time.Time{}, &socketError{kind: "session-" + strconv.Itoa(resp.StatusCode), err: errors.New(resp.Status)}
	}
	h := http.Header{"Origin": {origin}}
	for _, c := range resp.Cookies() {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	dialer := websocket.Dialer{NetDialContext: w.dial, HandshakeTimeout: w.s.cfg.Timeout, ReadBufferSize: 1024, WriteBufferSize: 1024}
	dialStart := time.Now()
	conn, wresp, err := dialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/l/"+l.token+"/ws", h)
	if err != nil {
		if wresp != nil {
			return nil, hello, dialStart, &socketError{kind: "dial-" + strconv.Itoa(wresp.StatusCode), err: err}
		}
		return nil, hello, dialStart, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	_, frame, err := conn.ReadMessage()
	stop()
	if err != nil {
		conn.Close()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return nil, hello, dialStart, &socketError{kind: "closed-" + strconv.Itoa(ce.Code), err: err}
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, hello, dialStart, err
	}
	if err := json.Unmarshal(frame, &hello); err != nil || hello.Type == "" {
		conn.Close()
		return nil, hello, dialStart, &socketError{kind: "no-hello", err: fmt.Errorf("first message %.80q", frame)}
	}
	return conn, hello, dialStart, nil
}

// openView exchanges a link for a session and returns its public view.
func (s *Sockets) openView(ctx context.Context, base, token string, src net.IP) (*ownerapi.PublicLink, error) {
	w := s.newWorker(src)
	defer w.Close()
	c := &ownerapi.Client{BaseURL: base, HTTP: w.http}
	return c.OpenSession(ctx, token)
}

// read reads the session's messages until it ends.
func (w *socketWorker) read(ctx context.Context, conn *websocket.Conn, ss *socketSession) {
	conn.SetReadLimit(1 << 20)
	for {
		_, frame, err := conn.ReadMessage()
		now := time.Now()
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				ss.closedBy(ce.Code, ce.Text, now)
			case ctx.Err() == nil && !ss.closing():
				ss.sink.Count("error "+ErrorKind(err), 1)
			}
			return
		}
		ss.handle(frame, now)
	}
}

// send sends the session's commands at their due times until ctx ends.
func (w *socketWorker) send(ctx context.Context, conn *websocket.Conn, ss *socketSession) {
	period := time.Duration(float64(time.Second) / w.s.cfg.Rate)
	// Sessions are spread over the period, so that the target sees an even
	// rate rather than bursts of every session at once.
	phase := time.Duration(float64(period) * float64(w.i%max(w.s.sessions, 1)) / float64(max(w.s.sessions, 1)))
	t0 := time.Now().Add(phase)
	buf := make([]byte, 0, 128)
	for k := 0; ; k++ {
		due := t0.Add(time.Duration(k) * period)
		if !socketSleep(ctx, due) {
			return
		}
		id := "c" + strconv.Itoa(k)
		v := w.s.values.value(w.i*7919 + k) // sessions sharing a device send different values
		buf = append(buf[:0], `{"type":"set","id":"`...)
		buf = append(buf, id...)
		buf = append(buf, `","property":`...)
		buf = strconv.AppendQuote(buf, w.s.prop)
		buf = append(buf, `,"value":`...)
		buf = append(buf, v...)
		buf = append(buf, '}')
		ss.sent(id, v, due)
		if err := conn.WriteMessage(websocket.TextMessage, buf); err != nil {
			ss.unsend(id)
			return
		}
		ss.sink.Bytes(0, int64(len(buf)))
	}
}

// socketMessage is what the scenario reads of a server message (README,
// "WebSocket protocol").
type socketMessage struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	OK       bool            `json:"ok"`
	Error    *socketAckError `json:"error"`
	Property string          `json:"property"`
	Value    json.RawMessage `json:"value"`
	TS       time.Time       `json:"ts"`
	Reason   string          `json:"reason"`
	Code     int             `json:"code"`
	Online   bool            `json:"online"`
}

type socketAckError struct {
	Code string `json:"code"`
}

// maxSocketEchoes bounds the sets awaiting their echo in one session.
const maxSocketEchoes = 4096

// socketSession is one open session's bookkeeping: the sets awaiting their
// ack and echo, and how the session ended. The sender and the reader share
// it; mu guards the maps.
type socketSession struct {
	sink *Sink
	prop string
	echo bool
	link *socketLink // Revoke: for the disable's start

	mu     sync.Mutex
	acks   map[string]time.Time // due time by command id
	echoes map[string]time.Time // due time by value, canonical JSON

	closeCode   int    // set by the reader
	closeReason string // from the closing message, else the close frame
	closingSeen atomic.Bool
}

func newSocketSession(sink *Sink, prop string, echo bool) *socketSession {
	return &socketSession{sink: sink, prop: prop, echo: echo, acks: map[string]time.Time{}, echoes: map[string]time.Time{}}
}

// sent records a set with id and value, due at due.
func (ss *socketSession) sent(id string, value []byte, due time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.acks[id] = due
	if ss.echo {
		if len(ss.echoes) >= maxSocketEchoes {
			clear(ss.echoes) // echoes lost for good; their acks still count
		}
		ss.echoes[socketCanonical(value)] = due
	}
}

// unsend forgets a set that could not be sent.
func (ss *socketSession) unsend(id string) {
	ss.mu.Lock()
	delete(ss.acks, id)
	ss.mu.Unlock()
}

// handle takes one server message that arrived at now.
func (ss *socketSession) handle(frame []byte, now time.Time) {
	ss.sink.Bytes(int64(len(frame)), 0)
	var m socketMessage
	if err := json.Unmarshal(frame, &m); err != nil || m.Type == "" {
		ss.sink.Count("error bad-message", 1)
		return
	}
	switch m.Type {
	case "ack":
		ss.mu.Lock()
		due, ok := ss.acks[m.ID]
		delete(ss.acks, m.ID)
		ss.mu.Unlock()
		if !ok {
			ss.sink.Count("ack unknown-id", 1)
			return
		}
		ss.sink.Observe("command", now.Sub(due))
		if m.OK {
			ss.sink.Count("ack ok", 1)
		} else if m.Error != nil {
			ss.sink.Count("ack "+m.Error.Code, 1)
		} else {
			ss.sink.Count("ack refused", 1)
		}
	case "state":
		ss.sink.Count("message state", 1)
		if !m.TS.IsZero() {
			ss.sink.Observe("delivery", max(now.Sub(m.TS), 0))
		}
		if ss.echo && m.Property == ss.prop {
			key := socketCanonical(m.Value)
			ss.mu.Lock()
			due, ok := ss.echoes[key]
			delete(ss.echoes, key)
			ss.mu.Unlock()
			if ok {
				ss.sink.Observe("echo", now.Sub(due))
			}
		}
	case "closing":
		ss.mu.Lock()
		ss.closeReason = m.Reason
		ss.mu.Unlock()
		ss.closingSeen.Store(true)
	default:
		ss.sink.Count("message "+m.Type, 1)
	}
}

// closing reports whether the server said it closes the session.
func (ss *socketSession) closing() bool { return ss.closingSeen.Load() }

// closedBy records the server's close frame, received at now.
func (ss *socketSession) closedBy(code int, text string, now time.Time) {
	ss.mu.Lock()
	ss.closeCode = code
	if ss.closeReason == "" {
		ss.closeReason = text
	}
	reason := ss.closeReason
	ss.mu.Unlock()
	ss.sink.Count("close "+strconv.Itoa(code)+" "+reason, 1)
	if ss.link != nil {
		if at := ss.link.disableStart.Load(); at != 0 {
			ss.sink.Observe("revoke", now.Sub(time.Unix(0, at)))
		}
	}
}

// finish counts the sets that never had an ack.
func (ss *socketSession) finish() {
	ss.mu.Lock()
	n := len(ss.acks)
	ss.mu.Unlock()
	if n > 0 {
		ss.sink.Count("command unanswered", int64(n))
	}
}

// socketCanonical returns v's JSON in one spelling (numbers as Go formats
// float64s), so that 37 and 37.0 match.
func socketCanonical(v []byte) string {
	var x any
	if json.Unmarshal(v, &x) != nil {
		return string(v)
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// revoke disables every link, at RevokeRate or at once, and measures the
// closes and the refusals (SocketsConfig.Revoke).
func (s *Sockets) revoke(ctx context.Context, sink *Sink) {
	stagesBefore := scrapeStages(ctx, s.bases)
	var wg sync.WaitGroup
	t0 := time.Now()
	for j, l := range s.links {
		var due time.Time
		if s.cfg.RevokeRate > 0 {
			due = t0.Add(time.Duration(float64(j) / s.cfg.RevokeRate * float64(time.Second)))
		}
		wg.Go(func() {
			if !socketSleep(ctx, due) {
				return
			}
			start := time.Now()
			l.disableStart.Store(start.UnixNano())
			if _, err := s.client.DisableLink(ctx, l.id); err != nil {
				sink.Count("error disable "+ErrorKind(err), 1)
				return
			}
			ret := time.Now()
			sink.Observe("disable", ret.Sub(start))
			for _, base := range s.bases {
				wg.Go(func() { s.probeRefusal(ctx, sink, base, l, ret) })
			}
		})
	}
	wg.Wait()
	// The closes: every session the server closes ends its reader.
	deadline := time.Now().Add(s.cfg.CloseWait)
	for s.closed.Load() < s.opened.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.opened.Load() - s.closed.Load(); n > 0 {
		sink.Count("unclosed", n)
	}
	time.Sleep(100 * time.Millisecond) // the last closes' observations
	stagesAfter := scrapeStages(ctx, s.bases)
	for _, st := range revokeStages {
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}} {
			if v := histQuantile(stagesBefore, stagesAfter, st.metric, q.q); !math.IsNaN(v) {
				s.setInfo(st.info+"_"+q.name+"_ms", v*1000)
			}
		}
	}
	s.setInfo("revoke_rate", s.cfg.RevokeRate)
}

// probeRefusal opens link l on base back to back, each time from a fresh
// source address, until it is refused, and records the time from ret (the
// disable's return) to the refusal's arrival. Opens that succeed are
// counted "open after-disable".
func (s *Sockets) probeRefusal(ctx context.Context, sink *Sink, base string, l *socketLink, ret time.Time) {
	deadline := ret.Add(s.cfg.RefuseWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		w := s.newWorker(s.freshSource())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/l/"+l.token+"/session", nil)
		req.Header.Set("Origin", socketOrigin(base))
		resp, err := w.http.Do(req)
		if err != nil {
			sink.Count("error probe "+ErrorKind(err), 1)
			continue
		}
		_, _ = io.Copy(io.Discard, bufio.NewReader(io.LimitReader(resp.Body, 1<<20)))
		resp.Body.Close()
		now := time.Now()
		switch resp.StatusCode {
		case http.StatusGone:
			sink.Observe("refuse", now.Sub(ret))
			sink.Count("refused 410", 1)
			return
		case http.StatusOK:
			sink.Count("open after-disable", 1)
		default:
			sink.Count("probe "+strconv.Itoa(resp.StatusCode), 1)
		}
	}
	sink.Count("refuse timeout", 1)
}

// Finish implements Finisher: it adds the scenario's figures to the report
// and deletes what Prepare minted (unless Keep).
func (s *Sockets) Finish(ctx context.Context, r *Report) error {
	if r != nil {
		s.mu.Lock()
		for k, v := range s.info {
			r.SetInfo(k, v)
		}
		s.mu.Unlock()
		r.SetInfo("links", float64(len(s.links)))
		r.SetInfo("instances", float64(max(len(s.bases), 1)))
		r.SetInfo("rate_per_session", s.cfg.Rate)
		if s.echo {
			r.SetInfo("echo_measured", 1)
		}
	}
	if s.cfg.Keep || s.client == nil {
		return nil
	}
	var errs []error
	for _, l := range s.links {
		if err := s.client.DeleteLink(ctx, l.id); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range s.devices {
		if err := s.client.DeleteDevice(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// socketOrigin returns the origin of a base URL.
func socketOrigin(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	return u.Scheme + "://" + u.Host
}

// socketSleep waits until at; it reports false if ctx ended first.
func socketSleep(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// socketWait waits for ch to close; it reports false if ctx ended first.
func socketWait(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ctx.Done():
		return false
	case <-ch:
		return true
	}
}
