package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeDebugAddr: --debug-addr serves the runtime profiles on their own
// loopback listener, and the public port does not.
func TestServeDebugAddr(t *testing.T) {
	out, errOut := startServe(t, "demo link: ", "--debug-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`msg="profiles served" addr=(\S+)`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no profiles line in the log:\n%s", errOut)
	}
	status, body := get(t, "GET", m[1]+"goroutine?debug=1")
	if status != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("goroutine profile: %d %.200s", status, body)
	}
	base := strings.SplitN(field(t, out.String(), "demo link"), "/l/", 2)[0]
	if status, _ := get(t, "GET", base+"/debug/pprof/goroutine?debug=1"); status != http.StatusNotFound {
		t.Fatalf("the public port answers the profiles: %d", status)
	}
}

// TestServeDebugAddrLoopbackOnly: a profile listener others could reach is
// refused before anything starts.
func TestServeDebugAddrLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "nonsense"} {
		code, _, stderr := cli(t, "serve", "--addr", "127.0.0.1:0", "--debug-addr", addr)
		if code != 1 || !strings.Contains(stderr, "--debug-addr") {
			t.Errorf("--debug-addr %s: exit %d, stderr:\n%s", addr, code, stderr)
		}
	}
}

// TestServeConnectionTimeouts: --request-timeout bounds a connection that
// never sends its request; a bound that is not positive is refused.
func TestServeConnectionTimeouts(t *testing.T) {
	for _, bad := range [][]string{{"--request-timeout", "0s"}, {"--idle-timeout", "-1s"}} {
		if code, _, stderr := cli(t, append([]string{"serve", "--addr", "127.0.0.1:0"}, bad...)...); code != 2 || !strings.Contains(stderr, "must be positive") {
			t.Errorf("%v: exit %d, stderr:\n%s", bad, code, stderr)
		}
	}
	out, _ := startServe(t, "demo link: ", "--request-timeout", "1s")
	host := strings.TrimPrefix(strings.SplitN(field(t, out.String(), "demo link"), "/l/", 2)[0], "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a silent connection, 10 s on: %v, want closed by the server (EOF)", err)
	}
}
