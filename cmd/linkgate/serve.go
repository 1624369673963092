package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/media/democam"
	"github.com/linkgate/linkgate/tokens"
)

// serveConfig is what the serve flags and their environment twins say.
type serveConfig struct {
	addr            string
	publicURL       string
	redis           redisConfig
	keys            string
	trustedProxies  string
	allowedOrigins  string
	sessionTTL      time.Duration
	requestTimeout  time.Duration
	idleTimeout     time.Duration
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
	debugAddr       string
	demo            bool
}

type redisConfig struct {
	url            string
	sentinelMaster string
	cluster        bool
}

// envString and friends give a flag its environment twin as default.
func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envBool(name string) bool {
	v := strings.ToLower(os.Getenv(name))
	return v == "1" || v == "true" || v == "yes"
}

// flags defines the Redis flags. The URL may hold a password, so its
// environment twin is read after parsing (fromEnv), never shown as a default.
func (r *redisConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "redis", "",
		"Redis: redis://[user:pass@]host:port/db, or host:port[,host:port...] for Sentinel or Cluster; empty = embedded (demo) [LINKGATE_REDIS_URL]")
	fs.StringVar(&r.sentinelMaster, "redis-sentinel-master", envString("LINKGATE_REDIS_SENTINEL_MASTER", ""),
		"Sentinel master name; --redis then lists the sentinels [LINKGATE_REDIS_SENTINEL_MASTER]")
	fs.BoolVar(&r.cluster, "redis-cluster", envBool("LINKGATE_REDIS_CLUSTER"),
		"treat --redis as Redis Cluster seed addresses, even a single one [LINKGATE_REDIS_CLUSTER]")
}

// fromEnv fills the URL from LINKGATE_REDIS_URL unless --redis was given.
func (r *redisConfig) fromEnv(fs *flag.FlagSet) {
	secretFromEnv(fs, "redis", "LINKGATE_REDIS_URL", &r.url)
}

// secretFromEnv sets *dst from the environment variable unless the flag was
// given. Flags that hold secrets use it instead of an environment default,
// which -h would print.
func secretFromEnv(fs *flag.FlagSet, flagName, env string, dst *string) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == flagName })
	if !set {
		*dst = os.Getenv(env)
	}
}

// errBadRedisURL never quotes the URL: it may hold a password.
var errBadRedisURL = errors.New("--redis: not a valid redis:// or rediss:// URL")

// client opens the configured Redis: a URL is a standalone server (or, with
// --redis-cluster, a cluster seed); an address list goes to go-redis'
// UniversalClient, which picks Sentinel, Cluster or standalone.
func (r *redisConfig) client() (redis.UniversalClient, error) {
	timeouts := func(o *redis.UniversalOptions) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	}
	if strings.Contains(r.url, "://") {
		if r.cluster {
			o, err := redis.ParseClusterURL(r.url)
			if err != nil {
				return nil, errBadRedisURL
			}
			o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
			return redis.NewClusterClient(o), nil
		}
		o, err := redis.ParseURL(r.url)
		if err != nil {
			return nil, errBadRedisURL
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
		return redis.NewClient(o), nil
	}
	o := &redis.UniversalOptions{MasterName: r.sentinelMaster, IsClusterMode: r.cluster}
	for _, a := range strings.Split(r.url, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.Addrs = append(o.Addrs, a)
		}
	}
	o.Username, o.Password = os.Getenv("LINKGATE_REDIS_USERNAME"), os.Getenv("LINKGATE_REDIS_PASSWORD")
	timeouts(o)
	return redis.NewUniversalClient(o), nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := flag.NewFlagSet("linkgate serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", envString("LINKGATE_ADDR", "127.0.0.1:8080"), "listen address [LINKGATE_ADDR]")
	fs.StringVar(&cfg.publicURL, "public-url", envString("LINKGATE_PUBLIC_URL", ""),
		"base URL of the links handed out, e.g. https://share.example.com; default http://<addr> [LINKGATE_PUBLIC_URL]")
	cfg.redis.flags(fs)
	fs.StringVar(&cfg.keys, "keys", "",
		"token signing keys id:base64secret[,...], newest last; required with --redis [LINKGATE_KEYS]")
	fs.StringVar(&cfg.trustedProxies, "trusted-proxies", envString("LINKGATE_TRUSTED_PROXIES", ""),
		"proxy addresses or CIDRs whose X-Forwarded-For is believed [LINKGATE_TRUSTED_PROXIES]")
	fs.StringVar(&cfg.allowedOrigins, "allowed-origins", envString("LINKGATE_ALLOWED_ORIGINS", ""),
		"browser origins allowed to open sessions; default the public URL's [LINKGATE_ALLOWED_ORIGINS]")
	fs.DurationVar(&cfg.sessionTTL, "session-ttl", envDuration("LINKGATE_SESSION_TTL", 15*time.Minute), "longest session [LINKGATE_SESSION_TTL]")
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", envDuration("LINKGATE_REQUEST_TIMEOUT", 60*time.Second),
		"most an HTTP connection may take over one request, from waiting for it to the answer's end [LINKGATE_REQUEST_TIMEOUT]")
	fs.DurationVar(&cfg.idleTimeout, "idle-timeout", envDuration("LINKGATE_IDLE_TIMEOUT", 120*time.Second),
		"most a keep-alive connection may sit idle between requests [LINKGATE_IDLE_TIMEOUT]")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", envDuration("LINKGATE_SHUTDOWN_TIMEOUT", 10*time.Second),
		"grace period for open requests on SIGINT/SIGTERM [LINKGATE_SHUTDOWN_TIMEOUT]")
	fs.BoolVar(&cfg.demo, "demo", envBool("LINKGATE_DEMO"),
		"create a demo owner, devices and link and print them (always on without --redis) [LINKGATE_DEMO]")
	fs.StringVar(&cfg.logLevel, "log-level", envString("LINKGATE_LOG_LEVEL", "info"), "debug, info, warn or error [LINKGATE_LOG_LEVEL]")
	fs.StringVar(&cfg.logFormat, "log-format", envString("LINKGATE_LOG_FORMAT", "text"), "text or json [LINKGATE_LOG_FORMAT]")
	fs.StringVar(&cfg.debugAddr, "debug-addr", envString("LINKGATE_DEBUG_ADDR", ""),
		"serve Go's profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; off when empty [LINKGATE_DEBUG_ADDR]")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "linkgate serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.requestTimeout <= 0 || cfg.idleTimeout <= 0 {
		fmt.Fprintln(stderr, "linkgate serve: --request-timeout and --idle-timeout must be positive")
		return 2
	}
	cfg.redis.fromEnv(fs)
	secretFromEnv(fs, "keys", "LINKGATE_KEYS", &cfg.keys)
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "linkgate serve: %v\n", err)
		return 2
	}
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("linkgate stopped", "err", err)
		return 1
	}
	return 0
}

// redisLog sends go-redis's own messages (a Sentinel's switch to a new
// primary, failed redials) to the process's log rather than to the
// library's default printer on stderr.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// newLogger returns the process's logger; go-redis logs through it too.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	log, err := newHandlerLogger(w, level, format)
	if err == nil {
		redis.SetLogger(redisLog{log.With("component", "redis")})
	}
	return log, err
}

func newHandlerLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, stdout io.Writer) error {
	embedded := cfg.redis.url == ""
	var rdb redis.UniversalClient
	if embedded {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer mr.Close()
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		log.Warn("no --redis given: running on an embedded, in-memory Redis with demo data; nothing survives a restart")
		if cfg.keys == "" {
			// Demo mode only: a fresh key per start, as the data is fresh too.
			cfg.keys = "1:" + tokens.NewSecret()
		}
	} else {
		var err error
		if rdb, err = cfg.redis.client(); err != nil {
			return err
		}
		if cfg.keys == "" {
			return errors.New("--keys (LINKGATE_KEYS) is required with --redis: tokens must survive restarts and agree across instances; make a key with: openssl rand -base64 32")
		}
	}
	defer rdb.Close()
	keys, err := tokens.ParseKeys(cfg.keys)
	if err != nil {
		return fmt.Errorf("--keys: %w", err)
	}
	ring, err := tokens.NewKeyRing(keys...)
	if err != nil {
		return fmt.Errorf("--keys: %w", err)
	}
	if !embedded {
		warnIfVolatile(ctx, rdb, log)
	}

	if cfg.debugAddr != "" {
		stop, err := serveDebug(cfg.debugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	publicURL := cfg.publicURL
	if publicURL == "" {
		publicURL = "http://" + ln.Addr().String()
	}
	srv, err := gateway.New(gateway.Config{
		Keys:           ring,
		PublicURL:      publicURL,
		AllowedOrigins: splitList(cfg.allowedOrigins),
		TrustedProxies: splitList(cfg.trustedProxies),
		SessionTTL:     cfg.sessionTTL,
		RequestTimeout: cfg.requestTimeout,
		IdleTimeout:    cfg.idleTimeout,
		Logger:         log,
	}, rdb)
	if err != nil {
		ln.Close()
		return err
	}
	if embedded || cfg.demo {
		// The demo camera: an RTSP server in this process, looping a clip.
		cam, err := democam.Start("127.0.0.1:0", log)
		if err != nil {
			ln.Close()
			return fmt.Errorf("demo camera: %w", err)
		}
		defer cam.Close()
		d, err := srv.SeedDemo(ctx, cam.URL())
		if err != nil {
			ln.Close()
			return err
		}
		// The demo devices answer in-process; `linkgate devices` runs them
		// as a process of their own.
		fleet := emulator.NewFleet(srv.Bus(), srv.Devices(), emulator.FleetOptions{Owner: d.Owner.ID, Logger: log})
		done := make(chan struct{})
		go func() { defer close(done); _ = fleet.Run(ctx) }()
		defer func() { <-done }() // the devices sign off before Redis closes
		fmt.Fprintf(stdout, "owner api key: %s\n", d.APIKey)
		fmt.Fprintf(stdout, "demo link: %s\n", d.LinkURL)
		fmt.Fprintf(stdout, "demo camera link: %s\n", d.CameraLinkURL)
	}
	log.Info("linkgate listening", "addr", ln.Addr().String(), "public_url", publicURL)
	return srv.Serve(ctx, ln, cfg.shutdownTimeout)
}

// warnIfVolatile warns when Redis would lose links on restart.
func warnIfVolatile(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	save, err1 := rdb.ConfigGet(ctx, "save").Result()
	aof, err2 := rdb.ConfigGet(ctx, "appendonly").Result()
	if err1 != nil || err2 != nil {
		log.Info("could not read Redis persistence settings (CONFIG GET refused?)", "err", errors.Join(err1, err2))
		return
	}
	if save["save"] == "" && aof["appendonly"] != "yes" {
		log.Warn("Redis persistence is off (no RDB snapshots, no AOF): links and owners are lost when Redis restarts")
	}
}
