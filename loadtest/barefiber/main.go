// Command barefiber is the baseline of BENCHMARKS.md: a bare Fiber handler
// that answers GET /l/{token} with the same page bytes and headers as the
// gateway, but no token check, no cache and no metrics. The ratio of the
// gateway's throughput to this one's is the cost of the link machinery.
package main

import (
	"flag"
	"log"

	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/web"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18082", "listen address")
	flag.Parse()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	page := web.LinkPage("device")
	app.Get("/l/:token", func(c *fiber.Ctx) error {
		h := &c.Response().Header
		h.Set(fiber.HeaderCacheControl, "no-store")
		h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		h.Set("X-Robots-Tag", "noindex, nofollow")
		h.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'")
		h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		h.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.Send(page)
	})
	log.Fatal(app.Listen(*addr))
}
