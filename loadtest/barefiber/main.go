// Command barefiber serves the baseline of BENCHMARKS.md, loadtest.BareHandler
// through loadtest.ServeBaseline: GET /l/{token} with the same page bytes and
// headers as the gateway, but no token check, no cache and no metrics. The
// ratio of the gateway's throughput to this one's is the cost of the link
// machinery. `linkgate loadtest baseline --addr` is meant to replace it.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/linkgate/linkgate/loadtest"
	"github.com/linkgate/linkgate/web"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18082", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Fatal(loadtest.ServeBaseline(ctx, *addr, web.LinkPage("device"), nil))
}
