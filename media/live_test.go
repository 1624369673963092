package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// These tests run the live path against a real RTSP server in the process
// (testcam_test.go), on loopback and ephemeral ports.

func watch(t testing.TB, m *Manager, camera string, src Source) (*Viewer, *reader) {
	t.Helper()
	v, err := m.Watch(context.Background(), camera, src)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(v.Close)
	return v, read(t, v)
}

func TestLiveH264(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(30, 10*time.Second)
	items := r.snapshot()
	s := checkStream(t, items)

	sps := loadClip(t, "h264.h264").sps
	want := `{"type":"codecs","mime":"video/mp4; codecs=\"` + expectedAVC1(sps) + `\""}`
	if items[0].text != want {
		t.Errorf("first message %s, want %s", items[0].text, want)
	}
	if items[1].typ != "init" {
		t.Fatalf("second message is %s, want init", items[1].typ)
	}
	init := items[1].init
	if len(init.Tracks) != 1 || init.Tracks[0].TimeScale != videoTimescale {
		t.Fatalf("init tracks %+v", init.Tracks)
	}
	if c, ok := init.Tracks[0].Codec.(*mp4.CodecH264); !ok || !bytes.Equal(c.SPS, sps) {
		t.Errorf("init codec %#v, want H.264 with the clip's SPS", init.Tracks[0].Codec)
	}
	if s.gaps != 0 {
		t.Errorf("%d gaps in a viewer that kept up", s.gaps)
	}

	// Normalized: parameter sets in front of keyframes, no delimiters,
	// and each frame given twice the camera's 1/25 s (see frameEstimate).
	keys := 0
	for _, it := range items[2:] {
		smp := it.video().Samples[0]
		if smp.Duration != 2*videoTimescale/testFPS {
			t.Errorf("frame duration %d", smp.Duration)
		}
		var au h264.AVCC
		if err := au.Unmarshal(smp.Payload); err != nil {
			t.Fatalf("sample is not AVCC: %v", err)
		}
		for _, n := range au {
			if h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter {
				t.Errorf("access unit delimiter left in a sample")
			}
		}
		if it.key() {
			keys++
			if len(au) < 3 || h264.NALUType(au[0][0]&0x1f) != h264.NALUTypeSPS ||
				h264.NALUType(au[1][0]&0x1f) != h264.NALUTypePPS {
				t.Errorf("keyframe does not start with SPS, PPS")
			}
		}
	}
	if keys < 1 {
		t.Errorf("no keyframe")
	}

	st := m.Stats("cam")
	if st.Connects != 1 || st.Viewers != 1 || !st.Running || !st.Online {
		t.Errorf("stats %+v", st)
	}
	if got := cam.opened.Load(); got != 1 {
		t.Errorf("camera saw %d sessions, want 1", got)
	}
}

func TestLiveH265(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{clip: "h265.h265"})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(30, 10*time.Second)
	items := r.snapshot()
	s := checkStream(t, items)

	sps := loadClip(t, "h265.h265").sps
	codec := expectedHVC1(t, sps)
	if codec != "hvc1.1.6.L60.90" {
		t.Errorf("clip codec string %s", codec)
	}
	if want := `video/mp4; codecs="` + codec + `"`; items[0].codecs.MIME != want {
		t.Errorf("mime %s, want %s", items[0].codecs.MIME, want)
	}
	if c, ok := items[1].init.Tracks[0].Codec.(*mp4.CodecH265); !ok || !bytes.Equal(c.SPS, sps) {
		t.Errorf("init codec %#v", items[1].init.Tracks[0].Codec)
	}
	if !bytes.Contains(items[1].data, []byte("hvc1")) || bytes.Contains(items[1].data, []byte("hev1")) {
		t.Errorf("H.265 sample entry is not hvc1")
	}
	if s.gaps != 0 {
		t.Errorf("%d gaps", s.gaps)
	}
	for _, it := range items[2:] {
		if !it.key() {
			continue
		}
		var au h264.AVCC
		if err := au.Unmarshal(it.video().Samples[0].Payload); err != nil || len(au) < 4 {
			t.Fatalf("keyframe sample: %v", err)
		}
		for i, typ := range []byte{32, 33, 34} { // VPS, SPS, PPS
			if au[i][0]>>1&0x3f != typ {
				t.Errorf("keyframe NAL unit %d has type %d, want %d", i, au[i][0]>>1&0x3f, typ)
			}
		}
	}
}

func TestLiveAAC(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{audio: "aac"})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(50, 10*time.Second)
	items := r.snapshot()
	s := checkStream(t, items)

	want := `video/mp4; codecs="` + expectedAVC1(loadClip(t, "h264.h264").sps) + `,mp4a.40.2"`
	if items[0].codecs.MIME != want {
		t.Errorf("mime %s, want %s", items[0].codecs.MIME, want)
	}
	if len(s.lastInit.Tracks) != 2 || s.lastInit.Tracks[1].TimeScale != 48000 {
		t.Fatalf("init tracks %+v", s.lastInit.Tracks)
	}
	// 48000/1024 audio units per second, 25 fragments per second.
	if min := s.fragments * 3 / 2; s.audioSamples < min {
		t.Errorf("%d audio samples in %d fragments", s.audioSamples, s.fragments)
	}
	for _, it := range items {
		if a := it.audio(); a != nil {
			for _, smp := range a.Samples {
				if smp.Duration != 1024 {
					t.Errorf("AAC sample duration %d", smp.Duration)
				}
			}
		}
	}
}

func TestLiveOpus(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{audio: "opus"})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(30, 10*time.Second)
	s := checkStream(t, r.snapshot())
	if len(s.lastInit.Tracks) != 2 {
		t.Fatalf("init tracks %+v", s.lastInit.Tracks)
	}
	if c, ok := s.lastInit.Tracks[1].Codec.(*mp4.CodecOpus); !ok || c.ChannelCount != 2 {
		t.Errorf("audio codec %#v", s.lastInit.Tracks[1].Codec)
	}
	if s.audioSamples < s.fragments {
		t.Errorf("%d audio samples in %d fragments", s.audioSamples, s.fragments)
	}
}

// A camera whose audio cannot go to a browser (G.711) plays video only, and
// the codecs message says the audio is unsupported.
func TestLiveUnsupportedAudio(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{audio: "pcmu"})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(20, 10*time.Second)
	items := r.snapshot()
	s := checkStream(t, items)
	want := `{"type":"codecs","mime":"video/mp4; codecs=\"` + expectedAVC1(loadClip(t, "h264.h264").sps) + `\"","audio":"unsupported"}`
	if items[0].text != want {
		t.Errorf("first message %s, want %s", items[0].text, want)
	}
	if len(s.lastInit.Tracks) != 1 || s.audioSamples != 0 {
		t.Errorf("audio carried: %d tracks, %d samples", len(s.lastInit.Tracks), s.audioSamples)
	}
}

// A camera that announces audio and sends none still plays: the audio track
// stays out of the init segment.
func TestLiveSilentAudioTrack(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{audio: "aac", noAudioData: true})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(20, 10*time.Second)
	items := r.snapshot()
	s := checkStream(t, items)
	if len(s.lastInit.Tracks) != 1 {
		t.Errorf("init has %d tracks, want video only", len(s.lastInit.Tracks))
	}
	// The first keyframe waited for the audio only until the next frame
	// came, 1/25 s later (the bound leaves room for a loaded machine).
	for _, it := range items {
		if it.typ != "fragment" {
			continue
		}
		if it.in.IsZero() || it.muxed.IsZero() {
			t.Fatalf("the first fragment is not a live one")
		}
		if d := it.muxed.Sub(it.in); d > 500*time.Millisecond {
			t.Errorf("the first keyframe went out %v after its first packet came", d)
		}
		break
	}
}

// A camera whose first audio comes after the first keyframe a session gets
// (lateAudio): that keyframe waits for the audio (see mux.go), so the first
// init segment has both tracks and no other follows: a browser does not
// start video only and then start again.
func TestLiveAudioAfterFirstKeyframe(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{audio: "aac", lateAudio: true})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(60, 10*time.Second) // keyframes at 0, 25 and 50
	items := r.snapshot()
	s := checkStream(t, items)
	if items[1].typ != "init" {
		t.Fatalf("the second message is %s, want init", items[1].typ)
	}
	if n := len(items[1].init.Tracks); n != 2 {
		t.Errorf("the first init segment has %d tracks, want video and audio", n)
	}
	keys := 0
	for _, it := range items {
		if it.typ == "fragment" && it.key() {
			keys++
		}
	}
	if s.inits != 1 || keys < 3 {
		t.Errorf("%d init segments over %d keyframes, want 1", s.inits, keys)
	}
	if s.audioSamples < s.fragments {
		t.Errorf("%d audio samples in %d fragments", s.audioSamples, s.fragments)
	}
}

// Parameter sets only in band, B-frames: decode times come from the
// picture order, composition offsets are positive.
func TestLiveBFramesInBandParams(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{clip: "h264-small.h264", noSDPParams: true})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(40, 10*time.Second)
	items := r.snapshot()
	checkStream(t, items)
	reordered := 0
	for _, it := range items {
		if it.typ == "fragment" && it.video().Samples[0].PTSOffset > 0 {
			reordered++
		}
	}
	if reordered == 0 {
		t.Errorf("no frame has a composition offset; the clip has B-frames")
	}
	if !strings.Contains(items[0].codecs.MIME, expectedAVC1(loadClip(t, "h264-small.h264").sps)) {
		t.Errorf("mime %s", items[0].codecs.MIME)
	}
}

// New parameter sets in band (the camera changes resolution): a new codecs
// message and init segment come before the next keyframe, and decode times
// go on.
func TestLiveParameterChange(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(5, 10*time.Second)
	cam.setClip("h264-small.h264")
	r.waitType("init", 2, 10*time.Second)
	r.waitFragments(r.count("fragment")+5, 10*time.Second)

	s := checkStream(t, r.snapshot())
	c, ok := s.lastInit.Tracks[0].Codec.(*mp4.CodecH264)
	if !ok || !bytes.Equal(c.SPS, loadClip(t, "h264-small.h264").sps) {
		t.Errorf("second init segment does not have the new SPS")
	}
}

// A viewer that joins in the middle of a group of pictures starts at once
// from the cached keyframe, not at the next one.
func TestJoinMidGOP(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{})
	_, first := watch(t, m, "cam", cam.source())
	// Wait until the first viewer is ~10 frames into a group.
	waitFor(t, 10*time.Second, "mid-GOP", func() bool {
		items := first.snapshot()
		n := 0
		for i := len(items) - 1; i >= 0 && items[i].typ == "fragment"; i-- {
			if items[i].key() {
				return n >= 10 && n <= 15
			}
			n++
		}
		return false
	})
	latest := first.snapshot()
	latestDTS := latest[len(latest)-1].video().BaseTime

	start := time.Now()
	_, second := watch(t, m, "cam", cam.source())
	second.waitFragments(1, 5*time.Second)
	took := time.Since(start)
	items := second.snapshot()
	checkStream(t, items)
	var firstFrag item
	for _, it := range items {
		if it.typ == "fragment" {
			firstFrag = it
			break
		}
	}
	if !firstFrag.key() {
		t.Fatalf("first fragment of a joining viewer is not a keyframe")
	}
	// From the cache: a keyframe from before the join, so the viewer did
	// not wait for the next one (up to a second away).
	if firstFrag.video().BaseTime >= latestDTS {
		t.Errorf("joining viewer started at decode time %d, after the group in progress (%d)",
			firstFrag.video().BaseTime, latestDTS)
	}
	t.Logf("time to first fragment mid-GOP: %v", took)
	if took > 500*time.Millisecond { // the next keyframe is ~0.5 s away
		t.Errorf("first fragment took %v", took)
	}
	// And it catches up: it gets the cached group at once.
	if n := second.count("fragment"); n < 10 {
		second.waitFragments(10, time.Second)
	}
}

// Fifty viewers share one upstream.
func TestSharedUpstream(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{audio: "aac"})
	m, _ := newTestManager(t, Config{})
	const n = 50
	readers := make([]*reader, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, readers[i] = watch(t, m, "cam", cam.source())
		})
	}
	wg.Wait()
	for _, r := range readers {
		r.waitFragments(15, 15*time.Second)
	}
	for _, r := range readers {
		checkStream(t, r.snapshot())
	}
	// Built once: two viewers get the very same bytes for a fragment.
	bySeq := map[uint32][]byte{}
	for _, it := range readers[0].snapshot() {
		if it.typ == "fragment" {
			bySeq[it.part.SequenceNumber] = it.data
		}
	}
	shared := 0
	for _, it := range readers[n-1].snapshot() {
		if it.typ != "fragment" {
			continue
		}
		if d, ok := bySeq[it.part.SequenceNumber]; ok {
			if &d[0] != &it.data[0] {
				t.Fatalf("fragment %d built twice", it.part.SequenceNumber)
			}
			shared++
		}
	}
	if shared == 0 {
		t.Errorf("no fragment in common")
	}
	if got := cam.opened.Load(); got != 1 {
		t.Errorf("camera saw %d RTSP sessions, want 1", got)
	}
	if st := m.Stats("cam"); st.Connects != 1 || st.Viewers != n {
		t.Errorf("stats %+v", st)
	}
}

// The upstream stays Linger after the last viewer leaves, is reused by a
// viewer that comes back in time, and stops after.
func TestLinger(t *testing.T) {
	t.Parallel()
	const linger = 400 * time.Millisecond
	cam := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{Linger: linger})

	v, r := watch(t, m, "cam", cam.source())
	r.waitFragments(3, 10*time.Second)
	v.Close()
	select {
	case <-r.done:
	case <-time.After(time.Second):
		t.Fatal("Messages open after Close returned")
	}
	if err := v.Err(); err != nil {
		t.Errorf("Err after Close: %v", err)
	}

	v, r = watch(t, m, "cam", cam.source())
	r.waitFragments(3, 10*time.Second)
	if cam.opened.Load() != 1 || m.Stats("cam").Connects != 1 {
		t.Errorf("a viewer during linger did not reuse the upstream: %d sessions", cam.opened.Load())
	}
	if st := m.Stats("cam"); st.Viewers != 1 {
		t.Errorf("viewers %d", st.Viewers)
	}

	v.Close()
	left := time.Now()
	waitFor(t, 10*time.Second, "the camera to see the session close", func() bool { return cam.closed.Load() == 1 })
	if d := time.Since(left); d < linger*9/10 {
		t.Errorf("upstream stopped %v after the last viewer, before Linger", d)
	}
	waitFor(t, time.Second, "Running false", func() bool { return !m.Stats("cam").Running })
	if st := m.Stats("cam"); st.Viewers != 0 || st.Connects != 1 {
		t.Errorf("stats %+v", st)
	}

	// A new viewer after that starts a new upstream.
	_, r = watch(t, m, "cam", cam.source())
	r.waitFragments(1, 10*time.Second)
	if got := cam.opened.Load(); got != 2 {
		t.Errorf("sessions %d, want 2", got)
	}
}

// Killing the camera and starting it again on the same port: viewers stay,
// see offline then online, and decode times go on.
func TestReconnect(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{audio: "aac"})
	m, _ := newTestManager(t, Config{})
	_, r1 := watch(t, m, "cam", cam.source())
	_, r2 := watch(t, m, "cam", cam.source())
	r1.waitFragments(10, 10*time.Second)
	r2.waitFragments(10, 10*time.Second)

	cam.kill()
	r1.waitType("offline", 1, 10*time.Second)
	r2.waitType("offline", 1, 10*time.Second)
	if st := m.Stats("cam"); st.Online || st.Failures < 1 || st.Viewers != 2 {
		t.Errorf("stats while down %+v", st)
	}
	before := r1.count("fragment")

	cam.start()
	r1.waitType("online", 1, 10*time.Second)
	r1.waitFragments(before+10, 10*time.Second)
	r2.waitFragments(before+10, 10*time.Second)

	for _, r := range []*reader{r1, r2} {
		s := checkStream(t, r.snapshot())
		if s.inits != 1 {
			t.Errorf("%d init segments; parameters did not change", s.inits)
		}
		if s.gaps != 0 {
			t.Errorf("%d gaps in decode times across the reconnect", s.gaps)
		}
	}
	if st := m.Stats("cam"); st.Connects != 2 || !st.Online {
		t.Errorf("stats %+v", st)
	}
}

// A camera that is down when the first viewer comes: offline at once, then
// online and the stream when it comes up.
func TestOfflineAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	m, _ := newTestManager(t, Config{})
	src := Source{URL: "rtsp://" + testUser + ":" + testPass + "@" + addr + "/cam"}
	_, r := watch(t, m, "cam", src)
	r.waitType("offline", 1, 10*time.Second)

	startCam(t, camOpts{addr: addr})
	r.waitFragments(5, 10*time.Second)
	items := r.snapshot()
	checkStream(t, items)
	var types []string
	for _, it := range items[:5] {
		types = append(types, it.typ)
	}
	if got := strings.Join(types, ","); got != "offline,online,codecs,init,fragment" {
		t.Errorf("stream starts %s", got)
	}
}

// A viewer that never reads does not slow the others, and is dropped.
func TestStalledViewer(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{QueueBytes: 16 << 10})

	stalled, err := m.Watch(context.Background(), "cam", cam.source())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	var readers []*reader
	for range 3 {
		_, r := watch(t, m, "cam", cam.source())
		readers = append(readers, r)
	}
	readers[0].waitFragments(1, 10*time.Second)
	start, n0 := time.Now(), readers[0].count("fragment")

	waitFor(t, 15*time.Second, "the stalled viewer to be dropped", func() bool { return m.Stats("cam").Dropped == 1 })
	// Its Messages channel is closed (at most one message was in flight).
	got := 0
	for range stalled.Messages() {
		got++
	}
	if got > 1 {
		t.Errorf("%d messages from a dropped viewer", got)
	}
	if err := stalled.Err(); !errors.Is(err, ErrTooSlow) {
		t.Errorf("Err of a dropped viewer: %v", err)
	}

	elapsed := time.Since(start)
	frames := readers[0].count("fragment") - n0
	if want := int(elapsed/testFrameTime) / 2; frames < want {
		t.Errorf("a reading viewer got %d fragments in %v while another stalled", frames, elapsed)
	}
	for _, r := range readers {
		if s := checkStream(t, r.snapshot()); s.gaps != 0 {
			t.Errorf("a reading viewer skipped %d times", s.gaps)
		}
	}
	if st := m.Stats("cam"); st.Viewers != 3 || st.Skips < 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestLiveUDP(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{udp: true, audio: "aac"})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(20, 10*time.Second)
	s := checkStream(t, r.snapshot())
	if s.audioSamples == 0 {
		t.Errorf("no audio over UDP")
	}
}

// Malformed RTP in the video (truncated fragments, bad headers, noise
// parameter sets): counted, resynchronized at keyframes, never a panic, and
// the stream that goes out stays valid.
func TestLiveGarbage(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{garbage: true})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", cam.source())
	r.waitFragments(15, 15*time.Second)
	checkStream(t, r.snapshot())
	if st := m.Stats("cam"); st.Resyncs == 0 {
		t.Errorf("no resync counted: %+v", st)
	}
}

// The newest source of a camera wins.
func TestSourceChange(t *testing.T) {
	t.Parallel()
	a := startCam(t, camOpts{})
	b := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{})
	_, r := watch(t, m, "cam", a.source())
	r.waitFragments(3, 10*time.Second)
	_, r2 := watch(t, m, "cam", b.source())
	r2.waitFragments(3, 10*time.Second)
	waitFor(t, 5*time.Second, "the old source's session to close", func() bool { return a.closed.Load() == 1 })
	if b.opened.Load() != 1 {
		t.Errorf("new source sessions %d", b.opened.Load())
	}
	if a.opened.Load() != 1 {
		t.Errorf("old source sessions %d", a.opened.Load())
	}
	n := r.count("fragment")
	r.waitFragments(n+3, 10*time.Second) // the first viewer goes on with the new source
	checkStream(t, r.snapshot())
}

func TestWatchErrors(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager(t, Config{})
	for _, src := range []Source{
		{URL: "http://cam/x"},
		{URL: "rtsp://cam/x", Transport: "sctp"},
		{URL: "rtsp://user:pa ss@[::1"},
		{URL: ""},
	} {
		_, err := m.Watch(context.Background(), "cam", src)
		if !errors.Is(err, ErrInvalidSource) {
			t.Errorf("Watch(%v): %v, want ErrInvalidSource", src, err)
		}
		if err != nil && strings.Contains(err.Error(), "pa ss") {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
	if _, err := m.Watch(context.Background(), "", Source{URL: "rtsp://cam/x"}); !errors.Is(err, ErrInvalidSource) {
		t.Errorf("empty camera id: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Watch(ctx, "cam", Source{URL: "rtsp://127.0.0.1:1/x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	m.Close()
	if _, err := m.Watch(context.Background(), "cam", Source{URL: "rtsp://127.0.0.1:1/x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// A viewer ends with its context.
func TestViewerContext(t *testing.T) {
	t.Parallel()
	cam := startCam(t, camOpts{})
	m, _ := newTestManager(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	v, err := m.Watch(ctx, "cam", cam.source())
	if err != nil {
		t.Fatal(err)
	}
	r := read(t, v)
	r.waitFragments(2, 10*time.Second)
	cancel()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Messages not closed after the context ended")
	}
	waitFor(t, 5*time.Second, "viewers 0", func() bool { return m.Stats("cam").Viewers == 0 })
	if err := v.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err: %v", err)
	}
	v.Close() // no-op
}

// Close ends every viewer and stops every upstream before returning.
func TestManagerClose(t *testing.T) {
	t.Parallel()
	cam1 := startCam(t, camOpts{})
	cam2 := startCam(t, camOpts{clip: "h265.h265"})
	m, _ := newTestManager(t, Config{})
	v1, r1 := watch(t, m, "one", cam1.source())
	_, r2 := watch(t, m, "two", cam2.source())
	r1.waitFragments(1, 10*time.Second)
	r2.waitFragments(1, 10*time.Second)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v1.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err after manager Close: %v", err)
	}
	for _, r := range []*reader{r1, r2} {
		select {
		case <-r.done:
		case <-time.After(time.Second):
			t.Fatal("Messages still open after Close")
		}
	}
	for _, id := range []string{"one", "two"} {
		if st := m.Stats(id); st.Running || st.Viewers != 0 {
			t.Errorf("%s after Close: %+v", id, st)
		}
	}
	waitFor(t, 5*time.Second, "sessions to close", func() bool { return cam1.closed.Load() == 1 && cam2.closed.Load() == 1 })
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The camera password never reaches a log, even at debug level and through
// failures (newTestManager checks every test's logs; this one makes sure
// the logs have the source and errors in them).
func TestCredentialsStayOut(t *testing.T) {
	t.Parallel()
	m, logs := newTestManager(t, Config{})
	src := Source{URL: "rtsp://admin:" + testPass + "@127.0.0.1:1/stream?token=" + testPass}
	_, r := watch(t, m, "cam", src)
	r.waitType("offline", 1, 10*time.Second)
	waitFor(t, 5*time.Second, "logs", func() bool {
		return strings.Contains(logs.String(), "camera offline") && strings.Contains(logs.String(), "127.0.0.1:1/stream")
	})
	for _, s := range []string{fmt.Sprint(src), fmt.Sprintf("%+v", src), fmt.Sprintf("%#v", src)} {
		if strings.Contains(s, testPass) || strings.Contains(s, "admin") {
			t.Errorf("formatted source leaks credentials: %s", s)
		}
	}
}
