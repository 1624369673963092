// Command barefiber serves the baseline of BENCHMARKS.md, loadtest.BareHandler:
// GET /l/{token} with the same page bytes and headers as the gateway, but no
// token check, no cache and no metrics. The ratio of the gateway's
// throughput to this one's is the cost of the link machinery.
package main

import (
	"flag"
	"log"

	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/loadtest"
	"github.com/linkgate/linkgate/web"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18082", "listen address")
	flag.Parse()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/l/:token", loadtest.BareHandler(web.LinkPage("device")))
	log.Fatal(app.Listen(*addr))
}
