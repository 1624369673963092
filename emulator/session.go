package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/linkgate/linkgate/tokens"
)

// Session is what one open page of a link may see and do. It filters the
// device's state to the link's permissions and checks each command before it
// may reach the bus. It knows nothing of the transport: the gateway feeds it
// frames and sends what it returns.
//
// The link's permissions change while a session is open (owner edits); mu
// guards them and the device, so the connection's reader, the hub's
// deliveries and the owner-change handler may all use one Session.
type Session struct {
	ID string

	mu     sync.RWMutex // guards perms and device
	perms  tokens.Permissions
	device *Device

	limit *rate.Limiter // commands; touched by the reader goroutine only
}

// SessionLimits bound what one session may send.
type SessionLimits struct {
	// Commands is the sustained command rate per second; it defaults to 20.
	Commands float64
	// Burst is how many commands may come at once; it defaults to 40.
	Burst int
}

// NewSession returns a session of a link with perms on device d.
func NewSession(id string, perms tokens.Permissions, d *Device, lim SessionLimits) *Session {
	if lim.Commands <= 0 {
		lim.Commands = 20
	}
	if lim.Burst <= 0 {
		lim.Burst = 40
	}
	return &Session{ID: id, perms: perms, device: d, limit: rate.NewLimiter(rate.Limit(lim.Commands), lim.Burst)}
}

// Update replaces the permissions (and device description) after an owner
// edit and returns the permissions message for the page.
func (s *Session) Update(link any, perms tokens.Permissions, d *Device, state map[string]json.RawMessage) []byte {
	s.mu.Lock()
	s.perms, s.device = perms, d
	s.mu.Unlock()
	return s.encode(PermissionsMsg{Type: "permissions", Link: link, Permissions: perms, Device: s.View(), State: s.Filter(state)})
}

// Permissions returns the session's current permissions.
func (s *Session) Permissions() tokens.Permissions {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.perms
}

// Visible reports whether the page may see a property.
func (s *Session) Visible(prop string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.visible(prop)
}

func (s *Session) visible(prop string) bool {
	_, exists := s.device.Property(prop)
	return exists && s.perms.CanView(prop)
}

// View returns the device as the page may see it.
func (s *Session) View() *Device {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.device.Filter(s.perms.CanView)
}

// Filter returns the part of a state the page may see.
func (s *Session) Filter(state map[string]json.RawMessage) map[string]json.RawMessage {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]json.RawMessage, len(state))
	for p, v := range state {
		if s.visible(p) {
			out[p] = v
		}
	}
	return out
}

// Hello is the first message of a session.
func (s *Session) Hello(link any, state map[string]json.RawMessage, online bool) []byte {
	return s.encode(HelloMsg{Type: "hello", Link: link, Device: s.View(), State: s.Filter(state), Online: online})
}

// StateMessage returns the message for a state change, or nil when the page
// may not see the property. For a change from the Hub the bytes are shared
// with every other page of the device: callers must not modify them.
func (s *Session) StateMessage(c Change) []byte {
	if !s.Visible(c.Property) {
		return nil
	}
	return c.stateMessage()
}

// sharedMessage is a change's state message, encoded by the first session
// that sends it and shared by the others. A change goes to every page of
// its device, and the message depends on the change alone (a session only
// decides whether its page sees it): encoding it for each page made most
// of an idle gateway's garbage (BENCHMARKS.md, "WebSocket sessions").
type sharedMessage struct {
	once sync.Once
	b    []byte
}

// stateMessage is the change's "state" message. The bytes may be shared:
// callers must not modify them.
func (c Change) stateMessage() []byte {
	encode := func() []byte {
		b, err := json.Marshal(StateMsg{Type: "state", Property: c.Property, Value: c.Value, TS: c.TS.UTC()})
		if err != nil {
			// Value is JSON the bus checked; a change that is not is dropped.
			return nil
		}
		return b
	}
	if c.msg == nil {
		return encode()
	}
	c.msg.once.Do(func() { c.msg.b = encode() })
	return c.msg.b
}

// Errors a command can be refused with; their codes are part of the
// WebSocket protocol (ack.error.code).
var (
	ErrForbidden       = &CommandError{Code: "forbidden", Message: "this link may not control that property"}
	ErrUnknownProperty = &CommandError{Code: "unknown-property", Message: "no such property"}
	ErrRateLimited     = &CommandError{Code: "rate-limited", Message: "too many commands; slow down"}
	ErrBadMessage      = &CommandError{Code: "invalid-message", Message: `want {"type":"set","id":"...","property":"node/prop","value":...}`}
	ErrOffline         = &CommandError{Code: "device-offline", Message: "the device is offline"}
	ErrUnavailable     = &CommandError{Code: "unavailable", Message: "the service cannot reach devices right now"}
)

// CommandError is why a command was refused.
type CommandError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *CommandError) Error() string { return e.Code + ": " + e.Message }

// MaxCommandID bounds the id a page may give a command.
const MaxCommandID = 64

// Command checks one frame from the page. It returns the command to send to
// the device, or the error to acknowledge, with the frame's id when it has
// one. Nothing refused reaches the device.
func (s *Session) Command(frame []byte, now time.Time) (Command, string, *CommandError) {
	var msg SetMsg
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil || msg.Type != "set" || len(msg.ID) > MaxCommandID {
		id := ""
		if len(msg.ID) <= MaxCommandID {
			id = msg.ID
		}
		return Command{}, id, ErrBadMessage
	}
	if !s.limit.AllowN(now, 1) {
		return Command{}, msg.ID, ErrRateLimited
	}
	s.mu.RLock()
	prop, exists := s.device.Property(msg.Property)
	allowed := s.perms.CanControl(msg.Property)
	s.mu.RUnlock()
	switch {
	case !exists && !allowed:
		return Command{}, msg.ID, ErrUnknownProperty
	case !exists || !allowed || !prop.Settable:
		return Command{}, msg.ID, ErrForbidden
	}
	var v any
	if err := json.Unmarshal(msg.Value, &v); err != nil || len(msg.Value) == 0 {
		return Command{}, msg.ID, &CommandError{Code: CodeInvalidValue, Message: "value is not JSON"}
	}
	if err := prop.CheckValue(v); err != nil {
		var ve *ValueError
		if errors.As(err, &ve) {
			return Command{}, msg.ID, &CommandError{Code: CodeInvalidValue, Message: ve.Reason}
		}
		return Command{}, msg.ID, &CommandError{Code: CodeInvalidValue, Message: err.Error()}
	}
	return Command{ID: msg.ID, Property: msg.Property, Value: msg.Value, Session: s.ID}, msg.ID, nil
}

// Ack returns the acknowledgement of command id: ok when err is nil.
func (s *Session) Ack(id string, err *CommandError) []byte {
	return s.encode(AckMsg{Type: "ack", ID: id, OK: err == nil, Error: err})
}

func (s *Session) encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("emulator: encoding %T: %v", v, err)) // our own types always encode
	}
	return b
}

// Messages of the WebSocket protocol (README, "WebSocket protocol").
type (
	// HelloMsg opens a session: the link as its holder sees it, the device
	// and its state, both filtered.
	HelloMsg struct {
		Type   string                     `json:"type"` // "hello"
		Link   any                        `json:"link"`
		Device *Device                    `json:"device"`
		State  map[string]json.RawMessage `json:"state"`
		Online bool                       `json:"online"`
	}
	// StateMsg is one property's new value.
	StateMsg struct {
		Type     string          `json:"type"` // "state"
		Property string          `json:"property"`
		Value    json.RawMessage `json:"value"`
		TS       time.Time       `json:"ts"`
	}
	// AckMsg answers a set.
	AckMsg struct {
		Type  string        `json:"type"` // "ack"
		ID    string        `json:"id"`
		OK    bool          `json:"ok"`
		Error *CommandError `json:"error,omitempty"`
	}
	// PermissionsMsg follows an owner's edit of the link.
	PermissionsMsg struct {
		Type        string                     `json:"type"` // "permissions"
		Link        any                        `json:"link"`
		Permissions tokens.Permissions         `json:"permissions"`
		Device      *Device                    `json:"device"`
		State       map[string]json.RawMessage `json:"state"`
	}
	// ClosingMsg says why the server is about to close the socket.
	ClosingMsg struct {
		Type   string `json:"type"` // "closing"
		Reason string `json:"reason"`
		Code   int    `json:"code"`
	}
	// SetMsg is the page's command.
	SetMsg struct {
		Type     string          `json:"type"` // "set"
		ID       string          `json:"id"`
		Property string          `json:"property"`
		Value    json.RawMessage `json:"value"`
	}
)

// Reasons a session is closed, with their WebSocket close codes. A page
// reads the reason from the closing message, or the code when the message
// was lost.
const (
	ReasonDisabled        = "disabled"
	ReasonDeleted         = "deleted"
	ReasonExpired         = "expired"
	ReasonNotYetActive    = "not-yet-active"
	ReasonOutsideSchedule = "outside-schedule"
	ReasonDeviceChanged   = "device-changed"
	ReasonServerShutdown  = "server-shutdown"
	ReasonTooManySessions = "too-many-sessions"
	ReasonTooSlow         = "too-slow"
	ReasonUnavailable     = "unavailable"
	// ReasonLevelRevoked closes a camera stream whose link no longer has
	// the level it plays.
	ReasonLevelRevoked = "level-revoked"
)

// CloseCodes maps each reason to its close code.
var CloseCodes = map[string]int{
	ReasonDisabled:        4001,
	ReasonDeleted:         4002,
	ReasonExpired:         4003,
	ReasonOutsideSchedule: 4004,
	ReasonDeviceChanged:   4005,
	ReasonServerShutdown:  4006,
	ReasonTooManySessions: 4007,
	ReasonTooSlow:         4008,
	ReasonUnavailable:     4009,
	ReasonNotYetActive:    4010,
	ReasonLevelRevoked:    4011,
}

// Closing returns the closing message for reason and its close code.
func Closing(reason string) ([]byte, int) {
	code := CloseCodes[reason]
	b, _ := json.Marshal(ClosingMsg{Type: "closing", Reason: reason, Code: code})
	return b, code
}
