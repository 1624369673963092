package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// SessionCookie is the cookie a session exchange sets (README, "A link's
// life").
const SessionCookie = "lg_session"

// SessionsConfig configures the session-exchange scenario. The zero value
// of a field means its default.
type SessionsConfig struct {
	// Token is a valid link's token or URL. It is minted through the owner
	// API with APIKey when empty. A link with maxUses is used up after that
	// many operations (410, counted unexpected): use a link without one.
	Token string
	// APIKey is an owner's API key on the target: Prepare mints a device
	// and a link, and Finish deletes them.
	APIKey string
	// RedisURL, when set, is the target's Redis; see OpensConfig.RedisURL.
	// A session exchange writes to Redis (the use count and the access
	// log), so expect a few calls per operation.
	RedisURL string
	// Origin, when set, is sent as the Origin header; the gateway refuses
	// origins it does not allow with 403. By default none is sent, as from
	// a client that is not a browser.
	Origin string
	// SameSource connects every worker from the default source address;
	// see OpensConfig.SameSource. The gateway allows few session exchanges
	// per IP (2/s, burst 10, by default): spreading matters more here.
	SameSource bool
	// Rotate, when above 0, makes a worker reconnect from a fresh source
	// address after that many requests; see OpensConfig.Rotate. Against a
	// gateway at its default limits, 10 keeps every exchange within the
	// per-IP burst. By default a worker keeps one connection.
	Rotate int
	// Timeout bounds each request. It defaults to DefaultHTTPTimeout.
	Timeout time.Duration
}

// Sessions is the session-exchange scenario: each operation is POST
// /l/{token}/session, as a link's page makes when it opens, on a keep-alive
// connection per worker. A 200 with the session cookie counts "ok
// session"; a 429 (the per-IP limit of session exchanges) counts "limited
// session", expected but not a session; anything else counts "unexpected
// session <status>" (a 200 without the cookie: "unexpected session
// no-cookie"). Every answer counts "status <code>"; latency is "latency".
type Sessions struct {
	cfg   SessionsConfig
	setup linkSetup
	req   []byte
}

// NewSessions returns the session-exchange scenario.
func NewSessions(cfg SessionsConfig) (*Sessions, error) {
	if cfg.Rotate < 0 {
		return nil, fmt.Errorf("Rotate: %d is negative", cfg.Rotate)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	s := &Sessions{cfg: cfg}
	s.setup.timeout = cfg.Timeout
	return s, nil
}

// Name implements Scenario.
func (s *Sessions) Name() string { return "sessions" }

// Prepare implements Preparer: it mints the link if needed, checks it with
// a GET (no side effects; warms the link cache) and starts counting Redis
// calls.
func (s *Sessions) Prepare(ctx context.Context, cfg Config) error {
	if err := s.setup.prepare(ctx, cfg, Tokens{Valid: s.cfg.Token}, []Kind{Valid}, s.cfg.APIKey, s.cfg.RedisURL); err != nil {
		return err
	}
	s.req = s.setup.target.buildRequest(http.MethodPost, "/l/"+s.setup.toks.Valid+"/session")
	if s.cfg.Origin != "" {
		// The header goes before the blank line that ends the request.
		s.req = append(s.req[:len(s.req)-2], "Origin: "+s.cfg.Origin+"\r\n\r\n"...)
	}
	return nil
}

// Finish implements Finisher; see Opens.Finish.
func (s *Sessions) Finish(ctx context.Context, r *Report) error { return s.setup.finish(ctx, r) }

// Worker implements Scenario.
func (s *Sessions) Worker(_ context.Context, i int) (Worker, error) {
	if s.req == nil {
		return nil, fmt.Errorf("sessions: not prepared")
	}
	return &sessionsWorker{s: s, c: newHTTPConn(s.setup.target, s.cfg.Timeout, !s.cfg.SameSource, i, s.setup.workers, s.cfg.Rotate)}, nil
}

type sessionsWorker struct {
	s *Sessions
	c *httpConn
}

// Do implements Worker.
func (w *sessionsWorker) Do(ctx context.Context, op Op) error {
	status, _, err := w.c.exchange(ctx, w.s.req, op)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusOK && len(w.c.resp.Header.PeekCookie(SessionCookie)) > 0:
		op.Sink.Count("ok session", 1)
	case status == http.StatusOK:
		op.Sink.Count("unexpected session no-cookie", 1)
	case status == http.StatusTooManyRequests:
		op.Sink.Count("limited session", 1)
	default:
		op.Sink.Count(fmt.Sprintf("unexpected session %d", status), 1)
	}
	return nil
}

// Close implements Worker.
func (w *sessionsWorker) Close() error { return w.c.close() }
