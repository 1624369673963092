package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// This file is the tests' fake camera: a real gortsplib server on a loopback
// port that publishes a committed clip (testdata/, see make-clips.sh) in a
// loop at 25 fps, with optional audio, through the server stream API.

const (
	testFPS       = 25
	testFrameTime = time.Second / testFPS
	testUser      = "viewer"
	testPass      = "s3cret-pass"
)

// clip is an Annex-B file split into access units at its delimiters, with
// each unit's presentation index (frames) computed from the H.264 picture
// order count, so that clips with B-frames are published with real
// timestamps.
type clip struct {
	codec videoCodec
	aus   [][][]byte
	pts   []int64 // presentation index of aus[i], in frames, >= i
	sps   []byte  // the first SPS
	vps   []byte
	pps   []byte
}

var (
	clipsMu sync.Mutex
	clips   = map[string]*clip{}
)

func loadClip(t testing.TB, name string) *clip {
	t.Helper()
	clipsMu.Lock()
	defer clipsMu.Unlock()
	if c := clips[name]; c != nil {
		return c
	}
	c, err := parseClip(name)
	if err != nil {
		t.Fatalf("clip %s: %v", name, err)
	}
	clips[name] = c
	return c
}

func parseClip(name string) (*clip, error) {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		return nil, err
	}
	c := &clip{codec: codecH264}
	if name[len(name)-1] == '5' {
		c.codec = codecH265
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(b); err != nil {
		return nil, err
	}
	for _, n := range nalus {
		var aud bool
		if c.codec == codecH265 {
			typ := h265.NALUType((n[0] >> 1) & 0x3f)
			aud = typ == h265.NALUType_AUD_NUT
			switch typ {
			case h265.NALUType_VPS_NUT:
				c.vps = cmpOr(c.vps, n)
			case h265.NALUType_SPS_NUT:
				c.sps = cmpOr(c.sps, n)
			case h265.NALUType_PPS_NUT:
				c.pps = cmpOr(c.pps, n)
			}
		} else {
			typ := h264.NALUType(n[0] & 0x1f)
			aud = typ == h264.NALUTypeAccessUnitDelimiter
			switch typ {
			case h264.NALUTypeSPS:
				c.sps = cmpOr(c.sps, n)
			case h264.NALUTypePPS:
				c.pps = cmpOr(c.pps, n)
			}
		}
		if aud || len(c.aus) == 0 {
			c.aus = append(c.aus, nil)
		}
		c.aus[len(c.aus)-1] = append(c.aus[len(c.aus)-1], n)
	}

	// Presentation order: the picture order count restarts at every IDR
	// and x264 counts 2 per frame.
	c.pts = make([]int64, len(c.aus))
	var sps h264.SPS
	if c.codec == codecH264 {
		if err := sps.Unmarshal(c.sps); err != nil {
			return nil, err
		}
	}
	if c.codec == codecH265 || sps.PicOrderCntType == 2 { // no B-frames
		for i := range c.pts {
			c.pts[i] = int64(i)
		}
		return c, nil
	}
	gopStart, delay := 0, int64(0)
	for i, au := range c.aus {
		for _, n := range au {
			typ := h264.NALUType(n[0] & 0x1f)
			if typ != h264.NALUTypeIDR && typ != h264.NALUTypeNonIDR {
				continue
			}
			if typ == h264.NALUTypeIDR {
				gopStart = i
			}
			poc, err := pocLSB(n, &sps)
			if err != nil {
				return nil, err
			}
			c.pts[i] = int64(gopStart) + int64(poc/2)
			delay = max(delay, int64(i)-c.pts[i])
			break
		}
	}
	for i := range c.pts {
		c.pts[i] += delay
	}
	return c, nil
}

func cmpOr(cur, n []byte) []byte {
	if cur != nil {
		return cur
	}
	return n
}

// pocLSB reads pic_order_cnt_lsb from an H.264 slice header (POC type 0).
func pocLSB(nalu []byte, sps *h264.SPS) (uint32, error) {
	if sps.PicOrderCntType != 0 {
		return 0, errors.New("POC type not 0")
	}
	r := bitReader{buf: h264.EmulationPreventionRemove(nalu[1:])}
	r.ue() // first_mb_in_slice
	r.ue() // slice_type
	r.ue() // pic_parameter_set_id
	if sps.SeparateColourPlaneFlag {
		r.bits(2)
	}
	r.bits(int(sps.Log2MaxFrameNumMinus4 + 4)) // frame_num
	if !sps.FrameMbsOnlyFlag {
		if r.bits(1) == 1 {
			r.bits(1)
		}
	}
	if h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeIDR {
		r.ue() // idr_pic_id
	}
	v := r.bits(int(sps.Log2MaxPicOrderCntLsbMinus4 + 4))
	if r.err {
		return 0, errors.New("short slice header")
	}
	return v, nil
}

type bitReader struct {
	buf []byte
	pos int
	err bool
}

func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for range n {
		if r.pos >= len(r.buf)*8 {
			r.err = true
			return 0
		}
		v = v<<1 | uint32(r.buf[r.pos/8]>>(7-r.pos%8))&1
		r.pos++
	}
	return v
}

func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bits(1) == 0 && !r.err && zeros < 32 {
		zeros++
	}
	return (1<<zeros - 1) + r.bits(zeros)
}

// camOpts describes a fake camera.
type camOpts struct {
	clip        string // testdata file; default h264.h264
	audio       string // "", "aac", "opus" or "pcmu"
	udp         bool   // offer UDP too
	noSDPParams bool   // leave the parameter sets out of the SDP
	noAudioData bool   // announce audio but send none
	addr        string // host:port to listen on; default an ephemeral port
	garbage     bool   // send a malformed video packet after every frame
	// lateAudio: publish nothing until the first PLAY, then start the clip
	// at its first keyframe and send each frame's audio after the frame, so
	// that the first packets a session gets are that keyframe's, and its
	// first audio comes after it.
	lateAudio bool
}

// testCam is a fake camera. Start, stop and restart it from the test
// goroutine; the counters may be read from any.
type testCam struct {
	t    testing.TB
	opts camOpts
	addr string

	opened atomic.Int32 // RTSP sessions opened (SETUP)
	closed atomic.Int32 // RTSP sessions closed
	played atomic.Int32

	clip atomic.Pointer[clip] // switched by setClip, at the next loop

	mu     sync.RWMutex // guards stream for the handler
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	video  *description.Media
	audio  *description.Media
	stop   context.CancelFunc
	done   chan struct{}
}

// startCam starts a fake camera and stops it at the end of the test.
func startCam(t testing.TB, opts camOpts) *testCam {
	t.Helper()
	if opts.clip == "" {
		opts.clip = "h264.h264"
	}
	tc := &testCam{t: t, opts: opts, addr: opts.addr}
	tc.clip.Store(loadClip(t, opts.clip))
	tc.start()
	t.Cleanup(tc.kill)
	return tc
}

// url is the camera's URL, with credentials.
func (tc *testCam) url() string {
	return "rtsp://" + testUser + ":" + testPass + "@" + tc.addr + "/cam"
}

func (tc *testCam) source() Source {
	s := Source{URL: tc.url()}
	if tc.opts.udp {
		s.Transport = "udp"
	}
	return s
}

func (tc *testCam) start() {
	tc.t.Helper()
	var err error
	for range 20 {
		if err = tc.tryStart(); err == nil {
			return
		}
	}
	tc.t.Fatalf("start fake camera: %v", err)
}

func (tc *testCam) tryStart() error {
	s := &gortsplib.Server{
		Handler:     tc,
		RTSPAddress: tc.addr,
	}
	if s.RTSPAddress == "" {
		s.RTSPAddress = "127.0.0.1:0"
	}
	var ln net.Listener
	s.Listen = func(network, address string) (net.Listener, error) {
		l, err := net.Listen(network, address)
		ln = l
		return l, err
	}
	if tc.opts.udp {
		// gortsplib wants an even RTP port and the next one for RTCP.
		p, err := freeUDPPair()
		if err != nil {
			return err
		}
		s.UDPRTPAddress = "127.0.0.1:" + strconv.Itoa(p)
		s.UDPRTCPAddress = "127.0.0.1:" + strconv.Itoa(p+1)
	}
	if err := s.Start(); err != nil {
		return err
	}
	tc.addr = ln.Addr().String()

	c := tc.clip.Load()
	video := &description.Media{Type: description.MediaTypeVideo}
	switch c.codec {
	case codecH264:
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		if !tc.opts.noSDPParams {
			f.SPS, f.PPS = c.sps, c.pps
		}
		video.Formats = []format.Format{f}
	case codecH265:
		f := &format.H265{PayloadTyp: 96}
		if !tc.opts.noSDPParams {
			f.VPS, f.SPS, f.PPS = c.vps, c.sps, c.pps
		}
		video.Formats = []format.Format{f}
	}
	desc := &description.Session{Medias: []*description.Media{video}}
	var audio *description.Media
	switch tc.opts.audio {
	case "aac":
		audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{&format.MPEG4Audio{
			PayloadTyp: 97,
			Config: &mpeg4audio.AudioSpecificConfig{
				Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 1,
			},
			SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
		}}}
	case "opus":
		audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{&format.Opus{
			PayloadTyp: 98, ChannelCount: 2,
		}}}
	case "pcmu":
		audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{
			PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1,
		}}}
	}
	if audio != nil {
		desc.Medias = append(desc.Medias, audio)
	}
	stream := &gortsplib.ServerStream{Server: s, Desc: desc}
	if err := stream.Initialize(); err != nil {
		s.Close()
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	tc.mu.Lock()
	tc.srv, tc.stream, tc.video, tc.audio = s, stream, video, audio
	tc.stop, tc.done = cancel, make(chan struct{})
	tc.mu.Unlock()
	go func() {
		defer close(tc.done)
		tc.publish(ctx, stream, video, audio)
	}()
	return nil
}

func freeUDPPair() (int, error) {
	for range 50 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p%2 == 1 {
			p--
		}
		a, err1 := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		b, err2 := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		if err1 == nil && err2 == nil {
			return p, nil
		}
	}
	return 0, errors.New("no free UDP port pair")
}

// kill stops the server: every session and connection ends.
func (tc *testCam) kill() {
	tc.mu.Lock()
	s, stream, stop, done := tc.srv, tc.stream, tc.stop, tc.done
	tc.srv, tc.stream = nil, nil
	tc.mu.Unlock()
	if s == nil {
		return
	}
	stop()
	<-done
	stream.Close()
	s.Close()
}

// setClip switches the published clip when the current loop ends.
func (tc *testCam) setClip(name string) {
	tc.clip.Store(loadClip(tc.t, name))
}

// publish sends the clip in a loop at 25 fps, with audio: AAC at 48 kHz
// from testdata/sine.aac, or 20 ms Opus packets.
func (tc *testCam) publish(ctx context.Context, stream *gortsplib.ServerStream, video, audio *description.Media) {
	write := func(m *description.Media, pkts ...*rtp.Packet) {
		for _, p := range pkts {
			if err := stream.WritePacketRTPWithNTP(m, p, time.Now()); err != nil {
				return
			}
		}
	}
	var encode func([][]byte) ([]*rtp.Packet, error)
	switch f := video.Formats[0].(type) {
	case *format.H264:
		e, _ := f.CreateEncoder()
		encode = e.Encode
	case *format.H265:
		e, _ := f.CreateEncoder()
		encode = e.Encode
	}
	var aacEnc interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	var aacUnits [][]byte
	var opusEnc interface {
		Encode([]byte) (*rtp.Packet, error)
	}
	if audio != nil && !tc.opts.noAudioData {
		switch f := audio.Formats[0].(type) {
		case *format.MPEG4Audio:
			e, _ := f.CreateEncoder()
			aacEnc = e
			b, err := os.ReadFile("testdata/sine.aac")
			if err != nil {
				panic(err)
			}
			var pkts mpeg4audio.ADTSPackets
			if err := pkts.Unmarshal(b); err != nil {
				panic(err)
			}
			for _, p := range pkts {
				aacUnits = append(aacUnits, p.AU)
			}
		case *format.Opus:
			e, _ := f.CreateEncoder()
			opusEnc = e
		}
	}

	if tc.opts.lateAudio {
		for tc.played.Load() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		// PLAY is answered once OnPlay returns: leave the session time to
		// be reading before the keyframe goes out.
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}

	const rtpBase = 1 << 30
	ticker := time.NewTicker(testFrameTime)
	defer ticker.Stop()
	c := tc.clip.Load()
	var (
		loopStart int64  // frame index where the current loop started
		audioN    int64  // audio units sent
		vseq      uint16 // video RTP sequence number, garbage included
	)
	for n := int64(0); ; n++ {
		i := n - loopStart
		if i == int64(len(c.aus)) {
			loopStart, i = n, 0
			c = tc.clip.Load()
		}
		pts := loopStart + c.pts[i]
		pkts, err := encode(c.aus[i])
		if err != nil {
			panic(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(rtpBase + pts*videoTimescale/testFPS)
		}
		for _, p := range pkts {
			p.SequenceNumber = vseq
			vseq++
		}
		// Audio up to the end of this frame, sent before it (so that a
		// session usually sees sound before its first keyframe), or after
		// it with lateAudio.
		now := (n + 1) * 48000 / testFPS
		sendAudio := func() {
			switch {
			case aacEnc != nil:
				for ; audioN*1024 < now; audioN++ {
					ps, err := aacEnc.Encode([][]byte{aacUnits[audioN%int64(len(aacUnits))]})
					if err != nil {
						panic(err)
					}
					for _, p := range ps {
						p.Timestamp = uint32(rtpBase + audioN*1024)
					}
					write(audio, ps...)
				}
			case opusEnc != nil:
				for ; audioN*960 < now; audioN++ {
					p, err := opusEnc.Encode([]byte{0xf8, 0xff, 0xfe}) // CELT 20 ms, one frame
					if err != nil {
						panic(err)
					}
					p.Timestamp = uint32(rtpBase + audioN*960)
					write(audio, p)
				}
			}
		}

		if !tc.opts.lateAudio {
			sendAudio()
		}
		write(video, pkts...)
		if tc.opts.lateAudio {
			sendAudio()
		}
		if tc.opts.garbage && n%5 == 2 {
			bad := garbage[(n/5)%int64(len(garbage))]
			write(video, &rtp.Packet{
				Header: rtp.Header{
					Version: 2, PayloadType: 96, SequenceNumber: vseq,
					Timestamp: pkts[0].Timestamp, Marker: true,
				},
				Payload: bad,
			})
			vseq++
		}

		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// garbage is video RTP payloads a broken camera might send.
var garbage = [][]byte{
	{28, 0x45, 0xff, 0xff},               // FU-A continuation with no start
	{},                                   // empty
	{24, 0xff, 0xff, 0x01},               // STAP-A with a size past the end
	{0x80, 1, 2, 3},                      // forbidden bit set
	{7, 0x64},                            // truncated SPS
	{5, 0x88, 0x84},                      // IDR slice, nothing else
	{0x67, 0xff, 0xff, 0xff, 0xff, 0xff}, // SPS of noise
	{28, 0x85, 0x00},                     // FU-A start of an IDR, never ended
}

// gortsplib server handler.

func (tc *testCam) OnSessionOpen(*gortsplib.ServerHandlerOnSessionOpenCtx) { tc.opened.Add(1) }

func (tc *testCam) OnSessionClose(*gortsplib.ServerHandlerOnSessionCloseCtx) { tc.closed.Add(1) }

func (tc *testCam) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return tc.answer(ctx.Conn, ctx.Request)
}

func (tc *testCam) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return tc.answer(ctx.Conn, ctx.Request)
}

func (tc *testCam) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	tc.played.Add(1)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (tc *testCam) answer(conn *gortsplib.ServerConn, req *base.Request) (*base.Response, *gortsplib.ServerStream, error) {
	if !conn.VerifyCredentials(req, testUser, testPass) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	if tc.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, tc.stream, nil
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tc *testCam) String() string { return fmt.Sprintf("fake camera at %s", tc.addr) }
