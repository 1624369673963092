package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Mix is the share of each kind of token in a run of link opens, as integer
// weights: Mix{Valid: 90, Forged: 4, Expired: 3, Disabled: 3} presents 90
// valid tokens in every 100 opens. The zero Mix means DefaultMix.
type Mix struct {
	Valid, Forged, Expired, Disabled int
}

// DefaultMix is mostly valid opens with a few of every refused kind.
var DefaultMix = Mix{Valid: 90, Forged: 4, Expired: 3, Disabled: 3}

// maxMixTotal bounds the sum of a mix's weights (after dividing by their
// greatest common divisor): the sequence of kinds is that long.
const maxMixTotal = 1 << 16

// ParseMix parses "valid=90,forged=4,expired=3,disabled=3"; kinds left out
// have weight 0, and a single kind name ("forged") means that kind alone.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasW := strings.Cut(part, "=")
		n := 1
		if hasW {
			var err error
			if n, err = strconv.Atoi(strings.TrimSpace(w)); err != nil || n < 0 {
				return Mix{}, fmt.Errorf("mix: %q: want kind=weight with a weight of 0 or more", part)
			}
		}
		p := m.get(Kind(strings.TrimSpace(name)))
		if p == nil {
			return Mix{}, fmt.Errorf("mix: %q: unknown kind (want valid, forged, expired or disabled)", name)
		}
		*p = n
	}
	if m == (Mix{}) {
		return Mix{}, fmt.Errorf("mix: %q has no kind with a weight above 0", s)
	}
	return m, m.check()
}

func (m *Mix) get(k Kind) *int {
	switch k {
	case Valid:
		return &m.Valid
	case Forged:
		return &m.Forged
	case Expired:
		return &m.Expired
	case Disabled:
		return &m.Disabled
	}
	return nil
}

// String formats m as ParseMix reads it.
func (m Mix) String() string {
	var parts []string
	for _, k := range Kinds {
		if w := *m.get(k); w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, w))
		}
	}
	return strings.Join(parts, ",")
}

// check reports an error for negative weights or too large a total.
func (m Mix) check() error {
	for _, k := range Kinds {
		if *m.get(k) < 0 {
			return fmt.Errorf("Mix.%s: negative weight", k)
		}
	}
	if m == (Mix{}) {
		return nil
	}
	if total := m.reduced().total(); total > maxMixTotal {
		return fmt.Errorf("Mix: weights total %d, more than %d", total, maxMixTotal)
	}
	return nil
}

func (m Mix) total() int { return m.Valid + m.Forged + m.Expired + m.Disabled }

// kinds returns the kinds with a weight above 0.
func (m Mix) kinds() []Kind {
	var out []Kind
	for _, k := range Kinds {
		if *m.get(k) > 0 {
			out = append(out, k)
		}
	}
	return out
}

// reduced divides the weights by their greatest common divisor.
func (m Mix) reduced() Mix {
	g := 0
	for _, k := range Kinds {
		g = gcd(g, *m.get(k))
	}
	if g > 1 {
		for _, k := range Kinds {
			*m.get(k) /= g
		}
	}
	return m
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Sequence returns one cycle of the kinds operations present, in order:
// operation n presents Sequence()[n % len]. Each kind appears its weight's
// times (weights divided by their common divisor), spread evenly over the
// cycle by smooth weighted round robin, so that every stretch of a run has
// close to the mix's shares.
func (m Mix) Sequence() []Kind {
	m = m.reduced()
	total := m.total()
	kinds := m.kinds()
	cur := make([]int, len(kinds))
	out := make([]Kind, 0, total)
	for range total {
		best := 0
		for i, k := range kinds {
			cur[i] += *m.get(k)
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, kinds[best])
	}
	return out
}

// OpensConfig configures the link-open scenario. The zero value of a field
// means its default.
type OpensConfig struct {
	// Mix is the share of each kind of token. It defaults to DefaultMix.
	Mix Mix
	// Tokens are tokens (or link URLs) to present. A kind in the mix
	// without one is minted through the owner API with APIKey, and a
	// forged token is made from another one; a kind that can be neither
	// given nor made is an error.
	Tokens Tokens
	// APIKey is an owner's API key on the target: Prepare mints the
	// missing links (a device and a link per kind) and Finish deletes them.
	APIKey string
	// RedisURL, when set, is the target's Redis: the run's Redis calls are
	// counted from INFO commandstats into the report's Info ("redis calls",
	// "redis calls per 1000 ops", "redis calls <command>").
	RedisURL string
	// SameSource connects every worker from the default source address.
	// By default, against a loopback IPv4 target, worker i connects from
	// its own address (127.1.0.2, 127.1.0.3, ...), so that the target's
	// per-IP limits see many clients, as they would in production.
	SameSource bool
	// Rotate, when above 0, makes a worker reconnect from a fresh source
	// address after that many requests on one connection (with spreading),
	// to step around the per-IP limits of a gateway left at its defaults.
	// By default a worker keeps one connection for the whole run.
	Rotate int
	// Timeout bounds each request. It defaults to DefaultHTTPTimeout.
	Timeout time.Duration
}

// Opens is the link-open scenario: each operation is GET /l/{token} with a
// token of the mix's next kind, on a keep-alive connection per worker. An
// answer with the kind's status (Kind.Status) counts "ok <kind>". A 429
// for a refused kind counts "limited <kind>" and is expected: the gateway
// answers failed opens beyond its per-IP limit (5/s, burst 20, by default)
// with 429, as it would an attack; a 429 for a valid token, or any other
// status, counts "unexpected <kind> <status>". Every answer also counts
// "status <code>"; latency is recorded as "latency" and, when the mix has
// more than one kind, "latency <kind>".
type Opens struct {
	cfg   OpensConfig
	seq   []Kind
	setup linkSetup
	reqs  map[Kind][]byte
	names map[Kind]kindNames
}

// kindNames are the count and metric names of a kind, made once so that
// an operation does not build strings.
type kindNames struct {
	ok, limited, latency string
}

// NewOpens returns the link-open scenario.
func NewOpens(cfg OpensConfig) (*Opens, error) {
	if cfg.Mix == (Mix{}) {
		cfg.Mix = DefaultMix
	}
	if err := cfg.Mix.check(); err != nil {
		return nil, err
	}
	if cfg.Rotate < 0 {
		return nil, fmt.Errorf("Rotate: %d is negative", cfg.Rotate)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	s := &Opens{cfg: cfg, seq: cfg.Mix.Sequence(), names: map[Kind]kindNames{}}
	for _, k := range Kinds {
		s.names[k] = kindNames{ok: "ok " + string(k), limited: "limited " + string(k), latency: "latency " + string(k)}
	}
	s.setup.timeout = cfg.Timeout
	return s, nil
}

// Name implements Scenario.
func (s *Opens) Name() string { return "opens" }

// Prepare implements Preparer: it mints or forges the tokens, checks each
// once (which warms the gateway's link cache) and starts counting Redis
// calls.
func (s *Opens) Prepare(ctx context.Context, cfg Config) error {
	if err := s.setup.prepare(ctx, cfg, s.cfg.Tokens, s.cfg.Mix.kinds(), s.cfg.APIKey, s.cfg.RedisURL); err != nil {
		return err
	}
	s.reqs = map[Kind][]byte{}
	for _, k := range s.cfg.Mix.kinds() {
		s.reqs[k] = s.setup.target.buildRequest(http.MethodGet, "/l/"+*s.setup.toks.get(k))
	}
	return nil
}

// Finish implements Finisher: Redis calls into r's Info, and the minted
// links and device deleted.
func (s *Opens) Finish(ctx context.Context, r *Report) error { return s.setup.finish(ctx, r) }

// Worker implements Scenario.
func (s *Opens) Worker(_ context.Context, i int) (Worker, error) {
	if s.reqs == nil {
		return nil, fmt.Errorf("opens: not prepared")
	}
	return &opensWorker{s: s, c: newHTTPConn(s.setup.target, s.cfg.Timeout, !s.cfg.SameSource, i, s.setup.workers, s.cfg.Rotate),
		perKind: len(s.cfg.Mix.kinds()) > 1}, nil
}

// opensWorker is one worker of Opens.
type opensWorker struct {
	s       *Opens
	c       *httpConn
	perKind bool
}

// Do implements Worker.
func (w *opensWorker) Do(ctx context.Context, op Op) error {
	k := w.s.seq[op.Seq%int64(len(w.s.seq))]
	status, d, err := w.c.exchange(ctx, w.s.reqs[k], op)
	if err != nil {
		return err
	}
	names := w.s.names[k]
	if w.perKind {
		op.Sink.Observe(names.latency, d)
	}
	switch {
	case status == k.Status():
		op.Sink.Count(names.ok, 1)
	case status == http.StatusTooManyRequests && k != Valid:
		op.Sink.Count(names.limited, 1)
	default:
		op.Sink.Count(fmt.Sprintf("unexpected %s %d", k, status), 1)
	}
	return nil
}

// Close implements Worker.
func (w *opensWorker) Close() error { return w.c.close() }

// statusNames holds "status 100" to "status 599", so that counting a
// status does not build a string.
var statusNames = func() []string {
	out := make([]string, 600)
	for i := 100; i < len(out); i++ {
		out[i] = "status " + strconv.Itoa(i)
	}
	return out
}()

func statusName(code int) string {
	if code >= 100 && code < len(statusNames) {
		return statusNames[code]
	}
	return "status " + strconv.Itoa(code)
}
