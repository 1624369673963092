package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/media"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/web"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Keys signs and verifies link and session tokens. Required.
	Keys *tokens.KeyRing
	// PublicURL is the base of the link URLs handed to owners, such as
	// https://share.example.com. It defaults to http://127.0.0.1:8080.
	PublicURL string
	// AllowedOrigins are the browser origins allowed to open sessions and
	// WebSockets. It defaults to PublicURL's origin.
	AllowedOrigins []string
	// TrustedProxies are the addresses or CIDRs of proxies whose ProxyHeader
	// is believed for the client IP. Empty: the peer address is the client.
	TrustedProxies []string
	// ProxyHeader carries the client IP from a trusted proxy. It defaults to
	// X-Forwarded-For.
	ProxyHeader string
	// SessionTTL is the most a session lasts; a link closing sooner ends it
	// sooner. It defaults to 15 minutes.
	SessionTTL time.Duration
	// FailedOpens limits failed link opens per client IP. It defaults to 5/s
	// with a burst of 20.
	FailedOpens RateLimit
	// Sessions limits session exchanges per client IP. It defaults to 2/s
	// with a burst of 10.
	Sessions RateLimit
	// BodyLimit bounds request bodies. It defaults to 64 KiB.
	BodyLimit int
	// RequestTimeout bounds how long an HTTP connection may spend on one
	// request: waiting for it, reading it, handling it and writing the
	// answer. IdleTimeout bounds how long a keep-alive connection may wait
	// between requests. They default to 60 s and 120 s, and hold to within
	// a quarter of the shorter or a second (connWatch). WebSockets are not
	// bound by them.
	RequestTimeout time.Duration
	IdleTimeout    time.Duration
	// WS bounds the device WebSocket and the camera stream's socket.
	WS WSConfig
	// Media configures the camera upstreams and viewer queues.
	Media media.Config
	// Feed configures the invalidation feed reader.
	Feed tokens.FeedConfig
	// Cache configures the link cache.
	Cache tokens.CacheConfig
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry receives the gateway's metrics. It defaults to a new registry,
	// served at /metrics.
	Registry *prometheus.Registry
	// Now defaults to time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Keys == nil {
		return errors.New("gateway config: Keys is required")
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://127.0.0.1:8080"
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("gateway config: PublicURL %q: want http(s)://host[:port]", c.PublicURL)
	}
	if len(c.AllowedOrigins) == 0 {
		c.AllowedOrigins = []string{u.Scheme + "://" + u.Host}
	}
	if c.ProxyHeader == "" {
		c.ProxyHeader = fiber.HeaderXForwardedFor
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 15 * time.Minute
	}
	if c.FailedOpens == (RateLimit{}) {
		c.FailedOpens = RateLimit{Rate: 5, Burst: 20}
	}
	if c.Sessions == (RateLimit{}) {
		c.Sessions = RateLimit{Rate: 2, Burst: 10}
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = 64 << 10
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 60 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Cache.Now == nil {
		c.Cache.Now = c.Now
	}
	c.WS.setDefaults()
	if c.Media.Logger == nil {
		c.Media.Logger = c.Logger
	}
	if c.Feed.Logger == nil {
		c.Feed.Logger = c.Logger
	}
	return nil
}

// Server is one gateway instance. It does not listen on its own: Serve runs
// it on a listener the caller opened.
type Server struct {
	cfg     Config
	log     *slog.Logger
	rdb     redis.UniversalClient
	app     *fiber.App
	keys    *tokens.KeyRing
	links   *tokens.Store
	cache   *tokens.Cache
	feed    *tokens.Feed
	devices *emulator.Store
	shared  deviceShare // one decoded copy of a device for its pages
	owners  *Owners
	origins map[string]bool

	failedOpens *ipLimiter
	sessions    *ipLimiter
	metrics     *metrics
	errorPages  sync.Map // error code -> rendered page, for pages without a time

	bus       *emulator.Bus
	hub       *emulator.Hub
	media     *media.Manager
	live      *liveSessions
	wsWG      sync.WaitGroup // open device sessions
	unhealthy atomic.Int64   // unix ns since the feed is unhealthy; 0 = healthy
	stopping  atomic.Bool    // shutting down: no new device sessions

	systemClock bool // cfg.Now is time.Now: requests may use fasthttp's reading
	conns       *connWatch
}

// New builds a gateway on rdb.
func New(cfg Config, rdb redis.UniversalClient) (*Server, error) {
	systemClock := cfg.Now == nil
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	pub := tokens.NewPublisher(rdb)
	feed := tokens.NewFeed(rdb, cfg.Feed)
	links := tokens.NewStore(rdb, pub)
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "gateway"),
		rdb:         rdb,
		keys:        cfg.Keys,
		links:       links,
		feed:        feed,
		cache:       tokens.NewCache(links, feed, cfg.Cache),
		devices:     emulator.NewStore(rdb),
		owners:      NewOwners(rdb),
		origins:     make(map[string]bool),
		failedOpens: newIPLimiter(cfg.FailedOpens),
		sessions:    newIPLimiter(cfg.Sessions),
		bus:         emulator.NewBus(rdb),
		live:        newLiveSessions(),
		systemClock: systemClock,
		conns:       newConnWatch(cfg.RequestTimeout, cfg.IdleTimeout),
	}
	s.hub = emulator.NewHub(s.bus, cfg.Logger)
	s.media = media.NewManager(cfg.Media)
	feed.Subscribe(liveFeed{s}) // after the cache (NewCache subscribed it)
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.TrimRight(o, "/")] = true
	}
	s.metrics = newMetrics(cfg.Registry, s)
	s.app = fiber.New(fiber.Config{
		AppName:      "linkgate",
		ErrorHandler: s.errorHandler,
		// The transport takes bodies up to four times the limit, so that a
		// body somewhat too large gets a clean JSON 413 from apiBodyLimit on a
		// live connection; past that, fasthttp drops the connection.
		BodyLimit:               4 * cfg.BodyLimit,
		DisableStartupMessage:   true,
		EnableTrustedProxyCheck: len(cfg.TrustedProxies) > 0,
		TrustedProxies:          cfg.TrustedProxies,
		ProxyHeader:             proxyHeader(cfg),
		// No ReadTimeout, WriteTimeout or IdleTimeout: s.conns keeps
		// RequestTimeout and IdleTimeout without a deadline per request.
		ReadBufferSize:  8 << 10,
		WriteBufferSize: writeBufferSize(),
	})
	keepHijackedConns(s.app) // the WebSockets close their connections (upgrade)
	s.app.Server().ConnState = s.conns.connState
	s.routes()
	return s, nil
}

// writeBufferSize is the connection write buffer: large enough for a link
// page and its headers in one buffer, so that an open is one write(2). With
// fasthttp's default of 4 KiB a 6.4 KiB page went out in two, which cost
// opens about a tenth of their throughput (strace: two writes per request;
// loadtest/bench-open.sh). A keep-alive connection holds the buffer.
func writeBufferSize() int {
	const headers = 2 << 10 // the security headers and the rest, with room
	n := 8 << 10
	for _, kind := range []string{"device", "camera"} {
		n = max(n, len(web.LinkPage(kind))+headers)
	}
	return n
}

func proxyHeader(cfg Config) string {
	if len(cfg.TrustedProxies) == 0 {
		return "" // never believe a header from an untrusted peer
	}
	return cfg.ProxyHeader
}

// App returns the Fiber app, for tests (app.Test) and for embedding.
func (s *Server) App() *fiber.App { return s.app }

// Links returns the link store.
func (s *Server) Links() *tokens.Store { return s.links }

// Cache returns the link cache.
func (s *Server) Cache() *tokens.Cache { return s.cache }

// Feed returns the invalidation feed.
func (s *Server) Feed() *tokens.Feed { return s.feed }

// Bus returns the device bus.
func (s *Server) Bus() *emulator.Bus { return s.bus }

// LiveSessions returns the number of open device sessions on this instance.
func (s *Server) LiveSessions() int { return s.live.Count() }

// Devices returns the device store.
func (s *Server) Devices() *emulator.Store { return s.devices }

// Owners returns the owner registry.
func (s *Server) Owners() *Owners { return s.owners }

// LinkURL returns the public URL of a link token.
func (s *Server) LinkURL(token string) string { return s.cfg.PublicURL + "/l/" + token }

// Serve follows the invalidation feed and serves HTTP on ln until ctx is
// cancelled, then shuts down gracefully within shutdownTimeout.
func (s *Server) Serve(ctx context.Context, ln net.Listener, shutdownTimeout time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.feed.Run(ctx) })
	wg.Go(func() { _ = s.hub.Run(ctx) })
	wg.Go(func() { s.watchHealth(ctx) })
	wg.Go(func() { s.sweep(ctx) })
	wg.Go(func() { s.conns.run(ctx.Done()) })
	wg.Go(func() { s.renewLeases(ctx) })

	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(s.conns.listener(ln)) }()
	var err error
	select {
	case err = <-errc:
		cancel()
	case <-ctx.Done():
		// The serving context is gone; shut down on a fresh one.
		if shutdownTimeout <= 0 {
			shutdownTimeout = 10 * time.Second
		}
		// New sockets are refused first, so that pages told to go do not
		// reconnect to this instance while it stops.
		s.stopping.Store(true)
		s.closeSessions(emulator.ReasonServerShutdown, shutdownTimeout)
		_ = s.media.Close()
		// Connections still busy when the grace period ends (a browser's
		// speculative connection that never sent a request, say) are not a
		// failure of the shutdown: they are cut, and said so.
		if err := s.app.ShutdownWithTimeout(shutdownTimeout); errors.Is(err, context.DeadlineExceeded) {
			s.log.Warn("connections still open when the shutdown grace period ended", "grace", shutdownTimeout)
		} else if err != nil {
			s.log.Error("shutdown", "err", err)
		}
		<-errc
		err = nil
	}
	wg.Wait()
	return err
}

// closeSessions tells every open device page why it closes and waits, at
// most timeout, for them to go. Hijacked sockets are not Fiber's to close.
func (s *Server) closeSessions(reason string, timeout time.Duration) {
	for _, ls := range s.live.of(nil) {
		ls.shut(reason)
	}
	done := make(chan struct{})
	go func() { s.wsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		s.log.Warn("device sessions still open at shutdown", "count", s.live.Count())
	}
}

// sweep drops the rate limiters' refilled buckets every minute. Busy shards
// drop theirs as they take new addresses (ipLimiter.allow); this frees the
// buckets of quiet ones.
func (s *Server) sweep(ctx context.Context) {
	every(ctx, time.Minute, func() {
		now := s.cfg.Now()
		s.failedOpens.sweep(now)
		s.sessions.sweep(now)
	})
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
