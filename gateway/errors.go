package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/web"
)

// Error codes of the public contract, by meaning. Clients switch on these,
// not on messages.
const (
	codeInvalidJSON    = "invalid-json"
	codeInvalidField   = "invalid-field"
	codeUnauthorized   = "unauthorized"
	codeNotFound       = "not-found"
	codeConflict       = "conflict"
	codeDeviceInUse    = "device-in-use"
	codeTooLarge       = "too-large"
	codeRateLimited    = "rate-limited"
	codeUnavailable    = "unavailable"
	codeInternal       = "internal"
	codeDisabled       = "disabled"
	codeExpired        = "expired"
	codeUsedUp         = "used-up"
	codeNotYetActive   = "not-yet-active"
	codeOutsideSched   = "outside-schedule"
	codeForbiddenOrig  = "forbidden-origin"
	codeMethodNotAllow = "method-not-allowed"
)

// Sentinels of the gateway itself.
var (
	errRateLimited   = errors.New("too many requests")
	errForbiddenOrig = errors.New("origin not allowed")
	errDeviceInUse   = errors.New("links point at this device")
	errBodyRequired  = errors.New("a JSON body is required")
	errUnknownDevice = errors.New("unknown device")
)

// publicError is an error as the client sees it: a status, a code and a
// message that is safe to show. The cause, if any, goes to the log only.
type publicError struct {
	status  int
	code    string
	message string
	field   string
	opens   time.Time
	cause   error
}

func (e *publicError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.code, e.cause)
	}
	return e.code + ": " + e.message
}

func (e *publicError) Unwrap() error { return e.cause }

// sentinelErrors is what each sentinel means to a client. toPublic answers
// an unwrapped sentinel straight from here, with no allocation: the refusal
// of a forged token must stay as cheap as the token check.
var sentinelErrors = map[error]*publicError{
	tokens.ErrForged:           {status: http.StatusNotFound, code: codeNotFound, message: "Not found."},
	tokens.ErrNotFound:         {status: http.StatusNotFound, code: codeNotFound, message: "Not found."},
	emulator.ErrDeviceNotFound: {status: http.StatusNotFound, code: codeNotFound, message: "Not found."},
	tokens.ErrDisabled:         {status: http.StatusGone, code: codeDisabled, message: "The owner has disabled this link."},
	tokens.ErrExpired:          {status: http.StatusGone, code: codeExpired, message: "This link has expired."},
	tokens.ErrUsedUp:           {status: http.StatusGone, code: codeUsedUp, message: "This link has been used as many times as its owner allowed."},
	tokens.ErrUnavailable:      {status: http.StatusServiceUnavailable, code: codeUnavailable, message: "The service is temporarily unavailable. Try again in a moment."},
	tokens.ErrConflict:         {status: http.StatusConflict, code: codeConflict, message: "The record was changed concurrently; try again."},
	errUnauthorized:            {status: http.StatusUnauthorized, code: codeUnauthorized, message: "A valid API key is required: Authorization: Bearer <key>."},
	errRateLimited:             {status: http.StatusTooManyRequests, code: codeRateLimited, message: "Too many requests. Slow down and try again shortly."},
	errForbiddenOrig:           {status: http.StatusForbidden, code: codeForbiddenOrig, message: "Requests from this origin are not allowed."},
	errDeviceInUse:             {status: http.StatusConflict, code: codeDeviceInUse, message: "Links point at this device; delete them or move them to another device first."},
}

// toPublic maps any error to what the client is told. This is the one place
// where errors become statuses.
func toPublic(err error) *publicError {
	if pe, ok := err.(*publicError); ok {
		return pe
	}
	if pe, ok := sentinelErrors[err]; ok {
		return pe
	}
	var pe *publicError
	if errors.As(err, &pe) {
		return pe
	}
	var closed *tokens.ClosedError
	if errors.As(err, &closed) {
		p := &publicError{status: http.StatusForbidden, code: codeNotYetActive, message: "This link is not active yet.", opens: closed.Opens}
		if errors.Is(err, tokens.ErrOutsideSchedule) {
			p.code, p.message = codeOutsideSched, "This link is closed at this time of the week."
		}
		return p
	}
	if fe, ok := tokens.AsFieldError(err); ok {
		return &publicError{status: http.StatusBadRequest, code: codeInvalidField, message: fe.Error(), field: fe.Field}
	}
	var ve *emulator.ValueError
	if errors.As(err, &ve) {
		return &publicError{status: http.StatusBadRequest, code: codeInvalidField, message: ve.Error()}
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case http.StatusNotFound:
			return &publicError{status: fe.Code, code: codeNotFound, message: "No such route."}
		case http.StatusMethodNotAllowed:
			return &publicError{status: fe.Code, code: codeMethodNotAllow, message: "Method not allowed on this route."}
		case http.StatusRequestEntityTooLarge:
			return &publicError{status: fe.Code, code: codeTooLarge, message: "The request body is too large."}
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return &publicError{status: fe.Code, code: "http-" + fmt.Sprint(fe.Code), message: fe.Message}
		}
	}
	// A wrapped sentinel: its meaning, with the error kept for the log.
	for sentinel, p := range sentinelErrors {
		if errors.Is(err, sentinel) {
			wrapped := *p
			wrapped.cause = err
			return &wrapped
		}
	}
	return &publicError{status: http.StatusInternalServerError, code: codeInternal, message: "Internal error.", cause: err}
}

func invalidJSON(format string, args ...any) *publicError {
	return &publicError{status: http.StatusBadRequest, code: codeInvalidJSON, message: fmt.Sprintf(format, args...)}
}

var headerRetryAfter, retryAfter = []byte(fiber.HeaderRetryAfter), []byte("5")

// errorHandler is Fiber's error handler: JSON for everything but link pages,
// which get an HTML page.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	pe := toPublic(err)
	s.logError(c, pe)
	if pe.status == http.StatusTooManyRequests || pe.status == http.StatusServiceUnavailable {
		c.Response().Header.SetCanonical(headerRetryAfter, retryAfter)
	}
	c.Status(pe.status)
	if c.Method() == fiber.MethodGet && c.Locals(localPage) != nil {
		return s.renderErrorPage(c, pe)
	}
	body := ownerapi.ErrorBody{Error: &ownerapi.Error{Code: pe.code, Message: pe.message, Field: pe.field}}
	if !pe.opens.IsZero() {
		t := pe.opens.UTC()
		body.Error.OpensAt = &t
	}
	data, _ := json.Marshal(body)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(data)
}

func (s *Server) logError(c *fiber.Ctx, pe *publicError) {
	switch {
	case pe.status >= 500:
		// The path may hold a link token: log the route pattern instead.
		s.log.Error("request failed", "method", c.Method(), "route", c.Route().Path, "status", pe.status, "err", pe.cause)
	case pe.status == http.StatusTooManyRequests:
		s.metrics.rateLimited.Inc() // counted, not logged: an attack would flood the log
	}
}

var pageTitles = map[string]string{
	codeNotFound:     "This link does not exist",
	codeDisabled:     "This link is disabled",
	codeExpired:      "This link has expired",
	codeUsedUp:       "This link is used up",
	codeNotYetActive: "This link is not open yet",
	codeOutsideSched: "This link is closed right now",
	codeRateLimited:  "Too many attempts",
	codeUnavailable:  "Temporarily unavailable",
}

// renderErrorPage answers a refusal page. Pages that do not depend on the
// time are rendered once per code and then served as bytes: floods of
// forged tokens cost no template work.
func (s *Server) renderErrorPage(c *fiber.Ctx, pe *publicError) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	if !pe.opens.IsZero() {
		return s.writeErrorPage(c, pe)
	}
	if page, ok := s.errorPages.Load(pe.code); ok {
		return c.Send(page.([]byte))
	}
	var buf bytes.Buffer
	if err := s.writeErrorPage(&buf, pe); err != nil {
		return err
	}
	s.errorPages.Store(pe.code, buf.Bytes())
	return c.Send(buf.Bytes())
}

func (s *Server) writeErrorPage(w io.Writer, pe *publicError) error {
	title := pageTitles[pe.code]
	if title == "" {
		title = "Something went wrong"
	}
	msg := pe.message
	if pe.code == codeNotFound {
		msg = "Check that you copied the whole link. If it worked before, its owner may have deleted it."
	}
	return web.RenderError(w, web.ErrorPage{Status: pe.status, Code: pe.code, Title: title, Message: msg, Opens: pe.opens})
}
