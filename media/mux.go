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
	// defaultFrameDuration is the duration given to the last frame before a
	// discontinuity, when no earlier frame tells it: 1/25 s.
	defaultFrameDuration = videoTimescale / 25
	// maxFrameDuration bounds one video sample. A camera that pauses longer
	// does not leave a longer still frame in every viewer's buffer.
	maxFrameDuration = 10 * videoTimescale
	// maxPTSOffset bounds how far a frame is shown after it is decoded.
	maxPTSOffset = 10 * videoTimescale
	// audioTimeout: an audio track is put into a new init segment only if
	// the camera sent audio within this much video time, so that a camera
	// that announces audio and sends none (or stops) does not stall the
	// browser, which plays only what every track has buffered.
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
	// muxed is when the fragment was made: when the next video unit, which
	// gives this one its duration, arrived.
	muxed time.Time
}

// message is the fragment as a viewer is sent it live.
func (f *fragment) message() Message {
	return Message{Binary: f.data, RTPIn: f.in, Muxed: f.muxed}
}

// videoSample is a video access unit waiting for the next one, which gives
// its duration.
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
// A video sample is emitted when the next one arrives, since that gives its
// duration: fragments trail the camera by one frame. Audio samples are
// muxed into the next video fragment (a second traf), never sent alone.
type muxer struct {
	// Camera timeline, kept across sessions.
	seq       uint32       // mfhd sequence number of the last fragment
	nextDTS   int64        // end of the last emitted video sample
	lastDur   int64        // duration of the last emitted video sample
	audioNext int64        // end of the last accepted audio sample
	audioRate int          // time scale audioNext is in
	init      *initSegment // of the current group of pictures

	// Current session.
	tr        *tracks
	norm      normalizer
	dts       dtsExtractor
	synced    bool  // a keyframe was seen since the session start or the last error
	offset    int64 // session decode time + offset = camera decode time
	pending   *videoSample
	audio     []audioSample
	audioSeen bool  // the session has sent audio
	audioAt   int64 // camera video time when audio last arrived

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
func (m *muxer) startSession(tr *tracks) *fragment {
	f := m.flush()
	m.tr = tr
	m.norm = normalizer{codec: tr.video}
	m.norm.setParams(tr.vps, tr.sps, tr.pps)
	m.audioSeen = false
	if tr.audio != audioNone && tr.audioRate != m.audioRate {
		m.audioRate = tr.audioRate
		m.audioNext = 0
	}
	return f
}

// resync emits the pending sample and waits for the next keyframe. It is
// called after lost packets and undecodable data.
func (m *muxer) resync() *fragment {
	f := m.flush()
	m.synced = false
	m.dts = nil
	return f
}

// reset drops the session's state without emitting anything, after a
// panic; the next keyframe starts again.
func (m *muxer) reset() {
	m.pending = nil
	clear(m.audio)
	m.audio = m.audio[:0]
	m.synced = false
	m.dts = nil
}

// flush emits the pending sample with the last known frame duration.
func (m *muxer) flush() *fragment {
	if m.pending == nil {
		m.audio = m.audio[:0]
		return nil
	}
	d := m.lastDur
	if d <= 0 {
		d = defaultFrameDuration
	}
	f, err := m.emit(d)
	if err != nil {
		return nil
	}
	return f
}

// video takes one access unit of the session with its presentation time
// (90 kHz, session timeline) and the time its first RTP packet was read,
// and returns the fragment of the previous one, if any. An error means the
// unit was unusable: the muxer has resynced, and the returned fragment (if
// any) is the last one before the gap.
func (m *muxer) video(au [][]byte, pts int64, in time.Time) (*fragment, error) {
	if m.tr == nil {
		return nil, errSessionFormat
	}
	nau, key, err := m.norm.normalize(au)
	if err != nil {
		return m.resync(), err
	}
	if nau == nil || (!m.synced && !key) {
		return nil, nil
	}
	if !m.synced {
		m.dts = newDTSExtractor(m.tr.video)
	}
	dts, err := m.dts.Extract(nau, pts)
	if err != nil {
		return m.resync(), fmt.Errorf("%w: %w", errDTS, err)
	}
	if pts-dts < 0 || pts-dts > maxPTSOffset {
		return m.resync(), errDTS
	}
	payload, err := h264.AVCC(nau).Marshal()
	if err != nil {
		return m.resync(), err
	}

	if !m.synced {
		m.synced = true
		m.offset = m.nextDTS - dts
		if m.tr.audio != audioNone {
			m.audioNext = max(m.audioNext, rescale(m.nextDTS, int64(m.tr.audioRate)))
		}
	}
	s := &videoSample{
		dts:       dts + m.offset,
		ptsOffset: int32(pts - dts),
		key:       key,
		payload:   payload,
		in:        in,
	}
	if key {
		s.vps, s.sps, s.pps = m.norm.vps, m.norm.sps, m.norm.pps
	}

	var f *fragment
	if m.pending != nil {
		// Keep the timeline gapless and bounded: a sample lasts until the
		// next one, at least one tick and at most maxFrameDuration.
		d := min(max(s.dts-m.pending.dts, 1), maxFrameDuration)
		if want := m.pending.dts + d; want != s.dts {
			m.offset += want - s.dts
			s.dts = want
		}
		f, err = m.emit(d)
		if err != nil {
			m.pending = nil
			return m.resync(), err
		}
	}
	m.pending = s
	m.tapVideo = tappedVideo{au: nau, pts: s.dts + int64(s.ptsOffset), key: key, ok: true}
	return f, nil
}

// audioUnits takes consecutive audio access units of the session starting
// at pts (audio time scale, session timeline).
func (m *muxer) audioUnits(aus [][]byte, pts int64) error {
	clear(m.tapAudio)
	m.tapAudio = m.tapAudio[:0]
	if m.tr == nil || m.tr.audio == audioNone {
		return nil
	}
	m.audioSeen = true
	m.audioAt = m.nextDTS
	if m.pending != nil {
		m.audioAt = m.pending.dts
	}
	if !m.synced {
		return nil
	}
	rate := int64(m.tr.audioRate)
	t := pts + rescaleTo(m.offset, rate)
	var err error
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
	return err
}

// emit turns the pending sample, lasting d, and the pending audio into a
// fragment.
func (m *muxer) emit(d int64) (*fragment, error) {
	p := m.pending
	m.pending = nil
	m.nextDTS = p.dts + d
	m.lastDur = d

	if p.key {
		init, err := m.buildInit(p)
		if err != nil {
			m.audio = m.audio[:0]
			return nil, err
		}
		m.init = init
	}
	if m.init == nil { // cannot happen: the first sample of a sync is a keyframe
		m.audio = m.audio[:0]
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
	clear(m.audio) // let the payloads go
	m.audio = m.audio[:0]

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
