// Command linkgate runs the linkgate share-link edge and manages its links.
//
//	linkgate [serve] [flags]     run the gateway (embedded Redis and demo data without --redis)
//	linkgate owner create NAME   create an owner and print its API key (talks to Redis)
//	linkgate link ...            manage links over the owner API
//	linkgate device ...          manage devices over the owner API
//	linkgate camera ...          manage cameras over the owner API
//	linkgate devices             run simulated devices against a Redis
//	linkgate loadtest SCENARIO   load-test a gateway: progress, summary, JSON
//	                             and HTML reports, thresholds for CI
//
// Every flag has an environment twin, named in its help text.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `linkgate: share IoT devices and cameras by link.

Usage:
  linkgate [serve] [flags]      run the gateway; with no --redis, an embedded
                                Redis, demo devices and a demo link
  linkgate owner create NAME    create an owner; prints its API key
  linkgate link ...             create, list, show, edit, disable, enable,
                                delete links; log shows a link's access log
  linkgate device ...           manage devices
  linkgate camera ...           manage cameras
  linkgate devices --redis URL  run simulated devices on the device bus
  linkgate loadtest SCENARIO    load-test a gateway on loopback; reports,
                                thresholds that set the exit status

Run "linkgate <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stdout, stderr)
	case "owner":
		return runOwner(ctx, args, stdout, stderr)
	case "link", "links":
		return runLink(ctx, args, stdout, stderr)
	case "device":
		return runDevice(ctx, args, stdout, stderr)
	case "camera", "cameras":
		return runCamera(ctx, args, stdout, stderr)
	case "devices":
		return runDevices(ctx, args, stdout, stderr)
	case "loadtest":
		return runLoadtest(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "linkgate: unknown command %q\n\n%s", cmd, usage)
	return 2
}
