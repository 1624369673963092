package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/web"
)

// BareHandler is the baseline of the link-open benchmarks: it sends a link
// page's bytes and the gateway's security headers, byte for byte, with
// idiomatic Fiber calls, and does nothing else. The gateway's open is measured against it, in process
// (gateway's BenchmarkOpen) and over the network (ServeBaseline, with the
// Baseline scenario and wrk).
func BareHandler(page []byte) fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := &c.Response().Header
		h.Set(fiber.HeaderCacheControl, "no-store")
		h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		h.Set("X-Robots-Tag", "noindex, nofollow")
		h.Set(fiber.HeaderContentSecurityPolicy, web.PageCSP)
		h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		h.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.Send(page)
	}
}

// ServeBaseline serves BareHandler(page) on GET /l/{token} at addr
// (host:port; port 0 picks a free one) until ctx ends, then shuts down
// within five seconds. ready, if not nil, is called with the address it
// listens on once it does. A nil page serves a small placeholder; the
// benchmarks pass the gateway's own page (web.LinkPage("device")) so that
// both send the same bytes. Fiber's defaults but one: the write buffer holds
// the page and its headers, as the gateway's does, so that both answer with
// one write(2) (with the default 4 KiB, a 6.4 KiB page takes two, and the
// baseline would lose a fifth of its rate to that alone).
func ServeBaseline(ctx context.Context, addr string, page []byte, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if page == nil {
		page = []byte("<!doctype html><title>baseline</title><p>baseline\n")
	}
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		WriteBufferSize:       max(4<<10, len(page)+2<<10),
	})
	app.Get("/l/:token", BareHandler(page))
	done := make(chan error, 1)
	go func() { done <- app.Listener(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
		return err
	}
	return <-done
}

// BaselineConfig configures the baseline scenario. The zero value of a
// field means its default.
type BaselineConfig struct {
	// Token is the path element after /l/. It defaults to a string of the
	// shape of a link token; the baseline server does not look at it.
	Token string
	// SameSource connects every worker from the default source address;
	// see OpensConfig.SameSource.
	SameSource bool
	// Timeout bounds each request. It defaults to DefaultHTTPTimeout.
	Timeout time.Duration
}

// Baseline is the reference scenario: GET /l/{token} against a server that
// answers it without any link machinery (ServeBaseline), measured by the
// same client as Opens. A 200 counts "ok baseline", anything else
// "unexpected baseline <status>"; latency is "latency".
type Baseline struct {
	cfg    BaselineConfig
	target httpTarget
	req    []byte
}

// NewBaseline returns the baseline scenario.
func NewBaseline(cfg BaselineConfig) (*Baseline, error) {
	if cfg.Token == "" {
		cfg.Token = strings.Repeat("A", tokens.TokenLen)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	return &Baseline{cfg: cfg}, nil
}

// Name implements Scenario.
func (s *Baseline) Name() string { return "baseline" }

// Prepare implements Preparer: it builds the request for cfg's target.
func (s *Baseline) Prepare(_ context.Context, cfg Config) error {
	t, err := parseTarget(cfg.Target)
	if err != nil {
		return err
	}
	s.target = t
	s.req = t.buildRequest(http.MethodGet, "/l/"+tokenOf(s.cfg.Token))
	return nil
}

// Worker implements Scenario.
func (s *Baseline) Worker(_ context.Context, i int) (Worker, error) {
	if s.req == nil {
		return nil, errors.New("baseline: not prepared")
	}
	return &baselineWorker{s: s, c: newHTTPConn(s.target, s.cfg.Timeout, !s.cfg.SameSource, i, 0, 0)}, nil
}

type baselineWorker struct {
	s *Baseline
	c *httpConn
}

// Do implements Worker.
func (w *baselineWorker) Do(ctx context.Context, op Op) error {
	status, _, err := w.c.exchange(ctx, w.s.req, op)
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		op.Sink.Count("ok baseline", 1)
	} else {
		op.Sink.Count(fmt.Sprintf("unexpected baseline %d", status), 1)
	}
	return nil
}

// Close implements Worker.
func (w *baselineWorker) Close() error { return w.c.close() }
