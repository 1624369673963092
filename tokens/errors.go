package tokens

import (
	"errors"
	"fmt"
	"time"
)

// Errors a link open can end in. The gateway maps each to a status: not found
// and forged to 404, disabled, expired and used up to 410, not yet active and
// outside schedule to 403 (with when the link opens), unavailable to 503.
var (
	// ErrNotFound: no such link (never created, or deleted), or the token's
	// generation is no longer the link's.
	ErrNotFound = errors.New("link not found")
	// ErrForged: the token is malformed, signed with an unknown key or its
	// signature does not match. Callers must answer exactly as for ErrNotFound.
	ErrForged = errors.New("token invalid")
	// ErrExpired: the link's window has ended.
	ErrExpired = errors.New("link expired")
	// ErrNotYetActive: the link's window has not started.
	ErrNotYetActive = errors.New("link not yet active")
	// ErrOutsideSchedule: the link's weekly schedule is closed now.
	ErrOutsideSchedule = errors.New("link outside its schedule")
	// ErrDisabled: the owner disabled the link.
	ErrDisabled = errors.New("link disabled")
	// ErrUsedUp: the link has reached its maximum number of uses.
	ErrUsedUp = errors.New("link used up")
	// ErrUnavailable: the store cannot be reached, or the invalidation feed is
	// not healthy, so no record can be trusted.
	ErrUnavailable = errors.New("link store unavailable")
	// ErrConflict: a write lost a race with another write to the same record.
	ErrConflict = errors.New("record changed concurrently")
	// ErrStale: Store.Use found the link's record changed (or gone) since
	// the caller read it, and counted no use: read it again and recheck.
	ErrStale = errors.New("link record changed since it was read")
)

// ClosedError says that a link is valid but closed now, and when it opens.
// It wraps ErrNotYetActive or ErrOutsideSchedule.
type ClosedError struct {
	Err   error
	Opens time.Time // zero when it never opens again
}

func (e *ClosedError) Error() string {
	if e.Opens.IsZero() {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v; opens at %s", e.Err, e.Opens.UTC().Format(time.RFC3339))
}

func (e *ClosedError) Unwrap() error { return e.Err }
