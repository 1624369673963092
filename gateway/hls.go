package gateway

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/media"
	"github.com/linkgate/linkgate/tokens"
)

// The camera's LL-HLS fallback, for browsers without Media Source
// Extensions: GET /l/{token}/hls/{file}, index.m3u8 first, then the files
// the playlists name. Every request is admitted like the live stream's
// socket and on the link's record as it is now, so an owner's change (or
// the window's end) refuses the very next playlist or part request.

var errCameraNotReady = errors.New("camera picture not ready")

func init() {
	sentinelErrors[media.ErrHLSNotFound] = sentinelErrors[tokens.ErrNotFound]
	sentinelErrors[errCameraNotReady] = &publicError{status: http.StatusServiceUnavailable, code: "camera-not-ready",
		message: "The camera's picture is not ready (the camera is connecting or offline). Try again in a moment."}
}

// hlsRoutes adds the LL-HLS files under /l/{token}/hls/.
func (s *Server) hlsRoutes(l fiber.Router) {
	l.Get("/hls/:file", s.serveHLS)
}

// serveHLS answers one LL-HLS file of a camera link. A blocking playlist
// request waits at most media's HLSConfig.BlockTimeout.
func (s *Server) serveHLS(c *fiber.Ctx) error {
	l, err := s.authorizeHLS(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	cam, err := s.devices.GetAny(ctx, l.Device)
	switch {
	case errors.Is(err, emulator.ErrDeviceNotFound), err == nil && cam.RTSP == nil:
		return tokens.ErrNotFound // the camera is gone: so is the link
	case err != nil:
		return tokens.ErrUnavailable
	}
	resp, err := s.media.ServeHLS(ctx, cam.ID, media.Source{URL: cam.RTSP.URL, Transport: cam.RTSP.Transport},
		media.HLSRequest{File: c.Params("file"), Query: string(c.Request().URI().QueryString())})
	var qe *media.HLSQueryError
	switch {
	case err == nil:
	case errors.As(err, &qe):
		return &publicError{status: http.StatusBadRequest, code: codeInvalidField, message: qe.Error(), field: qe.Param}
	case errors.Is(err, media.ErrHLSNotFound):
		return media.ErrHLSNotFound
	case errors.Is(err, media.ErrHLSNotReady):
		return errCameraNotReady
	default: // closing down, a camera record that cannot be pulled, ...
		return tokens.ErrUnavailable
	}
	// Cache-Control: no-store and Referrer-Policy: no-referrer come with
	// every answer under /l/ (pageHeaders).
	c.Set(fiber.HeaderContentType, resp.ContentType)
	return c.Status(resp.Status).Send(resp.Body)
}

// authorizeHLS admits an HLS request as authorizeSocket admits the live
// stream's socket: an allowed Origin if one is sent, a camera link that may
// be opened now and includes live view, and its session cookie (an HLS
// player cannot hand over a token otherwise, and every request of it would
// count a use).
func (s *Server) authorizeHLS(c *fiber.Ctx) (*tokens.Link, error) {
	if s.stopping.Load() {
		return nil, tokens.ErrUnavailable
	}
	if o := c.Get(fiber.HeaderOrigin); o != "" && !s.origins[o] {
		return nil, errForbiddenOrig
	}
	now := s.requestTime(c)
	l, err := s.resolve(c.UserContext(), c.Params("token"), now)
	if err != nil {
		return nil, err
	}
	if l.Kind != tokens.KindCamera {
		return nil, tokens.ErrNotFound
	}
	if !l.Permissions.HasLevel(tokens.LevelLive) {
		return nil, errLevelNotGranted
	}
	sc, err := s.keys.VerifySession(c.Cookies(sessionCookie), now)
	if err != nil || sc.Link != l.ID || sc.Generation != l.Generation {
		return nil, errSessionInvalid
	}
	return l, nil
}
