package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

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
	s.wsRoutes(l)
	s.hlsRoutes(l)

	api := app.Group("/api/v1")
	api.Get("/openapi.json", s.openAPI)
	api.Use(s.apiBodyLimit, s.authenticate)
	s.apiRoutes(api)
	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}

// pageHeaderKV are the headers of every answer under /l/: private,
// unindexable, leaking nothing through the Referer. Keys are stored in
// canonical form so that setting them skips fasthttp's normalization, a
// measurable share of a link open (BENCHMARKS.md).
var pageHeaderKV = [][2][]byte{
	{[]byte(fiber.HeaderCacheControl), []byte("no-store")},
	{[]byte(fiber.HeaderReferrerPolicy), []byte("no-referrer")},
	{[]byte("X-Robots-Tag"), []byte("noindex, nofollow")},
	{[]byte(fiber.HeaderContentSecurityPolicy), []byte(web.PageCSP)},
	{[]byte(fiber.HeaderXContentTypeOptions), []byte("nosniff")},
	{[]byte(fiber.HeaderXFrameOptions), []byte("DENY")},
}

func pageHeaders(c *fiber.Ctx) error {
	h := &c.Response().Header
	for _, kv := range pageHeaderKV {
		h.SetCanonical(kv[0], kv[1])
	}
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
