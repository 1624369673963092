package tokens

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Kind is what a link shares.
type Kind string

// Link kinds.
const (
	KindDevice Kind = "device"
	KindCamera Kind = "camera"
)

// Status is whether the owner has a link switched on.
type Status string

// Link statuses.
const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
)

// Camera access levels.
const (
	LevelLive     = "live"
	LevelArchive  = "archive"
	LevelNotices  = "notices"
	LevelDownload = "download"
)

// CameraLevels lists the valid camera access levels.
var CameraLevels = []string{LevelLive, LevelArchive, LevelNotices, LevelDownload}

// Permissions is what a link's holder may do and see. Properties are named
// "node/prop".
type Permissions struct {
	Control []string `json:"control"`
	View    []string `json:"view"`
	Camera  []string `json:"camera"`
}

// CanControl reports whether prop may be set.
func (p Permissions) CanControl(prop string) bool { return slices.Contains(p.Control, prop) }

// CanView reports whether prop may be seen. A controllable property is also
// visible: a switch whose state is hidden cannot be used.
func (p Permissions) CanView(prop string) bool {
	return slices.Contains(p.View, prop) || slices.Contains(p.Control, prop)
}

// HasLevel reports whether a camera access level is granted.
func (p Permissions) HasLevel(level string) bool { return slices.Contains(p.Camera, level) }

// Window is when a link is usable. A zero Start or End leaves that side open;
// both zero means eternal.
type Window struct {
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
}

// Eternal reports whether the window has no end.
func (w Window) Eternal() bool { return w.End.IsZero() }

// Validate checks that the end, when set, is after the start.
func (w Window) Validate() error {
	if !w.Start.IsZero() && !w.End.IsZero() && !w.End.After(w.Start) {
		return &FieldError{Field: "window.end", Reason: "must be after window.start"}
	}
	return nil
}

// Link is a share link's record, as stored in Redis.
type Link struct {
	ID          LinkID      `json:"id"`
	Owner       string      `json:"owner"`
	Device      string      `json:"device"`
	Kind        Kind        `json:"kind"`
	Name        string      `json:"name"`
	Permissions Permissions `json:"permissions"`
	Window      Window      `json:"window"`
	Schedule    *Schedule   `json:"schedule,omitempty"`
	Status      Status      `json:"status"`
	MaxUses     int         `json:"maxUses,omitempty"`
	MaxSessions int         `json:"maxSessions,omitempty"`
	// Generation is the URL generation: tokens of another generation are
	// refused as not found.
	Generation uint32 `json:"generation"`
	Version    int64  `json:"version"`
	// Seq is the link's place in its owner's listing.
	Seq     int64     `json:"seq"`
	Token   string    `json:"token"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`

	// Uses is how many sessions the link has handed out. It is kept in its
	// own key and filled in when the record is read.
	Uses int64 `json:"-"`
}

// Claims returns the token claims for the link as it is now.
func (l *Link) Claims() Claims {
	return Claims{Link: l.ID, Generation: l.Generation, NotBefore: l.Window.Start, NotAfter: l.Window.End}
}

// Check reports whether the link may be opened at now: its status, window,
// schedule and uses. It returns nil, ErrDisabled, ErrExpired, ErrUsedUp or a
// *ClosedError.
func (l *Link) Check(now time.Time) error {
	if l.Status == StatusDisabled {
		return ErrDisabled
	}
	if !l.Window.End.IsZero() && !now.Before(l.Window.End) {
		return ErrExpired
	}
	if l.MaxUses > 0 && l.Uses >= int64(l.MaxUses) {
		return ErrUsedUp
	}
	if !l.Window.Start.IsZero() && now.Before(l.Window.Start) {
		opens := l.Window.Start
		if l.Schedule != nil {
			if _, next := l.Schedule.Open(opens); !next.IsZero() {
				opens = next
			}
		}
		return &ClosedError{Err: ErrNotYetActive, Opens: l.clipOpens(opens)}
	}
	if l.Schedule != nil {
		if open, next := l.Schedule.Open(now); !open {
			return &ClosedError{Err: ErrOutsideSchedule, Opens: l.clipOpens(next)}
		}
	}
	return nil
}

// clipOpens drops an opening time that lies after the window's end.
func (l *Link) clipOpens(t time.Time) time.Time {
	if !l.Window.End.IsZero() && !t.Before(l.Window.End) {
		return time.Time{}
	}
	return t
}

// ClosesAt returns when the link will next close by itself (its window end
// or the end of the current schedule slot), or zero if never.
func (l *Link) ClosesAt(now time.Time) time.Time {
	end := l.Window.End
	if l.Schedule != nil {
		if c := l.Schedule.closesAt(now); !c.IsZero() && (end.IsZero() || c.Before(end)) {
			end = c
		}
	}
	return end
}

// FieldError is a validation error that names the offending field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// AsFieldError returns err as a *FieldError if it is one.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
