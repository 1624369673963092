package loadtest

import (
	"encoding/json"
	"testing"
	"time"
)

// liveTextCases are text messages as the gateway sends them, and others a
// viewer must not take for them. They seed FuzzClassifyLive.
var liveTextCases = []struct {
	in   string
	kind liveKind
	want liveText
}{
	{`{"type":"codecs","mime":"video/mp4; codecs=\"avc1.64001f\""}`, liveCodecs, liveText{Type: "codecs", MIME: `video/mp4; codecs="avc1.64001f"`}},
	{`{"type":"codecs","mime":"video/mp4; codecs=\"avc1.42c01e\"","audio":"unsupported"}`, liveCodecs, liveText{Type: "codecs", MIME: `video/mp4; codecs="avc1.42c01e"`}},
	{`{"type":"offline"}`, liveOffline, liveText{Type: "offline"}},
	{`{"type":"online"}`, liveOnline, liveText{Type: "online"}},
	{`{"type":"closing","reason":"level-revoked","code":4011}`, liveClosing, liveText{Type: "closing", Reason: "level-revoked", Code: 4011}},
	{`{"type":"hello"}`, liveOther, liveText{Type: "hello"}},
	{`{"type":7}`, liveOther, liveText{}},
	{`{"type":"online"`, liveOther, liveText{}},
	{`["online"]`, liveOther, liveText{}},
	{`null`, liveOther, liveText{}},
	{``, liveOther, liveText{}},
	{"\xff\xfe", liveOther, liveText{}},
}

func TestClassifyLiveText(t *testing.T) {
	for _, c := range liveTextCases {
		kind, got := classifyLiveText([]byte(c.in))
		if kind != c.kind || got != c.want {
			t.Errorf("classifyLiveText(%s) = %v %+v, want %v %+v", c.in, kind, got, c.kind, c.want)
		}
	}
}

// box returns the start of an ISO BMFF box of the given size and type.
func box(size uint32, typ string) []byte {
	return append([]byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)}, typ...)
}

// liveBinaryCases seed FuzzClassifyLive too.
var liveBinaryCases = []struct {
	name string
	in   []byte
	want liveKind
}{
	{"ftyp", append(box(24, "ftyp"), "iso5\x00\x00\x02\x00iso5iso6"...), liveInit},
	{"moov first", box(1200, "moov"), liveInit},
	{"moof", append(box(104, "moof"), box(16, "mfhd")...), liveFragment},
	{"styp", box(24, "styp"), liveFragment},
	{"largesize moof", append(box(1, "moof"), 0, 0, 0, 0, 0, 0, 0, 104), liveFragment},
	{"to the end", box(0, "moof"), liveFragment},
	{"mdat first", box(16, "mdat"), liveOther},
	{"size below header", box(7, "moof"), liveOther},
	{"short", []byte("\x00\x00\x00\x08moo"), liveOther},
	{"empty", nil, liveOther},
	{"text", []byte(`{"type":"online"}`), liveOther},
}

func TestClassifyLiveBinary(t *testing.T) {
	for _, c := range liveBinaryCases {
		if got := classifyLiveBinary(c.in); got != c.want {
			t.Errorf("%s: classifyLiveBinary = %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzClassifyLive feeds the classifiers anything a server might send.
// Oracles: no panic; a text message classified as a known type classifies
// the same, with the same fields, once re-encoded; a binary message's kind
// depends on its first 8 bytes only.
func FuzzClassifyLive(f *testing.F) {
	for _, c := range liveTextCases {
		f.Add(true, []byte(c.in))
	}
	for _, c := range liveBinaryCases {
		f.Add(false, c.in)
	}
	f.Fuzz(func(t *testing.T, text bool, b []byte) {
		if !text {
			kind := classifyLiveBinary(b)
			if len(b) > liveHead {
				if again := classifyLiveBinary(b[:liveHead]); again != kind {
					t.Fatalf("kind %v, of the first 8 bytes %v", kind, again)
				}
			}
			return
		}
		kind, m := classifyLiveText(b)
		if kind == liveOther {
			return
		}
		re, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		kind2, m2 := classifyLiveText(re)
		if kind2 != kind || m2 != m {
			t.Fatalf("%q: %v %+v; re-encoded %s: %v %+v", b, kind, m, re, kind2, m2)
		}
	})
}

func TestStallTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	st := stallTracker{after: 500 * time.Millisecond}

	type step struct {
		what  string // "frag", "offline", "online", "end"
		ms    int
		gap   time.Duration // frag, offline, end: the gap; online: the outage
		stall bool
	}
	steps := []step{
		{"frag", 0, 0, false}, // the first: no gap
		{"frag", 40, 40 * time.Millisecond, false},
		{"frag", 540, 500 * time.Millisecond, false}, // exactly the threshold: not a stall
		{"frag", 1041, 501 * time.Millisecond, true},
		{"frag", 1081, 40 * time.Millisecond, false},
		{"offline", 1200, 119 * time.Millisecond, false}, // offline soon after a fragment
		{"offline", 1300, 0, false},                      // repeated: nothing
		{"end", 5000, 0, false},                          // offline: no stall under way
		{"online", 9200, 8 * time.Second, false},         // the outage
		{"frag", 9300, 0, false},                         // first after online: no gap
		{"frag", 9340, 40 * time.Millisecond, false},
		{"offline", 10340, time.Second, true}, // a stall under way when offline came
		{"online", 10400, 60 * time.Millisecond, false},
		{"online", 10500, 0, false}, // not offline: nothing
		{"frag", 10500, 0, false},
		{"end", 10600, 100 * time.Millisecond, false},
		{"end", 11600, 1100 * time.Millisecond, true}, // leaving during a stall
	}
	for _, s := range steps {
		var gap time.Duration
		var stall bool
		switch s.what {
		case "frag":
			gap, stall = st.fragment(at(s.ms))
		case "offline":
			gap, stall = st.goOffline(at(s.ms))
		case "online":
			gap = st.goOnline(at(s.ms))
		case "end":
			gap, stall = st.end(at(s.ms))
		}
		if gap != s.gap || stall != s.stall {
			t.Errorf("%s at %d ms: gap %v stall %v, want %v %v", s.what, s.ms, gap, stall, s.gap, s.stall)
		}
	}
}
