package loadtest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// serveFast serves a small page with fasthttp on a loopback port until the
// test ends.
func serveFast(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	page := make([]byte, 2048)
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if string(c.Path()) == "/close" {
			c.SetConnectionClose()
		}
		c.SetContentType("text/html")
		c.SetBody(page)
	}}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// TestHTTPConn: keep-alive requests on one connection, a server that closes
// after each answer, and a run's end that aborts a request in flight.
func TestHTTPConn(t *testing.T) {
	addr := serveFast(t)
	tg, err := parseTarget("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	c := newHTTPConn(tg, time.Second, false, 0, 1, 0)
	defer c.close()
	req := tg.buildRequest("GET", "/x")
	var first net.Conn
	for i := range 3 {
		in, out, err := c.do(t.Context(), req, time.Now())
		if err != nil || c.resp.StatusCode() != 200 || in < 2048 || out != int64(len(req)) {
			t.Fatalf("request %d: %v, status %d, in %d out %d", i, err, c.resp.StatusCode(), in, out)
		}
		if i == 0 {
			first = c.conn
		} else if c.conn != first {
			t.Fatalf("request %d on a new connection", i)
		}
	}
	closing := tg.buildRequest("GET", "/close")
	for i := range 3 {
		if _, _, err := c.do(t.Context(), closing, time.Now()); err != nil || c.conn != nil {
			t.Fatalf("closing request %d: %v, conn %v", i, err, c.conn)
		}
	}

	// A server that never answers: the run's end aborts the request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	tg2, _ := parseTarget("http://" + ln.Addr().String())
	c2 := newHTTPConn(tg2, time.Minute, false, 0, 1, 0)
	defer c2.close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := c2.do(ctx, req, time.Now()); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("silent server: %v after %v", err, time.Since(start))
	}
}

// BenchmarkHTTPClient compares this package's client with fasthttp's
// HostClient (one connection per worker), 32 workers against an in-process
// fasthttp server: ns/op is wall time per request with the server in the
// same process, cpu-ns/op the whole process's CPU per request.
//
// go1.26.8, 2 cores, -benchtime 200000x -count 3, on a shared machine
// that was busy: raw 22.6, 13.6, 14.5 µs/op and 21.1, 18.6, 23.5 µs of CPU
// per op; HostClient 16.0, 17.1, 22.6 µs/op and 19.8, 16.7, 22.3 µs of
// CPU. No clear winner: see the comment in http.go.
func BenchmarkHTTPClient(b *testing.B) {
	addr := serveFast(b)
	const workers = 32
	run := func(b *testing.B, do func(i int) func() error) {
		var wg sync.WaitGroup
		var n atomic.Int64
		var failed atomic.Int64
		fns := make([]func() error, workers)
		for i := range fns {
			fns[i] = do(i)
		}
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := range workers {
			wg.Go(func() {
				for n.Add(1) <= int64(b.N) {
					if fns[i]() != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		if failed.Load() > 0 {
			b.Fatalf("%d requests failed", failed.Load())
		}
	}
	b.Run("raw", func(b *testing.B) {
		tg, _ := parseTarget("http://" + addr)
		req := tg.buildRequest("GET", "/l/x")
		run(b, func(int) func() error {
			c := newHTTPConn(tg, 10*time.Second, false, 0, 1, 0)
			b.Cleanup(func() { c.close() })
			return func() error {
				_, _, err := c.do(context.Background(), req, time.Now())
				return err
			}
		})
	})
	b.Run("HostClient", func(b *testing.B) {
		run(b, func(int) func() error {
			hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + addr + "/l/x")
			return func() error {
				return hc.DoTimeout(req, resp, 10*time.Second)
			}
		})
	})
}
