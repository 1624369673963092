package media

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// feed gives the muxer clip frames [from, to) at 25 fps starting at pts0
// and returns the fragments that came out.
func feed(t *testing.T, m *muxer, c *clip, from, to int, pts0 int64) []*fragment {
	t.Helper()
	var out []*fragment
	for i := from; i < to; i++ {
		held, f, err := m.video(c.aus[i%len(c.aus)], pts0+int64(i-from)*3600, time.Time{})
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		for _, f := range []*fragment{held, f} {
			if f != nil {
				out = append(out, f)
			}
		}
	}
	return out
}

func baseTimes(t *testing.T, frags []*fragment) (bases []uint64, durs []uint32) {
	t.Helper()
	for _, f := range frags {
		var parts fmp4.Parts
		if err := parts.Unmarshal(f.data); err != nil {
			t.Fatal(err)
		}
		v := parts[0].Tracks[0]
		bases = append(bases, v.BaseTime)
		durs = append(durs, v.Samples[0].Duration)
	}
	return bases, durs
}

// The camera timeline: starts at 0, one frame after another, each frame
// out as soon as it comes with an estimated duration; gapless over a resync
// and over a new session whose clock starts again, never going back.
func TestMuxerTimeline(t *testing.T) {
	c := loadClip(t, "h264.h264") // keyframes at 0 and 25
	tr := &tracks{video: codecH264, sps: c.sps, pps: c.pps}
	var m muxer
	m.startSession(tr)

	frags := feed(t, &m, c, 0, 10, 5000) // every frame out at once
	if len(frags) != 10 || !frags[0].key || frags[1].key {
		t.Fatalf("%d fragments, first key %v", len(frags), frags[0].key)
	}
	bases, durs := baseTimes(t, frags)
	for i := range bases {
		// Twice the frame interval: the default (1/25 s) at first, then
		// the camera's.
		if bases[i] != uint64(i*3600) || durs[i] != 7200 {
			t.Fatalf("fragment %d at %d for %d, want %d for 7200", i, bases[i], durs[i], i*3600)
		}
	}

	// Lost packets: nothing until the keyframe at 25, which starts where
	// the last fragment's duration ended.
	m.resync()
	if out := feed(t, &m, c, 10, 25, 5000+10*3600); len(out) != 0 {
		t.Fatalf("%d fragments before the next keyframe", len(out))
	}
	out := feed(t, &m, c, 25, 27, 5000+25*3600)
	if len(out) != 2 || !out[0].key || out[0].dts != 9*3600+7200 {
		t.Fatalf("after resync: %d fragments, first at %d (key %v), want a keyframe at %d",
			len(out), out[0].dts, out[0].key, 9*3600+7200)
	}

	// A new session whose timestamps start again at 0: decode times go on.
	m.resync()
	end := m.nextDTS
	m.startSession(tr)
	out = feed(t, &m, c, 0, 3, 0)
	if len(out) != 3 || out[0].dts != end || !out[0].key {
		t.Fatalf("new session starts at %d, want %d", out[0].dts, end)
	}
	if out[0].init != frags[0].init {
		t.Errorf("same parameters, new init segment")
	}

	// A camera that pauses a minute: the step over the pause is shortened
	// to 3/2 of the last duration (3 frames), and the frame after it does
	// not last much longer than that.
	_, f, err := m.video(c.aus[3], 60*90000, time.Time{})
	if err != nil || f == nil {
		t.Fatal(err)
	}
	if d := f.dts - out[2].dts; d != 3*3600 {
		t.Errorf("the pause became a step of %d, want %d", d, 3*3600)
	}
	if _, durs := baseTimes(t, []*fragment{f}); durs[0] != 6*3600 {
		t.Errorf("the frame after the pause lasts %d, want %d", durs[0], 6*3600)
	}
	_, g, _ := m.video(c.aus[4], 60*90000+3600, time.Time{})
	if g.dts-f.dts != 3600 {
		t.Errorf("the frame after the pause came %d later, want 3600", g.dts-f.dts)
	}
}

// A camera that skips frames: its timeline has gaps of 2 and 3 frame
// intervals, and jitters. Every frame still goes out at once, at its own
// decode time, decode times only go up, and no step between two frames is
// more than twice the duration the first was given, which browsers' MSE
// would take as a discontinuity (dropping frames up to the next keyframe).
func TestMuxerIrregularTimeline(t *testing.T) {
	c := loadClip(t, "h264.h264")
	var m muxer
	m.startSession(&tracks{video: codecH264, sps: c.sps, pps: c.pps})

	// Steps in 90 kHz ticks: runs of one interval, skips of 2 and 3 right
	// after a run (the hardest case: the estimate has only seen short
	// steps), a jittery clock, a skip at the very start.
	steps := []int64{10800, 3600, 3600, 3600, 7200, 3600, 3600, 3600, 3600, 10800, 3600, 10800,
		3300, 3900, 3000, 4200, 10800, 7200, 10800, 3600, 3600, 3600, 3600, 3600, 3600, 7200}
	pts := int64(1234)
	var frags []*fragment
	var want []int64 // camera decode times: the first fragment's, plus the steps
	for i := range 200 {
		_, f, err := m.video(c.aus[i%len(c.aus)], pts, time.Time{})
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f == nil {
			t.Fatalf("frame %d held back", i)
		}
		if len(want) == 0 {
			want = append(want, f.dts)
		} else {
			want = append(want, want[len(want)-1]+steps[(i-1)%len(steps)])
		}
		frags = append(frags, f)
		pts += steps[i%len(steps)]
	}
	bases, durs := baseTimes(t, frags)
	for i := range bases {
		if int64(bases[i]) != want[i] {
			t.Fatalf("fragment %d at %d, want its own decode time %d", i, bases[i], want[i])
		}
		if i == 0 {
			continue
		}
		step := bases[i] - bases[i-1]
		if bases[i] <= bases[i-1] {
			t.Fatalf("fragment %d: decode time %d after %d", i, bases[i], bases[i-1])
		}
		if step > 2*uint64(durs[i-1]) {
			t.Errorf("fragment %d: %d after one that lasts %d: a discontinuity for MSE", i, step, durs[i-1])
		}
		// Not longer than need be: twice the longest of the last four steps.
		longest := uint64(3600 * 2) // the default before any step
		if i > 1 {
			longest = 0
			for j := max(1, i-4); j < i; j++ {
				longest = max(longest, bases[j]-bases[j-1])
			}
		}
		if uint64(durs[i-1]) != 2*longest && i > 1 {
			t.Errorf("fragment %d lasts %d, want %d", i-1, durs[i-1], 2*longest)
		}
	}
}

// Audio goes into the next video fragment, with decode times from its
// clock mapped onto the camera timeline, and the audio track is in the init
// segment only once audio has come.
func TestMuxerAudio(t *testing.T) {
	c := loadClip(t, "h264.h264")
	aac := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1}
	tr := &tracks{video: codecH264, sps: c.sps, pps: c.pps, audio: audioAAC, aac: aac, audioRate: 48000}

	var m muxer
	m.startSession(tr)
	// No audio yet: video only.
	out := feed(t, &m, c, 0, 2, 0)
	if out[0].init.audio || strings.Contains(out[0].init.mime, "mp4a") {
		t.Fatalf("audio track before any audio: %s", out[0].init.mime)
	}
	// Audio arrives; the next keyframe's init has it.
	au := []byte{0x21, 0x10, 0x04}
	var frags []*fragment
	k := int64(2 * 1920 / 1024) // audio units so far, 1024 samples each
	for i := 2; i < 30; i++ {
		for ; k*1024 < int64(i+1)*1920; k++ {
			if _, err := m.audioUnits([][]byte{au}, k*1024); err != nil {
				t.Fatal(err)
			}
		}
		_, f, err := m.video(c.aus[i], int64(i)*3600, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if f != nil {
			frags = append(frags, f)
		}
	}
	last := frags[len(frags)-1]
	if !last.init.audio || !strings.Contains(last.init.mime, `avc1.64000d,mp4a.40.2"`) {
		t.Fatalf("init after audio: %s", last.init.mime)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(last.data); err != nil {
		t.Fatal(err)
	}
	if len(parts[0].Tracks) != 2 {
		t.Fatalf("fragment tracks %d", len(parts[0].Tracks))
	}
	a := parts[0].Tracks[1]
	// Audio at session time i*1920 (48 kHz) is video time i*3600: same
	// instant, since the session's offset is 0 here.
	if a.BaseTime%1024 != 0 || len(a.Samples) < 1 || len(a.Samples) > 2 || a.Samples[0].Duration != 1024 {
		t.Errorf("audio traf base %d, %d samples", a.BaseTime, len(a.Samples))
	}

	// Bad audio units are refused, not muxed.
	if _, err := m.audioUnits([][]byte{{}}, 1<<20); !errors.Is(err, errAudioUnit) {
		t.Errorf("empty audio unit: %v", err)
	}
}

// A camera that announces audio and has sent none when the session's first
// keyframe comes: that keyframe is held until the first audio, so that the
// first init segment has the audio track and no other follows, or until
// the next video unit, whichever comes first. No later frame is held.
func TestMuxerHoldsFirstKeyframeForAudio(t *testing.T) {
	c := loadClip(t, "h264.h264") // keyframes at 0 and 25
	aac := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1}
	withAudio := &tracks{video: codecH264, sps: c.sps, pps: c.pps, audio: audioAAC, aac: aac, audioRate: 48000}
	au := []byte{0x21, 0x10, 0x04}
	base := time.Now()
	at := func(i int) time.Time { return base.Add(time.Duration(i) * testFrameTime) }
	// frame feeds video frame i at 25 fps and returns what came out.
	frame := func(t *testing.T, m *muxer, i int) []*fragment {
		t.Helper()
		held, f, err := m.video(c.aus[i%len(c.aus)], int64(i)*3600, at(i))
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		var out []*fragment
		for _, f := range []*fragment{held, f} {
			if f != nil {
				out = append(out, f)
			}
		}
		return out
	}
	// audio feeds the audio of frame i's interval, 48 kHz.
	audio := func(t *testing.T, m *muxer, i int) []*fragment {
		t.Helper()
		var out []*fragment
		for k := int64(i) * 1920 / 1024; k*1024 < int64(i+1)*1920; k++ {
			held, err := m.audioUnits([][]byte{au}, k*1024)
			if err != nil {
				t.Fatal(err)
			}
			if held != nil {
				out = append(out, held)
			}
		}
		return out
	}
	tracksOf := func(t *testing.T, f *fragment) int {
		t.Helper()
		var parts fmp4.Parts
		if err := parts.Unmarshal(f.data); err != nil {
			t.Fatal(err)
		}
		return len(parts[0].Tracks)
	}
	// holding starts a session of m and gives it its first keyframe, which
	// must be held.
	holding := func(t *testing.T, m *muxer) {
		t.Helper()
		m.startSession(withAudio)
		if out := frame(t, m, 0); len(out) != 0 {
			t.Fatalf("the first keyframe went out before any audio")
		}
	}

	t.Run("audio after the keyframe", func(t *testing.T) {
		var m muxer
		holding(t, &m)
		out := audio(t, &m, 0)
		if len(out) != 1 || !out[0].key || out[0].dts != 0 {
			t.Fatalf("the first audio released %d fragments, want the keyframe", len(out))
		}
		first := out[0]
		if !first.init.audio || !strings.Contains(first.init.mime, "mp4a.40.2") {
			t.Errorf("the first init segment: %s, want audio in it", first.init.mime)
		}
		if n := tracksOf(t, first); n != 2 {
			t.Errorf("the keyframe's fragment has %d tracks, want the audio that released it", n)
		}
		// It keeps the time its first packet came: the hold is in the
		// latency measured from it.
		if !first.in.Equal(at(0)) {
			t.Errorf("held keyframe's in moved by %v", first.in.Sub(at(0)))
		}
		// Every later frame goes out at once, with the same init segment
		// across the next keyframe.
		for i := 1; i < 60; i++ {
			out := frame(t, &m, i)
			if len(out) != 1 {
				t.Fatalf("frame %d: %d fragments out, want 1 at once", i, len(out))
			}
			if out[0].init != first.init {
				t.Fatalf("frame %d: a new init segment (%s)", i, out[0].init.mime)
			}
			if out := audio(t, &m, i); len(out) != 0 {
				t.Fatalf("audio of frame %d released a fragment", i)
			}
		}
	})

	t.Run("announced audio never comes", func(t *testing.T) {
		var m muxer
		holding(t, &m)
		// The next frame ends the hold: the keyframe, as it would have gone
		// out at once, then the frame.
		out := frame(t, &m, 1)
		if len(out) != 2 || !out[0].key || out[1].key {
			t.Fatalf("the next frame released %d fragments, want the keyframe and itself", len(out))
		}
		bases, durs := baseTimes(t, out)
		if bases[0] != 0 || durs[0] != 7200 || bases[1] != 3600 {
			t.Errorf("keyframe at %d for %d, next frame at %d; want 0 for 7200, then 3600", bases[0], durs[0], bases[1])
		}
		if out[0].init.audio || out[1].init != out[0].init || !out[0].in.Equal(at(0)) {
			t.Errorf("held keyframe: init %s, in %v", out[0].init.mime, out[0].in.Sub(at(0)))
		}
		// Never again: not the next keyframe, not the one after lost
		// packets, though audio has still not come.
		for i := 2; i < 30; i++ {
			if out := frame(t, &m, i); len(out) != 1 {
				t.Fatalf("frame %d: %d fragments out, want 1 at once", i, len(out))
			}
		}
		m.resync()
		for i := 30; i < 50; i++ {
			if out := frame(t, &m, i); len(out) != 0 {
				t.Fatalf("frame %d went out before the keyframe after the resync", i)
			}
		}
		if out := frame(t, &m, 50); len(out) != 1 || !out[0].key {
			t.Fatalf("the keyframe after a resync was held")
		}
		// A new session's first keyframe may be held again.
		m.resync()
		holding(t, &m)
	})

	t.Run("audio before the keyframe", func(t *testing.T) {
		var m muxer
		m.startSession(withAudio)
		audio(t, &m, 0)
		out := frame(t, &m, 0)
		if len(out) != 1 || !out[0].key || !out[0].init.audio {
			t.Fatalf("%d fragments, want the keyframe at once, with audio in its init", len(out))
		}
	})

	t.Run("audio browsers cannot play", func(t *testing.T) {
		// G.711 is not carried: nothing to wait for.
		var m muxer
		m.startSession(&tracks{video: codecH264, sps: c.sps, pps: c.pps, audioUnsupported: "G711"})
		if out := frame(t, &m, 0); len(out) != 1 || !out[0].key {
			t.Fatalf("%d fragments, want the keyframe at once", len(out))
		}
	})

	t.Run("lost packets while held", func(t *testing.T) {
		var m muxer
		holding(t, &m)
		held, err := m.release()
		if err != nil || held == nil || !held.key {
			t.Fatalf("release: %v, %v", held, err)
		}
		m.resync()
		if out := frame(t, &m, 1); len(out) != 0 {
			t.Fatalf("a frame after the resync went out")
		}
	})
}

func TestSelectTracks(t *testing.T) {
	h264f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: []byte{0x67}, PPS: []byte{0x68}}
	aac := &format.MPEG4Audio{PayloadTyp: 97, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
		Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelCount: 2}}
	pcmu := &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}
	video := func(f format.Format) *description.Media {
		return &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}
	}
	audio := func(f format.Format) *description.Media {
		return &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{f}}
	}

	for _, tt := range []struct {
		name        string
		medias      []*description.Media
		err         error
		audio       audioCodec
		unsupported string
	}{
		{"video only", []*description.Media{video(h264f)}, nil, audioNone, ""},
		{"aac", []*description.Media{video(h264f), audio(aac)}, nil, audioAAC, ""},
		{"g711 only", []*description.Media{video(h264f), audio(pcmu)}, nil, audioNone, "G711"},
		{"g711 and aac", []*description.Media{audio(pcmu), video(h264f), audio(aac)}, nil, audioAAC, ""},
		{"opus", []*description.Media{video(&format.H265{PayloadTyp: 96}), audio(&format.Opus{PayloadTyp: 98, ChannelCount: 1})}, nil, audioOpus, ""},
		{"no video", []*description.Media{audio(aac)}, errNoVideo, 0, ""},
		{"MJPEG is not video we carry", []*description.Media{video(&format.MJPEG{})}, errNoVideo, 0, ""},
		{"back channel skipped", []*description.Media{{Type: description.MediaTypeVideo, IsBackChannel: true, Formats: []format.Format{h264f}}}, errNoVideo, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := selectTracks(&description.Session{Medias: tt.medias})
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if sel.tracks.audio != tt.audio || sel.tracks.audioUnsupported != tt.unsupported {
				t.Errorf("audio %v unsupported %q", sel.tracks.audio, sel.tracks.audioUnsupported)
			}
			if (sel.audioMedia != nil) != (tt.audio != audioNone) {
				t.Errorf("audio media set up: %v", sel.audioMedia != nil)
			}
		})
	}
}

// The slow-viewer policy, on a camera driven by hand.
func TestOfferPolicy(t *testing.T) {
	m := NewManager(Config{QueueBytes: 1000})
	defer m.Close()
	c := newCamera(m.ctx, m, "cam", &cameraStats{})
	slow, fast := newViewer(t.Context(), c), newViewer(t.Context(), c)
	c.viewers[slow], c.viewers[fast] = struct{}{}, struct{}{}
	drain := func(v *Viewer) (n int) {
		for {
			if _, ok := v.pop(); !ok {
				return n
			}
			n++
		}
	}

	init := &initSegment{codecs: []byte(`{"type":"codecs"}`), data: make([]byte, 50)}
	frag := func(key bool) *fragment { return &fragment{data: make([]byte, 300), key: key, init: init} }

	// The fast viewer reads after every fragment; the slow one never.
	publish := func(f *fragment) {
		c.publish(f)
		drain(fast)
	}
	publish(frag(true)) // codecs, init, key: 367 bytes
	publish(frag(false))
	if slow.queuedBytes() != 667 || slow.skipping {
		t.Fatalf("queued %d", slow.queuedBytes())
	}
	publish(frag(false)) // 967: fits
	publish(frag(false)) // does not fit: skipping
	if !slow.skipping || c.stats.skips.Load() != 1 {
		t.Fatalf("not skipping after overflow")
	}
	publish(frag(false)) // skipped without looking
	for i := 1; i <= hopelessStrikes; i++ {
		if _, ok := c.viewers[slow]; !ok {
			t.Fatalf("dropped after %d strikes", i-1)
		}
		publish(frag(true)) // keyframe does not fit: a strike
	}
	if _, ok := c.viewers[slow]; ok || !errors.Is(slow.Err(), ErrTooSlow) || c.stats.dropped.Load() != 1 {
		t.Fatalf("slow viewer not dropped: err %v", slow.Err())
	}
	if fast.skipping || c.stats.skips.Load() != 1 {
		t.Fatalf("the reading viewer skipped")
	}

	// A viewer that falls behind and catches up resyncs at the next
	// keyframe, where the init segment is not sent again.
	fast.push(Message{Binary: make([]byte, 900)})
	c.publish(frag(false))
	if !fast.skipping {
		t.Fatalf("not skipping")
	}
	drain(fast)
	c.publish(frag(false))
	if fast.queuedBytes() != 0 {
		t.Errorf("skipping viewer got a non-keyframe")
	}
	c.publish(frag(true))
	if fast.queuedBytes() != 300 || fast.skipping || fast.strikes != 0 {
		t.Errorf("after resync: queued %d, skipping %v", fast.queuedBytes(), fast.skipping)
	}
	// A new init segment goes before the keyframe, codecs first.
	init2 := &initSegment{codecs: []byte(`{"type":"codecs","x":1}`), data: make([]byte, 60)}
	drain(fast)
	c.publish(&fragment{data: make([]byte, 100), key: true, init: init2})
	m1, _ := fast.pop()
	m2, _ := fast.pop()
	m3, _ := fast.pop()
	if !bytes.Equal(m1.Text, init2.codecs) || len(m2.Binary) != 60 || len(m3.Binary) != 100 {
		t.Errorf("new init: %q, %d, %d", m1.Text, len(m2.Binary), len(m3.Binary))
	}

	// Control messages go through whatever the bound.
	fast.push(Message{Binary: make([]byte, 2000)})
	c.setOffline(errors.New("down"))
	if fast.queuedBytes() != 2000+len(offlineMsg.Text) {
		t.Errorf("offline not queued over the bound")
	}
}

// The camera goroutine publishes a held keyframe when the muxer lets it go:
// on the first audio (with an init segment that has audio, also for the
// viewers that join later, from the cached group of pictures), or on lost
// video packets (the keyframe is whole; what follows waits for the next).
func TestCameraPublishesHeldKeyframe(t *testing.T) {
	c := loadClip(t, "h264.h264")
	aac := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1}
	tr := &tracks{video: codecH264, sps: c.sps, pps: c.pps, audio: audioAAC, aac: aac, audioRate: 48000}
	m := NewManager(Config{})
	defer m.Close()
	start := func() (*camera, *Viewer) {
		cam := newCamera(m.ctx, m, "cam", &cameraStats{})
		v := newViewer(t.Context(), cam)
		v.skipping = true // as add leaves a viewer of a camera connecting
		cam.viewers[v] = struct{}{}
		cam.handle(upstreamEvent{kind: evSession, tracks: tr})
		cam.handle(upstreamEvent{kind: evVideo, au: c.aus[0], pts: 0, in: time.Now()})
		if v.queuedBytes() != 0 || len(cam.gop) != 0 {
			t.Fatalf("the first keyframe went out before any audio")
		}
		return cam, v
	}
	messages := func(v *Viewer) (msgs []Message) {
		for {
			msg, ok := v.pop()
			if !ok {
				return msgs
			}
			msgs = append(msgs, msg)
		}
	}

	cam, v := start()
	cam.handle(upstreamEvent{kind: evAudio, au: [][]byte{{0x21, 0x10, 0x04}}, pts: 0})
	msgs := messages(v)
	if len(msgs) != 3 || !bytes.Contains(msgs[0].Text, []byte("mp4a.40.2")) || msgs[2].RTPIn.IsZero() {
		t.Fatalf("after the first audio: %d messages, first %q", len(msgs), msgs[0].Text)
	}
	if len(cam.gop) != 1 || !cam.gop[0].init.audio {
		t.Errorf("the cached group of pictures does not start with the keyframe and its audio init")
	}

	cam, v = start()
	cam.handle(upstreamEvent{kind: evVideoGap, err: errVideoGap})
	if msgs := messages(v); len(msgs) != 3 || bytes.Contains(msgs[0].Text, []byte("mp4a")) {
		t.Fatalf("after lost packets: %d messages, want codecs, init and the keyframe, video only", len(msgs))
	}
	cam.handle(upstreamEvent{kind: evVideo, au: c.aus[1], pts: 3600, in: time.Now()})
	if v.queuedBytes() != 0 {
		t.Errorf("a frame after lost packets went out")
	}
}

// Fanning a frame out allocates nothing: the fragment is shared, and
// queues reuse their arrays.
func TestFanOutAllocs(t *testing.T) {
	m := NewManager(Config{})
	defer m.Close()
	c := newCamera(m.ctx, m, "cam", &cameraStats{})
	var list []*Viewer
	for range 10 {
		v := newViewer(t.Context(), c)
		c.viewers[v] = struct{}{}
		list = append(list, v)
	}
	init := &initSegment{codecs: []byte(`{"type":"codecs"}`), data: make([]byte, 700)}
	frags := []*fragment{{data: make([]byte, 5000), key: true, init: init}, {data: make([]byte, 500), init: init}}
	n := 0
	allocs := testing.AllocsPerRun(200, func() {
		c.publish(frags[min(n%25, 1)])
		n++
		for _, v := range list {
			for {
				if _, ok := v.pop(); !ok {
					break
				}
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame", allocs)
	}
}

func TestGuard(t *testing.T) {
	if err := guard(func() error { panic("parser bug") }); !errors.Is(err, errPanic) {
		t.Errorf("panic: %v", err)
	}
	want := errors.New("plain")
	if err := guard(func() error { return want }); err != want {
		t.Errorf("error: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for attempt := range 40 {
		want := min(hi, lo<<min(attempt, 20))
		for range 50 {
			d := backoff(lo, hi, attempt)
			if d < lo || d > want || d < want/2 && want/2 >= lo {
				t.Fatalf("attempt %d: %v, want in [%v, %v]", attempt, d, max(lo, want/2), want)
			}
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{RetryMin: 3 * time.Second, RetryMax: time.Second, QueueBytes: -1}.withDefaults()
	if c.Linger != DefaultLinger || c.QueueBytes != DefaultQueueBytes || c.RetryMax != 3*time.Second || c.Logger == nil {
		t.Errorf("%+v", c)
	}
	c = Config{}.withDefaults()
	if c.RetryMin != DefaultRetryMin || c.RetryMax != DefaultRetryMax {
		t.Errorf("%+v", c)
	}
}

func TestSourceRedaction(t *testing.T) {
	src := Source{URL: "rtsp://admin:hunter2@cam.example:554/live?user=admin&password=hunter2#x", Transport: "UDP"}
	want := "rtsp://cam.example:554/live (udp)"
	for _, got := range []string{src.String(), fmt.Sprint(src), fmt.Sprintf("%+v", src), fmt.Sprintf("%#v", src)} {
		if !strings.Contains(got, want) || strings.Contains(got, "hunter2") || strings.Contains(got, "admin") {
			t.Errorf("%q", got)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "source", src)
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), `"url":"rtsp://cam.example:554/live"`) {
		t.Errorf("log: %s", buf.String())
	}
	if got := redactError(errors.New("bad "+src.URL), src.URL); strings.Contains(got, "hunter2") {
		t.Errorf("redactError: %s", got)
	}
	if got := (Source{URL: "rtsp://a b:c@%zz"}).String(); strings.Contains(got, "c@") {
		t.Errorf("unparsable URL printed: %s", got)
	}
}

// Each fragment carries the time its access unit's first RTP packet was
// read, which the writer of a viewer's socket measures from.
func TestMuxerCarriesRTPIn(t *testing.T) {
	c := loadClip(t, "h264.h264")
	var m muxer
	m.startSession(&tracks{video: codecH264, sps: c.sps, pps: c.pps})
	base := time.Now()
	var got []*fragment
	for i := range 10 {
		_, f, err := m.video(c.aus[i], int64(i)*3600, base.Add(time.Duration(i)*40*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if f != nil {
			got = append(got, f)
		}
	}
	if len(got) != 10 {
		t.Fatalf("%d fragments", len(got))
	}
	for i, f := range got {
		if want := base.Add(time.Duration(i) * 40 * time.Millisecond); !f.in.Equal(want) {
			t.Errorf("fragment %d: in %v, want %v", i, f.in.Sub(base), want.Sub(base))
		}
	}
}
