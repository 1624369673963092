package loadtest

import "github.com/gofiber/fiber/v2"

// BareHandler is the baseline of the link-open benchmarks: it sends a link
// page's bytes and security headers with idiomatic Fiber calls, and does
// nothing else. The gateway's open is measured against it, in process
// (gateway's BenchmarkOpen) and over the network (barefiber with wrk).
func BareHandler(page []byte) fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := &c.Response().Header
		h.Set(fiber.HeaderCacheControl, "no-store")
		h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		h.Set("X-Robots-Tag", "noindex, nofollow")
		h.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'")
		h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		h.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		return c.Send(page)
	}
}
