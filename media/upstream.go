package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/pion/rtp"
)

var (
	// errNoVideo is the error of a session whose SDP has no H.264 or H.265.
	errNoVideo = errors.New("no H.264 or H.265 video in the stream")
	// errSessionEnded stands for a session that ended without an error.
	errSessionEnded = errors.New("session ended")
)

// eventKind says what an upstreamEvent carries.
type eventKind int

const (
	evSession  eventKind = iota + 1 // a session is set up: tracks
	evVideo                         // a video access unit: au, pts (90 kHz)
	evAudio                         // consecutive audio access units: au, pts (audio time scale)
	evVideoGap                      // video packets lost or undecodable: err
	evDown                          // the session could not open, or ended: err
)

// upstreamEvent is what an upstream hands its camera goroutine, in order.
type upstreamEvent struct {
	kind   eventKind
	tracks *tracks
	au     [][]byte
	pts    int64
	in     time.Time // evVideo: when the unit's first RTP packet was read
	err    error
}

// upstream pulls one camera's stream over RTSP until its context ends,
// reconnecting with jittered exponential backoff, and hands what it receives
// to the camera goroutine as events. It runs in its own goroutine; the RTP
// callbacks run in the RTSP client's goroutines (one per media with UDP) and
// each touches only its own media's decoder state.
type upstream struct {
	src       Source
	url       *base.URL
	transport gortsplib.Transport
	retryMin  time.Duration
	retryMax  time.Duration
	events    chan<- upstreamEvent
	stats     *cameraStats
	log       *slog.Logger
}

// run connects, reads until the session fails, reports evDown, waits, and
// again, until ctx is done.
func (u *upstream) run(ctx context.Context) {
	attempt := 0
	for {
		fed, err := u.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errSessionEnded
		}
		u.log.Debug("camera session ended", "error", redactError(err, u.src.URL), "attempt", attempt)
		if !u.send(ctx, upstreamEvent{kind: evDown, err: err}) {
			return
		}
		if fed {
			attempt = 0
		}
		t := time.NewTimer(backoff(u.retryMin, u.retryMax, attempt))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff is the wait before reconnect attempt n (0 first): RetryMin
// doubled per attempt up to RetryMax, of which a random half is taken away
// so that cameras that fail together do not retry together; never below
// RetryMin.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := hi
	if attempt < 32 {
		if x := lo << attempt; x > 0 && x < hi {
			d = x
		}
	}
	return max(lo, d/2+rand.N(d/2+1))
}

func (u *upstream) send(ctx context.Context, ev upstreamEvent) bool {
	select {
	case u.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// session runs one RTSP session: DESCRIBE, SETUP of the chosen medias, PLAY,
// then reads until the session fails or ctx is done. fed reports whether it
// delivered video.
func (u *upstream) session(ctx context.Context) (fed bool, err error) {
	tr := u.transport
	c := &gortsplib.Client{
		Scheme:            u.url.Scheme,
		Host:              u.url.Host,
		Transport:         &tr,
		OnTransportSwitch: func(error) {},
		OnPacketsLost:     func(n uint64) { u.stats.packetsLost.Add(int64(n)) },
		OnDecodeError:     func(error) { u.stats.decodeErrors.Add(1) },
	}
	if err := c.Start2(); err != nil {
		return false, err
	}
	defer c.Close()
	// The client's requests block; closing it is how they are cut short.
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()

	desc, _, err := c.Describe(u.url)
	if err != nil {
		return false, err
	}
	sel, err := selectTracks(desc)
	if err != nil {
		return false, err
	}
	for _, m := range []*description.Media{sel.videoMedia, sel.audioMedia} {
		if m == nil {
			continue
		}
		if _, err := c.Setup(desc.BaseURL, m, 0, 0); err != nil {
			return false, err
		}
	}

	var delivered atomic.Bool
	if err := u.onVideo(ctx, c, sel, &delivered); err != nil {
		return false, err
	}
	if sel.audioMedia != nil {
		if err := u.onAudio(ctx, c, sel); err != nil {
			return false, err
		}
	}

	if !u.send(ctx, upstreamEvent{kind: evSession, tracks: sel.tracks}) {
		return false, ctx.Err()
	}
	if _, err := c.Play(nil); err != nil {
		return false, err
	}
	err = c.Wait()
	return delivered.Load(), err
}

// onVideo installs the video callback: RTP packets to access units.
func (u *upstream) onVideo(ctx context.Context, c *gortsplib.Client, sel *selection, delivered *atomic.Bool) error {
	var decode func(*rtp.Packet) ([][]byte, error)
	switch f := sel.videoFormat.(type) {
	case *format.H264:
		d, err := f.CreateDecoder()
		if err != nil {
			return err
		}
		decode = d.Decode
	case *format.H265:
		d, err := f.CreateDecoder()
		if err != nil {
			return err
		}
		decode = d.Decode
	default:
		return errNoVideo
	}

	// State of this media's packets, touched only by this callback.
	var (
		started    bool
		nextSeq    uint16
		prevTS     uint32
		prevPTS    int64
		prevMarker = true
		auIn       time.Time // when the unit being assembled began; zero: none
	)
	c.OnPacketRTP(sel.videoMedia, sel.videoFormat, func(pkt *rtp.Packet) {
		if started && pkt.SequenceNumber != nextSeq {
			u.send(ctx, upstreamEvent{kind: evVideoGap, err: errVideoGap})
		}
		started, nextSeq = true, pkt.SequenceNumber+1

		pts, ok := c.PacketPTS2(sel.videoMedia, pkt)
		if !ok {
			return
		}
		// The decoder ends an access unit at a marker bit, or, for cameras
		// that set none, at a change of timestamp: then the unit it returns
		// is the previous packet's, and this packet begins the next.
		auPTS, in := pts, auIn
		if !prevMarker && pkt.Timestamp != prevTS {
			auPTS = prevPTS
			auIn = time.Now()
		} else if auIn.IsZero() {
			auIn = time.Now()
			in = auIn
		}
		if pkt.Marker {
			auIn = time.Time{} // the next packet begins a unit
		}
		prevTS, prevPTS, prevMarker = pkt.Timestamp, pts, pkt.Marker

		var au [][]byte
		err := guard(func() (err error) {
			au, err = decode(pkt)
			return err
		})
		if err != nil {
			if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrMorePacketsNeeded) ||
				errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
				errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				return
			}
			u.stats.decodeErrors.Add(1)
			u.send(ctx, upstreamEvent{kind: evVideoGap, err: err})
			return
		}
		delivered.Store(true)
		u.send(ctx, upstreamEvent{kind: evVideo, au: au, pts: auPTS, in: in})
	})
	return nil
}

// onAudio installs the audio callback: RTP packets to access units.
func (u *upstream) onAudio(ctx context.Context, c *gortsplib.Client, sel *selection) error {
	var decode func(*rtp.Packet) ([][]byte, error)
	switch f := sel.audioFormat.(type) {
	case *format.MPEG4Audio:
		d, err := f.CreateDecoder()
		if err != nil {
			return err
		}
		decode = d.Decode
	case *format.Opus:
		d, err := f.CreateDecoder()
		if err != nil {
			return err
		}
		decode = func(pkt *rtp.Packet) ([][]byte, error) {
			frame, err := d.Decode(pkt)
			return [][]byte{frame}, err
		}
	default:
		return fmt.Errorf("unexpected audio format %T", f)
	}

	c.OnPacketRTP(sel.audioMedia, sel.audioFormat, func(pkt *rtp.Packet) {
		pts, ok := c.PacketPTS2(sel.audioMedia, pkt)
		if !ok {
			return
		}
		var aus [][]byte
		err := guard(func() (err error) {
			aus, err = decode(pkt)
			return err
		})
		if err != nil {
			if !errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
				u.stats.decodeErrors.Add(1)
			}
			return
		}
		u.send(ctx, upstreamEvent{kind: evAudio, au: aus, pts: pts})
	})
	return nil
}

// selection is the medias and formats of a session that are pulled.
type selection struct {
	tracks      *tracks
	videoMedia  *description.Media
	videoFormat format.Format
	audioMedia  *description.Media // nil: no audio pulled
	audioFormat format.Format
}

// selectTracks picks the first H.264 or H.265 video and the first audio
// that fMP4 can carry to a browser (AAC as RFC 3640 MPEG-4 generic, Opus).
// Other audio (G.711, G.722, LPCM, LATM-packed AAC, ...) is not set up and
// only noted, so that the codecs message can say so.
func selectTracks(desc *description.Session) (*selection, error) {
	s := &selection{tracks: &tracks{}}
	tr := s.tracks
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			switch f := f.(type) {
			case *format.H264:
				if s.videoMedia == nil && f.PacketizationMode < 2 {
					s.videoMedia, s.videoFormat = m, f
					tr.video = codecH264
					tr.sps, tr.pps = f.SafeParams()
				}
			case *format.H265:
				if s.videoMedia == nil && f.MaxDONDiff == 0 {
					s.videoMedia, s.videoFormat = m, f
					tr.video = codecH265
					tr.vps, tr.sps, tr.pps = f.SafeParams()
				}
			case *format.MPEG4Audio:
				if s.audioMedia == nil && f.Config != nil &&
					f.Config.SampleRate >= 8000 && f.Config.SampleRate <= 96000 &&
					f.Config.ChannelCount >= 1 && f.Config.ChannelCount <= 8 {
					s.audioMedia, s.audioFormat = m, f
					tr.audio, tr.aac, tr.audioRate = audioAAC, f.Config, f.ClockRate()
				} else if m.Type == description.MediaTypeAudio && tr.audioUnsupported == "" {
					tr.audioUnsupported = f.Codec()
				}
			case *format.Opus:
				if s.audioMedia == nil && f.ChannelCount >= 1 && f.ChannelCount <= 2 {
					s.audioMedia, s.audioFormat = m, f
					tr.audio, tr.opusChannels, tr.audioRate = audioOpus, f.ChannelCount, 48000
				} else if tr.audioUnsupported == "" {
					tr.audioUnsupported = f.Codec()
				}
			default:
				if m.Type == description.MediaTypeAudio && tr.audioUnsupported == "" {
					tr.audioUnsupported = f.Codec()
				}
			}
		}
	}
	if s.videoMedia == nil {
		return nil, errNoVideo
	}
	if tr.audio != audioNone {
		tr.audioUnsupported = ""
	}
	return s, nil
}
