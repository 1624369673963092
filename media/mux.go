package media

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// Timeline constants.
const (
	// videoTimescale is the time scale of the video track: RTP's 90 kHz.
	videoTimescale = 90000
	// defaultFrameDuration is the frame interval assumed before a camera
	// has sent two frames: 1/25 s.
	defaultFrameDuration = videoTimescale / 25
	// minFrameEstimate and maxFrameDuration bound the duration a video
	// sample is given (see frameEstimate), and maxFrameDuration bounds one
	// frame interval as the estimate remembers it. A camera that pauses
	// longer does not leave a longer still frame in every viewer's buffer.
	minFrameEstimate = videoTimescale / 100
	maxFrameDuration = 10 * videoTimescale
	// frameHistory is how many of the last frame intervals the estimate
	// looks at.
	frameHistory = 4
	// maxPTSOffset bounds how far a frame is shown after it is decoded.
	maxPTSOffset = 10 * videoTimescale
	// audioTimeout: an audio track is put into a new init segment only if
	// the camera sent audio within this much video time, so that a camera
	// that announces audio and sends none (or stops) does not stall the
	// browser, which plays only what every track has buffered. A session's
	// first keyframe that comes before any audio is held until audio comes
	// or the next video unit does (see muxer.held), so that its init
	// segment has the audio track whenever audio flows, instead of a first
	// group of pictures of video only and a new init segment (the page
	// starting its player again) at the next keyframe.
	audioTimeout = 2 * videoTimescale
	// maxAudioPending bounds the audio samples waiting for the next video
	// fragment.
	maxAudioPending = 256
	// maxAudioUnitSize bounds one audio access unit.
	maxAudioUnitSize = 64 << 10
)

// fMP4 track IDs.
const (
	videoTrackID = 1
	audioTrackID = 2
)

var errAudioUnit = errors.New("audio access unit empty or too large")

// audioCodec is the audio codec carried to browsers.
type audioCodec int

const (
	audioNone audioCodec = iota
	audioAAC
	audioOpus
)

// tracks is what one upstream session carries, as chosen from its SDP.
type tracks struct {
	video         videoCodec
	vps, sps, pps []byte // out of band (SDP), any may be nil

	audio        audioCodec
	aac          *mpeg4audio.AudioSpecificConfig // audio == audioAAC
	opusChannels int                             // audio == audioOpus
	audioRate    int                             // time scale of the audio track

	// audioUnsupported names an audio track that cannot go into fMP4 for
	// browsers (G.711, for one), when no supported one was found.
	audioUnsupported string
}

// initSegment is an fMP4 init segment (ftyp+moov) with the codecs message
// that announces it. Immutable once built; shared by every viewer.
type initSegment struct {
	mime   string
	codecs []byte // {"type":"codecs",...}
	data   []byte
	audio  bool // has an audio track
}

// fragment is one moof+mdat: one video access unit and the audio received
// since the previous fragment. Immutable once built; the same data goes to
// every viewer.
type fragment struct {
	data []byte
	key  bool         // the video sample is a keyframe
	init *initSegment // the init segment the fragment belongs to
	dts  int64        // decode time of the video sample, 90 kHz
	in   time.Time    // when the video unit's first RTP packet was read; may be zero
	// muxed is when the fragment was made: right after its video unit was
	// complete, or, for a keyframe held for audio (muxer.held), when the
	// hold ended. The hold is thus in the latency measured from in, not in
	// the part measured from muxed.
	muxed time.Time
}

// message is the fragment as a viewer is sent it live.
func (f *fragment) message() Message {
	return Message{Binary: f.data, RTPIn: f.in, Muxed: f.muxed}
}

// videoSample is a video access unit being muxed.
type videoSample struct {
	dts       int64 // camera timeline, 90 kHz
	ptsOffset int32
	key       bool
	payload   []byte    // AVCC
	in        time.Time // when its first RTP packet was read
	// Parameter sets in force when the sample arrived (keyframes only).
	vps, sps, pps []byte
}

type audioSample struct {
	t       int64 // camera timeline, audio time scale
	dur     int64 // nominal duration
	payload []byte
}

type dtsExtractor interface {
	Extract(au [][]byte, pts int64) (int64, error)
}

// muxer turns one camera's access units into fMP4: it normalizes video,
// computes decode times, keeps the camera's timeline going up across
// upstream sessions and resynchronizations, and builds each init segment
// and fragment once. Only the camera goroutine uses it.
//
// A video access unit goes out as soon as it is complete, in its own
// fragment: its duration, which only the next unit's decode time will tell,
// is estimated (frameEstimate), and the next fragment's decode time is that
// unit's own, so the timeline stays the camera's. Audio samples are muxed
// into the next video fragment (a second traf), never sent alone. The one
// exception to "at once" is a session's first keyframe when the camera
// announces audio and none has come yet: it is held, at most until the next
// video unit (see held).
type muxer struct {
	// Camera timeline, kept across sessions.
	seq        uint32              // mfhd sequence number of the last fragment
	lastDTS    int64               // decode time of the last emitted video sample
	lastDur    int64               // its duration: the estimate it was given
	nextDTS    int64               // its end: lastDTS + lastDur
	intervals  [frameHistory]int64 // the last frame intervals; 0 = none yet
	intervalAt int                 // where the next one goes in intervals
	audioNext  int64               // end of the last accepted audio sample
	audioRate  int                 // time scale audioNext is in
	init       *initSegment        // of the current group of pictures

	// Current session.
	tr        *tracks
	norm      normalizer
	dts       dtsExtractor
	synced    bool  // a keyframe was seen since the session start or the last error
	emitted   bool  // a sample went out since synced was set
	offset    int64 // session decode time + offset = camera decode time
	audio     []audioSample
	audioSeen bool  // the session has sent audio
	audioAt   int64 // camera video time when audio last arrived

	// held is the session's first keyframe, held back because the camera
	// announces audio and had sent none when it came: it goes out when the
	// first audio comes (audioUnits), so that its init segment carries the
	// audio track and viewers are not given a video-only start and then a
	// new init segment at the next keyframe; or, should the audio not come
	// first, when the next video unit does (video), with a video-only init
	// segment as before. So a camera whose announced audio never comes
	// starts at most one frame interval later. Only that one keyframe is
	// ever held (awaitAudio), never a later frame, and it goes out as it
	// would have at once: with the estimated duration, the audio that came
	// meanwhile, its own decode time. Its fragment keeps the time its first
	// RTP packet was read, so the added-latency metric counts the hold.
	held       *videoSample
	awaitAudio bool // the session's first keyframe, which may be held, is yet to come

	// What the last call of video or audioUnits accepted, on the camera
	// timeline, for the LL-HLS muxer (hls.go); each call resets its own.
	tapVideo tappedVideo
	tapAudio []audioSample
}

// tappedVideo is a normalized video access unit as the muxer accepted it:
// its presentation time on the camera timeline (90 kHz). ok is false when
// the last call accepted nothing.
type tappedVideo struct {
	au  [][]byte
	pts int64
	key bool
	ok  bool
}

// startSession begins a new upstream session: nothing goes out until its
// first keyframe, whose decode time follows the last fragment's end.
func (m *muxer) startSession(tr *tracks) {
	m.resync()
	m.tr = tr
	m.norm = normalizer{codec: tr.video}
	m.norm.setParams(tr.vps, tr.sps, tr.pps)
	m.audioSeen = false
	m.awaitAudio = tr.audio != audioNone
	if tr.audio != audioNone && tr.audioRate != m.audioRate {
		m.audioRate = tr.audioRate
		m.audioNext = 0
	}
}

// resync waits for the next keyframe. It is called after lost packets and
// undecodable data, and after a panic of the codec libraries, which may
// have left the session's state half-updated. Audio waiting for the next
// video fragment is dropped, and so is a held keyframe (release it first
// to keep it): none is accepted until video is back either.
func (m *muxer) resync() {
	m.dropAudio()
	m.held = nil
	m.synced = false
	m.dts = nil
}

// release sends the held keyframe out, if there is one, as it would have
// gone out at once: with the estimated duration, and with the audio
// received since.
func (m *muxer) release() (*fragment, error) {
	p := m.held
	if p == nil {
		return nil, nil
	}
	m.held = nil
	f, err := m.emit(p, m.frameEstimate())
	if err != nil {
		m.resync()
		return nil, err
	}
	return f, nil
}

func (m *muxer) dropAudio() {
	clear(m.audio) // let the payloads go
	m.audio = m.audio[:0]
}

// frameEstimate is the duration a video sample is given when it goes out,
// before the next one tells the real one: twice the longest of the last
// frameHistory frame intervals (1/25 s before there is one), within
// [minFrameEstimate, maxFrameDuration].
//
// Why it errs long, and by that much: a browser's MSE coded frame
// processing (the spec's, and Chrome's FrameProcessor) takes a decode time
// more than twice the last frame's duration after the last one as a
// discontinuity, and then drops every frame up to the next keyframe: the
// picture freezes for up to a group of pictures. So a camera that skips a
// frame or two must find the last duration long enough. A duration longer
// than the real interval costs little: the next frame starts at its own
// decode time and overlaps the end of this one, which MSE takes (frames
// come in decode order, so there is nothing after the overlap to remove),
// and the buffered range ends up to a frame interval past the newest frame.
// With twice the longest recent interval, the next frame may come up to
// three recent intervals later with its real decode time (video limits the
// step to 3/2 of the estimate, a quarter below the browser's limit, which
// leaves room for its rounding to microseconds); a longer pause is
// shortened to that step. The longest of a few intervals, not the last,
// keeps a camera with a jittery clock from dropping its estimate to its
// shortest interval.
func (m *muxer) frameEstimate() int64 {
	var longest int64
	for _, d := range m.intervals {
		longest = max(longest, d)
	}
	if longest == 0 {
		longest = defaultFrameDuration
	}
	return min(max(2*longest, minFrameEstimate), maxFrameDuration)
}

// video takes one access unit of the session with its presentation time
// (90 kHz, session timeline) and the time its first RTP packet was read.
// It returns the held keyframe, if there was one (the unit ends the hold,
// whatever becomes of it), and then the unit's fragment, if it goes out:
// nothing goes out before the first keyframe, or after a resync before the
// next one, and the session's first keyframe may be held (see held). An
// error means the unit was unusable: the muxer has resynced.
func (m *muxer) video(au [][]byte, pts int64, in time.Time) (held, f *fragment, err error) {
	if m.tr == nil {
		return nil, nil, errSessionFormat
	}
	if held, err = m.release(); err != nil {
		return nil, nil, err
	}
	f, err = m.accept(au, pts, in)
	return held, f, err
}

// accept is video for one unit, with nothing held.
func (m *muxer) accept(au [][]byte, pts int64, in time.Time) (*fragment, error) {
	nau, key, err := m.norm.normalize(au)
	if err != nil {
		m.resync()
		return nil, err
	}
	if nau == nil || (!m.synced && !key) {
		return nil, nil
	}
	if !m.synced {
		m.dts = newDTSExtractor(m.tr.video)
	}
	dts, err := m.dts.Extract(nau, pts)
	if err != nil {
		m.resync()
		return nil, fmt.Errorf("%w: %w", errDTS, err)
	}
	if pts-dts < 0 || pts-dts > maxPTSOffset {
		m.resync()
		return nil, errDTS
	}
	payload, err := h264.AVCC(nau).Marshal()
	if err != nil {
		m.resync()
		return nil, err
	}

	hold := false
	if !m.synced {
		// The first keyframe after a gap or a reconnect starts where the
		// last sample's estimated duration ended: the timeline has no gap.
		m.synced, m.emitted = true, false
		m.offset = m.nextDTS - dts
		if m.tr.audio != audioNone {
			m.audioNext = max(m.audioNext, rescale(m.nextDTS, int64(m.tr.audioRate)))
		}
		// The session's first keyframe waits for audio that is announced
		// and has not come (see held); later ones never do.
		hold = m.awaitAudio && !m.audioSeen
		m.awaitAudio = false
	}
	s := videoSample{
		dts:       dts + m.offset,
		ptsOffset: int32(pts - dts),
		key:       key,
		payload:   payload,
		in:        in,
	}
	if key {
		s.vps, s.sps, s.pps = m.norm.vps, m.norm.sps, m.norm.pps
	}
	if hold {
		// LL-HLS has its tracks from the SDP, not from the audio that came:
		// it is given the unit at once.
		m.held = &s
		m.tapVideo = tappedVideo{au: nau, pts: s.dts + int64(s.ptsOffset), key: key, ok: true}
		return nil, nil
	}
	if m.emitted {
		// The sample keeps its own decode time (at least one tick after the
		// last one) unless that is more than 3/2 of the last sample's
		// estimated duration after it, as when the camera paused: then the
		// timeline, audio included, is shortened to that, so that browsers
		// see no discontinuity (see frameEstimate). The step is what the
		// estimate remembers, so that one pause does not make the next
		// samples last seconds (a browser's buffered range ends where the
		// longest-lasting frame does); the estimate still follows a camera
		// that slows down, threefold a frame.
		d := min(max(s.dts-m.lastDTS, 1), m.lastDur*3/2)
		m.intervals[m.intervalAt] = min(d, maxFrameDuration)
		m.intervalAt = (m.intervalAt + 1) % frameHistory
		if want := m.lastDTS + d; want != s.dts {
			m.offset += want - s.dts
			s.dts = want
		}
	}

	f, err := m.emit(&s, m.frameEstimate())
	if err != nil {
		m.resync()
		return nil, err
	}
	m.tapVideo = tappedVideo{au: nau, pts: s.dts + int64(s.ptsOffset), key: key, ok: true}
	return f, nil
}

// audioUnits takes consecutive audio access units of the session starting
// at pts (audio time scale, session timeline). It returns the held
// keyframe, if there was one: audio has come, so it goes out, with an init
// segment that has the audio track.
func (m *muxer) audioUnits(aus [][]byte, pts int64) (held *fragment, err error) {
	clear(m.tapAudio)
	m.tapAudio = m.tapAudio[:0]
	if m.tr == nil || m.tr.audio == audioNone {
		return nil, nil
	}
	m.audioSeen = true
	m.audioAt = m.lastDTS
	if m.held != nil {
		m.audioAt = m.held.dts
	}
	if !m.synced {
		return nil, nil
	}
	rate := int64(m.tr.audioRate)
	t := pts + rescaleTo(m.offset, rate)
	for _, au := range aus {
		var d int64
		switch m.tr.audio {
		case audioAAC:
			d = mpeg4audio.SamplesPerAccessUnit
		case audioOpus:
			d = opus.PacketDuration2(au)
		}
		if len(au) == 0 || len(au) > maxAudioUnitSize || d <= 0 {
			err = errAudioUnit
			break
		}
		if t >= m.audioNext {
			if len(m.audio) == maxAudioPending {
				m.audio = append(m.audio[:0], m.audio[1:]...)
			}
			m.audio = append(m.audio, audioSample{t: t, dur: d, payload: au})
			m.tapAudio = append(m.tapAudio, audioSample{t: t, dur: d, payload: au})
			m.audioNext = t + d
		}
		t += d
	}
	if m.held == nil {
		return nil, err
	}
	held, rerr := m.release()
	return held, errors.Join(err, rerr)
}

// emit turns video sample p, lasting d, and the audio received since the
// last fragment into a fragment.
func (m *muxer) emit(p *videoSample, d int64) (*fragment, error) {
	m.lastDTS, m.lastDur, m.nextDTS = p.dts, d, p.dts+d
	m.emitted = true

	if p.key {
		init, err := m.buildInit(p)
		if err != nil {
			m.dropAudio()
			return nil, err
		}
		m.init = init
	}
	if m.init == nil { // cannot happen: the first sample of a sync is a keyframe
		m.dropAudio()
		return nil, errNotSynced
	}

	m.seq++
	part := fmp4.Part{
		SequenceNumber: m.seq,
		Tracks: []*fmp4.PartTrack{{
			ID:       videoTrackID,
			BaseTime: uint64(p.dts),
			Samples: []*fmp4.Sample{{
				Duration:        uint32(d),
				PTSOffset:       p.ptsOffset,
				IsNonSyncSample: !p.key,
				Payload:         p.payload,
			}},
		}},
	}
	size := len(p.payload)
	if m.init.audio && len(m.audio) > 0 {
		samples := make([]*fmp4.Sample, len(m.audio))
		for i, a := range m.audio {
			d := a.dur
			if i+1 < len(m.audio) {
				d = m.audio[i+1].t - a.t
			}
			samples[i] = &fmp4.Sample{Duration: uint32(d), Payload: a.payload}
			size += len(a.payload)
		}
		part.Tracks = append(part.Tracks, &fmp4.PartTrack{
			ID:       audioTrackID,
			BaseTime: uint64(m.audio[0].t),
			Samples:  samples,
		})
	}
	m.dropAudio()

	var buf seekablebuffer.Buffer
	buf.Grow(size + 256 + 32*len(part.Tracks[len(part.Tracks)-1].Samples))
	if err := part.Marshal(&buf); err != nil {
		return nil, err
	}
	return &fragment{data: buf.Bytes(), key: p.key, init: m.init, dts: p.dts, in: p.in, muxed: time.Now()}, nil
}

// buildInit returns the init segment for keyframe p: the current one if
// nothing changed, so that viewers are not sent the same one again.
func (m *muxer) buildInit(p *videoSample) (*initSegment, error) {
	var (
		video  mp4.Codec
		vcodec string
		err    error
	)
	switch m.tr.video {
	case codecH264:
		vcodec, err = codecStringH264(p.sps)
		video = &mp4.CodecH264{SPS: p.sps, PPS: p.pps}
	case codecH265:
		vcodec, err = codecStringH265(p.sps)
		video = &mp4.CodecH265{VPS: p.vps, SPS: p.sps, PPS: p.pps}
	default:
		err = errUnknownCodec
	}
	if err != nil {
		return nil, err
	}
	codecs := []string{vcodec}
	tracks := []*fmp4.InitTrack{{ID: videoTrackID, TimeScale: videoTimescale, Codec: video}}

	audio := m.tr.audio != audioNone && m.audioSeen && p.dts-m.audioAt <= audioTimeout
	if audio {
		var c mp4.Codec
		switch m.tr.audio {
		case audioAAC:
			c = &mp4.CodecMPEG4Audio{Config: *m.tr.aac}
			codecs = append(codecs, codecStringAAC(m.tr.aac))
		case audioOpus:
			c = &mp4.CodecOpus{ChannelCount: m.tr.opusChannels}
			codecs = append(codecs, "opus")
		}
		tracks = append(tracks, &fmp4.InitTrack{
			ID: audioTrackID, TimeScale: uint32(m.tr.audioRate), Codec: c,
		})
	}

	var buf seekablebuffer.Buffer
	if err := (&fmp4.Init{Tracks: tracks}).Marshal(&buf); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	if m.tr.video == codecH265 {
		// mediacommon writes hev1; Safari's MSE takes only hvc1, which is
		// right here too: the parameter sets are in the sample entry.
		if err := renameSampleEntry(data, "hev1", "hvc1"); err != nil {
			return nil, err
		}
	}

	mime := `video/mp4; codecs="` + strings.Join(codecs, ",") + `"`
	msg := codecsMessage{Type: "codecs", MIME: mime}
	if !audio && m.tr.audioUnsupported != "" {
		msg.Audio = "unsupported"
	}
	text, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if m.init != nil && bytes.Equal(m.init.data, data) && bytes.Equal(m.init.codecs, text) {
		return m.init, nil
	}
	return &initSegment{mime: mime, codecs: text, data: data, audio: audio}, nil
}

// codecsMessage is the text message that announces an init segment.
type codecsMessage struct {
	Type string `json:"type"`
	MIME string `json:"mime"`
	// Audio is "unsupported" when the camera has audio that browsers
	// cannot be given (G.711 and others), which is left out.
	Audio string `json:"audio,omitempty"`
}

func newDTSExtractor(c videoCodec) dtsExtractor {
	if c == codecH265 {
		d := &h265.DTSExtractor{}
		d.Initialize()
		return d
	}
	d := &h264.DTSExtractor{}
	d.Initialize()
	return d
}

// rescale converts a 90 kHz time to time scale rate.
func rescale(t90k, rate int64) int64 {
	return t90k/videoTimescale*rate + t90k%videoTimescale*rate/videoTimescale
}

// rescaleTo is rescale for offsets, which may be negative.
func rescaleTo(off, rate int64) int64 {
	if off < 0 {
		return -rescale(-off, rate)
	}
	return rescale(off, rate)
}
