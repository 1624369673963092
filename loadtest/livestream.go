package loadtest

import (
	"encoding/binary"
	"encoding/json"
	"time"
)

// The camera stream of GET /l/{token}/live, as a viewer reads it (the
// protocol is media's, see media/doc.go): text frames are JSON control
// messages ({"type":"codecs","mime":...}, "offline", "online", "closing"),
// binary frames are fragmented MP4: an init segment (ftyp+moov) after each
// codecs message, then one fragment (moof+mdat) per video frame.

// liveKind is what one message of the stream is.
type liveKind uint8

const (
	liveOther    liveKind = iota // a text message of another type, bad JSON, or binary that is not fMP4
	liveCodecs                   // {"type":"codecs","mime":...}: an init segment follows
	liveOffline                  // {"type":"offline"}: the camera is down
	liveOnline                   // {"type":"online"}: fragments flow again
	liveClosing                  // {"type":"closing","reason":...,"code":...}: the server closes
	liveInit                     // binary ftyp or moov: an init segment
	liveFragment                 // binary moof (or styp): one frame
)

var liveKindNames = [...]string{"other", "codecs", "offline", "online", "closing", "init", "fragment"}

func (k liveKind) String() string {
	if int(k) < len(liveKindNames) {
		return liveKindNames[k]
	}
	return "other"
}

// liveText is a control message's fields that a viewer uses.
type liveText struct {
	Type   string `json:"type"`
	MIME   string `json:"mime,omitempty"`   // codecs
	Reason string `json:"reason,omitempty"` // closing
	Code   int    `json:"code,omitempty"`   // closing
}

// maxLiveText bounds the text messages a viewer reads; control messages are
// tens of bytes.
const maxLiveText = 64 << 10

// classifyLiveText classifies a text message. Anything that is not a JSON
// object with a known type is liveOther; the fields of known types are
// returned as they came.
func classifyLiveText(b []byte) (liveKind, liveText) {
	var m liveText
	if len(b) > maxLiveText || json.Unmarshal(b, &m) != nil {
		return liveOther, liveText{}
	}
	switch m.Type {
	case "codecs":
		return liveCodecs, m
	case "offline":
		return liveOffline, m
	case "online":
		return liveOnline, m
	case "closing":
		return liveClosing, m
	}
	return liveOther, m
}

// liveHead is how much of a binary message classifyLiveBinary needs: the
// first box's size and type.
const liveHead = 8

// classifyLiveBinary classifies a binary message by its first ISO BMFF box
// (head holds the message's first bytes, at most liveHead are looked at).
func classifyLiveBinary(head []byte) liveKind {
	if len(head) < liveHead {
		return liveOther
	}
	// A box's size counts its header; 0 means "to the end", 1 "a 64-bit
	// size follows".
	if size := binary.BigEndian.Uint32(head); size > 1 && size < liveHead {
		return liveOther
	}
	switch string(head[4:8]) {
	case "ftyp", "moov":
		return liveInit
	case "moof", "styp":
		return liveFragment
	}
	return liveOther
}

// stallTracker finds stalls: gaps between fragments longer than a
// threshold. It works on the times it is given, so tests use synthetic
// ones. A gap while the camera is offline is not a stall (it is timed as
// the outage); the first fragment after online starts afresh. The zero
// value, with after set, is ready.
type stallTracker struct {
	after   time.Duration // a longer gap is a stall
	last    time.Time     // the last fragment; zero: none since start or offline
	offline time.Time     // when the camera went offline; zero: online
}

// fragment records a fragment at now and returns the gap since the previous
// one and whether it was a stall.
func (s *stallTracker) fragment(now time.Time) (gap time.Duration, stall bool) {
	if !s.last.IsZero() {
		gap = now.Sub(s.last)
	}
	s.last = now
	return gap, gap > s.after
}

// goOffline records that the camera went offline at now. It returns the
// stall under way, if any: a gap already longer than the threshold when the
// camera was declared offline.
func (s *stallTracker) goOffline(now time.Time) (gap time.Duration, stall bool) {
	if !s.offline.IsZero() {
		return 0, false
	}
	s.offline = now
	if !s.last.IsZero() {
		gap = now.Sub(s.last)
	}
	s.last = time.Time{}
	return gap, gap > s.after
}

// goOnline records that the camera is back at now and returns how long it
// was offline (zero if it was not).
func (s *stallTracker) goOnline(now time.Time) time.Duration {
	if s.offline.IsZero() {
		return 0
	}
	d := now.Sub(s.offline)
	s.offline, s.last = time.Time{}, time.Time{}
	return d
}

// end closes the tracker at now, when the viewer leaves, and returns the
// stall under way, if any.
func (s *stallTracker) end(now time.Time) (gap time.Duration, stall bool) {
	if s.last.IsZero() || !s.offline.IsZero() {
		return 0, false
	}
	gap = now.Sub(s.last)
	return gap, gap > s.after
}
