package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"time"
)

//go:embed static
var staticFiles embed.FS

//go:embed templates/*.html
var templateFiles embed.FS

// Static is the file system served under /static/ (app.css, app.js,
// icon.svg, ...). It is rooted so that "app.css" opens /static/app.css.
var Static fs.FS = mustSub(staticFiles, "static")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

var pages = template.Must(template.ParseFS(templateFiles, "templates/*.html"))

// linkPages holds the link page of each kind, rendered once.
var linkPages = map[string][]byte{
	"device": renderLinkPage("device"),
	"camera": renderLinkPage("camera"),
}

func renderLinkPage(kind string) []byte {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "link.html", struct{ Kind string }{kind}); err != nil {
		panic(fmt.Sprintf("web: link page %q: %v", kind, err))
	}
	return buf.Bytes()
}

// PageCSP is the Content-Security-Policy of every link page: its own
// scripts, styles and connections, nothing inline, no framing, no forms.
const PageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// LinkPage returns the HTML shell for a valid link of the given kind
// ("device" or "camera"; any other kind gets the device page, as the script
// renders whatever the session says). It is the same bytes for every link of
// that kind, computed once at init, and carries no link data: the script
// /static/app.js reads the token from location.pathname (/l/{token}), POSTs to
// /l/{token}/session and renders the JSON it gets back.
//
// The returned slice is shared: callers must not modify it.
func LinkPage(kind string) []byte {
	if p, ok := linkPages[kind]; ok {
		return p
	}
	return linkPages["device"]
}

// ErrorPage is a refusal page (404, 410, 403, 429, 503, ...).
type ErrorPage struct {
	Status  int       // HTTP status
	Code    string    // machine code: "not-found", "expired", "disabled", "used-up", "not-yet-active", "outside-schedule", "rate-limited", "unavailable"
	Title   string    // e.g. "This link has expired"
	Message string    // one or two plain sentences for a human
	Opens   time.Time // when the link opens (for not-yet-active / outside-schedule); zero if unknown
}

// refusal is how a refusal code looks: its default wording, icon and tone.
// whenOpens replaces message when the opening time is known. Keep in step
// with REFUSALS in static/app.js.
type refusal struct {
	title, message, whenOpens, icon, tone string
}

var refusals = map[string]refusal{
	"not-found":        {"This link doesn't work", "It may have been deleted or mistyped. Ask the person who shared it for a new link.", "", "link-off", "stop"},
	"expired":          {"This link has expired", "Its access period has ended. Ask the person who shared it if you still need access.", "", "hourglass", "stop"},
	"disabled":         {"This link is switched off", "The person who shared it has turned it off for now.", "", "power", "stop"},
	"used-up":          {"This link has been used up", "It could only be opened a limited number of times. Ask for a new link if you still need access.", "", "ticket", "stop"},
	"not-yet-active":   {"This link isn't open yet", "It hasn't started yet. Try again later.", "It starts working at the time below.", "calendar", "wait"},
	"outside-schedule": {"This link is closed right now", "It only works at set times. Try again later.", "It only works at set times. It opens again at the time below.", "schedule", "wait"},
	"rate-limited":     {"Too many attempts", "Please wait a moment, then try again.", "", "timer", "warn"},
	"unavailable":      {"Service temporarily unavailable", "The service can't be reached right now. Please try again in a moment.", "", "cloud-off", "warn"},
	"connection-lost":  {"Connection lost", "Check your internet connection.", "", "wifi-off", "warn"},
}

var genericRefusal = refusal{"This link can't be opened", "Something went wrong. Please try again later.", "", "alert", "stop"}

// codeForStatus guesses a refusal code from an HTTP status, for pages that
// were given none.
func codeForStatus(status int) string {
	switch {
	case status == 404:
		return "not-found"
	case status == 410:
		return "expired"
	case status == 429:
		return "rate-limited"
	case status >= 500:
		return "unavailable"
	}
	return ""
}

// errorView is what error.html is executed with.
type errorView struct {
	Status    int
	Code      string
	Title     string
	Message   string
	Icon      string
	Tone      string
	OpensISO  string // RFC 3339, UTC; empty when unknown
	OpensText string // human fallback for browsers without JavaScript
}

// RenderError writes the refusal page p (html/template, escaped). An empty
// Title or Message gets the default wording for p.Code. The opening time is
// rendered in UTC as RFC 3339 inside a <time datetime="..."> element, which
// app.js turns into local time plus a countdown.
func RenderError(w io.Writer, p ErrorPage) error {
	code := p.Code
	if code == "" {
		code = codeForStatus(p.Status)
	}
	r, ok := refusals[code]
	if !ok {
		r = genericRefusal
	}
	v := errorView{
		Status:  p.Status,
		Code:    code,
		Title:   p.Title,
		Message: p.Message,
		Icon:    r.icon,
		Tone:    r.tone,
	}
	if v.Title == "" {
		v.Title = r.title
	}
	if v.Message == "" {
		v.Message = r.message
		if r.whenOpens != "" && !p.Opens.IsZero() {
			v.Message = r.whenOpens
		}
	}
	if !p.Opens.IsZero() {
		t := p.Opens.UTC()
		v.OpensISO = t.Format(time.RFC3339)
		v.OpensText = t.Format("Mon 2 Jan 2006, 15:04 UTC")
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "error.html", v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}
