// Package ownerapi holds the owner API's wire types (the JSON of /api/v1)
// and a Go client for it. The gateway serves these types; the linkgate CLI
// and the load tool use the client.
package ownerapi

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/tokens"
)

// Error is the body of every error answer: {"error": {...}}.
type Error struct {
	Status  int        `json:"-"`
	Code    string     `json:"code"`
	Message string     `json:"message"`
	Field   string     `json:"field,omitempty"`   // the offending request field, for invalid-field
	OpensAt *time.Time `json:"opensAt,omitempty"` // for not-yet-active and outside-schedule
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorBody wraps Error as it travels.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Page is one page of a listing. Next is "" after the last page.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// Window is a link's validity. An absent start or end leaves that side open.
type Window struct {
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
}

// Link is a link as the owner sees it.
type Link struct {
	ID          string             `json:"id"`
	URL         string             `json:"url"`
	Token       string             `json:"token"`
	Name        string             `json:"name"`
	Device      string             `json:"device"`
	Kind        string             `json:"kind"`
	Permissions tokens.Permissions `json:"permissions"`
	Window      Window             `json:"window"`
	Eternal     bool               `json:"eternal"`
	Schedule    *tokens.Schedule   `json:"schedule,omitempty"`
	Status      string             `json:"status"`
	MaxUses     int                `json:"maxUses"`
	MaxSessions int                `json:"maxSessions"`
	Uses        int64              `json:"uses"`
	Version     int64              `json:"version"`
	CreatedAt   time.Time          `json:"createdAt"`
	UpdatedAt   time.Time          `json:"updatedAt"`
}

// LinkCreate is the body of POST /api/v1/links. An absent window, or a
// window without end, is eternal.
type LinkCreate struct {
	Device      string             `json:"device"`
	Name        string             `json:"name"`
	Permissions tokens.Permissions `json:"permissions"`
	Window      *Window            `json:"window,omitempty"`
	Schedule    *tokens.Schedule   `json:"schedule,omitempty"`
	MaxUses     int                `json:"maxUses,omitempty"`
	MaxSessions int                `json:"maxSessions,omitempty"`
}

// LinkPatch is the body of PATCH /api/v1/links/{id}: absent fields stay as
// they are; "window": null makes the link eternal and "schedule": null
// removes the schedule. Changing the device (a swap) checks the permissions
// against the new device.
type LinkPatch struct {
	Name        *string                    `json:"name,omitempty"`
	Device      *string                    `json:"device,omitempty"`
	Permissions *tokens.Permissions        `json:"permissions,omitempty"`
	Window      Optional[Window]           `json:"window,omitzero"`
	Schedule    Optional[*tokens.Schedule] `json:"schedule,omitzero"`
	MaxUses     *int                       `json:"maxUses,omitempty"`
	MaxSessions *int                       `json:"maxSessions,omitempty"`
}

// Optional is a JSON field that tells absent (Set false) from null (Set true,
// Null true) from a value.
type Optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// Some returns an Optional holding v.
func Some[T any](v T) Optional[T] { return Optional[T]{Set: true, Value: v} }

// Null returns an Optional that is explicitly null.
func Null[T any]() Optional[T] { return Optional[T]{Set: true, Null: true} }

// IsZero reports an absent field, for omitzero.
func (o Optional[T]) IsZero() bool { return !o.Set }

// UnmarshalJSON implements json.Unmarshaler.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// MarshalJSON implements json.Marshaler.
func (o Optional[T]) MarshalJSON() ([]byte, error) {
	if o.Null {
		return []byte("null"), nil
	}
	return json.Marshal(o.Value)
}

// RTSP is a camera's source as the owner sees it: the URL with its
// credentials masked.
type RTSP struct {
	URL            string `json:"url"`
	Transport      string `json:"transport"`
	HasCredentials bool   `json:"hasCredentials"`
}

// Device is a device or camera as the owner sees it.
type Device struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Kind      string          `json:"kind"`
	Nodes     []emulator.Node `json:"nodes"`
	RTSP      *RTSP           `json:"rtsp,omitempty"`
	Version   int64           `json:"version"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// DeviceCreate is the body of POST /api/v1/devices. A camera has type
// "camera" and rtsp.
type DeviceCreate struct {
	Name  string               `json:"name"`
	Type  string               `json:"type"`
	Nodes []emulator.Node      `json:"nodes,omitempty"`
	RTSP  *emulator.RTSPSource `json:"rtsp,omitempty"`
}

// DevicePatch is the body of PATCH /api/v1/devices/{id}; absent fields stay.
type DevicePatch struct {
	Name  *string              `json:"name,omitempty"`
	Type  *string              `json:"type,omitempty"`
	Nodes *[]emulator.Node     `json:"nodes,omitempty"`
	RTSP  *emulator.RTSPSource `json:"rtsp,omitempty"`
}

// Access is one entry of a link's access log.
type Access = tokens.Access

// LinkView is a link as its holder may see it. The WebSocket's hello and
// permissions messages carry it.
type LinkView struct {
	Name        string             `json:"name"`
	Kind        string             `json:"kind"`
	Window      Window             `json:"window"`
	Schedule    *tokens.Schedule   `json:"schedule,omitempty"`
	Permissions tokens.Permissions `json:"permissions"`
	Status      string             `json:"status"`
	ClosesAt    *time.Time         `json:"closesAt,omitempty"`
}

// PublicLink is what POST /l/{token}/session answers: the link view, the
// device filtered to what the link permits, and the session.
type PublicLink struct {
	LinkView
	Device  *Device     `json:"device"`
	Session SessionInfo `json:"session"`
}

// SessionInfo describes the session a recipient was given.
type SessionInfo struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expiresAt"`
}
