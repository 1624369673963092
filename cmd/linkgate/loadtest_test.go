package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/linkgate/linkgate/loadtest"
)

// stubScenario GETs a path of the target: a scenario for the command's
// own tests, through the same code path as the real ones.
type stubScenario struct {
	target, path string
}

func (s *stubScenario) Name() string { return "stub" }

func (s *stubScenario) Worker(context.Context, int) (loadtest.Worker, error) {
	return &stubWorker{s: s, c: &http.Client{Timeout: 5 * time.Second}}, nil
}

type stubWorker struct {
	s *stubScenario
	c *http.Client
}

func (w *stubWorker) Do(ctx context.Context, op loadtest.Op) error {
	req, err := http.NewRequestWithContext(ctx, "GET", w.s.target+w.s.path, nil)
	if err != nil {
		return err
	}
	resp, err := w.c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	op.Sink.Observe("latency", time.Since(op.Due))
	op.Sink.Count(fmt.Sprintf("status %d", resp.StatusCode), 1)
	return nil
}

func (w *stubWorker) Close() error { w.c.CloseIdleConnections(); return nil }

// withStubScenario registers the stub scenario for the test.
func withStubScenario(t *testing.T) {
	t.Helper()
	stub := &loadtestScenario{
		name:    "stub",
		summary: "GET a path (tests only)",
		help:    "GETs --path of the target.",
		flags: func(fs *flag.FlagSet, o *loadtestOptions) func(*loadtest.Config) (loadtest.Scenario, error) {
			path := fs.String("path", "/healthz", "the path to GET [LINKGATE_LOADTEST_PATH]")
			return func(*loadtest.Config) (loadtest.Scenario, error) {
				return &stubScenario{target: o.target, path: *path}, nil
			}
		},
	}
	saved := loadtestScenarios
	loadtestScenarios = append(append([]*loadtestScenario(nil), saved...), stub)
	t.Cleanup(func() { loadtestScenarios = saved })
}

// TestLoadtestEndToEnd runs `linkgate loadtest opens` against an
// in-process gateway in demo mode, minting its links with the demo owner's
// key: a passing threshold exits 0, a failing one 6, and the report files
// parse.
func TestLoadtestEndToEnd(t *testing.T) {
	withStubScenario(t)
	out, _ := startServe(t, "demo link: ")
	base := strings.SplitN(field(t, out.String(), "demo link"), "/l/", 2)[0]
	t.Setenv(envAPIKey, field(t, out.String(), "owner api key"))
	dir := t.TempDir()
	jsonFile, htmlFile := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")

	code, stdout, stderr := cli(t, "loadtest", "opens", "--target", base, "--connections", "4", "--count", "300",
		"--json", jsonFile, "--html", htmlFile, "--threshold", "latency.p99<=10s", "--threshold", "unexpected *==0;errors==0")
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"opens, closed model, 4 connections", "ops 300", "latency valid", "p99.9", "ok valid", "status 200", "generator cpu",
		"pass  latency.p99<=10s", "pass  unexpected *==0", "pass  errors==0"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, stdout)
		}
	}
	f, err := os.Open(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	r, err := loadtest.ReadJSON(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 300 || r.Counts["ok valid"] != 270 || len(r.Thresholds) != 3 || !r.Passed() || r.Target != base {
		t.Fatalf("JSON report: ops %d counts %v thresholds %+v target %q", r.Ops, r.Counts, r.Thresholds, r.Target)
	}
	page, err := os.ReadFile(htmlFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := html.Parse(bytes.NewReader(page)); err != nil || !strings.Contains(string(page), `<table id="metrics">`) {
		t.Fatalf("HTML report: %v\n%.300s", err, page)
	}

	// A failing threshold: the run is reported, the exit status says so.
	code, stdout, stderr = cli(t, "loadtest", "opens", "--target", base, "--connections", "2", "--count", "50", "--quiet",
		"--mix", "valid=1", "--threshold", "latency.max<0.0001ms")
	if code != exitThresholds || !strings.Contains(stdout, "FAIL  latency.max<0.0001ms") || !strings.Contains(stderr, "threshold failed") {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitThresholds, stdout, stderr)
	}

	// A duration-bounded run prints a progress line a second on stderr
	// (not a terminal here).
	code, _, stderr = cli(t, "loadtest", "stub", "--target", base, "--connections", "2", "--model", "open", "--rate", "200", "--duration", "1200ms")
	if code != 0 || !strings.Contains(stderr, "ops/s") || strings.Contains(stderr, "\r") {
		t.Fatalf("open run: exit %d\nstderr:\n%s", code, stderr)
	}
}

func TestLoadtestUsage(t *testing.T) {
	withStubScenario(t)
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	cases := []struct {
		args []string
		env  map[string]string
		code int
		want string // in stderr
	}{
		{nil, nil, exitUsage, "Scenarios:"},
		{[]string{"frobnicate"}, nil, exitUsage, `unknown scenario "frobnicate"`},
		{[]string{"stub", "--bogus"}, nil, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"stub", "extra"}, nil, exitUsage, `unexpected argument "extra"`},
		{[]string{"stub", "--model", "half-open"}, nil, exitUsage, "--model"},
		{[]string{"stub", "--model", "open"}, nil, exitUsage, "--rate"},
		{[]string{"stub", "--rate", "100"}, nil, exitUsage, "--rate: only the open model"},
		{[]string{"stub", "--connections", "0"}, nil, exitUsage, "--connections"},
		{[]string{"stub", "--threshold", "latency.p99<=5parsecs"}, nil, exitUsage, `unit "parsecs"`},
		{[]string{"stub", "--target", "http://192.0.2.1:80"}, nil, exitUsage, "--allow-remote"},
		{[]string{"stub", "--target", "ftp://127.0.0.1"}, nil, exitUsage, "--target"},
		{[]string{"stub", "--target", closed, "--count", "1"}, nil, exitFailure, "cannot be reached"},
		{[]string{"stub"}, map[string]string{"LINKGATE_LOADTEST_CONNECTIONS": "many"}, exitUsage, "LINKGATE_LOADTEST_CONNECTIONS"},
		{[]string{"stub"}, map[string]string{"LINKGATE_LOADTEST_MODEL": "open"}, exitUsage, "--rate"},
		{[]string{"stub"}, map[string]string{"LINKGATE_LOADTEST_TARGET": closed}, exitFailure, "cannot be reached"},
		{[]string{"stub"}, map[string]string{"LINKGATE_LOADTEST_THRESHOLDS": "ops>0; bogus"}, exitUsage, `"bogus"`},
		{[]string{"opens", "--mix", "valid=1,stale=2"}, nil, exitUsage, "--mix"},
		{[]string{"opens"}, map[string]string{"LINKGATE_LOADTEST_MIX": "nothing"}, exitUsage, "mix"},
		{[]string{"ws", "--model", "open", "--rate", "10"}, nil, exitUsage, "--model"},
		{[]string{"ws"}, nil, exitUsage, "APIKey or Links"},
		{[]string{"revoke", "--count", "5"}, map[string]string{envAPIKey: "lgk_x"}, exitUsage, "--count"},
		{[]string{"baseline", "--redis", "redis://127.0.0.1:1"}, nil, exitUsage, "--redis"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			code, _, stderr := cli(t, append([]string{"loadtest"}, c.args...)...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d (want %d), stderr:\n%s(want %q)", code, c.code, stderr, c.want)
			}
		})
	}

	// -h prints the scenario's flags with their environment twins, and the
	// exit statuses; the API key's value never.
	t.Setenv(envAPIKey, "lgk_secret_value")
	code, stdout, _ := cli(t, "loadtest", "stub", "-h")
	for _, want := range []string{"Usage: linkgate loadtest stub", "-target", "LINKGATE_LOADTEST_TARGET", "-threshold", "-path",
		"LINKGATE_API_KEY", "Exit status:", "6  the run finished and a threshold failed"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("-h: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}
	if strings.Contains(stdout, "lgk_secret_value") {
		t.Error("-h printed the API key")
	}
	if code, stdout, _ := cli(t, "loadtest", "-h"); code != 0 || !strings.Contains(stdout, "stub") {
		t.Errorf("loadtest -h: exit %d\n%s", code, stdout)
	}
}

// TestLoadtestBaselineServe: `loadtest baseline --addr` serves the bare
// handler until interrupted, and the baseline scenario loads it.
func TestLoadtestBaselineServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"loadtest", "baseline", "--addr", "127.0.0.1:0"}, out, out) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "baseline listening on ") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the baseline never listened: %s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	base := strings.TrimSpace(strings.TrimPrefix(out.String(), "baseline listening on "))
	if status, body := get(t, "GET", base+"/l/anything"); status != 200 || !strings.Contains(body, "<html") {
		t.Errorf("baseline: %d %.100s", status, body)
	}
	code, stdout, stderr := cli(t, "loadtest", "baseline", "--target", base, "--count", "200", "--connections", "2", "--quiet", "--threshold", "ok baseline==200")
	if code != 0 || !strings.Contains(stdout, "pass  ok baseline==200") {
		t.Errorf("loading the baseline: exit %d\n%s%s", code, stdout, stderr)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("baseline exited %d: %s", code, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the baseline did not stop")
	}
}
