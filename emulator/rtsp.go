package emulator

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/linkgate/linkgate/tokens"
)

// validate checks a camera's source: an rtsp:// or rtsps:// URL with a host
// and a known transport.
func (s *RTSPSource) validate() error {
	// Reasons must not quote the URL: it may hold credentials.
	u, err := url.Parse(s.URL)
	switch {
	case s.URL == "":
		return &tokens.FieldError{Field: "rtsp.url", Reason: "required"}
	case err != nil:
		return &tokens.FieldError{Field: "rtsp.url", Reason: "not a valid URL"}
	case u.Scheme != "rtsp" && u.Scheme != "rtsps":
		return &tokens.FieldError{Field: "rtsp.url", Reason: "want an rtsp:// or rtsps:// URL"}
	case u.Hostname() == "":
		return &tokens.FieldError{Field: "rtsp.url", Reason: "has no host"}
	}
	switch s.Transport {
	case "", TransportTCP, TransportUDP:
		return nil
	}
	return &tokens.FieldError{Field: "rtsp.transport", Reason: `want "tcp" or "udp"`}
}

// Redacted returns the URL without credentials: the user name and password
// become "xxxxx", as do the values of query parameters whose names suggest
// a credential (user, pass, pwd, token, auth, key, secret, ...). The
// fragment is dropped. A URL that does not parse, or whose credentials
// cannot be located, is replaced whole. Credentials written into the path
// itself, as a few cameras do, are not recognised.
func (s RTSPSource) Redacted() string {
	u, err := url.Parse(s.URL)
	if err != nil || u.Opaque != "" {
		return redacted
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(redacted, redacted)
		} else {
			u.User = url.User(redacted)
		}
	}
	u.RawQuery = redactQuery(u.RawQuery)
	u.ForceQuery = false
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// redacted replaces credentials.
const redacted = "xxxxx"

// credentialParams are substrings of query parameter names whose values
// Redacted hides. Hiding too much costs nothing.
var credentialParams = []string{"user", "login", "pass", "pwd", "token", "auth", "key", "secret", "sig", "cred", "session"}

// redactQuery hides the values of credential-like parameters, keeping the
// order and the encoding of the others.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	var b strings.Builder
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		lower := strings.ToLower(name)
		secret := false
		for _, c := range credentialParams {
			if strings.Contains(lower, c) {
				secret = true
				break
			}
		}
		if !secret {
			b.WriteString(part)
			continue
		}
		if !hasValue { // a bare "?password" may be the credential itself
			b.WriteString(redacted)
			continue
		}
		b.WriteString(url.QueryEscape(name))
		b.WriteString("=" + redacted)
	}
	return b.String()
}

func (s RTSPSource) transport() string {
	if s.Transport == "" {
		return TransportTCP
	}
	return s.Transport
}

// String returns the redacted URL.
func (s RTSPSource) String() string { return s.Redacted() }

// Format prints the source redacted, whatever the verb, so that neither
// %v nor %#v nor %s of a struct holding it can show credentials.
func (s RTSPSource) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprintf(f, "emulator.RTSPSource{URL:%q, Transport:%q}", s.Redacted(), s.Transport)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.Redacted())
}

// LogValue logs the redacted URL and the transport.
func (s RTSPSource) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", s.Redacted()), slog.String("transport", s.transport()))
}
