package democam_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"github.com/linkgate/linkgate/media"
	"github.com/linkgate/linkgate/media/democam"
)

// start starts a demo camera on a free loopback port, closed by the test's
// cleanup.
func start(t *testing.T) *democam.Server {
	t.Helper()
	s, err := democam.Start("127.0.0.1:0", slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// frame is an access unit as a reader received it.
type frame struct {
	at time.Time
	ts uint32
	au [][]byte
}

// reader is a real RTSP client playing a stream and keeping what it gets.
type reader struct {
	c      *gortsplib.Client
	forma  *format.H264
	played time.Time // when PLAY was answered

	mu     sync.Mutex // guards frames and err, written by the client's goroutine
	frames []frame
	err    error // the first decoding error
}

// play connects to url, plays its H.264 media and gathers access units.
// A nil transport lets the client choose (UDP first, then TCP).
func play(t *testing.T, url string, transport *gortsplib.Transport) *reader {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{c: &gortsplib.Client{
		Scheme:            u.Scheme,
		Host:              u.Host,
		Transport:         transport,
		OnTransportSwitch: func(err error) { t.Logf("transport switch: %v", err) },
	}}
	if err := r.c.Start2(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.c.Close)

	desc, _, err := r.c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	medi := desc.FindFormat(&r.forma)
	if medi == nil {
		t.Fatalf("no H.264 media in %+v", desc)
	}
	dec, err := r.forma.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatal(err)
	}
	r.c.OnPacketRTP(medi, r.forma, func(pkt *rtp.Packet) {
		au, err := dec.Decode(pkt)
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case errors.Is(err, rtph264.ErrMorePacketsNeeded), errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious):
		case err != nil:
			if r.err == nil {
				r.err = err
			}
		default:
			r.frames = append(r.frames, frame{at: now, ts: pkt.Timestamp, au: au})
		}
	})
	if _, err := r.c.Play(nil); err != nil {
		t.Fatal(err)
	}
	r.played = time.Now()
	return r
}

// received returns what the reader got so far.
func (r *reader) received() ([]frame, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]frame(nil), r.frames...), r.err
}

// check asserts what a reader got while playing for about d.
//
// In stream time, strictly: every access unit 3600 after the one before
// (40 ms at 90 kHz, none missing), and an IDR, with the SPS and the PPS in
// front, within the first second. On the wall clock, with the slack a loaded
// CI machine needs: the first access unit at once (the camera publishes
// every 40 ms whether anyone watches or not), about 25 a second, arriving
// in step with their timestamps.
func (r *reader) check(t *testing.T, d time.Duration) {
	t.Helper()
	frames, err := r.received()
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	if len(frames) < 2 {
		t.Fatalf("%d access units in %v", len(frames), d)
	}

	for i := 1; i < len(frames); i++ {
		if step := frames[i].ts - frames[i-1].ts; step != 3600 {
			t.Fatalf("access unit %d: timestamp %d after %d (%+d), want +3600", i, frames[i].ts, frames[i-1].ts, int32(step))
		}
	}

	idr := -1
	for i, f := range frames {
		if h264.IsRandomAccess(f.au) {
			idr = i
			break
		}
	}
	if idr < 0 || idr > 25 {
		t.Fatalf("first IDR is access unit %d, want one of the first 26 (1 s)", idr)
	}
	au := frames[idr].au
	if len(au) < 3 || h264.NALUType(au[0][0]&0x1f) != h264.NALUTypeSPS || h264.NALUType(au[1][0]&0x1f) != h264.NALUTypePPS {
		t.Errorf("IDR access unit without SPS and PPS first: %d NAL units", len(au))
	} else {
		checkSPS(t, au[0])
	}

	// lag is how far an access unit arrived behind its timestamp, taking
	// the first one as on time.
	var maxLag, minLag time.Duration
	for _, f := range frames {
		lag := f.at.Sub(frames[0].at) - time.Duration(f.ts-frames[0].ts)*time.Second/90000
		maxLag, minLag = max(maxLag, lag), min(minLag, lag)
	}
	first, firstIDR := frames[0].at.Sub(r.played), frames[idr].at.Sub(r.played)
	span := frames[len(frames)-1].at.Sub(frames[0].at).Seconds()
	rate := float64(len(frames)-1) / span
	t.Logf("%d access units (%.1f/s); the first %v after PLAY, the first IDR %v; lag from %v to %v",
		len(frames), rate, first.Round(time.Millisecond), firstIDR.Round(time.Millisecond),
		minLag.Round(time.Millisecond), maxLag.Round(time.Millisecond))
	if first > 500*time.Millisecond {
		t.Errorf("first access unit %v after PLAY, want within 40ms or so", first)
	}
	if firstIDR > 1500*time.Millisecond {
		t.Errorf("first IDR %v after PLAY, want within 1 s or so", firstIDR)
	}
	if rate < 20 || rate > 30 {
		t.Errorf("%.1f access units/s, want about 25", rate)
	}
	if maxLag-minLag > 500*time.Millisecond {
		t.Errorf("access units arrived from %v to %v off their timestamps, want in step", minLag, maxLag)
	}
}

// checkSPS asserts that an SPS parses and describes the clip's pictures.
func checkSPS(t *testing.T, nalu []byte) {
	t.Helper()
	var sps h264.SPS
	if err := sps.Unmarshal(nalu); err != nil {
		t.Fatalf("SPS: %v", err)
	}
	if sps.Width() != 640 || sps.Height() != 360 {
		t.Errorf("SPS: %dx%d, want 640x360", sps.Width(), sps.Height())
	}
	if sps.FPS() != 25 {
		t.Errorf("SPS: %g fps, want 25", sps.FPS())
	}
}

func TestPlay(t *testing.T) {
	s := start(t)
	if !strings.HasPrefix(s.URL(), "rtsp://127.0.0.1:") || !strings.HasSuffix(s.URL(), democam.Path) {
		t.Errorf("URL %q", s.URL())
	}
	tcp := gortsplib.TransportTCP
	r := play(t, s.URL(), &tcp)
	if r.forma.SPS == nil || r.forma.PPS == nil {
		t.Fatal("no SPS or PPS in the SDP")
	}
	checkSPS(t, r.forma.SPS)

	const d = 2 * time.Second
	time.Sleep(d)
	r.check(t, d)
}

// Two readers at once both get the stream, one choosing TCP, one left to
// find out that UDP is not offered.
func TestConcurrentReaders(t *testing.T) {
	s := start(t)
	tcp := gortsplib.TransportTCP
	readers := map[string]*reader{"tcp": play(t, s.URL(), &tcp), "default": play(t, s.URL(), nil)}
	const d = 2 * time.Second
	time.Sleep(d)
	for name, r := range readers {
		t.Run(name, func(t *testing.T) { r.check(t, d) })
	}
}

// Close ends the readers' sessions, and later calls do nothing.
func TestCloseEndsReaders(t *testing.T) {
	s := start(t)
	tcp := gortsplib.TransportTCP
	r := play(t, s.URL(), &tcp)
	time.Sleep(200 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- r.c.Wait() }()
	select {
	case err := <-ended:
		t.Logf("reader ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("reader still playing 5 s after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := describe(s.URL()); err == nil {
		t.Error("connected after Close")
	}
}

// describe sends DESCRIBE for url, for tests that expect a refusal.
func describe(url string) error {
	u, err := base.ParseURL(url)
	if err != nil {
		return err
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c.Start2(); err != nil {
		return err
	}
	defer c.Close()
	_, _, err = c.Describe(u)
	return err
}

func TestUnknownPath(t *testing.T) {
	s := start(t)
	url := strings.TrimSuffix(s.URL(), democam.Path) + "/other"
	err := describe(url)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("DESCRIBE %s: %v, want 404", url, err)
	}
}

func TestStartError(t *testing.T) {
	s := start(t)
	taken := strings.TrimSuffix(strings.TrimPrefix(s.URL(), "rtsp://"), democam.Path)
	if _, err := democam.Start(taken, nil); err == nil || !strings.HasPrefix(err.Error(), "democam: ") {
		t.Errorf("Start on a taken port: %v, want a democam error", err)
	}
}

// The demo camera plays through package media as the gateway uses it: the
// codecs message, an init segment for a 640x360 H.264 track, then
// fragments from a keyframe on.
func TestThroughManager(t *testing.T) {
	s := start(t)
	m := media.NewManager(media.Config{})
	t.Cleanup(func() { m.Close() })
	v, err := m.Watch(t.Context(), "demo", media.Source{URL: s.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)

	var msgs []media.Message
	timeout := time.After(5 * time.Second)
	for len(msgs) < 2+25 {
		select {
		case msg, ok := <-v.Messages():
			if !ok {
				t.Fatalf("viewer ended after %d messages", len(msgs))
			}
			msgs = append(msgs, msg)
		case <-timeout:
			t.Fatalf("%d messages in 5 s", len(msgs))
		}
	}
	// Constrained baseline (42 with constraint_set1, C0), level 3.0 (1E).
	var codecs struct{ Type, MIME string }
	want := `video/mp4; codecs="avc1.42C01E"`
	if err := json.Unmarshal(msgs[0].Text, &codecs); err != nil || codecs.Type != "codecs" || !strings.EqualFold(codecs.MIME, want) {
		t.Errorf("first message %s, want the codecs message with %s", msgs[0].Text, want)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(msgs[1].Binary)); err != nil {
		t.Fatal(err)
	}
	if len(init.Tracks) != 1 {
		t.Fatalf("init segment: %d tracks, want 1", len(init.Tracks))
	}
	codec, ok := init.Tracks[0].Codec.(*mp4.CodecH264)
	if !ok {
		t.Fatalf("init segment: %T, want H.264", init.Tracks[0].Codec)
	}
	checkSPS(t, codec.SPS)
	for i, msg := range msgs[2:] {
		var parts fmp4.Parts
		if err := parts.Unmarshal(msg.Binary); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if len(parts) != 1 || len(parts[0].Tracks) != 1 || len(parts[0].Tracks[0].Samples) != 1 {
			t.Fatalf("fragment %d is not one sample", i)
		}
		if key := !parts[0].Tracks[0].Samples[0].IsNonSyncSample; key != (i%25 == 0) {
			t.Errorf("fragment %d: keyframe %v, want one every 25 from the first", i, key)
		}
	}
}
