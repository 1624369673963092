package gateway

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"net/http"

	"github.com/linkgate/linkgate/web"
)

// routes wires every route of the public contract (see README and
// openapi.json).
func (s *Server) routes() {
	app := s.app
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", s.ready)
	app.Get("/metrics", s.metrics.handler)
	app.Use("/static", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "public, max-age=300")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		return c.Next()
	}, filesystem.New(filesystem.Config{Root: http.FS(web.Static)}))

	l := app.Group("/l/:token", pageHeaders)
	l.Get("", s.openPage)
	l.Post("/session", s.openSession)

	api := app.Group("/api/v1")
	api.Get("/openapi.json", s.openAPI)
	api.Use(s.authenticate)
	s.apiRoutes(api)
	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}

// The Content-Security-Policy of every link page: our own scripts, styles
// and connections, nothing inline, no framing, no forms.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageHeaders marks every answer under /l/ as private, unindexable and
// leaking nothing through the Referer.
func pageHeaders(c *fiber.Ctx) error {
	h := &c.Response().Header
	h.Set(fiber.HeaderCacheControl, "no-store")
	h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	h.Set("X-Robots-Tag", "noindex, nofollow")
	h.Set(fiber.HeaderContentSecurityPolicy, pageCSP)
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderXFrameOptions, "DENY")
	return c.Next()
}

// ready answers 200 while Redis answers and the feed is followed.
func (s *Server) ready(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	reason := ""
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		reason = "redis unreachable"
	} else if !s.feed.Healthy() {
		reason = "invalidation feed not followed yet"
	}
	if reason != "" {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "reason": reason})
	}
	return c.JSON(fiber.Map{"status": "ok"})
}
