// Command opensbench runs one of the load tool's HTTP scenarios (opens,
// sessions, baseline) against a target and prints the figures
// bench-opens.sh tabulates, on one line:
//
//	scenario=opens model=closed rate=0 rps=41234 p50=0.61 p99=1.90 late=0 dropped=0 ok=... unexpected=0 redis_per_1k=0 cpu=...
//
// It is the benchmark's driver until `linkgate loadtest` wires the same
// scenarios; -json prints the whole report instead. With -serve ADDR it
// serves the baseline (loadtest.ServeBaseline with the gateway's page)
// instead of measuring.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/linkgate/linkgate/loadtest"
	"github.com/linkgate/linkgate/web"
)

func main() {
	serve := flag.String("serve", "", "serve the baseline on this address instead of measuring")
	target := flag.String("target", "http://127.0.0.1:8080", "the target's base URL")
	scenario := flag.String("scenario", "opens", "opens, sessions or baseline")
	mix := flag.String("mix", loadtest.DefaultMix.String(), "opens: kind=weight,...")
	apiKey := flag.String("api-key", os.Getenv("LINKGATE_API_KEY"), "owner API key, to mint links (env LINKGATE_API_KEY)")
	redisURL := flag.String("redis", "", "the target's Redis, to count its calls")
	valid := flag.String("valid", "", "a valid token or link URL")
	forged := flag.String("forged", "", "a forged token")
	expired := flag.String("expired", "", "an expired token or link URL")
	disabled := flag.String("disabled", "", "a disabled token or link URL")
	conns := flag.Int("c", 32, "connections")
	duration := flag.Duration("d", 10*time.Second, "duration")
	rate := flag.Float64("rate", 0, "open model at this rate (operations/s); 0: closed model")
	sameSource := flag.Bool("same-source", false, "connect every worker from the default source address")
	rotate := flag.Int("rotate", 0, "requests per connection before moving to a fresh source address; 0: never")
	asJSON := flag.Bool("json", false, "print the whole report as JSON")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serve != "" {
		log.Fatal(loadtest.ServeBaseline(ctx, *serve, web.LinkPage("device"), nil))
	}

	var sc loadtest.Scenario
	var err error
	toks := loadtest.Tokens{Valid: *valid, Forged: *forged, Expired: *expired, Disabled: *disabled}
	switch *scenario {
	case "opens":
		var m loadtest.Mix
		if m, err = loadtest.ParseMix(*mix); err == nil {
			sc, err = loadtest.NewOpens(loadtest.OpensConfig{Mix: m, Tokens: toks, APIKey: *apiKey, RedisURL: *redisURL, SameSource: *sameSource, Rotate: *rotate})
		}
	case "sessions":
		sc, err = loadtest.NewSessions(loadtest.SessionsConfig{Token: *valid, APIKey: *apiKey, RedisURL: *redisURL, SameSource: *sameSource, Rotate: *rotate})
	case "baseline":
		sc, err = loadtest.NewBaseline(loadtest.BaselineConfig{SameSource: *sameSource})
	default:
		err = fmt.Errorf("-scenario: %q is not opens, sessions or baseline", *scenario)
	}
	if err != nil {
		log.Fatal(err)
	}
	cfg := loadtest.Config{Target: *target, Connections: *conns, Duration: *duration}
	if *rate > 0 {
		cfg.Model, cfg.Rate = loadtest.Open, *rate
	}
	r, err := loadtest.Run(ctx, cfg, sc)
	if err != nil {
		log.Fatal(err)
	}
	if *asJSON {
		r.Series = nil
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			log.Fatal(err)
		}
		return
	}
	var ok, limited, unexpected, errs int64
	for k, n := range r.Counts {
		switch {
		case strings.HasPrefix(k, "ok "):
			ok += n
		case strings.HasPrefix(k, "limited "):
			limited += n
		case strings.HasPrefix(k, "unexpected "):
			unexpected += n
		case strings.HasPrefix(k, "error "):
			errs += n
		}
	}
	lat := r.Metrics["latency"]
	redis := "-"
	if v, has := r.Info["redis calls per 1000 ops"]; has {
		redis = fmt.Sprintf("%.4f", v)
	}
	fmt.Printf("scenario=%s model=%s rate=%.0f rps=%.0f p50=%.3f p99=%.3f max=%.3f late=%d dropped=%d ok=%d limited=%d unexpected=%d errors=%d redis_per_1k=%s cpu=%.0f\n",
		r.Scenario, r.Model, r.Rate, r.Achieved, lat.P50, lat.P99, lat.Max, r.Late, r.Dropped, ok, limited, unexpected, errs, redis, r.Generator.CPU)
}
