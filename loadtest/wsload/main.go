// Command wsload runs the load tool's WebSocket scenario (loadtest.Sockets)
// from the command line, until `linkgate loadtest ws` has the same flags:
// N device-page sessions on links it mints through the owner API, sending
// commands at a rate, or the revocation test (-revoke). It prints the
// report as JSON on stdout and "ready" on stderr once every session has
// opened.
//
//	go run ./loadtest/wsload -target http://127.0.0.1:8080 -api-key KEY -n 100 -rate 10 -devices 100 -links 100 -duration 20s
//	go run ./loadtest/wsload -target http://127.0.0.1:8080 -api-key KEY -n 10000 -links 100 -revoke -instances http://127.0.0.1:8081
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
)

func main() {
	var (
		cfg       loadtest.Config
		sc        loadtest.SocketsConfig
		instances string
		links     string
	)
	flag.StringVar(&cfg.Target, "target", "", "the gateway, http://host:port (owner API and sessions)")
	flag.IntVar(&cfg.Connections, "n", 100, "sessions")
	flag.DurationVar(&cfg.Duration, "duration", 20*time.Second, "run time (ignored with -revoke, which ends when measured)")
	flag.StringVar(&sc.APIKey, "api-key", os.Getenv("LINKGATE_API_KEY"), "owner API key, to mint devices and links [LINKGATE_API_KEY]")
	flag.StringVar(&links, "links-given", "", "comma-separated link URLs to use instead of minting")
	flag.StringVar(&instances, "instances", "", "comma-separated more gateway instances on the same Redis")
	flag.IntVar(&sc.LinkCount, "links", 0, "links to mint (default 1)")
	flag.IntVar(&sc.Devices, "devices", 0, "devices to create (default: one per link)")
	flag.StringVar(&sc.Device, "device", "", "an existing device to link to instead of creating devices")
	flag.StringVar(&sc.DeviceType, "device-type", "", "type of the devices created (default light)")
	flag.StringVar(&sc.Property, "property", "", "the property the commands set (default: the type's)")
	flag.Float64Var(&sc.Rate, "rate", 0, "commands per second per session; 0: idle")
	flag.Float64Var(&sc.Ramp, "ramp", 0, "sessions started per second; 0: all at once")
	flag.DurationVar(&sc.Settle, "settle", 0, "wait after the last open before sampling memory (and revoking); default 2s")
	flag.BoolVar(&sc.Revoke, "revoke", false, "the revocation test: open every session, disable every link, time the closes and refusals")
	flag.Parse()
	if instances != "" {
		sc.Instances = strings.Split(instances, ",")
	}
	if links != "" {
		sc.Links = strings.Split(links, ",")
	}
	sc.Ready = func(opened, failed int) { fmt.Fprintf(os.Stderr, "ready: %d opened, %d failed\n", opened, failed) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var r *loadtest.Report
	var err error
	if sc.Revoke {
		cfg.Duration = 0
		r, err = loadtest.RunRevocation(ctx, cfg, sc)
	} else {
		var s *loadtest.Sockets
		if s, err = loadtest.NewSockets(sc); err == nil {
			r, err = loadtest.Run(ctx, cfg, s)
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	r.Series = nil // the figures only; the CLI's reports plot the series
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		log.Fatal(err)
	}
}
