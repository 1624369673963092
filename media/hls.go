package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// The LL-HLS fallback, for browsers without Media Source Extensions (Safari
// on older iPhones plays HLS natively). A camera's LL-HLS output is fed from
// the same normalized access units as its fMP4 viewers, on the same camera
// timeline: one RTSP upstream serves both. It is started by the first HLS
// request and stopped Linger after the last one.
//
// gohlslib answers requests itself, but its waits (a playlist before the
// first segment, a blocking playlist request, the preload-hinted part) have
// no deadline: only new media or the muxer's end release them. So requests
// never reach it before they can be answered at once: after every video
// access unit the camera goroutine reads the media playlist (which then
// answers without waiting) and publishes what it lists, and requests wait
// on that, with a deadline, in their own goroutine.

// Errors of [Manager.ServeHLS].
var (
	// ErrHLSNotFound: no such file in the camera's stream (a name that is
	// not one the muxer makes, a segment already dropped, a muxer that was
	// replaced).
	ErrHLSNotFound = errors.New("media: no such HLS file")
	// ErrHLSNotReady: the request could not be answered within
	// [HLSConfig.BlockTimeout] (the camera is connecting or offline, or a
	// blocking request asked for media that did not come), or the camera
	// has [HLSConfig.MaxWaiting] requests waiting already. Try again.
	ErrHLSNotReady = errors.New("media: HLS stream not ready")
)

// HLSQueryError is the error of a query parameter of an HLS request that
// is not valid (_HLS_msn, _HLS_part, _HLS_skip).
type HLSQueryError struct {
	Param  string // the parameter's name
	Reason string // what is wrong with it, safe to show
}

func (e *HLSQueryError) Error() string { return "media: HLS query " + e.Param + ": " + e.Reason }

// HLSConfig configures the LL-HLS fallback. A zero (or negative) field
// takes its default.
type HLSConfig struct {
	// SegmentCount is how many segments each camera keeps. It defaults to
	// 7, the least LL-HLS allows (lower values are raised to it).
	SegmentCount int
	// SegmentMinDuration: a segment ends at the first keyframe after it.
	// It defaults to 1 s.
	SegmentMinDuration time.Duration
	// PartMinDuration is the least duration of a part. It defaults to
	// 200 ms.
	PartMinDuration time.Duration
	// SegmentMaxBytes bounds one segment; video past it is an encoding
	// error that restarts the camera's HLS output. So a camera's HLS memory
	// stays below about (SegmentCount+1) × SegmentMaxBytes. It defaults to
	// 8 MiB.
	SegmentMaxBytes int
	// BlockTimeout bounds how long one request waits for the media it asks
	// for (the first segment, a blocking playlist request, the
	// preload-hinted part). It defaults to 5 s.
	BlockTimeout time.Duration
	// MaxWaiting bounds the requests being served for one camera at a
	// time; more are refused with [ErrHLSNotReady]. It defaults to 1024.
	MaxWaiting int
}

// Defaults of HLSConfig.
const (
	DefaultHLSSegmentCount    = 7
	DefaultHLSSegmentDuration = time.Second
	DefaultHLSPartDuration    = 200 * time.Millisecond
	DefaultHLSSegmentMaxBytes = 8 << 20
	DefaultHLSBlockTimeout    = 5 * time.Second
	DefaultHLSMaxWaiting      = 1024
)

func (c HLSConfig) withDefaults() HLSConfig {
	c.SegmentCount = max(c.SegmentCount, DefaultHLSSegmentCount)
	if c.SegmentMinDuration <= 0 {
		c.SegmentMinDuration = DefaultHLSSegmentDuration
	}
	if c.PartMinDuration <= 0 {
		c.PartMinDuration = DefaultHLSPartDuration
	}
	if c.SegmentMaxBytes <= 0 {
		c.SegmentMaxBytes = DefaultHLSSegmentMaxBytes
	}
	if c.BlockTimeout <= 0 {
		c.BlockTimeout = DefaultHLSBlockTimeout
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = DefaultHLSMaxWaiting
	}
	return c
}

// HLSRequest is one request for a camera's LL-HLS stream.
type HLSRequest struct {
	// File is the last element of the path: index.m3u8 (the multivariant
	// playlist, the entry point), or a media playlist, init file, segment
	// or part named by the playlists.
	File string
	// Query is the raw query. _HLS_msn, _HLS_part and _HLS_skip are
	// honoured (blocking playlist reload and delta updates); other
	// parameters are ignored.
	Query string
}

// HLSResponse is the answer to an HLSRequest: a body of at most one segment
// and content type. It is meant to be sent with Cache-Control: no-store.
type HLSResponse struct {
	Status      int // 200 or 400 (gohlslib refused the request)
	ContentType string
	Body        []byte
}

// hlsFileKind is what an HLS file name names.
type hlsFileKind int

const (
	hlsMultivariant hlsFileKind = iota + 1
	hlsMediaPlaylist
	hlsInit
	hlsSegment
	hlsPart
)

// hlsTarget is a parsed HLS request.
type hlsTarget struct {
	file   string // checked: of a shape gohlslib makes
	kind   hlsFileKind
	prefix string // of init, segment and part files
	id     uint64 // segment or part id

	blocking bool // _HLS_msn given
	msn      uint64
	part     uint64 // with blocking
	skip     string // "", "YES" or "v2"
}

// maxHLSFileName bounds a file name: gohlslib's longest is a 12-digit
// prefix, a stream id and a part number.
const maxHLSFileName = 64

// parseHLSRequest checks an HLS request: the file must be of a shape the
// muxer makes, and the query's _HLS_ parameters valid. Anything else is
// ErrHLSNotFound or an *HLSQueryError.
func parseHLSRequest(req HLSRequest) (hlsTarget, error) {
	f := req.File
	t := hlsTarget{file: f}
	if len(f) == 0 || len(f) > maxHLSFileName {
		return hlsTarget{}, ErrHLSNotFound
	}
	switch {
	case f == "index.m3u8":
		t.kind = hlsMultivariant
	case strings.HasSuffix(f, "_stream.m3u8"):
		if !validStreamID(strings.TrimSuffix(f, "_stream.m3u8")) {
			return t, ErrHLSNotFound
		}
		t.kind = hlsMediaPlaylist
	case strings.HasSuffix(f, ".mp4"):
		// <prefix>_<stream>_init.mp4, _seg<N>.mp4, _part<N>.mp4
		fields := strings.Split(strings.TrimSuffix(f, ".mp4"), "_")
		if len(fields) != 3 || !validPrefix(fields[0]) || !validStreamID(fields[1]) {
			return t, ErrHLSNotFound
		}
		t.prefix = fields[0]
		name := fields[2]
		switch {
		case name == "init":
			t.kind = hlsInit
		case strings.HasPrefix(name, "seg"):
			t.kind = hlsSegment
			name = name[3:]
		case strings.HasPrefix(name, "part"):
			t.kind = hlsPart
			name = name[4:]
		default:
			return t, ErrHLSNotFound
		}
		if t.kind != hlsInit {
			id, ok := parseDecimal(name)
			if !ok {
				return t, ErrHLSNotFound
			}
			t.id = id
		}
	default:
		return t, ErrHLSNotFound
	}

	if req.Query == "" {
		return t, nil
	}
	if len(req.Query) > 256 {
		return t, &HLSQueryError{Param: "query", Reason: "too long"}
	}
	q, err := url.ParseQuery(req.Query)
	if err != nil {
		return t, &HLSQueryError{Param: "query", Reason: "does not parse"}
	}
	if t.kind != hlsMediaPlaylist {
		return t, nil // gohlslib ignores the query of other files
	}
	for _, p := range []string{"_HLS_msn", "_HLS_part", "_HLS_skip"} {
		if len(q[p]) > 1 {
			return t, &HLSQueryError{Param: p, Reason: "given more than once"}
		}
	}
	if v, ok := q["_HLS_msn"]; ok {
		n, ok := parseDecimal(v[0])
		if !ok {
			return t, &HLSQueryError{Param: "_HLS_msn", Reason: "want a decimal integer"}
		}
		t.blocking, t.msn = true, n
	}
	if v, ok := q["_HLS_part"]; ok {
		n, ok := parseDecimal(v[0])
		if !ok {
			return t, &HLSQueryError{Param: "_HLS_part", Reason: "want a decimal integer"}
		}
		if !t.blocking {
			return t, &HLSQueryError{Param: "_HLS_part", Reason: "needs _HLS_msn"}
		}
		t.part = n
	}
	if v, ok := q["_HLS_skip"]; ok {
		if v[0] != "YES" && v[0] != "v2" {
			return t, &HLSQueryError{Param: "_HLS_skip", Reason: "want YES or v2"}
		}
		t.skip = v[0]
	}
	return t, nil
}

// query is the request's query as gohlslib is given it: only the _HLS_
// parameters, checked (gohlslib copies the rest into every URI it lists).
func (t hlsTarget) query() string {
	if t.kind != hlsMediaPlaylist {
		return ""
	}
	var q []string
	if t.blocking {
		q = append(q, "_HLS_msn="+strconv.FormatUint(t.msn, 10), "_HLS_part="+strconv.FormatUint(t.part, 10))
	}
	if t.skip != "" {
		q = append(q, "_HLS_skip="+t.skip)
	}
	return strings.Join(q, "&")
}

// parseDecimal parses a decimal uint64 of at most 19 digits, no sign.
func parseDecimal(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// validStreamID: gohlslib names streams video<N> and audio<N>.
func validStreamID(s string) bool {
	var n string
	switch {
	case strings.HasPrefix(s, "video"):
		n = s[5:]
	case strings.HasPrefix(s, "audio"):
		n = s[5:]
	default:
		return false
	}
	_, ok := parseDecimal(n)
	return ok && len(n) <= 2
}

// validPrefix: gohlslib's file prefix is 12 lowercase hex digits.
func validPrefix(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hlsSnapshot is what a muxer instance's media playlist listed last.
type hlsSnapshot struct {
	ready    bool   // playlists answer at once
	prefix   string // of the instance's files
	firstMSN uint64 // media sequence number of segments[0]
	segments []hlsSegmentInfo
	nextMSN  uint64 // the segment being built
	parts    int    // complete parts of the segment being built
	nextPart uint64 // id of the part being built (the preload hint)
}

type hlsSegmentInfo struct {
	gap   bool
	parts int // -1: not listed (older segments)
}

// has reports whether a blocking playlist request for (msn, part) can be
// answered now, as gohlslib decides it (a part past a segment's last is
// part 0 of the next); bad reports one gohlslib refuses at once (400).
func (s *hlsSnapshot) has(msn, part uint64) (ok, bad bool) {
	if msn > s.nextMSN+1 || msn < s.firstMSN {
		return false, true
	}
	for {
		if msn >= s.nextMSN {
			return msn == s.nextMSN && part < uint64(s.parts), false
		}
		seg := s.segments[msn-s.firstMSN]
		switch {
		case seg.gap:
			return false, true // gohlslib would wait forever: refuse instead
		case seg.parts < 0:
			return true, false // an older segment: a later one is complete
		case part < uint64(seg.parts):
			return true, false
		}
		msn, part = msn+1, 0
	}
}

// hlsInstance is one gohlslib muxer, fed by the camera goroutine; a camera
// whose tracks change gets a new one.
type hlsInstance struct {
	mux    *gohlslib.Muxer
	video  *gohlslib.Track
	audio  *gohlslib.Track // nil: video only
	acodec audioCodec
	layout string // codecs and audio configuration it was made for
	stream string // id of the leading stream: its media playlist is read
	probe  sync.WaitGroup
}

// hlsOutput is a camera's LL-HLS output while HLS clients come. The camera
// goroutine owns its life and feeds it; request goroutines read the current
// instance and its snapshot under mu and wait on changed.
type hlsOutput struct {
	cfg      HLSConfig
	log      *slog.Logger
	inflight atomic.Int64 // requests being served
	last     time.Time    // the last request's arrival; owned by the camera goroutine

	mu      sync.Mutex // guards inst, snap, changed, closed
	inst    *hlsInstance
	snap    hlsSnapshot
	changed chan struct{} // closed, and replaced, whenever the fields change
	closed  bool
}

func newHLSOutput(cfg HLSConfig, log *slog.Logger) *hlsOutput {
	return &hlsOutput{cfg: cfg, log: log, changed: make(chan struct{})}
}

// notifyLocked wakes every waiting request.
func (o *hlsOutput) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// layoutOf names the tracks of a session as the HLS muxer needs them.
func layoutOf(tr *tracks) string {
	l := tr.video.String()
	switch tr.audio {
	case audioAAC:
		enc, err := tr.aac.Marshal()
		if err != nil {
			return l
		}
		l += "+aac:" + string(enc)
	case audioOpus:
		l += "+opus:" + strconv.Itoa(tr.opusChannels)
	}
	return l
}

// start makes a new instance for tr, replacing the current one. Its
// tracks are the session's, from the SDP, not the ones that have sent
// media: a camera whose first audio comes after its first keyframe gets no
// new init file here (the fMP4 path holds that keyframe instead, mux.go).
// Camera goroutine only.
func (o *hlsOutput) start(tr *tracks) {
	o.stop()
	inst := &hlsInstance{layout: layoutOf(tr)}
	switch tr.video {
	case codecH265:
		inst.video = &gohlslib.Track{Codec: &codecs.H265{}, ClockRate: videoTimescale}
	default:
		inst.video = &gohlslib.Track{Codec: &codecs.H264{}, ClockRate: videoTimescale}
	}
	ts := []*gohlslib.Track{inst.video}
	switch tr.audio {
	case audioAAC:
		inst.audio = &gohlslib.Track{Codec: &codecs.MPEG4Audio{Config: *tr.aac}, ClockRate: tr.audioRate}
	case audioOpus:
		inst.audio = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: tr.opusChannels}, ClockRate: 48000}
	}
	if inst.audio != nil {
		inst.acodec = tr.audio
		ts = append(ts, inst.audio)
	}
	inst.stream = "video1"
	inst.mux = &gohlslib.Muxer{
		Tracks:             ts,
		Variant:            gohlslib.MuxerVariantLowLatency,
		SegmentCount:       o.cfg.SegmentCount,
		SegmentMinDuration: o.cfg.SegmentMinDuration,
		PartMinDuration:    o.cfg.PartMinDuration,
		SegmentMaxSize:     uint64(o.cfg.SegmentMaxBytes),
		OnEncodeError:      func(err error) { o.log.Debug("HLS encoding", "error", err) },
	}
	if err := inst.mux.Start(); err != nil {
		o.log.Debug("HLS muxer", "error", err)
		return
	}
	o.mu.Lock()
	o.inst, o.snap = inst, hlsSnapshot{}
	o.notifyLocked()
	o.mu.Unlock()

	// The probe waits, in gohlslib, for the first segment: the one wait that
	// only gohlslib can end. It ends at the latest when the muxer closes.
	inst.probe.Add(1)
	go func() {
		defer inst.probe.Done()
		body, ok := inst.read()
		if !ok {
			return
		}
		o.publish(inst, body)
	}()
}

// stop closes the current instance; waiting requests find it gone.
// Camera goroutine only.
func (o *hlsOutput) stop() {
	o.mu.Lock()
	inst := o.inst
	o.inst, o.snap = nil, hlsSnapshot{}
	o.notifyLocked()
	o.mu.Unlock()
	if inst != nil {
		inst.mux.Close()
		inst.probe.Wait()
	}
}

// close ends the output for good.
func (o *hlsOutput) close() {
	o.stop()
	o.mu.Lock()
	o.closed = true
	o.notifyLocked()
	o.mu.Unlock()
}

// read asks the instance for its media playlist, waiting in gohlslib for
// the first segment if there is none yet.
func (inst *hlsInstance) read() ([]byte, bool) {
	var w hlsRecorder
	inst.mux.Handle(&w, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/" + inst.stream + "_stream.m3u8"}})
	return w.body.Bytes(), w.status == http.StatusOK
}

// publish parses a media playlist of inst into the snapshot.
func (o *hlsOutput) publish(inst *hlsInstance, body []byte) {
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		o.log.Debug("HLS playlist does not parse", "error", err)
		return
	}
	m, ok := pl.(*playlist.Media)
	if !ok || m.PreloadHint == nil || m.MediaSequence < 0 {
		return
	}
	t, err := parseHLSRequest(HLSRequest{File: m.PreloadHint.URI})
	if err != nil || t.kind != hlsPart {
		return
	}
	s := hlsSnapshot{
		ready:    true,
		prefix:   t.prefix,
		firstMSN: uint64(m.MediaSequence),
		segments: make([]hlsSegmentInfo, len(m.Segments)),
		nextMSN:  uint64(m.MediaSequence) + uint64(len(m.Segments)),
		parts:    len(m.Parts),
		nextPart: t.id,
	}
	for i, seg := range m.Segments {
		s.segments[i] = hlsSegmentInfo{gap: seg.Gap, parts: len(seg.Parts)}
		if !seg.Gap && len(seg.Parts) == 0 {
			s.segments[i].parts = -1
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.inst != inst || (o.snap.ready && s.nextPart < o.snap.nextPart) {
		return
	}
	o.snap = s
	o.notifyLocked()
}

// writeVideo feeds one accepted access unit, then publishes what the
// playlist lists now. Camera goroutine only; false when the instance
// failed and must be replaced.
func (o *hlsOutput) writeVideo(tr *tracks, v tappedVideo) bool {
	inst := o.inst // written only by this goroutine
	if inst == nil {
		return true
	}
	var err error
	switch tr.video {
	case codecH265:
		err = guard(func() error { return inst.mux.WriteH265(inst.video, time.Now(), v.pts, v.au) })
	default:
		err = guard(func() error { return inst.mux.WriteH264(inst.video, time.Now(), v.pts, v.au) })
	}
	if err != nil {
		o.log.Debug("HLS muxer: video", "error", err)
		return false
	}
	o.mu.Lock()
	ready := o.snap.ready
	o.mu.Unlock()
	if ready {
		if body, ok := inst.read(); ok {
			o.publish(inst, body)
		}
	}
	return true
}

// writeAudio feeds accepted audio samples. Camera goroutine only.
func (o *hlsOutput) writeAudio(samples []audioSample) bool {
	inst := o.inst
	if inst == nil || inst.audio == nil {
		return true
	}
	for _, a := range samples {
		var err error
		switch inst.acodec {
		case audioAAC:
			err = guard(func() error {
				return inst.mux.WriteMPEG4Audio(inst.audio, time.Now(), a.t, [][]byte{a.payload})
			})
		case audioOpus:
			err = guard(func() error { return inst.mux.WriteOpus(inst.audio, time.Now(), a.t, [][]byte{a.payload}) })
		}
		if err != nil {
			o.log.Debug("HLS muxer: audio", "error", err)
			return false
		}
	}
	return true
}

// serve answers one request: it waits, at most BlockTimeout, until the
// current instance can answer it without waiting, then asks it.
func (o *hlsOutput) serve(ctx context.Context, t hlsTarget) (*HLSResponse, error) {
	if o.inflight.Add(1) > int64(o.cfg.MaxWaiting) {
		o.inflight.Add(-1)
		return nil, ErrHLSNotReady
	}
	defer o.inflight.Add(-1)
	deadline := time.NewTimer(o.cfg.BlockTimeout)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		inst, snap, changed, closed := o.inst, o.snap, o.changed, o.closed
		o.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if inst != nil && snap.ready {
			if t.kind != hlsMultivariant && t.kind != hlsMediaPlaylist && t.prefix != snap.prefix {
				return nil, ErrHLSNotFound // another instance's file
			}
			now := true
			switch {
			case t.kind == hlsMediaPlaylist && t.blocking:
				ok, bad := snap.has(t.msn, t.part)
				now = ok || bad
			case t.kind == hlsPart:
				now = t.id != snap.nextPart // done, or not hinted (404)
			}
			if now {
				return inst.answer(t)
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, ErrHLSNotReady
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// answer asks gohlslib, which answers at once (serve checked it).
func (inst *hlsInstance) answer(t hlsTarget) (*HLSResponse, error) {
	var w hlsRecorder
	inst.mux.Handle(&w, &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Path: "/" + t.file, RawQuery: t.query()},
	})
	switch w.status {
	case http.StatusOK:
		return &HLSResponse{Status: http.StatusOK, ContentType: w.header.Get("Content-Type"), Body: w.body.Bytes()}, nil
	case http.StatusBadRequest:
		return &HLSResponse{Status: http.StatusBadRequest, ContentType: "text/plain; charset=utf-8", Body: []byte("bad request\n")}, nil
	case 0:
		return nil, ErrHLSNotFound // not (or no longer) registered
	}
	return nil, ErrHLSNotReady // 500: the instance closed meanwhile
}

// hlsRecorder is the http.ResponseWriter gohlslib answers into: bodies are
// small (a playlist, a part, at most a segment).
type hlsRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *hlsRecorder) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *hlsRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *hlsRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

// ServeHLS answers one request for camera's LL-HLS stream, pulling src if
// the camera has no upstream yet (the same upstream its fMP4 viewers
// share; the newest source wins, as with Watch). The first request starts
// the camera's HLS output; it stops [Config.Linger] after the last one.
// A request waits at most [HLSConfig.BlockTimeout] for what it asks (the
// first segment, a blocking playlist reload, the preload-hinted part).
//
// Errors: [ErrHLSNotFound] (404), *[HLSQueryError] (400),
// [ErrHLSNotReady] (503: try again), [ErrInvalidSource], [ErrClosed], or
// ctx's error. The answers name no source URL.
func (m *Manager) ServeHLS(ctx context.Context, camera string, src Source, req HLSRequest) (*HLSResponse, error) {
	t, err := parseHLSRequest(req)
	if err != nil {
		return nil, err
	}
	if camera == "" {
		return nil, fmt.Errorf("%w: empty camera id", ErrInvalidSource)
	}
	if _, _, err := src.parse(); err != nil {
		return nil, err
	}
	reply := make(chan *hlsOutput, 1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := m.camera(camera)
		if err != nil {
			return nil, err
		}
		select {
		case c.chHLS <- hlsRequest{src: src, reply: reply}:
			return (<-reply).serve(ctx, t)
		case <-c.quit: // the camera is stopping: start a new one
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// serveHLS hands an HLS request the camera's output, started if need be.
func (c *camera) serveHLS(req hlsRequest) {
	c.pull(req.src)
	if c.hls == nil {
		c.hls = newHLSOutput(c.cfg.HLS, c.log)
		c.stats.hls.Store(true)
		c.log.Debug("HLS output started")
		if c.mux.tr != nil {
			c.hls.start(c.mux.tr)
		}
	}
	c.hls.last = time.Now()
	req.reply <- c.hls
}

// hlsIdle stops the HLS output if no request came for Linger and none is
// being served, and returns 0; otherwise it returns how long to wait
// before looking again.
func (c *camera) hlsIdle() time.Duration {
	if c.hls == nil {
		return 0
	}
	if c.hls.inflight.Load() > 0 {
		return c.cfg.Linger
	}
	if wait := c.cfg.Linger - time.Since(c.hls.last); wait > 0 {
		return wait
	}
	c.stopHLS()
	return 0
}

func (c *camera) stopHLS() {
	if c.hls == nil {
		return
	}
	c.hls.close()
	c.hls = nil
	c.stats.hls.Store(false)
	c.log.Debug("HLS output stopped")
}

// hlsSession follows a new upstream session: same tracks, same muxer
// (the camera timeline goes on); other tracks, a new one.
func (c *camera) hlsSession() {
	if c.hls == nil || c.mux.tr == nil {
		return
	}
	if c.hls.inst == nil || c.hls.inst.layout != layoutOf(c.mux.tr) {
		c.hls.start(c.mux.tr)
	}
}

// hlsVideo feeds the video access unit the muxer just accepted; a muxer
// that fails is replaced (its clients reload the playlist).
func (c *camera) hlsVideo() {
	tap := c.mux.tapVideo
	c.mux.tapVideo = tappedVideo{} // taken, whether or not HLS runs
	if c.hls == nil || !tap.ok {
		return
	}
	if !c.hls.writeVideo(c.mux.tr, tap) {
		c.stats.decodeErrors.Add(1)
		c.hls.start(c.mux.tr)
	}
}

func (c *camera) hlsAudio() {
	if c.hls == nil || len(c.mux.tapAudio) == 0 {
		return
	}
	if !c.hls.writeAudio(c.mux.tapAudio) {
		c.stats.decodeErrors.Add(1)
		c.hls.start(c.mux.tr)
	}
}
