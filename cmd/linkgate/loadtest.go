package main

// This file is `linkgate loadtest`: the flags and their environment twins
// become a loadtest.Config and a scenario, the run prints its progress on
// stderr and its summary on stdout, writes the report files, and its
// thresholds set the exit status.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/loadtest"
)

// exitThresholds is the exit status of a run that finished with a
// threshold failed. The other statuses are the management commands' (see
// cli.go): a run that could not be made exits 1 (or 3, 4, 5 when the owner
// API refused its setup), bad flags 2.
const exitThresholds = 6

const loadtestExitHelp = `Exit status:
  0  the run finished and every threshold passed
  1  the run could not be made or did not finish: target refused, setup
     failed, interrupted, a report file not written
  2  usage error: bad flags, a bad threshold, a target outside loopback
     without --allow-remote
  3, 4, 5  the owner API answered the setup 404, 400/409, 401 (as for the
     link commands)
  6  the run finished and a threshold failed
`

const loadtestThresholdHelp = `Thresholds (--threshold, repeatable): SUBJECT OP VALUE[UNIT], OP one of
< <= > >= == !=. SUBJECT is one of:
  METRIC.STAT    a latency; STAT p50 p90 p99 p999 min mean max, in us, ms
                 (the default) or s; count: its samples   latency.p99<=5ms
  achieved       operations finished a second            achieved>=1000
  errors         the "error ..." counts; % is of ops     errors<0.1%
  COUNT          a count by name, * matches any text     "status 200>=99%"
  ops, late, dropped (% of ops, of those due), generator.cpu (% of a core),
  info.NAME      a figure of the scenario's own          "info.server cpu %<=8"
`

const (
	defaultTarget = "http://127.0.0.1:8080"
	envLoadtest   = "LINKGATE_LOADTEST_" // prefix of the flags' twins
)

// loadtestOptions are the flags every scenario takes.
type loadtestOptions struct {
	target      string
	apiKey      string // from --api-key or LINKGATE_API_KEY, never a default
	model       string
	connections int
	rate        float64
	duration    time.Duration
	count       int64
	allowRemote bool
	jsonFile    string
	htmlFile    string
	thresholds  thresholdFlag
	quiet       bool
}

// thresholdFlag is the repeatable --threshold.
type thresholdFlag []string

func (t *thresholdFlag) String() string { return strings.Join(*t, "; ") }

func (t *thresholdFlag) Set(s string) error {
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		if e = strings.TrimSpace(e); e != "" {
			*t = append(*t, e)
		}
	}
	return nil
}

// loadtestScenario is one scenario of `linkgate loadtest`.
type loadtestScenario struct {
	name    string
	summary string // one line for the list of scenarios
	help    string // paragraphs for the scenario's usage
	metric  string // the main metric shown in the progress; "": latency or the busiest

	// flags adds the scenario's own flags to fs and returns the function
	// that makes the scenario once they are parsed. That function may
	// adjust the run's config; its errors are usage errors.
	flags func(fs *flag.FlagSet, o *loadtestOptions) func(cfg *loadtest.Config) (loadtest.Scenario, error)
	// serve, when set, runs after parsing: it serves (the baseline server)
	// and returns when done, or returns errNotServing when its flags did
	// not ask it to serve, and the run goes on.
	serve func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error
}

// loadtestScenarios lists the scenarios in the order usage shows them.
var loadtestScenarios []*loadtestScenario

func findScenario(name string) *loadtestScenario {
	for _, s := range loadtestScenarios {
		if s.name == name {
			return s
		}
	}
	return nil
}

func loadtestUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: linkgate loadtest <scenario> [flags]

Load-tests a linkgate gateway: runs a scenario for a duration or a count,
prints its progress on stderr and a summary on stdout, writes JSON and HTML
reports, and checks thresholds for CI. Targets must be on loopback unless
--allow-remote says the operator owns them.

Scenarios:
`)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, s := range loadtestScenarios {
		fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'linkgate loadtest <scenario> -h' for its flags.\n\n%s\n%s", loadtestThresholdHelp, loadtestExitHelp)
}

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		loadtestUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		loadtestUsage(stdout)
		return exitOK
	}
	sc := findScenario(args[0])
	if sc == nil {
		fmt.Fprintf(stderr, "linkgate loadtest: unknown scenario %q\nRun 'linkgate loadtest -h' for usage.\n", args[0])
		return exitUsage
	}
	path := "linkgate loadtest " + sc.name
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	usage := func() {
		fmt.Fprintf(stdout, "Usage: %s [flags]\n\n%s\n\nFlags:\n", path, strings.TrimSpace(sc.help))
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		fmt.Fprintf(stdout, "\n%s\n%s", loadtestThresholdHelp, loadtestExitHelp)
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", path, fmt.Sprintf(format, a...))
		if code == exitUsage {
			fmt.Fprintf(stderr, "Run '%s -h' for usage.\n", path)
		}
		return code
	}

	var o loadtestOptions
	o.flags(fs)
	mk := sc.flags(fs, &o)
	if err := parseLoadtestFlags(fs, args[1:]); errors.Is(err, flag.ErrHelp) {
		usage()
		return exitOK
	} else if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if sc.serve != nil {
		if err := sc.serve(ctx, fs, stdout, stderr); err == nil {
			return exitOK
		} else if !errors.Is(err, errNotServing) {
			return fail(exitFailure, "%v", err)
		}
	}
	secretFromEnv(fs, "api-key", envAPIKey, &o.apiKey)
	o.apiKey = strings.TrimSpace(o.apiKey)

	cfg, thresholds, err := o.config()
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	scenario, err := mk(&cfg)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if err := loadtest.CheckTarget(ctx, cfg.Target, cfg.AllowRemote); errors.Is(err, loadtest.ErrRemoteTarget) {
		return fail(exitUsage, "--target: %v (--allow-remote)", err)
	} else if err != nil {
		return fail(exitUsage, "--target: %v", err)
	}
	if err := reachable(ctx, cfg.Target); err != nil {
		return fail(exitFailure, "the target cannot be reached: %v", err)
	}

	var progress *loadtest.Progress
	if !o.quiet {
		tty := false
		if f, ok := stderr.(*os.File); ok {
			tty = loadtest.IsTerminal(f)
		}
		progress = loadtest.NewProgress(stderr, tty, sc.metric)
		cfg.Progress = progress.Second
	}
	r, err := loadtest.Run(ctx, cfg, scenario)
	if progress != nil {
		progress.Done()
	}
	if r == nil {
		if err == nil {
			err = errors.New("the run made no report")
		}
		return loadtestFailed(path, stderr, err, o.apiKey)
	}
	passed := loadtest.CheckThresholds(r, thresholds)
	code := exitOK
	if err := loadtest.WriteSummary(stdout, r); err != nil {
		code = fail(exitFailure, "printing the summary: %v", err)
	}
	if err := writeReports(r, o.jsonFile, o.htmlFile); err != nil {
		code = fail(exitFailure, "%v", err)
	}
	switch {
	case err != nil:
		return loadtestFailed(path, stderr, err, o.apiKey)
	case ctx.Err() != nil:
		return fail(exitFailure, "interrupted: the report covers the %.1f s that ran", r.Elapsed)
	case code != exitOK:
		return code
	case !passed:
		fmt.Fprintf(stderr, "%s: a threshold failed\n", path)
		return exitThresholds
	}
	return exitOK
}

// flags adds the flags every scenario takes.
func (o *loadtestOptions) flags(fs *flag.FlagSet) {
	twin := func(name string) string {
		return " [" + envLoadtest + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "]"
	}
	fs.StringVar(&o.target, "target", defaultTarget, "the gateway's base `URL`"+twin("target"))
	// The key's default is not taken from the environment here: usage
	// would print it.
	fs.StringVar(&o.apiKey, "api-key", "", "an owner's API `key`, for scenarios that mint their own links ["+envAPIKey+"]; prefer the environment variable: flags show in ps")
	fs.StringVar(&o.model, "model", string(loadtest.Closed), "load model: closed (--connections back to back) or open (--rate a second, latency from each operation's due time)"+twin("model"))
	fs.IntVar(&o.connections, "connections", loadtest.DefaultConnections, "concurrent workers: connections, sessions or viewers"+twin("connections"))
	fs.Float64Var(&o.rate, "rate", 0, "open model: operations a second"+twin("rate"))
	fs.DurationVar(&o.duration, "duration", 0, "how long to run; default "+loadtest.DefaultDuration.String()+", or until --count with --count"+twin("duration"))
	fs.Int64Var(&o.count, "count", 0, "how many operations to start; 0: no bound but --duration"+twin("count"))
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target outside loopback: only one the operator owns"+twin("allow-remote"))
	fs.StringVar(&o.jsonFile, "json", "", "write the report as JSON to `FILE`"+twin("json"))
	fs.StringVar(&o.htmlFile, "html", "", "write the report as a self-contained HTML page with plots to `FILE`"+twin("html"))
	fs.Var(&o.thresholds, "threshold", "a pass/fail `EXPR` such as latency.p99<=5ms, errors<0.1%, achieved>=1000, \"status 200>=99%\"; repeatable; the exit status is 6 when one fails"+twin("thresholds")+", separated by ;")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr"+twin("quiet"))
}

// parseLoadtestFlags parses args (flags only) and then fills every flag not
// given from its environment twin, named in its help as [NAME]. A bad
// value in the environment is an error naming the variable.
func parseLoadtestFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := visited(fs)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envTwin(f.Usage)
		if err != nil || set[f.Name] || env == "" || !strings.HasPrefix(env, envLoadtest) {
			return
		}
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %v", env, e)
			}
		}
	})
	return err
}

// envTwin returns the NAME of the last "[NAME]" in a flag's help.
func envTwin(usage string) string {
	i := strings.LastIndex(usage, "[")
	j := strings.LastIndex(usage, "]")
	if i < 0 || j < i {
		return ""
	}
	return usage[i+1 : j]
}

// config checks the options and makes the run's config and thresholds.
func (o *loadtestOptions) config() (loadtest.Config, []loadtest.Threshold, error) {
	cfg := loadtest.Config{
		Target:      strings.TrimRight(o.target, "/"),
		AllowRemote: o.allowRemote,
		Model:       loadtest.Model(o.model),
		Connections: o.connections,
		Rate:        o.rate,
		Duration:    o.duration,
		Count:       o.count,
	}
	switch {
	case cfg.Model != loadtest.Closed && cfg.Model != loadtest.Open:
		return cfg, nil, fmt.Errorf("--model: want closed or open, got %q", o.model)
	case cfg.Connections < 1:
		return cfg, nil, errors.New("--connections: want at least 1")
	case cfg.Model == loadtest.Open && !(cfg.Rate > 0):
		return cfg, nil, errors.New("--rate: the open model needs a rate above 0")
	case cfg.Model == loadtest.Closed && cfg.Rate != 0:
		return cfg, nil, errors.New("--rate: only the open model takes a rate (add --model open)")
	case cfg.Duration < 0:
		return cfg, nil, errors.New("--duration: must not be negative")
	case cfg.Count < 0:
		return cfg, nil, errors.New("--count: must not be negative")
	}
	ts, err := loadtest.ParseThresholds(o.thresholds)
	if err != nil {
		return cfg, nil, fmt.Errorf("--threshold: %w", err)
	}
	return cfg, ts, nil
}

// reachable dials the target's host and port once, so that a run against
// nothing fails at once instead of counting refusals for its duration.
func reachable(ctx context.Context, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" || u.Scheme == "wss" {
			port = "443"
		}
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return err
	}
	return c.Close()
}

// loadtestFailed reports a run that could not be made and returns its exit
// status: the owner API's answers map as for the link commands.
func loadtestFailed(path string, stderr io.Writer, err error, secret string) int {
	code, msg := exitFailure, err.Error()
	var ae *ownerapi.Error
	if errors.As(err, &ae) {
		code, msg = exitForStatus(ae.Status), msg+": "+describeAPIError(ae)
	}
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	fmt.Fprintf(stderr, "%s: %s\n", path, msg)
	return code
}

// writeReports writes the report files that were asked for.
func writeReports(r *loadtest.Report, jsonFile, htmlFile string) error {
	write := func(name string, fn func(io.Writer, *loadtest.Report) error) error {
		if name == "" {
			return nil
		}
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		if err := fn(f, r); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return f.Close()
	}
	if err := write(jsonFile, loadtest.WriteJSON); err != nil {
		return err
	}
	return write(htmlFile, loadtest.WriteHTML)
}
