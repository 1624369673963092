package media

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// This file reads viewers the way a browser would and checks the message
// stream contract of the package doc.

// item is one message of a viewer's stream, parsed.
type item struct {
	at     time.Time
	in     time.Time // Message.RTPIn
	muxed  time.Time // Message.Muxed
	typ    string    // codecs, online, offline, init, fragment
	codecs codecsMessage
	text   string
	init   *fmp4.Init
	part   *fmp4.Part
	data   []byte
}

// video returns the fragment's video track.
func (it item) video() *fmp4.PartTrack {
	if it.part == nil {
		return nil
	}
	for _, tr := range it.part.Tracks {
		if tr.ID == videoTrackID {
			return tr
		}
	}
	return nil
}

func (it item) audio() *fmp4.PartTrack {
	if it.part == nil {
		return nil
	}
	for _, tr := range it.part.Tracks {
		if tr.ID == audioTrackID {
			return tr
		}
	}
	return nil
}

func (it item) key() bool {
	v := it.video()
	return v != nil && len(v.Samples) == 1 && !v.Samples[0].IsNonSyncSample
}

// reader reads one viewer in the background, as a page does.
type reader struct {
	t    testing.TB
	v    *Viewer
	done chan struct{} // Messages was closed

	mu    sync.Mutex
	items []item
}

func read(t testing.TB, v *Viewer) *reader {
	r := &reader{t: t, v: v, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for m := range v.Messages() {
			it := parseMessage(t, m)
			r.mu.Lock()
			r.items = append(r.items, it)
			r.mu.Unlock()
		}
	}()
	return r
}

func parseMessage(t testing.TB, m Message) item {
	it := item{at: time.Now(), in: m.RTPIn, muxed: m.Muxed}
	switch {
	case m.Text != nil && m.Binary != nil:
		t.Errorf("message with both Text and Binary")
	case m.Text != nil:
		it.text = string(m.Text)
		var head struct{ Type string }
		if err := json.Unmarshal(m.Text, &head); err != nil {
			t.Errorf("text message %q: %v", m.Text, err)
		}
		it.typ = head.Type
		if it.typ == "codecs" {
			if err := json.Unmarshal(m.Text, &it.codecs); err != nil {
				t.Errorf("codecs message %q: %v", m.Text, err)
			}
		}
	case len(m.Binary) >= 8 && string(m.Binary[4:8]) == "ftyp":
		it.typ, it.data = "init", m.Binary
		it.init = &fmp4.Init{}
		if err := it.init.Unmarshal(bytes.NewReader(m.Binary)); err != nil {
			t.Errorf("init segment does not parse: %v", err)
		}
	case len(m.Binary) >= 8 && string(m.Binary[4:8]) == "moof":
		it.typ, it.data = "fragment", m.Binary
		var parts fmp4.Parts
		if err := parts.Unmarshal(m.Binary); err != nil {
			t.Errorf("fragment does not parse: %v", err)
		}
		if len(parts) != 1 {
			t.Errorf("fragment has %d parts, want 1", len(parts))
		}
		if len(parts) > 0 {
			it.part = parts[0]
		}
	default:
		t.Errorf("unexpected message of %d bytes", len(m.Binary))
	}
	return it
}

func (r *reader) snapshot() []item {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]item(nil), r.items...)
}

func (r *reader) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, it := range r.items {
		if it.typ == typ {
			n++
		}
	}
	return n
}

// waitFragments waits until the viewer has n fragments.
func (r *reader) waitFragments(n int, d time.Duration) {
	r.t.Helper()
	waitFor(r.t, d, "fragments", func() bool { return r.count("fragment") >= n })
}

func (r *reader) waitType(typ string, n int, d time.Duration) {
	r.t.Helper()
	waitFor(r.t, d, typ+" messages", func() bool { return r.count(typ) >= n })
}

// streamSummary is what checkStream saw.
type streamSummary struct {
	fragments int
	inits     int
	// gaps counts fragments whose decode time is more than twice the
	// previous one's duration after it: a discontinuity for MSE (a viewer
	// that skipped).
	gaps         int
	audioSamples int
	lastInit     *fmp4.Init
}

// checkStream checks a viewer's stream against the contract: a codecs
// message before every init segment, an init segment before any fragment,
// a keyframe first after every init and after online, one video sample per
// fragment, sequence numbers and decode times going up (video and audio),
// audio only in fragments of an init with an audio track.
func checkStream(t testing.TB, items []item) streamSummary {
	t.Helper()
	var (
		s                   streamSummary
		wantInit, wantKey   bool
		lastSeq             uint32
		videoDTS, videoDur  uint64
		audioEnd            uint64
		haveFrag, haveAudio bool
		offline             bool
	)
	for i, it := range items {
		switch it.typ {
		case "codecs":
			if wantInit {
				t.Errorf("item %d: codecs twice", i)
			}
			if !strings.HasPrefix(it.codecs.MIME, `video/mp4; codecs="`) {
				t.Errorf("item %d: mime %q", i, it.codecs.MIME)
			}
			wantInit = true
		case "init":
			if !wantInit {
				t.Fatalf("item %d: init segment without codecs message before it", i)
			}
			wantInit, wantKey = false, true
			s.inits++
			s.lastInit = it.init
			checkCodecs(t, items[i-1].codecs, it.init)
		case "fragment":
			if s.lastInit == nil || wantInit {
				t.Fatalf("item %d: fragment before init segment", i)
			}
			if it.part == nil {
				continue
			}
			s.fragments++
			v := it.video()
			if v == nil || len(v.Samples) != 1 {
				t.Fatalf("item %d: fragment without exactly one video sample", i)
			}
			if wantKey && !it.key() {
				t.Errorf("item %d: first fragment after init/online is not a keyframe", i)
			}
			wantKey = false
			if haveFrag {
				if it.part.SequenceNumber <= lastSeq {
					t.Errorf("item %d: sequence number %d after %d", i, it.part.SequenceNumber, lastSeq)
				}
				if v.BaseTime <= videoDTS {
					t.Errorf("item %d: video decode time %d after %d", i, v.BaseTime, videoDTS)
				}
				if v.BaseTime > videoDTS+2*videoDur {
					s.gaps++
				}
			}
			if v.Samples[0].Duration == 0 {
				t.Errorf("item %d: zero duration", i)
			}
			if v.Samples[0].PTSOffset < 0 {
				t.Errorf("item %d: negative composition offset", i)
			}
			haveFrag, lastSeq = true, it.part.SequenceNumber
			videoDTS, videoDur = v.BaseTime, uint64(v.Samples[0].Duration)
			if a := it.audio(); a != nil {
				if len(s.lastInit.Tracks) < 2 {
					t.Errorf("item %d: audio in a fragment of an init without audio", i)
				}
				if haveAudio && a.BaseTime < audioEnd {
					t.Errorf("item %d: audio decode time %d before previous end %d", i, a.BaseTime, audioEnd)
				}
				haveAudio = true
				audioEnd = a.BaseTime
				for _, smp := range a.Samples {
					audioEnd += uint64(smp.Duration)
				}
				s.audioSamples += len(a.Samples)
			}
		case "offline":
			if offline {
				t.Errorf("item %d: offline twice", i)
			}
			offline = true
		case "online":
			if !offline {
				t.Errorf("item %d: online without offline", i)
			}
			offline, wantKey = false, true
		default:
			t.Errorf("item %d: unexpected message type %q", i, it.typ)
		}
	}
	return s
}

// checkCodecs checks that the codecs message matches the init segment.
func checkCodecs(t testing.TB, c codecsMessage, init *fmp4.Init) {
	t.Helper()
	var want []string
	for _, tr := range init.Tracks {
		switch codec := tr.Codec.(type) {
		case *mp4.CodecH264:
			want = append(want, expectedAVC1(codec.SPS))
		case *mp4.CodecH265:
			want = append(want, expectedHVC1(t, codec.SPS))
		case *mp4.CodecMPEG4Audio:
			want = append(want, "mp4a.40.2")
		case *mp4.CodecOpus:
			want = append(want, "opus")
		default:
			t.Errorf("unexpected codec %T", codec)
		}
	}
	if mime := `video/mp4; codecs="` + strings.Join(want, ",") + `"`; c.MIME != mime {
		t.Errorf("codecs message %q, init segment says %q", c.MIME, mime)
	}
}

// expectedAVC1 is the codec string read straight off the SPS bytes.
func expectedAVC1(sps []byte) string {
	const hex = "0123456789abcdef"
	return "avc1." + string([]byte{
		hex[sps[1]>>4], hex[sps[1]&15], hex[sps[2]>>4], hex[sps[2]&15], hex[sps[3]>>4], hex[sps[3]&15],
	})
}

// expectedHVC1 is the codec string read straight off the SPS bytes (bit
// positions of H.265 7.3.3), independent of the parser the package uses.
func expectedHVC1(t testing.TB, sps []byte) string {
	raw := h264.EmulationPreventionRemove(sps)
	if len(raw) < 15 {
		t.Fatalf("short SPS")
	}
	ptl := raw[3:]
	space, tier, idc := ptl[0]>>6, ptl[0]>>5&1, ptl[0]&0x1f
	flags := uint32(ptl[1])<<24 | uint32(ptl[2])<<16 | uint32(ptl[3])<<8 | uint32(ptl[4])
	var rev uint32
	for i := range 32 {
		rev |= (flags >> i & 1) << (31 - i)
	}
	s := "hvc1." + []string{"", "A", "B", "C"}[space] + strconv.Itoa(int(idc)) + "." + strings.ToUpper(strconv.FormatUint(uint64(rev), 16)) + "."
	s += map[byte]string{0: "L", 1: "H"}[tier] + strconv.Itoa(int(ptl[11]))
	cons := ptl[5:11]
	n := len(cons)
	for n > 0 && cons[n-1] == 0 {
		n--
	}
	for _, c := range cons[:n] {
		s += "." + strings.ToUpper(strconv.FormatUint(uint64(c), 16))
	}
	return s
}

// logBuffer collects a manager's logs, to check what they never contain.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newTestManager returns a manager with fast retries and debug logs, closed
// at the end of the test, whose logs must never contain the camera password.
func newTestManager(t testing.TB, cfg Config) (*Manager, *logBuffer) {
	lb := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	}
	m := NewManager(cfg)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if strings.Contains(lb.String(), testPass) {
			t.Errorf("logs contain the camera password:\n%s", lb.String())
		}
	})
	return m, lb
}
