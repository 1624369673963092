package gateway

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
)

//go:embed openapi.json
var openAPIDoc []byte

const localOwner = "lg.owner"

func (s *Server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openAPIDoc)
}

// apiBodyLimit refuses request bodies over the configured limit.
func (s *Server) apiBodyLimit(c *fiber.Ctx) error {
	if len(c.Body()) > s.cfg.BodyLimit {
		return fiber.ErrRequestEntityTooLarge
	}
	return c.Next()
}

// authenticate admits owner API requests that carry an owner's API key.
func (s *Server) authenticate(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	key, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok {
		return errUnauthorized
	}
	owner, err := s.owners.Authenticate(c.UserContext(), strings.TrimSpace(key))
	if err != nil {
		return err
	}
	c.Locals(localOwner, owner)
	return c.Next()
}

func ownerOf(c *fiber.Ctx) string { return c.Locals(localOwner).(string) }

func (s *Server) apiRoutes(api fiber.Router) {
	for _, base := range []string{"/devices", "/cameras"} {
		camera := base == "/cameras"
		api.Post(base, func(c *fiber.Ctx) error { return s.createDevice(c, camera) })
		api.Get(base, func(c *fiber.Ctx) error { return s.listDevices(c, camera) })
		api.Get(base+"/:id", func(c *fiber.Ctx) error { return s.getDevice(c, camera) })
		api.Patch(base+"/:id", func(c *fiber.Ctx) error { return s.updateDevice(c, camera) })
		api.Delete(base+"/:id", func(c *fiber.Ctx) error { return s.deleteDevice(c, camera) })
	}
	api.Post("/links", s.createLink)
	api.Get("/links", s.listLinks)
	api.Get("/links/:id", s.getLink)
	api.Patch("/links/:id", s.updateLink)
	api.Delete("/links/:id", s.deleteLink)
	api.Post("/links/:id/disable", func(c *fiber.Ctx) error { return s.setStatus(c, tokens.StatusDisabled) })
	api.Post("/links/:id/enable", func(c *fiber.Ctx) error { return s.setStatus(c, tokens.StatusActive) })
	api.Get("/links/:id/log", s.accessLog)
}

// decodeBody decodes a JSON request body strictly: unknown fields, wrong
// types and trailing data are refused with a message that names the field.
func decodeBody(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return invalidJSON("%v", errBodyRequired)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidJSON("unexpected data after the JSON value")
	}
	return nil
}

func describeJSONError(err error) *publicError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		pe := invalidJSON("field %q: want %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
		pe.field = typeErr.Field
		return pe
	case errors.As(err, &syntaxErr):
		return invalidJSON("malformed JSON at byte %d", syntaxErr.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		pe := invalidJSON("unknown field %q", name)
		pe.field = name
		return pe
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidJSON("truncated JSON")
	}
	// Errors from the types' own UnmarshalJSON (times, ids) carry no secrets.
	return invalidJSON("%v", err)
}

func queryLimit(c *fiber.Ctx) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > tokens.MaxPageSize {
		return 0, &tokens.FieldError{Field: "limit", Reason: fmt.Sprintf("must be an integer from 1 to %d", tokens.MaxPageSize)}
	}
	return n, nil
}

// --- devices and cameras ---

// ownedDevice loads the owner's device; through the camera routes only
// cameras exist.
func (s *Server) ownedDevice(c *fiber.Ctx, camera bool) (*emulator.Device, error) {
	d, err := s.devices.Get(c.UserContext(), ownerOf(c), c.Params("id"))
	if err != nil {
		return nil, err
	}
	if camera && d.Kind() != tokens.KindCamera {
		return nil, emulator.ErrDeviceNotFound
	}
	return d, nil
}

func (s *Server) createDevice(c *fiber.Ctx, camera bool) error {
	var req ownerapi.DeviceCreate
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if camera && req.Type == "" {
		req.Type = "camera"
	}
	if camera && req.Type != "camera" {
		return &tokens.FieldError{Field: "type", Reason: `must be "camera" on /cameras`}
	}
	d := &emulator.Device{Owner: ownerOf(c), Name: req.Name, Type: req.Type, Nodes: req.Nodes, RTSP: req.RTSP}
	if err := s.devices.Create(c.UserContext(), d); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(ownerDevice(d))
}

func (s *Server) listDevices(c *fiber.Ctx, camera bool) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	kind := c.Query("type")
	if camera {
		kind = "camera"
	}
	// Filtering happens after paging, so a filtered page may be short; the
	// cursor stays valid either way.
	items, next, err := s.devices.List(c.UserContext(), ownerOf(c), c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	page := ownerapi.Page[*ownerapi.Device]{Items: []*ownerapi.Device{}, Next: next}
	for _, d := range items {
		if kind == "" || d.Type == kind {
			page.Items = append(page.Items, ownerDevice(d))
		}
	}
	return c.JSON(page)
}

func (s *Server) getDevice(c *fiber.Ctx, camera bool) error {
	d, err := s.ownedDevice(c, camera)
	if err != nil {
		return err
	}
	return c.JSON(ownerDevice(d))
}

func (s *Server) updateDevice(c *fiber.Ctx, camera bool) error {
	var req ownerapi.DevicePatch
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if _, err := s.ownedDevice(c, camera); err != nil {
		return err
	}
	d, err := s.devices.Update(c.UserContext(), ownerOf(c), c.Params("id"), func(d *emulator.Device) error {
		if req.Name != nil {
			d.Name = *req.Name
		}
		if req.Type != nil {
			d.Type = *req.Type
		}
		if req.Nodes != nil {
			d.Nodes = *req.Nodes
		}
		if req.RTSP != nil {
			d.RTSP = req.RTSP
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.links.PublishDevice(c.UserContext(), d.ID); err != nil {
		return err
	}
	return c.JSON(ownerDevice(d))
}

func (s *Server) deleteDevice(c *fiber.Ctx, camera bool) error {
	d, err := s.ownedDevice(c, camera)
	if err != nil {
		return err
	}
	ids, err := s.links.LinksOfDevice(c.UserContext(), d.ID)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		return &publicError{status: http.StatusConflict, code: codeDeviceInUse,
			message: fmt.Sprintf("%d link(s) point at this device; delete them or move them to another device first.", len(ids))}
	}
	if err := s.devices.Delete(c.UserContext(), ownerOf(c), d.ID); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// ownerDevice is the owner's view of a device: RTSP credentials masked.
func ownerDevice(d *emulator.Device) *ownerapi.Device {
	v := publicDevice(d)
	if d.RTSP != nil {
		transport := d.RTSP.Transport
		if transport == "" {
			transport = "tcp"
		}
		v.RTSP = &ownerapi.RTSP{URL: d.RTSP.Redacted(), Transport: transport, HasCredentials: d.RTSP.Redacted() != d.RTSP.URL}
	}
	v.Version = d.Version
	return v
}

// publicDevice is a device as a link holder may see it: no source, no owner.
func publicDevice(d *emulator.Device) *ownerapi.Device {
	nodes := d.Nodes
	if nodes == nil {
		nodes = []emulator.Node{}
	}
	return &ownerapi.Device{ID: d.ID, Name: d.Name, Type: d.Type, Kind: string(d.Kind()), Nodes: nodes, CreatedAt: d.Created, UpdatedAt: d.Updated}
}

// --- links ---

func (s *Server) linkID(c *fiber.Ctx) (tokens.LinkID, error) {
	return tokens.ParseLinkID(c.Params("id"))
}

func (s *Server) linkView(l *tokens.Link) *ownerapi.Link {
	return &ownerapi.Link{
		ID:          l.ID.String(),
		URL:         s.LinkURL(l.Token),
		Token:       l.Token,
		Name:        l.Name,
		Device:      l.Device,
		Kind:        string(l.Kind),
		Permissions: normPermissions(l.Permissions),
		Window:      apiWindow(l.Window),
		Eternal:     l.Window.Eternal(),
		Schedule:    l.Schedule,
		Status:      string(l.Status),
		MaxUses:     l.MaxUses,
		MaxSessions: l.MaxSessions,
		Uses:        l.Uses,
		Version:     l.Version,
		CreatedAt:   l.Created,
		UpdatedAt:   l.Updated,
	}
}

func apiWindow(w tokens.Window) ownerapi.Window {
	var v ownerapi.Window
	if !w.Start.IsZero() {
		t := w.Start.UTC()
		v.Start = &t
	}
	if !w.End.IsZero() {
		t := w.End.UTC()
		v.End = &t
	}
	return v
}

func tokensWindow(w *ownerapi.Window) tokens.Window {
	var v tokens.Window
	if w == nil {
		return v
	}
	if w.Start != nil {
		v.Start = w.Start.UTC().Truncate(time.Second)
	}
	if w.End != nil {
		v.End = w.End.UTC().Truncate(time.Second)
	}
	return v
}

// normPermissions answers empty lists rather than nulls.
func normPermissions(p tokens.Permissions) tokens.Permissions {
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return tokens.Permissions{Control: orEmpty(p.Control), View: orEmpty(p.View), Camera: orEmpty(p.Camera)}
}

// Limits on link fields.
const (
	maxNameLen     = 100
	maxUsesLimit   = 1_000_000
	maxSessionsCap = 10_000
)

// checkLink validates a link's fields against its device, naming the first
// bad field. It also fills Kind from the device and removes duplicates.
func checkLink(l *tokens.Link, d *emulator.Device, fieldPrefix string) error {
	l.Name = strings.TrimSpace(l.Name)
	if l.Name == "" {
		l.Name = d.Name
	}
	if utf8.RuneCountInString(l.Name) > maxNameLen || strings.ContainsFunc(l.Name, isControl) {
		return &tokens.FieldError{Field: "name", Reason: fmt.Sprintf("must be at most %d characters, without control characters", maxNameLen)}
	}
	l.Kind = d.Kind()
	p := &l.Permissions
	p.Control, p.View, p.Camera = dedupe(p.Control), dedupe(p.View), dedupe(p.Camera)
	for i, prop := range p.Control {
		pr, ok := d.Property(prop)
		switch {
		case !ok:
			return &tokens.FieldError{Field: fmt.Sprintf("%scontrol[%d]", fieldPrefix, i), Reason: fmt.Sprintf("%q is not a property of device %s", prop, d.ID)}
		case !pr.Settable:
			return &tokens.FieldError{Field: fmt.Sprintf("%scontrol[%d]", fieldPrefix, i), Reason: fmt.Sprintf("%q is read-only", prop)}
		}
	}
	for i, prop := range p.View {
		if _, ok := d.Property(prop); !ok {
			return &tokens.FieldError{Field: fmt.Sprintf("%sview[%d]", fieldPrefix, i), Reason: fmt.Sprintf("%q is not a property of device %s", prop, d.ID)}
		}
	}
	for i, lvl := range p.Camera {
		switch {
		case l.Kind != tokens.KindCamera:
			return &tokens.FieldError{Field: fmt.Sprintf("%scamera[%d]", fieldPrefix, i), Reason: "camera levels need a camera"}
		case !slices.Contains(tokens.CameraLevels, lvl):
			return &tokens.FieldError{Field: fmt.Sprintf("%scamera[%d]", fieldPrefix, i), Reason: fmt.Sprintf("unknown level %q (want live, archive, notices or download)", lvl)}
		}
	}
	if err := l.Window.Validate(); err != nil {
		return err
	}
	if l.Schedule != nil {
		if err := l.Schedule.Validate(); err != nil {
			return err
		}
	}
	if l.MaxUses < 0 || l.MaxUses > maxUsesLimit {
		return &tokens.FieldError{Field: "maxUses", Reason: fmt.Sprintf("must be 0 (no limit) to %d", maxUsesLimit)}
	}
	if l.MaxSessions < 0 || l.MaxSessions > maxSessionsCap {
		return &tokens.FieldError{Field: "maxSessions", Reason: fmt.Sprintf("must be 0 (no limit) to %d", maxSessionsCap)}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func dedupe(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// linkDevice loads the device a link is to point at; another owner's device
// is as unknown as a missing one.
func (s *Server) linkDevice(c *fiber.Ctx, id string) (*emulator.Device, error) {
	if id == "" {
		return nil, &tokens.FieldError{Field: "device", Reason: "required"}
	}
	d, err := s.devices.Get(c.UserContext(), ownerOf(c), id)
	if errors.Is(err, emulator.ErrDeviceNotFound) {
		return nil, &tokens.FieldError{Field: "device", Reason: fmt.Sprintf("%v %q", errUnknownDevice, id)}
	}
	return d, err
}

func (s *Server) createLink(c *fiber.Ctx) error {
	var req ownerapi.LinkCreate
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	d, err := s.linkDevice(c, req.Device)
	if err != nil {
		return err
	}
	l := &tokens.Link{
		Owner: ownerOf(c), Device: d.ID, Name: req.Name, Permissions: req.Permissions,
		Window: tokensWindow(req.Window), Schedule: req.Schedule, MaxUses: req.MaxUses, MaxSessions: req.MaxSessions,
	}
	if err := checkLink(l, d, "permissions."); err != nil {
		return err
	}
	if !l.Window.End.IsZero() && !l.Window.End.After(s.cfg.Now()) {
		return &tokens.FieldError{Field: "window.end", Reason: "must be in the future"}
	}
	if err := s.links.Create(c.UserContext(), s.keys, l); err != nil {
		return err
	}
	c.Location("/api/v1/links/" + l.ID.String())
	return c.Status(http.StatusCreated).JSON(s.linkView(l))
}

func (s *Server) listLinks(c *fiber.Ctx) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	items, next, err := s.links.List(c.UserContext(), ownerOf(c), c.Query("cursor"), limit)
	if err != nil {
		return err
	}
	page := ownerapi.Page[*ownerapi.Link]{Items: make([]*ownerapi.Link, 0, len(items)), Next: next}
	for _, l := range items {
		page.Items = append(page.Items, s.linkView(l))
	}
	return c.JSON(page)
}

func (s *Server) getLink(c *fiber.Ctx) error {
	id, err := s.linkID(c)
	if err != nil {
		return err
	}
	l, err := s.links.GetOwned(c.UserContext(), ownerOf(c), id)
	if err != nil {
		return err
	}
	return c.JSON(s.linkView(l))
}

func (s *Server) updateLink(c *fiber.Ctx) error {
	id, err := s.linkID(c)
	if err != nil {
		return err
	}
	var req ownerapi.LinkPatch
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	// Another owner's link is not found, whatever the body says.
	if _, err := s.links.GetOwned(c.UserContext(), ownerOf(c), id); err != nil {
		return err
	}
	// The device is looked up outside the update function, which may run
	// more than once.
	var dev *emulator.Device
	if req.Device != nil {
		if dev, err = s.linkDevice(c, *req.Device); err != nil {
			return err
		}
	}
	l, err := s.links.Update(c.UserContext(), ownerOf(c), id, tokens.OpUpdated, func(l *tokens.Link) error {
		d := dev
		if d == nil {
			var err error
			if d, err = s.devices.GetAny(c.UserContext(), l.Device); err != nil {
				return err
			}
		}
		l.Device = d.ID
		if req.Name != nil {
			l.Name = *req.Name
		}
		if req.Permissions != nil {
			l.Permissions = *req.Permissions
		}
		if req.Window.Set {
			l.Window = tokens.Window{}
			if !req.Window.Null {
				l.Window = tokensWindow(&req.Window.Value)
			}
		}
		if req.Schedule.Set {
			l.Schedule = req.Schedule.Value // nil when null
		}
		if req.MaxUses != nil {
			l.MaxUses = *req.MaxUses
		}
		if req.MaxSessions != nil {
			l.MaxSessions = *req.MaxSessions
		}
		return checkLink(l, d, "permissions.")
	})
	if err != nil {
		return err
	}
	return c.JSON(s.linkView(l))
}

func (s *Server) setStatus(c *fiber.Ctx, st tokens.Status) error {
	id, err := s.linkID(c)
	if err != nil {
		return err
	}
	op := tokens.OpEnabled
	if st == tokens.StatusDisabled {
		op = tokens.OpDisabled
	}
	l, err := s.links.Update(c.UserContext(), ownerOf(c), id, op, func(l *tokens.Link) error {
		l.Status = st
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(s.linkView(l))
}

func (s *Server) deleteLink(c *fiber.Ctx) error {
	id, err := s.linkID(c)
	if err != nil {
		return err
	}
	if err := s.links.Delete(c.UserContext(), ownerOf(c), id); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

func (s *Server) accessLog(c *fiber.Ctx) error {
	id, err := s.linkID(c)
	if err != nil {
		return err
	}
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	entries, err := s.links.AccessLog(c.UserContext(), ownerOf(c), id, limit)
	if err != nil {
		return err
	}
	return c.JSON(ownerapi.Page[tokens.Access]{Items: entries})
}
