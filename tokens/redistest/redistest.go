// Package redistest starts real redis-server processes for tests.
//
// Start runs a standalone server, StartCluster a three-master Redis Cluster
// and StartSentinel a primary with a replica watched by a sentinel. Each server listens on free loopback ports and keeps its data and
// log in its own temporary directory, so tests using this package may run in
// parallel. A t.Cleanup kills every process, also when the test fails midway.
//
// If redis-server is not installed, tests are skipped, or fail when the CI
// environment variable is "true"; `make test` installs it.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	startAttempts  = 3                // tries with fresh ports before giving up
	readyTimeout   = 10 * time.Second // for a process to answer PING or to exit
	clusterTimeout = 20 * time.Second // for a cluster to settle
	pollInterval   = 25 * time.Millisecond
	logName        = "redis.log" // stdout and stderr of the process, in its dir
	logTailLines   = 15          // log lines quoted in failure messages
	clusterSize    = 3
	numSlots       = 16384
)

// Server is one redis-server process on a free loopback port, with its own
// temporary directory. Its methods must be called from the test goroutine.
type Server struct {
	Addr string // "127.0.0.1:port"

	bin     string
	dir     string
	port    string
	busPort string // cluster bus port; empty for a standalone server

	replicaOf string // "host port" of the primary, for a replica
	monitor   string // "host port" of the primary, for a sentinel

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
}

// Start starts a standalone redis-server for the test; t.Cleanup kills it.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false, &Server{})
}

// start starts s (a zero Server but for its role fields), retrying with
// fresh ports in case a port was taken between choosing it and redis-server
// binding it.
func start(t testing.TB, cluster bool, s *Server) *Server {
	t.Helper()
	s.bin, s.dir = lookPath(t), t.TempDir()
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(s.kill)
	var err error
	for range startAttempts {
		s.port = freePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", s.port)
		if cluster {
			s.busPort = freePort(t)
		}
		if err = s.run(); err == nil {
			return s
		}
		s.kill()
	}
	t.Fatalf("redistest: no redis-server after %d attempts: %v", startAttempts, err)
	return nil
}

// lookPath finds redis-server or ends the test: fatally on CI, where its
// absence is a setup bug, and with a skip elsewhere.
func lookPath(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redistest: redis-server is not installed; run `make test`, which installs it (%v)"
		if os.Getenv("CI") == "true" {
			t.Fatalf(msg, err)
		}
		t.Skipf(msg, err)
	}
	return bin
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: no free port: %v", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// sentinelConf is the config file of a sentinel: it must be a writable
// file, which the sentinel rewrites with what it learns.
const sentinelConf = "sentinel.conf"

// args returns the command line of the server. Only a sentinel needs a
// config file.
func (s *Server) args() []string {
	var args []string
	if s.monitor != "" {
		args = append(args, filepath.Join(s.dir, sentinelConf), "--sentinel")
	}
	args = append(args,
		"--port", s.port,
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--dbfilename", "dump.rdb",
		"--save", "", // no background saves; Stop saves explicitly
		"--appendonly", "no",
		"--protected-mode", "no",
		"--daemonize", "no",
	)
	if s.replicaOf != "" {
		args = append(args, "--replicaof", s.replicaOf)
	}
	if s.busPort != "" {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", s.busPort, // do not rely on port+10000 being free
			"--cluster-announce-ip", "127.0.0.1",
		)
	}
	return args
}

// run starts the process and waits until it answers.
func (s *Server) run() error {
	log, err := os.OpenFile(filepath.Join(s.dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	if s.monitor != "" {
		conf := fmt.Sprintf("sentinel monitor %[1]s %[2]s 1\n"+
			"sentinel down-after-milliseconds %[1]s %[3]d\n"+
			"sentinel failover-timeout %[1]s %[4]d\n",
			SentinelMaster, s.monitor, sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
		if err := os.WriteFile(filepath.Join(s.dir, sentinelConf), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = log, log // an *os.File needs no copying goroutine
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	// The only goroutine of a Server; it ends with the process.
	go func() {
		cmd.Wait()
		close(exited)
	}()
	return s.waitReady()
}

// waitReady waits until the server answers PING, which fails with LOADING
// until the dataset is in memory, and checks that the answer came from this
// process and not from another server that took the port first.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	// Wait for the listener before using go-redis, whose pool logs every
	// failed dial and then keeps redialing in the background.
	err := s.poll(deadline, func() error {
		conn, err := net.DialTimeout("tcp", s.Addr, 250*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return err
	}
	c := s.dial(5 * time.Second)
	defer c.Close()
	var info string
	err = s.poll(deadline, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			return err
		}
		info, err = c.Info(ctx, "server").Result()
		return err
	})
	if err != nil {
		return err
	}
	if !strings.Contains(info, "\nprocess_id:"+strconv.Itoa(s.cmd.Process.Pid)+"\r") {
		return s.errorf("port is served by another process")
	}
	return nil
}

// poll calls try until it succeeds, the process exits, or deadline passes.
func (s *Server) poll(deadline time.Time, try func() error) error {
	for {
		err := try()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return s.errorf("not ready after %v: %v", readyTimeout, err)
		}
		select {
		case <-s.exited:
			return s.errorf("exited early: %v", s.cmd.ProcessState)
		case <-time.After(pollInterval):
		}
	}
}

// dial returns a client for internal use: one connection, no retries, and
// the given timeout for each command.
func (s *Server) dial(timeout time.Duration) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         s.Addr,
		DialTimeout:  250 * time.Millisecond,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		MaxRetries:   -1,
		PoolSize:     1,
	})
}

// errorf returns an error that quotes the last lines of the server's log.
func (s *Server) errorf(format string, args ...any) error {
	b, _ := os.ReadFile(filepath.Join(s.dir, logName))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	tail := strings.Join(lines[max(0, len(lines)-logTailLines):], "\n")
	return fmt.Errorf("redis-server %s: %s\n--- end of %s ---\n%s",
		s.Addr, fmt.Sprintf(format, args...), logName, tail)
}

// signal sends sig to the process and waits until it has exited, and so
// has closed its listening sockets.
func (s *Server) signal(sig os.Signal) error {
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(sig) // fails only if the process is already gone
	select {
	case <-s.exited:
		return nil
	case <-time.After(readyTimeout):
		return s.errorf("still running %v after signal %q", readyTimeout, sig)
	}
}

// kill is the cleanup: it ends the process, if still running, without saving.
func (s *Server) kill() { s.signal(os.Kill) }

// Client returns a new client of the server, closed on cleanup. It survives
// Stop and Restart: broken connections are redialed.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// URL returns the address of database 0 as a redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Stop saves the dataset to dump.rdb in the server's directory and
// terminates the process. When Stop returns, the port is closed.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	c := s.dial(readyTimeout) // SAVE of a big dataset takes a while
	err := c.Save(context.Background()).Err()
	c.Close()
	if err != nil {
		t.Fatalf("redistest: %v", s.errorf("SAVE: %v", err))
	}
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// Restart starts a stopped or killed server again on the same port and in
// the same directory, so it reloads the dataset saved by Stop. When Restart
// returns, the server answers PING.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
	default:
		t.Fatalf("redistest: Restart of running redis-server %s; call Stop or Kill first", s.Addr)
	}
	if err := s.run(); err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
}

// Kill ends the process with SIGKILL without saving, as in a crash.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.signal(os.Kill); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// Cluster is a Redis Cluster of three masters, without replicas, on free
// loopback ports.
type Cluster struct {
	Addrs []string // "127.0.0.1:port" of each master

	nodes []*Server
}

// StartCluster starts a cluster for the test; t.Cleanup kills its nodes.
// When it returns, every node reports cluster_state:ok and all slots as
// assigned, and announces the node addresses in Addrs.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range clusterSize {
		s := start(t, true, &Server{})
		c.nodes = append(c.nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	if err := c.create(); err != nil {
		t.Fatalf("redistest: cluster %v: %v", c.Addrs, err)
	}
	return c
}

// slotRange returns the slots of node i: 0-5460, 5461-10921, 10922-16383,
// the split redis-cli --cluster create makes.
func slotRange(i int) (first, last int) {
	return i * numSlots / clusterSize, (i+1)*numSlots/clusterSize - 1
}

// create joins the nodes into a cluster, as redis-cli --cluster create does,
// and waits until it has settled.
func (c *Cluster) create() error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = n.dial(5 * time.Second) // generous: CI machines are small and busy
		defer clients[i].Close()
		first, last := slotRange(i)
		if err := clients[i].ClusterAddSlotsRange(ctx, first, last).Err(); err != nil {
			return n.errorf("CLUSTER ADDSLOTSRANGE: %v", err)
		}
	}
	for _, n := range c.nodes[1:] {
		// The bus port must be given, or MEET assumes port+10000.
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.busPort).Err(); err != nil {
			return c.nodes[0].errorf("CLUSTER MEET %s: %v", n.Addr, err)
		}
	}
	for {
		err := c.settled(ctx, clients)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not settled after %v: %w", clusterTimeout, err)
		case <-time.After(pollInterval):
		}
	}
}

// settled reports, as an error, the first node whose view of the cluster is
// not yet complete and correct.
func (c *Cluster) settled(ctx context.Context, clients []*redis.Client) error {
	var want []string
	for i, addr := range c.Addrs {
		first, last := slotRange(i)
		want = append(want, fmt.Sprintf("%d-%d %s", first, last, addr))
	}
	slices.Sort(want)
	for i, n := range c.nodes {
		info, err := clients[i].ClusterInfo(ctx).Result()
		if err != nil {
			return n.errorf("CLUSTER INFO: %v", err)
		}
		for _, field := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:3"} {
			if !strings.Contains(info, field+"\r\n") {
				return n.errorf("CLUSTER INFO lacks %s", field)
			}
		}
		// ClusterClient routes by CLUSTER SLOTS, so check the announced
		// owner addresses too.
		//lint:ignore SA1019 go-redis routes by CLUSTER SLOTS: that is what must be right
		slots, err := clients[i].ClusterSlots(ctx).Result()
		if err != nil {
			return n.errorf("CLUSTER SLOTS: %v", err)
		}
		var got []string
		for _, r := range slots {
			if len(r.Nodes) > 0 {
				got = append(got, fmt.Sprintf("%d-%d %s", r.Start, r.End, r.Nodes[0].Addr))
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return n.errorf("CLUSTER SLOTS = %q, want %q", got, want)
		}
	}
	return nil
}

// Client returns a new cluster client, closed on cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// SentinelMaster is the name under which StartSentinel's sentinel monitors
// the primary: the --redis-sentinel-master of a client.
const SentinelMaster = "linkgate"

// Sentinel timings: short, so that a test's failover takes seconds.
const (
	sentinelDownAfter       = time.Second
	sentinelFailoverTimeout = 5 * time.Second
	sentinelSettle          = 30 * time.Second // for a replica to sync, a failover to finish
)

// Sentinel is a primary and its replica, watched by one sentinel (quorum 1),
// on free loopback ports.
type Sentinel struct {
	Addr string // the sentinel's "127.0.0.1:port"

	Primary, Replica *Server
	sentinel         *Server
}

// StartSentinel starts a primary, a replica and a sentinel for the test;
// t.Cleanup kills them. When it returns, the replica is in sync and the
// sentinel knows it, so a failover can promote it.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	primary := start(t, false, &Server{})
	hostPort := func(s *Server) string { return "127.0.0.1 " + s.port }
	s := &Sentinel{
		Primary: primary,
		Replica: start(t, false, &Server{replicaOf: hostPort(primary)}),
	}
	s.sentinel = start(t, false, &Server{monitor: hostPort(primary)})
	s.Addr = s.sentinel.Addr
	ctx, cancel := context.WithTimeout(context.Background(), sentinelSettle)
	defer cancel()
	replica, sentinel := s.Replica.dial(5*time.Second), s.sentinel.dial(5*time.Second)
	defer replica.Close()
	defer sentinel.Close()
	err := waitFor(ctx, func() error {
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up\r\n") {
			return errors.New("replica not in sync")
		}
		replicas, err := sentinel.Do(ctx, "SENTINEL", "REPLICAS", SentinelMaster).Slice()
		if err != nil {
			return err
		}
		if len(replicas) != 1 {
			return fmt.Errorf("sentinel knows %d replicas, want 1", len(replicas))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: sentinel %s: %v", s.Addr, s.sentinel.errorf("%v", err))
	}
	return s
}

// Failover kills the primary, as in a crash, and waits until the sentinel
// has promoted the replica and the replica takes writes.
func (s *Sentinel) Failover(t testing.TB) {
	t.Helper()
	s.Primary.Kill(t)
	ctx, cancel := context.WithTimeout(context.Background(), sentinelSettle)
	defer cancel()
	replica, sentinel := s.Replica.dial(5*time.Second), s.sentinel.dial(5*time.Second)
	defer replica.Close()
	defer sentinel.Close()
	err := waitFor(ctx, func() error {
		addr, err := sentinel.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMaster).StringSlice()
		if err != nil {
			return err
		}
		if len(addr) != 2 || addr[1] != s.Replica.port {
			return fmt.Errorf("sentinel names %v as the primary", addr)
		}
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master\r\n") {
			return errors.New("replica not promoted yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: failover: %v", s.sentinel.errorf("%v", err))
	}
	s.Primary, s.Replica = s.Replica, nil
}

// Client returns a new client that finds the primary through the sentinel,
// closed on cleanup.
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: []string{s.Addr}})
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor calls try until it succeeds or ctx ends.
func waitFor(ctx context.Context, try func() error) error {
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pollInterval):
		}
	}
}
