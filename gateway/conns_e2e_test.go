package gateway_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/gateway"
)

// shortTimeouts makes the connection bounds short enough to watch.
func shortTimeouts(c *gateway.Config) {
	c.RequestTimeout = 400 * time.Millisecond
	c.IdleTimeout = 400 * time.Millisecond
}

// waitClosed reads from conn until the server closes it and returns how
// long that took; it fails the test if conn is still open after 5 s.
func waitClosed(t *testing.T, conn net.Conn, r io.Reader) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the connection open past 5 s")
	}
	return time.Since(start)
}

func dialGateway(t *testing.T, in string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(in, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestConnectionTimeouts: a connection that sends nothing, one that
// trickles a request, and a keep-alive connection left idle are all closed
// once past their bound (RequestTimeout, IdleTimeout), and not before; a
// connection in use is not.
func TestConnectionTimeouts(t *testing.T) {
	t.Parallel()
	in := startGateway(t, startRedis(t), testRing(t), shortTimeouts)
	// The bounds hold to within a tick, a quarter of the shorter: no
	// connection is closed before 300 ms.
	const early = 300 * time.Millisecond

	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		conn := dialGateway(t, in.url)
		if d := waitClosed(t, conn, conn); d < early {
			t.Errorf("closed after %v, before its bound", d)
		}
	})

	t.Run("trickling", func(t *testing.T) {
		t.Parallel()
		conn := dialGateway(t, in.url)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one byte every 50 ms, never the end of the headers
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					if _, err := conn.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		if d := waitClosed(t, conn, conn); d < early {
			t.Errorf("closed after %v, before its bound", d)
		}
	})

	t.Run("keep-alive", func(t *testing.T) {
		t.Parallel()
		conn := dialGateway(t, in.url)
		br := bufio.NewReader(conn)
		get := func() {
			t.Helper()
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz: %d", resp.StatusCode)
			}
		}
		// Requests a little apart, for longer than either bound in all: a
		// connection in use stays.
		for range 8 {
			get()
			time.Sleep(100 * time.Millisecond)
		}
		get()
		if d := waitClosed(t, conn, br); d < early {
			t.Errorf("closed %v after its last answer, before its bound", d)
		}
	})
}

// TestConnectionTimeoutsSpareWebSockets: a device page's socket outlives
// both bounds many times over: it has its own pings.
func TestConnectionTimeoutsSpareWebSockets(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t, shortTimeouts)
	p, _ := e.hello(t, e.in, e.link.Token)
	time.Sleep(1500 * time.Millisecond)
	p.set("c1", "switch/on", true)
	if code := p.ack("c1"); code != "" {
		t.Fatalf("set after 1.5 s: %s", code)
	}
}
