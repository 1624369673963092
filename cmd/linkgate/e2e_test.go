package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/tokens/redistest"
)

// lockedBuffer is a bytes.Buffer that a running server and the test can
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs `linkgate serve args...` until the test ends and returns
// its stdout and stderr once the wanted line is printed on either.
func startServe(t *testing.T, wantLine string, args ...string) (stdout, stderr *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), out, errOut) }()
	t.Cleanup(func() {
		cancel() // what SIGINT/SIGTERM do in main
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d after shutdown; stderr:\n%s", code, errOut)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not shut down within 15 s")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String()+errOut.String(), wantLine) {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d early; stderr:\n%s", code, errOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never printed %q; stdout:\n%s\nstderr:\n%s", wantLine, out, errOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out, errOut
}

// field returns the value of the first "name: value" line.
func field(t *testing.T, text, name string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in:\n%s", name, text)
	return ""
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// cli runs one management command and returns its exit status and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestServeDemo is the README's first command: with no configuration, serve
// starts an embedded Redis and prints an API key and a link that works.
func TestServeDemo(t *testing.T) {
	out, _ := startServe(t, "demo link: ")
	link := field(t, out.String(), "demo link")
	key := field(t, out.String(), "owner api key")
	if status, body := get(t, "GET", link); status != http.StatusOK || !strings.Contains(body, "<html") {
		t.Fatalf("demo link: %d %.200s", status, body)
	}
	status, body := get(t, "POST", link+"/session")
	var view ownerapi.PublicLink
	if err := json.Unmarshal([]byte(body), &view); status != http.StatusOK || err != nil || len(view.Permissions.Control) == 0 || len(view.Permissions.View) == 0 {
		t.Fatalf("demo session: %d %s", status, body)
	}
	base := strings.SplitN(link, "/l/", 2)[0]
	code, list, stderr := cli(t, "link", "list", "--server", base, "--api-key", key)
	if code != 0 || !strings.Contains(list, view.Name) {
		t.Fatalf("link list: exit %d\n%s%s", code, list, stderr)
	}
}

// TestCLI drives the management commands against a gateway on a real Redis,
// the way an operator and an owner's scripts would.
func TestCLI(t *testing.T) {
	srv := redistest.Start(t)
	keys := "3:" + tokens.NewSecret()

	code, out, stderr := cli(t, "owner", "create", "acme", "--redis", srv.URL())
	if code != 0 {
		t.Fatalf("owner create: exit %d: %s", code, stderr)
	}
	key := field(t, out, "owner api key")
	_, logs := startServe(t, "linkgate listening", "--redis", srv.URL(), "--keys", keys)
	// The test's redis-server runs without persistence: serve says so.
	if !strings.Contains(logs.String(), "persistence is off") {
		t.Errorf("no warning about Redis persistence in:\n%s", logs)
	}
	m := regexp.MustCompile(`public_url=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no public_url in the log:\n%s", logs)
	}
	base := m[1]
	api := []string{"--server", base, "--api-key", key}

	file := filepath.Join(t.TempDir(), "plug.json")
	plug := `{"nodes":[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]},` +
		`{"id":"meter","name":"Meter","properties":[{"id":"power","name":"Power","datatype":"float","unit":"W"}]}]}`
	if err := os.WriteFile(file, []byte(plug), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = cli(t, append([]string{"device", "create", "--name", "Plug", "--type", "plug", "--file", file, "--json"}, api...)...)
	if code != 0 {
		t.Fatalf("device create: exit %d: %s", code, stderr)
	}
	var dev ownerapi.Device
	if err := json.Unmarshal([]byte(out), &dev); err != nil {
		t.Fatalf("device create --json: %v: %s", err, out)
	}

	code, out, stderr = cli(t, append([]string{"link", "create", "--device", dev.ID, "--name", "Guest", "--control", "switch/on", "--view", "meter/power", "--json"}, api...)...)
	if code != 0 {
		t.Fatalf("link create: exit %d: %s", code, stderr)
	}
	var l ownerapi.Link
	if err := json.Unmarshal([]byte(out), &l); err != nil || l.URL == "" {
		t.Fatalf("link create --json: %v: %s", err, out)
	}
	if status, _ := get(t, "GET", l.URL); status != http.StatusOK {
		t.Fatalf("created link opens with %d", status)
	}

	steps := []struct {
		args       []string
		code       int
		wantOut    string
		linkStatus int // the link's page afterwards; 0 = not checked
	}{
		{[]string{"link", "list"}, 0, "Guest", 0},
		{[]string{"link", "show", l.ID}, 0, l.URL, 0},
		{[]string{"link", "edit", l.ID, "--name", "Renamed"}, 0, "Renamed", http.StatusOK},
		{[]string{"link", "disable", l.ID}, 0, "disabled", http.StatusGone},
		{[]string{"link", "enable", l.ID}, 0, "active", http.StatusOK},
		{[]string{"link", "edit", l.ID, "--end", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}, 0, "", http.StatusGone},
		{[]string{"link", "edit", l.ID, "--eternal"}, 0, "eternal", http.StatusOK},
		{[]string{"link", "log", l.ID}, 0, "", 0},
		{[]string{"link", "show", strings.Repeat("0", 32)}, 3, "", 0},
		{[]string{"link", "create", "--device", dev.ID, "--control", "meter/power"}, 4, "", 0},
		{[]string{"link", "frobnicate"}, 2, "", 0},
		{[]string{"device", "delete", dev.ID}, 4, "", 0}, // links point at it
		{[]string{"link", "delete", l.ID}, 0, "", http.StatusNotFound},
		{[]string{"device", "delete", dev.ID}, 0, "", 0},
	}
	for _, s := range steps {
		code, out, stderr := cli(t, append(s.args, api...)...)
		if code != s.code || !strings.Contains(out, s.wantOut) {
			t.Fatalf("linkgate %s: exit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), code, s.code, out, stderr)
		}
		if strings.Contains(out+stderr, key) {
			t.Fatalf("linkgate %s printed the API key", strings.Join(s.args, " "))
		}
		if s.linkStatus != 0 {
			if status, _ := get(t, "GET", l.URL); status != s.linkStatus {
				t.Fatalf("after linkgate %s the link opens with %d, want %d", strings.Join(s.args, " "), status, s.linkStatus)
			}
		}
	}
	if code, _, _ := cli(t, "link", "list", "--server", base, "--api-key", "lgk_wrong"); code != 5 {
		t.Errorf("a bad API key exits %d, want 5", code)
	}
}

// TestDevicesCommand runs `linkgate devices` as its own process would: the
// devices an owner registers come online on the bus and answer commands.
func TestDevicesCommand(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"devices", "--redis", srv.URL(), "--log-level", "warn"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("linkgate devices exited %d: %s", code, errOut.String())
		}
	})

	plug := emulator.DemoDevices()[0]
	plug.Owner = "someone"
	if err := emulator.NewStore(rdb).Create(context.Background(), plug); err != nil {
		t.Fatal(err)
	}
	bus := emulator.NewBus(rdb)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, online, err := bus.Snapshot(context.Background(), plug.ID); err == nil && online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plug never came online; stderr: %s", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := bus.Watch(context.Background())
	defer w.Close()
	if err := w.Add(context.Background(), plug.ID); err != nil {
		t.Fatal(err)
	}
	if err := bus.Send(context.Background(), plug.ID, emulator.Command{ID: "c1", Property: "switch/on", Value: []byte("true")}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case c := <-w.Changes():
			if c.Property == "switch/on" && string(c.Value) == "true" {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the plug did not answer the command")
		}
	}
}

// TestServeSentinel runs the gateway on Redis through Sentinel, as the
// configuration table says, and keeps it working across a failover: owner
// changes still reach the pages, and new links still save and open.
func TestServeSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	redisFlags := []string{"--redis", s.Addr, "--redis-sentinel-master", redistest.SentinelMaster}
	code, out, stderr := cli(t, append([]string{"owner", "create", "acme"}, redisFlags...)...)
	if code != 0 {
		t.Fatalf("owner create: exit %d: %s", code, stderr)
	}
	key := field(t, out, "owner api key")
	_, logs := startServe(t, "linkgate listening", append(redisFlags, "--keys", "1:"+tokens.NewSecret())...)
	m := regexp.MustCompile(`public_url=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no public_url in the log:\n%s", logs)
	}
	client := &ownerapi.Client{BaseURL: m[1], APIKey: key}
	ctx := t.Context()
	dev, err := client.CreateDevice(ctx, ownerapi.DeviceCreate{Name: "Plug", Type: "plug", Nodes: plugNodes(t)})
	if err != nil {
		t.Fatal(err)
	}
	newLink := func() *ownerapi.Link {
		t.Helper()
		l, err := client.CreateLink(ctx, ownerapi.LinkCreate{Device: dev.ID, Name: "Guest",
			Permissions: tokens.Permissions{Control: []string{"switch/on"}}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// waitStatus polls the link's page until it answers want: an owner
	// change reaches the gateway's cache through the invalidation feed.
	waitStatus := func(url string, want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, _ := get(t, "GET", url)
			if status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s answers %d, want %d; log:\n%s", url, status, want, logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	before := newLink()
	waitStatus(before.URL, http.StatusOK)
	if err := s.Primary.Client(t).Wait(ctx, 1, 5*time.Second).Err(); err != nil {
		t.Fatal(err) // everything so far is on the replica too
	}

	s.Failover(t)

	// Writes find the new primary: the owner API retries through the
	// sentinel until go-redis has switched.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := client.DisableLink(ctx, before.ID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("disable after the failover: %v; log:\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitStatus(before.URL, http.StatusGone) // the feed follows the new primary
	after := newLink()
	waitStatus(after.URL, http.StatusOK)
}

// plugNodes is the model of a smart plug for the owner API.
func plugNodes(t *testing.T) []emulator.Node {
	t.Helper()
	var d ownerapi.DeviceCreate
	plug := `{"nodes":[{"id":"switch","name":"Switch","properties":[{"id":"on","name":"On","datatype":"boolean","settable":true}]}]}`
	if err := json.Unmarshal([]byte(plug), &d); err != nil {
		t.Fatal(err)
	}
	return d.Nodes
}
