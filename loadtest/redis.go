package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis calls are counted by Redis itself: INFO commandstats before and
// after the run. Three commands are left out of the total, since the load
// does not cause them: INFO (the counter's own), XREAD (every gateway's
// invalidation feed polls the stream all along, whatever the load) and
// PING (connection health checks: about one every few seconds, whatever
// the load). Every command, these too, is also reported under "redis calls
// <command>", so that nothing is hidden.
var redisUncounted = map[string]bool{"info": true, "xread": true, "ping": true}

// redisCounter counts the commands a Redis server executed over a run.
type redisCounter struct {
	rdb    *redis.Client
	before map[string]int64
}

// newRedisCounter connects to url and takes the counts now.
func newRedisCounter(ctx context.Context, url string) (*redisCounter, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("RedisURL: %w", err)
	}
	c := &redisCounter{rdb: redis.NewClient(opt)}
	if c.before, err = commandStats(ctx, c.rdb); err != nil {
		c.rdb.Close()
		return nil, err
	}
	return c, nil
}

// report sets r's Info: "redis calls" (the total), "redis calls per 1000
// ops", and "redis calls <command>" for every command that ran, XREAD too.
func (c *redisCounter) report(ctx context.Context, r *Report) error {
	after, err := commandStats(ctx, c.rdb)
	if err != nil {
		return err
	}
	var total int64
	for cmd, n := range after {
		d := n - c.before[cmd]
		if d <= 0 {
			continue
		}
		r.SetInfo("redis calls "+cmd, float64(d))
		if !redisUncounted[cmd] {
			total += d
		}
	}
	r.SetInfo("redis calls", float64(total))
	if r.Ops > 0 {
		r.SetInfo("redis calls per 1000 ops", float64(total)*1000/float64(r.Ops))
	}
	return nil
}

func (c *redisCounter) close() error { return c.rdb.Close() }

// commandStats returns the calls of each command so far, by lower-case
// name ("mget", "client|setname").
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	return parseCommandStats(s)
}

// parseCommandStats parses INFO commandstats: lines such as
// "cmdstat_mget:calls=3,usec=20,usec_per_call=6.67,...".
func parseCommandStats(s string) (map[string]int64, error) {
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		cmd, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("redis INFO commandstats: %q: %w", sc.Text(), err)
				}
				out[strings.ToLower(cmd)] = n
			}
		}
	}
	return out, sc.Err()
}
