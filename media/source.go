package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// ErrInvalidSource is returned by [Manager.Watch] for a [Source] that cannot
// be pulled (a URL that does not parse, a scheme other than rtsp or rtsps, an
// unknown transport). It is a configuration error of the camera record, not
// of the viewer. The wrapped detail never contains the URL.
var ErrInvalidSource = errors.New("media: invalid camera source")

// Source is where a camera's stream comes from. Credentials in URL stay on the
// server: the package never logs URL or puts it in an error; [Source.LogValue]
// and [Source.String] print it without userinfo and query.
type Source struct {
	// URL is the camera's rtsp:// or rtsps:// address. It may carry
	// credentials as userinfo (rtsp://user:pass@host/path); the RTSP client
	// answers Basic and Digest challenges with them.
	URL string
	// Transport is "tcp" (RTP interleaved in the RTSP connection; the
	// default when empty) or "udp".
	Transport string
}

// LogValue implements [slog.LogValuer]: the URL without userinfo, query and
// fragment, and the transport.
func (s Source) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(s.URL)),
		slog.String("transport", s.transport()),
	)
}

// String returns the URL without userinfo, query and fragment, and the
// transport, so that fmt's %v and %+v cannot leak credentials either.
func (s Source) String() string {
	return redactURL(s.URL) + " (" + s.transport() + ")"
}

// GoString is String, for %#v.
func (s Source) GoString() string { return "media.Source{" + s.String() + "}" }

// same reports whether o pulls the same stream the same way.
func (s Source) same(o Source) bool {
	return s.URL == o.URL && s.transport() == o.transport()
}

func (s Source) transport() string {
	if s.Transport == "" {
		return "tcp"
	}
	return strings.ToLower(s.Transport)
}

// parse checks the source and returns its URL and transport for the RTSP
// client.
func (s Source) parse() (*base.URL, gortsplib.Transport, error) {
	var tr gortsplib.Transport
	switch s.transport() {
	case "tcp":
		tr = gortsplib.TransportTCP
	case "udp":
		tr = gortsplib.TransportUDP
	default:
		return nil, 0, fmt.Errorf("%w: transport must be tcp or udp", ErrInvalidSource)
	}
	// The parser's own error quotes the URL, so it is not wrapped.
	u, err := base.ParseURL(s.URL)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: URL does not parse", ErrInvalidSource)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, 0, fmt.Errorf("%w: URL scheme must be rtsp or rtsps", ErrInvalidSource)
	}
	if u.Host == "" {
		return nil, 0, fmt.Errorf("%w: URL has no host", ErrInvalidSource)
	}
	return u, tr, nil
}

// redactURL returns raw without userinfo, query and fragment.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// redactError returns err's text with the source URL and its password
// replaced, for errors of the RTSP client that might quote them.
func redactError(err error, raw string) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	u, perr := url.Parse(raw)
	if perr != nil {
		return strings.ReplaceAll(s, raw, "(URL)")
	}
	s = strings.ReplaceAll(s, raw, redactURL(raw))
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "xxxxx")
		}
	}
	if u.RawQuery != "" {
		s = strings.ReplaceAll(s, u.RawQuery, "xxxxx")
	}
	return s
}
