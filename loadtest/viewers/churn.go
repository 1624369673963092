package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// churner runs viewers that come and go, and samples the gateway between
// batches.
type churner struct {
	link    *url.URL
	origin  string
	spread  bool
	pid     int    // the gateway's; 0: no RSS
	metrics string // the gateway's /metrics
	rdb     *redis.Client
}

// run starts n viewers, conc at a time; after every every viewers it waits
// for those in flight, and samples.
func (c *churner) run(ctx context.Context, n, conc, every int, settle time.Duration) error {
	fmt.Printf("%8s %10s %14s %10s %10s %8s %9s\n", "viewers", "rss_kib", "heap_inuse_kib", "goroutines", "leases", "errors", "elapsed_s")
	var (
		wg     sync.WaitGroup
		sem    = make(chan struct{}, conc)
		errs   atomic.Int64
		mu     sync.Mutex
		errMsg = map[string]int{}
		start  = time.Now()
	)
	sample := func(label string) error {
		s, err := c.sample(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("%8s %10d %14d %10d %10d %8d %9.1f\n", label, s.rssKiB, s.heapKiB, s.goroutines, s.leases, errs.Load(), time.Since(start).Seconds())
		return nil
	}
	if err := sample("0"); err != nil {
		return err
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var local = localIP(i)
			if !c.spread {
				local = nil
			}
			vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			r := watch(vctx, c.link, c.origin, local, true, func() {})
			if r.err == nil && r.fragments == 0 {
				r.err = fmt.Errorf("no fragment within 30 s")
			}
			if r.err != nil {
				errs.Add(1)
				mu.Lock()
				errMsg[r.err.Error()]++
				mu.Unlock()
			}
		}()
		if (i+1)%every == 0 || i+1 == n {
			wg.Wait()
			time.Sleep(time.Second) // the last sessions' releases land
			if err := sample(strconv.Itoa(i + 1)); err != nil {
				return err
			}
		}
	}
	wg.Wait()
	for t := 5 * time.Second; t <= settle && ctx.Err() == nil; t += 5 * time.Second {
		time.Sleep(5 * time.Second)
		if err := sample("+" + t.String()); err != nil {
			return err
		}
	}
	for e, k := range errMsg {
		fmt.Printf("error x%d: %s\n", k, e)
	}
	return nil
}

type gatewaySample struct {
	rssKiB, heapKiB, goroutines, leases int64
}

func (c *churner) sample(ctx context.Context) (s gatewaySample, err error) {
	if c.pid > 0 {
		if s.rssKiB, err = vmRSS(c.pid); err != nil {
			return s, err
		}
	}
	resp, err := http.Get(c.metrics)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			s.goroutines = int64(f)
		case "go_memstats_heap_inuse_bytes":
			s.heapKiB = int64(f) / 1024
		}
	}
	if c.rdb != nil {
		iter := c.rdb.Scan(ctx, 0, "lg:link:*:live", 100).Iterator()
		for iter.Next(ctx) {
			n, err := c.rdb.ZCard(ctx, iter.Val()).Result()
			if err != nil {
				return s, err
			}
			s.leases += n
		}
		if err := iter.Err(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// vmRSS reads a process's resident set size, in KiB.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}
