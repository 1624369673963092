package ownerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/linkgate/linkgate/emulator"
)

// Client limits.
const (
	// DefaultTimeout bounds each request of a Client whose HTTP field is nil.
	DefaultTimeout = 30 * time.Second
	// MaxResponseSize is the most a Client reads of a successful answer; a
	// larger one is an error.
	MaxResponseSize = 8 << 20
	// maxErrorSize is the most read of an error answer; the rest is dropped.
	maxErrorSize = 64 << 10
	// maxErrorText is the most of a non-JSON error body kept as the message.
	maxErrorText = 512
)

var defaultHTTP = &http.Client{Timeout: DefaultTimeout}

// Client calls the owner API of a linkgate gateway. A Client is safe for
// concurrent use once its fields are set.
//
// Every method returns an *Error, with Status set, when the server answers
// with a status other than 2xx, and another error when the request could not
// be made or the answer could not be read.
type Client struct {
	// BaseURL is the gateway's root, such as "https://links.example.com";
	// the API's paths are appended to it.
	BaseURL string
	// APIKey is the owner's API key, sent as a bearer token. It is never
	// part of an error, and LogValue and String leave it out.
	APIKey string
	// HTTP sends the requests. It defaults to a client with a timeout of
	// DefaultTimeout.
	HTTP *http.Client
}

// LogValue implements slog.LogValuer. It logs whether a key is set, never
// the key.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("baseURL", c.BaseURL), slog.Bool("apiKey", c.APIKey != ""))
}

// String describes the client without its API key.
func (c *Client) String() string { return "ownerapi.Client(" + c.BaseURL + ")" }

// CreateDevice creates a device (a camera too, with Type "camera" and RTSP).
func (c *Client) CreateDevice(ctx context.Context, d DeviceCreate) (*Device, error) {
	return c.createDevice(ctx, "/api/v1/devices", d)
}

// ListDevices returns one page of the owner's devices and cameras. An empty
// cursor starts at the beginning; a limit of 0 takes the server's default.
func (c *Client) ListDevices(ctx context.Context, cursor string, limit int) (*Page[Device], error) {
	return c.ListDevicesOfType(ctx, "", cursor, limit)
}

// ListDevicesOfType is ListDevices restricted to devices of type typ; an
// empty typ lists all.
func (c *Client) ListDevicesOfType(ctx context.Context, typ, cursor string, limit int) (*Page[Device], error) {
	q := pageQuery(cursor, limit)
	if typ != "" {
		q.Set("type", typ)
	}
	return c.listDevices(ctx, "/api/v1/devices", q)
}

// GetDevice returns one device or camera.
func (c *Client) GetDevice(ctx context.Context, id string) (*Device, error) {
	return c.getDevice(ctx, "/api/v1/devices/", id)
}

// UpdateDevice changes the fields that p sets.
func (c *Client) UpdateDevice(ctx context.Context, id string, p DevicePatch) (*Device, error) {
	return c.updateDevice(ctx, "/api/v1/devices/", id, p)
}

// DeleteDevice deletes a device. The server refuses, with code
// "device-in-use", while links point at it.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	return c.deleteDevice(ctx, "/api/v1/devices/", id)
}

// CreateCamera creates a camera through /api/v1/cameras. An empty d.Type
// is set to "camera".
func (c *Client) CreateCamera(ctx context.Context, d DeviceCreate) (*Device, error) {
	if d.Type == "" {
		d.Type = emulator.TypeCamera
	}
	return c.createDevice(ctx, "/api/v1/cameras", d)
}

// ListCameras is ListDevices for cameras only.
func (c *Client) ListCameras(ctx context.Context, cursor string, limit int) (*Page[Device], error) {
	return c.listDevices(ctx, "/api/v1/cameras", pageQuery(cursor, limit))
}

// GetCamera is GetDevice for cameras only: any other device is not found.
func (c *Client) GetCamera(ctx context.Context, id string) (*Device, error) {
	return c.getDevice(ctx, "/api/v1/cameras/", id)
}

// UpdateCamera is UpdateDevice for cameras only.
func (c *Client) UpdateCamera(ctx context.Context, id string, p DevicePatch) (*Device, error) {
	return c.updateDevice(ctx, "/api/v1/cameras/", id, p)
}

// DeleteCamera is DeleteDevice for cameras only.
func (c *Client) DeleteCamera(ctx context.Context, id string) error {
	return c.deleteDevice(ctx, "/api/v1/cameras/", id)
}

func (c *Client) createDevice(ctx context.Context, collection string, d DeviceCreate) (*Device, error) {
	out := new(Device)
	if err := c.do(ctx, http.MethodPost, collection, nil, d, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) listDevices(ctx context.Context, collection string, q url.Values) (*Page[Device], error) {
	out := new(Page[Device])
	if err := c.do(ctx, http.MethodGet, collection, q, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) getDevice(ctx context.Context, prefix, id string) (*Device, error) {
	p, err := itemPath(prefix, id)
	if err != nil {
		return nil, err
	}
	out := new(Device)
	if err := c.do(ctx, http.MethodGet, p, nil, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) updateDevice(ctx context.Context, prefix, id string, patch DevicePatch) (*Device, error) {
	p, err := itemPath(prefix, id)
	if err != nil {
		return nil, err
	}
	out := new(Device)
	if err := c.do(ctx, http.MethodPatch, p, nil, patch, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) deleteDevice(ctx context.Context, prefix, id string) error {
	p, err := itemPath(prefix, id)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil, nil)
}

// CreateLink mints a link. The answer carries its URL and token.
func (c *Client) CreateLink(ctx context.Context, l LinkCreate) (*Link, error) {
	out := new(Link)
	if err := c.do(ctx, http.MethodPost, "/api/v1/links", nil, l, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ListLinks returns one page of the owner's links, newest first. An empty
// cursor starts at the beginning; a limit of 0 takes the server's default.
func (c *Client) ListLinks(ctx context.Context, cursor string, limit int) (*Page[Link], error) {
	out := new(Page[Link])
	if err := c.do(ctx, http.MethodGet, "/api/v1/links", pageQuery(cursor, limit), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetLink returns one link.
func (c *Client) GetLink(ctx context.Context, id string) (*Link, error) {
	return c.linkCall(ctx, http.MethodGet, id, "", nil)
}

// UpdateLink changes the fields that p sets; see LinkPatch.
func (c *Client) UpdateLink(ctx context.Context, id string, p LinkPatch) (*Link, error) {
	return c.linkCall(ctx, http.MethodPatch, id, "", p)
}

// DisableLink switches a link off: it answers 410 until enabled again, and
// its open sessions are closed.
func (c *Client) DisableLink(ctx context.Context, id string) (*Link, error) {
	return c.linkCall(ctx, http.MethodPost, id, "/disable", nil)
}

// EnableLink switches a disabled link back on.
func (c *Client) EnableLink(ctx context.Context, id string) (*Link, error) {
	return c.linkCall(ctx, http.MethodPost, id, "/enable", nil)
}

// DeleteLink deletes a link for good.
func (c *Client) DeleteLink(ctx context.Context, id string) error {
	p, err := itemPath("/api/v1/links/", id)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil, nil)
}

// AccessLog returns up to limit of the newest entries of a link's access
// log, newest first; a limit of 0 takes the server's default.
func (c *Client) AccessLog(ctx context.Context, id string, limit int) (*Page[Access], error) {
	p, err := itemPath("/api/v1/links/", id)
	if err != nil {
		return nil, err
	}
	out := new(Page[Access])
	if err := c.do(ctx, http.MethodGet, p+"/log", pageQuery("", limit), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) linkCall(ctx context.Context, method, id, suffix string, in any) (*Link, error) {
	p, err := itemPath("/api/v1/links/", id)
	if err != nil {
		return nil, err
	}
	out := new(Link)
	if err := c.do(ctx, method, p+suffix, nil, in, out); err != nil {
		return nil, err
	}
	return out, nil
}

// OpenSession opens a link as its recipient would, on the public route POST
// /l/{token}/session, which needs no API key. It counts a use of the link.
// The session cookie lands in c.HTTP's cookie jar, if it has one.
func (c *Client) OpenSession(ctx context.Context, token string) (*PublicLink, error) {
	p, err := itemPath("/l/", token)
	if err != nil {
		return nil, err
	}
	out := new(PublicLink)
	if err := c.send(ctx, http.MethodPost, p+"/session", nil, false, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// itemPath joins a collection prefix and an escaped id.
func itemPath(prefix, id string) (string, error) {
	if id == "" {
		return "", errors.New("ownerapi: empty id")
	}
	return prefix + url.PathEscape(id), nil
}

func pageQuery(cursor string, limit int) url.Values {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// do sends an owner API request, with the API key.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	return c.send(ctx, method, path, q, true, in, out)
}

// send encodes in (if not nil) as the JSON body, sends the request and
// decodes a 2xx answer into out (if not nil). Any other answer becomes an
// *Error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, auth bool, in, out any) error {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("ownerapi: encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("ownerapi: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth && c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err // a *url.Error: method, URL (password stripped) and cause
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.errorFrom(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return fmt.Errorf("ownerapi: reading %s %s answer: %w", method, path, err)
	}
	if len(b) > MaxResponseSize {
		return fmt.Errorf("ownerapi: %s %s answer exceeds %d bytes", method, path, MaxResponseSize)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("ownerapi: decoding %s %s answer: %w", method, path, err)
	}
	return nil
}

// errorFrom turns a non-2xx answer into an *Error. A body that is not the
// API's error JSON becomes code "http-<status>" with the body's text as the
// message. The API key is cut out of the message, in case a server echoes
// it.
func (c *Client) errorFrom(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorSize)) // a short read still has a status
	var eb ErrorBody
	e := &Error{Code: "http-" + strconv.Itoa(resp.StatusCode), Message: errorText(b, resp.Status)}
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		e = eb.Error
	}
	e.Status = resp.StatusCode
	if c.APIKey != "" {
		e.Message = strings.ReplaceAll(e.Message, c.APIKey, "[redacted]")
		e.Field = strings.ReplaceAll(e.Field, c.APIKey, "[redacted]")
	}
	return e
}

// errorText makes a one-line message from a non-JSON error body: its text,
// shortened, or the status line when the body is empty or not text.
func errorText(b []byte, status string) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" || !utf8.ValidString(s) {
		return status
	}
	if len(s) > maxErrorText {
		cut := maxErrorText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
