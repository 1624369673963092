package media_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"github.com/linkgate/linkgate/media"
)

// TestFFmpeg publishes ffmpeg's test pattern (testsrc2, 320x240 at 25 fps,
// an IDR every second, no B-frames), encoded by libx264 and by libx265, to
// an RTSP server in the test, points a Manager at it, and checks what two
// viewers of the camera receive: the codecs message, an init segment that
// describes the stream, then one fragment per frame at 25 a second with
// decode times that go up without gaps, starting at a keyframe; the viewer
// who joins later gets the cached group of pictures at once; both share one
// upstream.
func TestFFmpeg(t *testing.T) {
	bin := ffmpegPath(t)
	for _, tt := range []struct {
		name    string
		encoder []string
	}{
		{"H264", []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-bf", "0"}},
		{"H265", []string{"-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency",
			"-x265-params", "keyint=25:min-keyint=25:bframes=0:log-level=error"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			relay := startRTSPRelay(t)
			ffmpegPublish(t, bin, relay, "/cam", tt.encoder...)

			m := media.NewManager(media.Config{
				Linger: time.Second,
				Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
			})
			t.Cleanup(func() { m.Close() })
			src := media.Source{URL: "rtsp://" + relay.addr + "/cam", Transport: "tcp"}

			first := watch(t, m, src)
			first.waitFragment(t, 5*time.Second)
			// Join 300 ms into a later group of pictures.
			time.Sleep(1300 * time.Millisecond)
			second := watch(t, m, src)
			time.Sleep(time.Second)

			st := m.Stats("cam1")
			t.Logf("stats %+v", st)
			if st.Connects != 1 || st.Viewers != 2 || !st.Running || !st.Online || st.Dropped != 0 || st.Skips != 0 {
				t.Errorf("stats %+v, want one upstream connect, 2 viewers, running and online, none dropped or skipping", st)
			}

			a := first.check(t, relay)
			b := second.check(t, relay)
			if d := b.frags[0].at.Sub(second.joined); d > 100*time.Millisecond {
				t.Errorf("second viewer: first fragment %v after Watch, want within 100ms", d)
			}
			a.contains(t, b)
		})
	}
}

// watcher is a viewer of cam1 whose messages are recorded with their
// arrival times.
type watcher struct {
	v      *media.Viewer
	joined time.Time // when Watch was called

	mu   sync.Mutex // guards msgs, written by the reading goroutine
	msgs []arrival
}

type arrival struct {
	at  time.Time
	msg media.Message
}

// watch attaches a viewer to cam1 and records its messages until the test
// ends.
func watch(t *testing.T, m *media.Manager, src media.Source) *watcher {
	t.Helper()
	w := &watcher{joined: time.Now()}
	v, err := m.Watch(t.Context(), "cam1", src)
	if err != nil {
		t.Fatal(err)
	}
	w.v = v
	read := make(chan struct{})
	go func() {
		defer close(read)
		for msg := range v.Messages() {
			w.mu.Lock()
			w.msgs = append(w.msgs, arrival{time.Now(), msg})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		v.Close()
		<-read
	})
	return w
}

// received returns the messages so far.
func (w *watcher) received() []arrival {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]arrival(nil), w.msgs...)
}

// waitFragment waits for the first fragment, the third message.
func (w *watcher) waitFragment(t *testing.T, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if msgs := w.received(); len(msgs) >= 3 {
			t.Logf("first fragment %v after Watch", msgs[2].at.Sub(w.joined).Round(time.Millisecond))
			return
		}
	}
	t.Fatalf("no fragment %v after Watch; messages: %s", timeout, describe(w.received()))
}

// describe lists messages for failure reports.
func describe(msgs []arrival) string {
	var b strings.Builder
	for _, m := range msgs {
		if m.msg.Text != nil {
			fmt.Fprintf(&b, "%s ", m.msg.Text)
		} else {
			fmt.Fprintf(&b, "[%d bytes] ", len(m.msg.Binary))
		}
	}
	return b.String()
}

// stream is what a viewer received, parsed.
type stream struct {
	codecs string // of the codecs message
	init   fmp4.Init
	frags  []frag
}

type frag struct {
	at       time.Time
	data     []byte
	baseTime uint64
	sample   *fmp4.Sample
}

// check parses what the viewer received and asserts that it is the camera's
// stream: codecs and init segment from its parameter sets, then fragments
// of one video sample each, starting at a keyframe that carries the
// parameter sets, with decode times going up by a frame each.
func (w *watcher) check(t *testing.T, relay *rtspRelay) *stream {
	t.Helper()
	camera := relay.format()
	msgs := w.received()
	if len(msgs) < 3 {
		t.Fatalf("%d messages: %s", len(msgs), describe(msgs))
	}
	s := &stream{}

	// The codecs message.
	var codecs struct{ Type, MIME string }
	if err := json.Unmarshal(msgs[0].msg.Text, &codecs); err != nil || codecs.Type != "codecs" {
		t.Fatalf("first message %q, want the codecs message (%v)", msgs[0].msg.Text, err)
	}
	typ, params, err := mime.ParseMediaType(codecs.MIME)
	if err != nil || typ != "video/mp4" {
		t.Fatalf("MIME type %q (%v)", codecs.MIME, err)
	}
	s.codecs = params["codecs"]

	// The init segment: one video track with the camera's parameter sets.
	if msgs[1].msg.Binary == nil {
		t.Fatalf("second message %q, want the init segment", msgs[1].msg.Text)
	}
	if err := s.init.Unmarshal(bytes.NewReader(msgs[1].msg.Binary)); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	if len(s.init.Tracks) != 1 {
		t.Fatalf("init segment with %d tracks, want 1", len(s.init.Tracks))
	}
	track := s.init.Tracks[0]
	switch camera := camera.(type) {
	case *format.H264:
		codec, ok := track.Codec.(*mp4.CodecH264)
		if !ok {
			t.Fatalf("init segment codec %T, want H.264", track.Codec)
		}
		if !bytes.Equal(codec.SPS, camera.SPS) || !bytes.Equal(codec.PPS, camera.PPS) {
			t.Errorf("init segment SPS %x PPS %x, want the camera's %x %x", codec.SPS, codec.PPS, camera.SPS, camera.PPS)
		}
		checkH264(t, s.codecs, codec.SPS)
	case *format.H265:
		codec, ok := track.Codec.(*mp4.CodecH265)
		if !ok {
			t.Fatalf("init segment codec %T, want H.265", track.Codec)
		}
		if !bytes.Equal(codec.VPS, camera.VPS) || !bytes.Equal(codec.SPS, camera.SPS) || !bytes.Equal(codec.PPS, camera.PPS) {
			t.Errorf("init segment VPS %x SPS %x PPS %x, want the camera's %x %x %x",
				codec.VPS, codec.SPS, codec.PPS, camera.VPS, camera.SPS, camera.PPS)
		}
		checkH265(t, s.codecs, codec.SPS)
	default:
		t.Fatalf("camera format %T", camera)
	}

	// Fragments.
	for i, m := range msgs[2:] {
		if m.msg.Binary == nil {
			t.Fatalf("message %d: %q, want a fragment", i+2, m.msg.Text)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(m.msg.Binary); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if len(parts) != 1 || len(parts[0].Tracks) != 1 || len(parts[0].Tracks[0].Samples) != 1 ||
			parts[0].Tracks[0].ID != track.ID {
			t.Fatalf("fragment %d is not one sample of track %d", i, track.ID)
		}
		pt := parts[0].Tracks[0]
		s.frags = append(s.frags, frag{at: m.at, data: m.msg.Binary, baseTime: pt.BaseTime, sample: pt.Samples[0]})
	}
	t.Logf("%s: %d fragments, the first %v after Watch", s.codecs, len(s.frags), s.frags[0].at.Sub(w.joined).Round(time.Millisecond))

	// The first fragment is a keyframe with the parameter sets in front.
	first := s.frags[0].sample
	if first.IsNonSyncSample {
		t.Error("first fragment is not a sync sample")
	}
	switch camera := camera.(type) {
	case *format.H264:
		au, err := first.GetH264()
		if err != nil {
			t.Fatal(err)
		}
		if !h264.IsRandomAccess(au) || len(au) < 3 || !bytes.Equal(au[0], camera.SPS) || !bytes.Equal(au[1], camera.PPS) {
			t.Errorf("first fragment: not an IDR access unit starting with SPS and PPS (%d NAL units)", len(au))
		}
	case *format.H265:
		au, err := first.GetH265()
		if err != nil {
			t.Fatal(err)
		}
		if !h265.IsRandomAccess(au) || len(au) < 4 || !bytes.Equal(au[0], camera.VPS) || !bytes.Equal(au[1], camera.SPS) || !bytes.Equal(au[2], camera.PPS) {
			t.Errorf("first fragment: not a random access unit starting with VPS, SPS and PPS (%d NAL units)", len(au))
		}
	}

	// Decode times go up by one frame: 1/25 s, without gaps: each frame
	// starts before the estimated end of the one before (which is longer
	// than the frame interval, see frameEstimate).
	frame := uint64(track.TimeScale / 25)
	for i := 1; i < len(s.frags); i++ {
		prev, f := s.frags[i-1], s.frags[i]
		if f.baseTime <= prev.baseTime {
			t.Fatalf("fragment %d: decode time %d after %d", i, f.baseTime, prev.baseTime)
		}
		if f.baseTime > prev.baseTime+uint64(prev.sample.Duration) {
			t.Errorf("fragment %d: decode time %d, past %d + %d: a gap", i, f.baseTime, prev.baseTime, prev.sample.Duration)
		}
		if d := f.baseTime - prev.baseTime; d < frame*9/10 || d > frame*11/10 {
			t.Errorf("fragment %d: %d after the previous one, want about %d (1/25 s)", i, d, frame)
		}
	}

	// Once live (a new viewer gets the cached group of pictures at once),
	// fragments come as the camera's frames do: about 25 a second, as many
	// as the relay passed on in the same time, give or take a little
	// latency. (ffmpeg itself falls behind and then
	// bursts on a loaded machine, which is why the count is compared with
	// the relay's and not only with 25 a second.)
	from, to := w.joined.Add(300*time.Millisecond), time.Now()
	if from.Before(s.frags[0].at) {
		from = s.frags[0].at // the first viewer waited for a keyframe
	}
	live := 0
	for _, f := range s.frags {
		if !f.at.Before(from) {
			live++
		}
	}
	sent := relay.framesBetween(from, to)
	span := to.Sub(from).Seconds()
	t.Logf("%.1f fragments/s; the relay passed on %.1f frames/s", float64(live)/span, float64(sent)/span)
	if d := live - sent; d < -4 || d > 4 {
		t.Errorf("%d fragments in %.2f s while the relay passed on %d frames", live, span, sent)
	}
	if rate := float64(sent) / span; rate < 22 || rate > 28 {
		t.Logf("ffmpeg published %.1f frames/s, not 25: a loaded machine", rate)
	}
	return s
}

// contains asserts that later, a viewer who joined after s's, got the same
// fragments as s from one of s's keyframes on, byte for byte.
func (s *stream) contains(t *testing.T, later *stream) {
	t.Helper()
	start := -1
	for i, f := range s.frags {
		if f.baseTime == later.frags[0].baseTime {
			start = i
		}
	}
	if start < 0 {
		t.Fatalf("the later viewer's first fragment (decode time %d) is not one of the first viewer's", later.frags[0].baseTime)
	}
	if s.frags[start].sample.IsNonSyncSample {
		t.Errorf("the later viewer starts at fragment %d, not a keyframe", start)
	}
	for i, f := range later.frags {
		if start+i >= len(s.frags) {
			break
		}
		if !bytes.Equal(f.data, s.frags[start+i].data) {
			t.Fatalf("fragment %d of the later viewer differs from fragment %d of the first", i, start+i)
		}
	}
}

// checkH264 asserts that codecs is avc1.PPCCLL, from the SPS's profile_idc,
// constraint flags and level_idc, and that the SPS is the pattern's.
func checkH264(t *testing.T, codecs string, sps []byte) {
	t.Helper()
	if want := fmt.Sprintf("avc1.%02x%02x%02x", sps[1], sps[2], sps[3]); !strings.EqualFold(codecs, want) {
		t.Errorf("codecs %q, want %q", codecs, want)
	}
	var p h264.SPS
	if err := p.Unmarshal(sps); err != nil {
		t.Fatal(err)
	}
	if p.Width() != 320 || p.Height() != 240 {
		t.Errorf("SPS: %dx%d, want 320x240", p.Width(), p.Height())
	}
}

// checkH265 asserts that codecs is hvc1.<profile>.<compatibility>.<tier
// and level>..., agreeing with the SPS, and that the SPS is the pattern's.
func checkH265(t *testing.T, codecs string, sps []byte) {
	t.Helper()
	var p h265.SPS
	if err := p.Unmarshal(sps); err != nil {
		t.Fatal(err)
	}
	if p.Width() != 320 || p.Height() != 240 {
		t.Errorf("SPS: %dx%d, want 320x240", p.Width(), p.Height())
	}
	ptl := p.ProfileTierLevel
	f := strings.Split(codecs, ".")
	if len(f) < 4 || f[0] != "hvc1" {
		t.Fatalf("codecs %q, want hvc1.<profile>.<compatibility>.<tier and level>[.<constraints>]", codecs)
	}
	if want := strconv.Itoa(int(ptl.GeneralProfileIdc)); ptl.GeneralProfileSpace != 0 || f[1] != want {
		t.Errorf("codecs %q: profile %q, want %q", codecs, f[1], want)
	}
	// Bit-reversed compatibility flags: flag j is bit j.
	if compat, err := strconv.ParseUint(f[2], 16, 32); err != nil || compat&(1<<ptl.GeneralProfileIdc) == 0 {
		t.Errorf("codecs %q: compatibility flags %q without the profile's own (%d)", codecs, f[2], ptl.GeneralProfileIdc)
	}
	tier := "L"
	if ptl.GeneralTierFlag != 0 {
		tier = "H"
	}
	if want := tier + strconv.Itoa(int(ptl.GeneralLevelIdc)); f[3] != want {
		t.Errorf("codecs %q: tier and level %q, want %q", codecs, f[3], want)
	}
}

// rtspRelay is the test's RTSP server, a small mediamtx: a publisher
// (ffmpeg) ANNOUNCEs and RECORDs a stream at a path, and readers play it
// from there. A real camera, as far as the Manager can tell.
type rtspRelay struct {
	srv  *gortsplib.Server
	addr string // host:port

	mu        sync.Mutex // guards the fields below
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
	path      string
	frames    []time.Time   // arrivals of the publisher's access units (RTP marker)
	receiving chan struct{} // closed at the first publisher's first RTP packet; set once
}

// startRTSPRelay starts a relay on a free loopback port, closed by the
// test's cleanup.
func startRTSPRelay(t *testing.T) *rtspRelay {
	t.Helper()
	r := &rtspRelay{receiving: make(chan struct{})}
	var ln net.Listener // set by Start
	r.srv = &gortsplib.Server{
		Handler:     r,
		RTSPAddress: "127.0.0.1:0",
		Listen: func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			ln = l
			return l, err
		},
	}
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	t.Cleanup(r.srv.Close)
	return r
}

// format returns the video format the publisher announced.
func (r *rtspRelay) format() format.Format {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stream.Desc.Medias[0].Formats[0]
}

// framesBetween counts the access units relayed from from to to.
func (r *rtspRelay) framesBetween(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.frames {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// OnAnnounce takes a publisher's stream, replacing the one before.
func (r *rtspRelay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		r.stream.Close()
		r.publisher.Close()
	}
	r.stream = &gortsplib.ServerStream{Server: r.srv, Desc: ctx.Description}
	if err := r.stream.Initialize(); err != nil {
		r.stream = nil
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	r.publisher, r.path = ctx.Session, ctx.Path
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord relays the publisher's packets to the readers.
func (r *rtspRelay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	r.mu.Lock()
	stream, receiving := r.stream, r.receiving
	r.mu.Unlock()
	var once sync.Once
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		once.Do(func() {
			select {
			case <-receiving:
			default:
				close(receiving)
			}
		})
		if pkt.Marker {
			r.mu.Lock()
			r.frames = append(r.frames, time.Now())
			r.mu.Unlock()
		}
		stream.WritePacketRTP(medi, pkt) //nolint:errcheck // fails only once the stream is closed
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose ends the stream, and its readers' sessions, with its
// publisher.
func (r *rtspRelay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil && ctx.Session == r.publisher {
		r.stream.Close()
		r.stream, r.publisher = nil, nil
	}
}

// find returns the stream published at path, or a 404.
func (r *rtspRelay) find(path string) (*base.Response, *gortsplib.ServerStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream == nil || path != r.path {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

// OnDescribe answers a reader.
func (r *rtspRelay) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return r.find(ctx.Path)
}

// OnSetup answers a reader, or accepts the publisher's media.
func (r *rtspRelay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return r.find(ctx.Path)
}

// OnPlay answers a reader.
func (r *rtspRelay) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// ffmpegPath finds ffmpeg or ends the test: fatally on CI, where its absence
// is a setup bug, and with a skip elsewhere.
func ffmpegPath(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		const msg = "ffmpeg is not installed; run `make test`, which installs it (%v)"
		if os.Getenv("CI") == "true" {
			t.Fatalf(msg, err)
		}
		t.Skipf(msg, err)
	}
	return bin
}

// ffmpegPublish runs ffmpeg publishing its testsrc2 pattern, 320x240 at
// 25 fps in real time, encoded with encoder (the -c:v arguments and
// options), to the relay at path over TCP, and waits until the relay
// receives packets. The test's cleanup kills ffmpeg.
func ffmpegPublish(t *testing.T, bin string, r *rtspRelay, path string, encoder ...string) {
	t.Helper()
	args := []string{
		"-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-pix_fmt", "yuv420p",
	}
	args = append(args, encoder...)
	args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+r.addr+path)
	cmd := exec.Command(bin, args...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() //nolint:errcheck // killed on purpose
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // may have exited already
		<-exited
		if out := stderr.String(); t.Failed() && out != "" {
			t.Logf("ffmpeg: %s", out)
		}
	})

	select {
	case <-r.receiving:
	case <-exited:
		t.Fatalf("ffmpeg exited: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("no packets from ffmpeg 10 s after it started: %s", stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer for a writing goroutine and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
