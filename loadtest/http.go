package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The HTTP scenarios' client is the minimum a keep-alive HTTP/1.1 load
// generator needs: one connection per worker, each request's bytes built
// once before the run and written as they are, and the answer read with
// fasthttp's response parser (status, headers, body) into a response reused
// for every request. That is the fast path wrk takes too.
//
// Against fasthttp.HostClient (MaxConns 1 per worker), BenchmarkHTTPClient
// in http_test.go measured no clear difference in CPU per request on this
// noisy 2-core machine (medians of 3: about 21 µs of CPU per request for
// both, client and in-process server together), and against wrk the tool
// does as well as wrk or better (BENCHMARKS.md), so the library was not
// the bottleneck. The hand-written path stays because it is small and
// gives what the scenarios need without working around a pool: exactly one
// connection per worker, its source address and rotation, the bytes in and
// out counted, a deadline moved once a second rather than a timer per
// request, and an abort when the run ends.

// maxBody bounds a response body the client reads.
const maxBody = 4 << 20

// DefaultHTTPTimeout bounds one request of the HTTP scenarios when their
// config leaves Timeout zero.
const DefaultHTTPTimeout = 10 * time.Second

// httpTarget is where the HTTP scenarios connect: the host and port of the
// target URL, and the Host header to send.
type httpTarget struct {
	addr     string // host:port to dial
	host     string // Host header
	loopback bool   // addr's host is a loopback IP: source addresses may be spread
}

func parseTarget(target string) (httpTarget, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return httpTarget{}, fmt.Errorf("Target: want a URL such as http://127.0.0.1:8080, got %q", target)
	}
	if u.Scheme != "http" {
		return httpTarget{}, fmt.Errorf("Target: the HTTP scenarios speak plain http, not %q", u.Scheme)
	}
	t := httpTarget{addr: u.Host, host: u.Host}
	if u.Port() == "" {
		t.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		t.loopback = true
	}
	return t, nil
}

// buildRequest returns the bytes of one HTTP/1.1 request with no body.
func (t httpTarget) buildRequest(method, path string) []byte {
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte(' ')
	b.WriteString(path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(t.host)
	b.WriteString("\r\nUser-Agent: linkgate-loadtest\r\n")
	if method == fasthttp.MethodPost {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// sourceIP returns the i-th loopback source address, 127.1.0.2 onwards, so
// that per-IP limits of the target see many clients. It spans about 15
// million addresses before it wraps.
func sourceIP(i int) net.IP {
	const per = 250
	i %= per * per * per
	return net.IPv4(127, byte(1+i/(per*per)), byte(i/per%per), byte(2+i%per))
}

// httpConn is one worker's keep-alive connection. It is used by one
// goroutine (the worker's), except for abort, which the run's end may call
// from another; mu guards conn and aborted for that.
type httpConn struct {
	target  httpTarget
	timeout time.Duration
	spread  bool // dial from sourceIP(source) instead of the default address
	source  int  // the current source address index
	step    int  // added to source on each rotation (the number of workers)
	rotate  int  // requests per connection before moving to the next source; 0: never

	mu      sync.Mutex
	conn    net.Conn
	aborted bool

	br       *bufio.Reader
	cr       countingReader
	resp     fasthttp.Response
	sent     int           // requests on the current connection
	deadline time.Time     // the connection's current deadline
	stop     func() bool   // unregisters the abort on the run's context
	dialed   time.Duration // time spent dialling in the last request, zero if none
}

func newHTTPConn(t httpTarget, timeout time.Duration, spread bool, worker, workers, rotate int) *httpConn {
	c := &httpConn{target: t, timeout: timeout, spread: spread && t.loopback, source: worker, step: max(workers, 1), rotate: rotate}
	c.br = bufio.NewReaderSize(&c.cr, 16<<10)
	c.resp.Header.DisableNormalizing()
	return c
}

// countingReader counts the bytes read from the connection.
type countingReader struct {
	conn net.Conn
	n    int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.conn.Read(p)
	r.n += int64(n)
	return n, err
}

// errAborted is returned once the run has ended.
var errAborted = errors.New("loadtest: run ended")

// dial connects, from the current source address when spreading.
func (c *httpConn) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: c.timeout}
	if c.spread {
		d.LocalAddr = &net.TCPAddr{IP: sourceIP(c.source)}
	}
	conn, err := d.DialContext(ctx, "tcp", c.target.addr)
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		conn.Close()
		return errAborted
	}
	c.conn = conn
	c.cr.conn = conn
	c.br.Reset(&c.cr)
	c.sent = 0
	c.deadline = time.Time{}
	return nil
}

// abort ends a request in flight: the run is over.
func (c *httpConn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	if c.conn != nil {
		_ = c.conn.SetDeadline(time.Unix(1, 0))
	}
}

// drop closes the connection; the next request dials again.
func (c *httpConn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// exchange sends req for op and records what every HTTP scenario records:
// the bytes, the latency from op's due time as "latency", and "status N".
// It returns the status, and the latency for a scenario that records it
// under another name too; on an error nothing but the bytes is recorded.
func (c *httpConn) exchange(ctx context.Context, req []byte, op Op) (status int, d time.Duration, err error) {
	in, out, err := c.do(ctx, req, time.Now())
	op.Sink.Bytes(in, out)
	if err != nil {
		return 0, 0, err
	}
	d = time.Since(op.Due)
	op.Sink.Observe("latency", d)
	status = c.resp.StatusCode()
	op.Sink.Count(statusName(status), 1)
	return status, d, nil
}

// do sends req and reads the answer into c.resp. It returns the bytes
// received and sent. now is the caller's clock reading, to save one.
func (c *httpConn) do(ctx context.Context, req []byte, now time.Time) (in, out int64, err error) {
	if c.stop == nil {
		c.stop = context.AfterFunc(ctx, c.abort)
	}
	c.dialed = 0
	if c.conn != nil && c.rotate > 0 && c.sent >= c.rotate {
		c.drop()
		c.source += c.step
	}
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return 0, 0, err
		}
		c.dialed = time.Since(now)
	}
	// The deadline moves forward about once a second, not per request:
	// setting it costs a timer update.
	if now.Add(c.timeout - time.Second).After(c.deadline) {
		c.deadline = now.Add(c.timeout)
		if err := c.conn.SetDeadline(c.deadline); err != nil {
			c.drop()
			return 0, 0, err
		}
	}
	c.sent++
	c.cr.n = 0
	if _, err := c.conn.Write(req); err != nil {
		c.drop()
		return 0, int64(len(req)), err
	}
	if err := c.resp.ReadLimitBody(c.br, maxBody); err != nil {
		c.drop()
		if c.sent > 1 && errors.Is(err, io.EOF) && ctx.Err() == nil {
			// The server closed an idle keep-alive connection just as we
			// wrote: send again on a fresh one, once.
			return c.do(ctx, req, now)
		}
		if errors.Is(err, fasthttp.ErrTimeout) {
			err = os.ErrDeadlineExceeded // fasthttp's is not a net.Error
		}
		return c.cr.n, int64(len(req)), err
	}
	if c.resp.ConnectionClose() {
		c.drop()
	}
	return c.cr.n, int64(len(req)), nil
}

// close ends the connection and the abort hook.
func (c *httpConn) close() error {
	if c.stop != nil {
		c.stop()
	}
	c.drop()
	return nil
}
