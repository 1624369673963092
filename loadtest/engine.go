package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Model is how a run offers load.
type Model string

const (
	// Closed: Connections workers, each starting its next operation as soon
	// as the previous one ends. Latency is measured from the actual start, so
	// a slow server is offered less load (what most benchmark tools do).
	Closed Model = "closed"
	// Open: operations are due at a fixed Rate, whatever the server does.
	// Latency is measured from when an operation was due, not when a worker
	// got to it, so queueing behind a slow answer counts (the coordinated
	// omission correction of wrk2). Operations started more than LateAfter
	// after they were due are counted late; those never started before the
	// end are counted dropped.
	Open Model = "open"
)

// Defaults of Config.
const (
	DefaultConnections = 32
	DefaultDuration    = 10 * time.Second
	DefaultLateAfter   = time.Millisecond
)

// Config configures a run. The zero value of a field means its default.
type Config struct {
	// Target is the base URL of the system under test, e.g.
	// http://127.0.0.1:8080. Its host must resolve to loopback addresses
	// only, unless AllowRemote is set.
	Target string
	// AllowRemote lets the run target a host that is not loopback: set it
	// only for a deployment the operator owns.
	AllowRemote bool
	// Model is Closed or Open. It defaults to Closed.
	Model Model
	// Connections is the number of workers: concurrent operations (closed)
	// or the most operations in flight (open). It defaults to 32.
	Connections int
	// Rate is the open model's arrival rate in operations per second. It is
	// required for Open and ignored for Closed.
	Rate float64
	// Duration bounds the run. It defaults to 10 s, or to no bound (the
	// Count decides) when Count is set.
	Duration time.Duration
	// Count bounds the number of operations started; zero: no bound.
	Count int64
	// LateAfter is how far behind its due time an open-model operation may
	// start before it counts late. It defaults to 1 ms.
	LateAfter time.Duration
	// Sinks is the number of recorder shards. It defaults to 4 per CPU.
	Sinks int
	// Progress, when set, is called once a second with that second.
	Progress func(Second)
}

// withDefaults fills in the defaults and checks the config; it is the one
// place that does. Errors name the field.
func (c Config) withDefaults() (Config, error) {
	if c.Model == "" {
		c.Model = Closed
	}
	switch c.Model {
	case Closed, Open:
	default:
		return c, fmt.Errorf("loadtest: Model: %q is neither %q nor %q", c.Model, Closed, Open)
	}
	if c.Connections <= 0 {
		c.Connections = DefaultConnections
	}
	if c.Model == Open && !(c.Rate > 0) {
		return c, errors.New("loadtest: Rate: the open model needs a rate above 0")
	}
	if c.Duration < 0 || c.Count < 0 {
		return c, errors.New("loadtest: Duration and Count must not be negative")
	}
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = DefaultDuration
	}
	if c.LateAfter <= 0 {
		c.LateAfter = DefaultLateAfter
	}
	if c.Sinks <= 0 {
		c.Sinks = 4 * runtime.GOMAXPROCS(0)
	}
	return c, nil
}

// ErrRemoteTarget is returned for a target that is not loopback when
// Config.AllowRemote is not set.
var ErrRemoteTarget = errors.New("loadtest: target is not a loopback address (the operator must own it: allow remote targets explicitly)")

// CheckTarget returns an error unless target is an http(s) or ws(s) URL
// whose host resolves only to loopback addresses, or allowRemote is set.
func CheckTarget(ctx context.Context, target string, allowRemote bool) error {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("loadtest: Target: want a URL such as http://127.0.0.1:8080, got %q", target)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return fmt.Errorf("loadtest: Target: scheme %q is not http, https, ws or wss", u.Scheme)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrRemoteTarget, host)
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("loadtest: Target: resolving %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%w: %s resolves to %s", ErrRemoteTarget, host, a.IP)
		}
	}
	return nil
}

// A Scenario is one kind of load: link opens, session exchanges, WebSocket
// sessions, camera viewers.
type Scenario interface {
	// Name labels the report.
	Name() string
	// Worker returns worker i's state, made before the run starts (for
	// example its own connection). The engine closes it after the run.
	Worker(ctx context.Context, i int) (Worker, error)
}

// A Preparer is a Scenario with work to do before the run: minting links
// through the owner API, opening sessions. Run calls Prepare before it asks
// for workers.
type Preparer interface {
	Prepare(ctx context.Context, cfg Config) error
}

// A Finisher is a Scenario with work to do after the run: measuring what
// the run left behind, adding its own figures to the report's Info,
// deleting what Prepare made. Run calls Finish after the workers are closed,
// also when the run failed part way (r is then nil).
type Finisher interface {
	Finish(ctx context.Context, r *Report) error
}

// A Worker performs a scenario's operations one at a time.
type Worker interface {
	// Do performs one operation and records it to op.Sink: latency measured
	// from op.Due, the outcome counted by kind. The context ends with the
	// run; an operation that lasts (a session) returns then. An error
	// return is counted under "error <kind>" by the engine, its kind from
	// [ErrorKind]; a worker records expected refusals itself and returns
	// nil for them.
	Do(ctx context.Context, op Op) error
	// Close releases the worker's resources.
	Close() error
}

// Op is one operation handed to a worker.
type Op struct {
	Seq  int64     // 0, 1, 2... in order of due time
	Due  time.Time // when the model meant it to start; closed model: its start
	Sink *Sink
}

// Run runs sc under cfg and returns its report. It stops at cfg.Duration or
// cfg.Count, or when ctx ends (the report then covers the part that ran).
func Run(ctx context.Context, cfg Config, sc Scenario) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Target != "" {
		if err := CheckTarget(ctx, cfg.Target, cfg.AllowRemote); err != nil {
			return nil, err
		}
	}
	if p, ok := sc.(Preparer); ok {
		if err := p.Prepare(ctx, cfg); err != nil {
			return nil, fmt.Errorf("loadtest: %s: prepare: %w", sc.Name(), err)
		}
	}
	r, err := run(ctx, cfg, sc)
	if f, ok := sc.(Finisher); ok {
		if ferr := f.Finish(context.WithoutCancel(ctx), r); ferr != nil && err == nil {
			err = fmt.Errorf("loadtest: %s: finish: %w", sc.Name(), ferr)
		}
	}
	return r, err
}

// run makes the workers, runs them and closes them.
func run(ctx context.Context, cfg Config, sc Scenario) (*Report, error) {
	workers := make([]Worker, 0, cfg.Connections)
	defer func() {
		for _, w := range workers {
			w.Close()
		}
	}()
	for i := range cfg.Connections {
		w, err := sc.Worker(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %s: worker %d: %w", sc.Name(), i, err)
		}
		workers = append(workers, w)
	}

	cpu0 := cpuTime()
	start := time.Now()
	rec := newRecorder(cfg.Sinks, start)
	var deadline time.Time
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
		runCtx, cancel = context.WithDeadline(runCtx, deadline)
		defer cancel()
	}
	s := &schedule{cfg: cfg, start: start, deadline: deadline}

	tickDone := make(chan struct{})
	go func() { // closes the seconds until the run ends
		defer close(tickDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case now := <-t.C:
				sec := rec.tick(now, s.done.Load())
				if cfg.Progress != nil {
					cfg.Progress(sec)
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { s.work(runCtx, w, rec.Sink(i)) })
	}
	wg.Wait()
	cancel()
	<-tickDone
	end := time.Now()
	if last := rec.tick(end, s.done.Load()); cfg.Progress != nil && end.Sub(start) > 100*time.Millisecond {
		cfg.Progress(last)
	}
	elapsed := end.Sub(start)
	cpu := cpuTime() - cpu0

	all := rec.total()
	r := &Report{
		Scenario:    sc.Name(),
		Target:      cfg.Target,
		Model:       cfg.Model,
		Connections: cfg.Connections,
		Started:     start.UTC(),
		Elapsed:     elapsed.Seconds(),
		Ops:         s.done.Load(),
		Metrics:     all.summaries(true),
		Counts:      all.counts,
		BytesIn:     all.bytesIn,
		BytesOut:    all.bytesOut,
		Series:      rec.Series(),
		Generator: Generator{
			CPU:   100 * cpu.Seconds() / elapsed.Seconds(),
			Cores: runtime.GOMAXPROCS(0),
		},
	}
	if elapsed > 0 {
		r.Achieved = float64(r.Ops) / elapsed.Seconds()
	}
	if cfg.Model == Open {
		r.Rate = cfg.Rate
		r.Late = s.late.Load()
		r.Dropped = s.dropped(end)
	}
	return r, nil
}

// schedule hands out operations to the workers.
type schedule struct {
	cfg      Config
	start    time.Time
	deadline time.Time // zero: none

	next atomic.Int64 // the next operation's sequence number
	done atomic.Int64 // operations finished
	late atomic.Int64 // open model: operations started late
}

// due returns operation seq's due time in the open model.
func (s *schedule) due(seq int64) time.Time {
	return s.start.Add(time.Duration(float64(seq) / s.cfg.Rate * float64(time.Second)))
}

// work runs one worker's operations until the run ends.
func (s *schedule) work(ctx context.Context, w Worker, sink *Sink) {
	var timer *time.Timer
	for ctx.Err() == nil {
		seq := s.next.Add(1) - 1
		if s.cfg.Count > 0 && seq >= s.cfg.Count {
			return
		}
		op := Op{Seq: seq, Sink: sink}
		if s.cfg.Model == Open {
			op.Due = s.due(seq)
			if !s.deadline.IsZero() && !op.Due.Before(s.deadline) {
				return
			}
			if wait := time.Until(op.Due); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case <-timer.C:
				}
			} else if -wait > s.cfg.LateAfter {
				s.late.Add(1)
			}
		} else {
			op.Due = time.Now()
		}
		if err := w.Do(ctx, op); err != nil && ctx.Err() == nil {
			sink.Count("error "+ErrorKind(err), 1)
		}
		s.done.Add(1)
	}
}

// dropped returns how many open-model operations were due before end but
// never started.
func (s *schedule) dropped(end time.Time) int64 {
	if !s.deadline.IsZero() && end.After(s.deadline) {
		end = s.deadline
	}
	due := int64(end.Sub(s.start).Seconds()*s.cfg.Rate) + 1 // operations due at or before end
	if s.cfg.Count > 0 {
		due = min(due, s.cfg.Count)
	}
	return max(due-min(s.next.Load(), due), 0)
}

// cpuTime returns the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
