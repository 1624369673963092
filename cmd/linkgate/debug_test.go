package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
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
