package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/web"
)

// localPage marks a request whose errors are answered with an HTML page.
const localPage = "lg.page"

// sessionCookie holds a recipient's session token.
const sessionCookie = "lg_session"

// resolve turns a link token into the link's record, or the reason it may
// not be opened now. Forged and malformed tokens never reach Redis; a valid
// one costs a cache look-up.
//
// The token carries the window as minted, but the record decides: owners may
// widen a window later and links already shared must follow. now is the
// request's time (requestTime).
func (s *Server) resolve(ctx context.Context, token string, now time.Time) (*tokens.Link, error) {
	claims, err := s.keys.Verify(token)
	if err != nil {
		return nil, err
	}
	l, err := s.cache.GetAt(ctx, claims.Link, now)
	if err != nil {
		return nil, err
	}
	if l.Generation != claims.Generation {
		return nil, tokens.ErrNotFound
	}
	if err := l.Check(now); err != nil {
		return nil, err
	}
	return l, nil
}

// requestTime is the gateway's clock at the start of the request: the time
// fasthttp read before calling the handler, so that a request under /l/
// reads the clock once in all and checks everything at one instant (a read
// costs about 50 ns on this kind of virtual machine; BENCHMARKS.md), or
// the configured clock when tests set one.
func (s *Server) requestTime(c *fiber.Ctx) time.Time {
	if s.systemClock {
		return c.Context().Time()
	}
	return s.cfg.Now()
}

// openPage serves the emulator or camera page. It has no side effects:
// link-preview bots fetch it too.
func (s *Server) openPage(c *fiber.Ctx) error {
	l, err := s.resolve(c.UserContext(), c.Params("token"), s.requestTime(c))
	if err != nil {
		return s.refuseOpen(c, err)
	}
	s.metrics.opensOK.Inc()
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(web.LinkPage(string(l.Kind)))
}

// refuseOpen counts a failed open against the client's IP; past the limit,
// the answer is 429 instead of the reason.
func (s *Server) refuseOpen(c *fiber.Ctx, err error) error {
	c.Locals(localPage, true)
	pe := toPublic(err)
	if pe.status != fiber.StatusServiceUnavailable && !s.failedOpens.allow(s.clientKey(c), s.requestTime(c)) {
		pe = toPublic(errRateLimited)
	}
	s.metrics.openRefused(pe.code)
	return pe
}

// clientKey is the client's address for rate limits: the peer's IP, or,
// behind trusted proxies, the address they forward; see limitKey.
func (s *Server) clientKey(c *fiber.Ctx) []byte {
	if len(s.cfg.TrustedProxies) > 0 {
		ip := c.IP()
		if parsed := net.ParseIP(ip); parsed != nil {
			return limitKey(parsed)
		}
		return []byte(ip)
	}
	return limitKey(c.Context().RemoteIP())
}

// limitKey is the part of a client address that rate limits count: the
// whole of an IPv4 address, the /64 prefix of an IPv6 one. One IPv6
// subscriber is usually handed a /64 or more, so counting single IPv6
// addresses would give each of them 2^64 budgets.
func limitKey(ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	if len(ip) == net.IPv6len {
		return ip[:8]
	}
	return ip
}

// openSession exchanges a link token for a session: it counts a use, logs the
// access and answers the link's public view.
func (s *Server) openSession(c *fiber.Ctx) error {
	now := s.requestTime(c)
	if !s.sessions.allow(s.clientKey(c), now) {
		s.metrics.sessions.WithLabelValues(codeRateLimited).Inc()
		return errRateLimited
	}
	if o := c.Get(fiber.HeaderOrigin); o != "" && !s.origins[o] {
		s.metrics.sessions.WithLabelValues(codeForbiddenOrig).Inc()
		return errForbiddenOrig
	}
	view, err := s.startSession(c, now)
	if err != nil {
		s.metrics.sessions.WithLabelValues(toPublic(err).code).Inc()
		return err
	}
	s.metrics.sessions.WithLabelValues("ok").Inc()
	return c.JSON(view)
}

func (s *Server) startSession(c *fiber.Ctx, now time.Time) (*ownerapi.PublicLink, error) {
	ctx := c.UserContext()
	token := c.Params("token")
	var sc tokens.SessionClaims
	var l *tokens.Link
	var dev *emulator.Device
	for attempt := 1; ; attempt++ {
		var err error
		if l, err = s.resolve(ctx, token, now); err != nil {
			return nil, err
		}
		if dev, err = s.devices.GetAny(ctx, l.Device); err != nil {
			if errors.Is(err, tokens.ErrUnavailable) {
				return nil, err
			}
			return nil, tokens.ErrNotFound // the device is gone: so is the link
		}
		sc = tokens.SessionClaims{Link: l.ID, Generation: l.Generation, Expires: now.Add(s.cfg.SessionTTL)}
		_, _ = rand.Read(sc.Session[:])
		closes := l.ClosesAt(now)
		if !closes.IsZero() && closes.Before(sc.Expires) {
			sc.Expires = closes
		}
		retry, err := s.countUse(ctx, l, tokens.Access{
			At: now, Event: "session", Session: sc.SessionID(), IP: c.IP(), UserAgent: c.Get(fiber.HeaderUserAgent),
		}, attempt)
		if err != nil {
			return nil, err
		}
		if !retry {
			break
		}
	}
	c.Cookie(&fiber.Cookie{
		Name:     sessionCookie,
		Value:    s.keys.MintSession(sc),
		Path:     "/l/" + token,
		Expires:  sc.Expires,
		HTTPOnly: true,
		Secure:   c.Protocol() == "https",
		SameSite: fiber.CookieSameSiteStrictMode,
	})
	return &ownerapi.PublicLink{
		LinkView: *s.publicView(l, now),
		Device:   publicDevice(dev.Filter(l.Permissions.CanView)),
		Session:  ownerapi.SessionInfo{ID: sc.SessionID(), ExpiresAt: sc.Expires.UTC()},
	}, nil
}

// openAttempts bounds how often an open reads again a link whose record
// changed under it (countUse).
const openAttempts = 3

// countUse counts a use of l, as read from the cache, for an open. The
// count is taken in Redis only if the record there is still l: when
// another instance has changed it (an owner's disable, say) and this
// instance's feed has not said so yet, the cached record is dropped and
// countUse reports retry, so that the caller resolves the link again, from
// Redis, and checks it again. An open that succeeds was thus allowed by
// the link's record at that moment, on every instance: the feed's delay
// reaches open pages, never new opens.
func (s *Server) countUse(ctx context.Context, l *tokens.Link, a tokens.Access, attempt int) (retry bool, err error) {
	_, err = s.links.Use(ctx, l, a)
	if !errors.Is(err, tokens.ErrStale) {
		return false, err
	}
	s.cache.Invalidate(l.ID)
	if attempt >= openAttempts {
		return false, fmt.Errorf("%w: link %s changed during %d opens", tokens.ErrUnavailable, l.ID, attempt)
	}
	return true, nil
}

// publicView is the link as its holder may see it.
func (s *Server) publicView(l *tokens.Link, now time.Time) *ownerapi.LinkView {
	v := &ownerapi.LinkView{
		Name:        l.Name,
		Kind:        string(l.Kind),
		Window:      apiWindow(l.Window),
		Schedule:    l.Schedule,
		Permissions: normPermissions(l.Permissions),
		Status:      string(l.Status),
	}
	if closes := l.ClosesAt(now); !closes.IsZero() {
		t := closes.UTC()
		v.ClosesAt = &t
	}
	return v
}
