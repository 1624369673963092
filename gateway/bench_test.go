package gateway_test

import (
	"net"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/loadtest"
	"github.com/linkgate/linkgate/tokens/redistest"
	"github.com/linkgate/linkgate/web"
)

// benchOpen measures one GET /l/{token} through the whole Fiber app, with no
// network in between, so that profiles show the handler's own cost.
func benchOpen(b *testing.B, app *fiber.App, path string, wantStatus int) {
	h := app.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}, nil)
		for pb.Next() {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.SetRequestURI(path)
			h(&ctx)
			if s := ctx.Response.StatusCode(); s != wantStatus {
				b.Fatalf("status %d, want %d", s, wantStatus)
			}
		}
	})
}

// BenchmarkOpen compares a valid and a forged link open against a bare
// Fiber handler that sends the same page and headers.
func BenchmarkOpen(b *testing.B) {
	in := startGateway(b, redistest.Start(b).Client(b), testRing(b), func(c *gateway.Config) {
		c.FailedOpens = gateway.RateLimit{Rate: 1e9, Burst: 1 << 30} // measure the 404 path, not 429s
	})
	owner := newTenant(b, in, "owner")
	l := owner.link(b, map[string]any{"device": owner.device(b, plugBody).ID})
	forged := "/l/" + l.Token[:40] + strings.Repeat("A", len(l.Token)-40)

	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bare.Get("/l/:token", loadtest.BareHandler(web.LinkPage("device")))

	b.Run("bare", func(b *testing.B) { benchOpen(b, bare, "/l/"+l.Token, 200) })
	b.Run("valid", func(b *testing.B) { benchOpen(b, in.App(), "/l/"+l.Token, 200) })
	b.Run("forged", func(b *testing.B) { benchOpen(b, in.App(), forged, 404) })
}
