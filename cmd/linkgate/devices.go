package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/linkgate/linkgate/emulator"
)

// runDevices runs simulated devices against a Redis, as their own process:
// every device in the store (or one owner's), kept in step as owners add,
// change and delete devices.
func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		rc        redisConfig
		owner     string
		logLevel  string
		logFormat string
	)
	fs := flag.NewFlagSet("linkgate devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rc.flags(fs)
	fs.StringVar(&owner, "owner", envString("LINKGATE_DEVICES_OWNER", ""), "simulate only this owner's devices; empty = all [LINKGATE_DEVICES_OWNER]")
	fs.StringVar(&logLevel, "log-level", envString("LINKGATE_LOG_LEVEL", "info"), "debug, info, warn or error [LINKGATE_LOG_LEVEL]")
	fs.StringVar(&logFormat, "log-format", envString("LINKGATE_LOG_FORMAT", "text"), "text or json [LINKGATE_LOG_FORMAT]")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: linkgate devices --redis URL [--owner ID]\n\nRuns simulated devices (plugs, lights, thermostats, ...) on the device bus.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rc.fromEnv(fs)
	if rc.url == "" {
		fmt.Fprintln(stderr, "linkgate devices: --redis (LINKGATE_REDIS_URL) is required: the fleet joins a running gateway's Redis")
		return 2
	}
	log, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "linkgate devices: %v\n", err)
		return 2
	}
	rdb, err := rc.client()
	if err != nil {
		fmt.Fprintf(stderr, "linkgate devices: %v\n", err)
		return 2
	}
	defer rdb.Close()
	fleet := emulator.NewFleet(emulator.NewBus(rdb), emulator.NewStore(rdb), emulator.FleetOptions{Owner: owner, Logger: log})
	log.Info("simulating devices", "owner", owner)
	if err := fleet.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("device fleet stopped", "err", err)
		return 1
	}
	return 0
}
