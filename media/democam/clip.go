package democam

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"sync"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// clipData is the committed clip, an Annex-B H.264 elementary stream made by
// clip/make.sh.
//
//go:embed clip/demo.h264
var clipData []byte

// frameRate is the rate the clip was encoded at and is played at.
const frameRate = 25

// clockRate is the RTP clock rate of H.264 (RFC 6184).
const clockRate = 90000

// clip is a parsed H.264 stream, ready to be sent access unit by access unit.
type clip struct {
	sps, pps      []byte
	width, height int
	// aus are the access units in decoding order. The first is an IDR, and
	// every IDR starts with the SPS and the PPS, so that playback can start
	// at any of them and the clip can loop from the last access unit to the
	// first.
	aus [][][]byte
}

// loadClip parses the embedded clip once.
var loadClip = sync.OnceValues(func() (*clip, error) { return parseClip(clipData) })

// parseClip splits an Annex-B stream into access units. It accepts streams
// with one SPS and one PPS, no B-frames (access units are sent with
// PTS = DTS) and an IDR first; it drops access unit delimiters and filler
// data, and puts the SPS and the PPS before every IDR that lacks them.
func parseClip(annexB []byte) (*clip, error) {
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(annexB); err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}

	c := &clip{}
	var au [][]byte
	hasSlice := false
	// flush ends the access unit being gathered, if it has a picture.
	flush := func() {
		if hasSlice {
			c.aus = append(c.aus, au)
			au, hasSlice = nil, false
		}
	}

	for _, nalu := range nalus {
		if len(nalu) < 2 {
			return nil, errors.New("clip: truncated NAL unit")
		}
		typ := h264.NALUType(nalu[0] & 0x1f)
		switch typ {
		case h264.NALUTypeSPS:
			if c.sps != nil && !bytes.Equal(c.sps, nalu) {
				return nil, errors.New("clip: more than one SPS")
			}
			c.sps = nalu
			flush()
			continue // put back before each IDR below
		case h264.NALUTypePPS:
			if c.pps != nil && !bytes.Equal(c.pps, nalu) {
				return nil, errors.New("clip: more than one PPS")
			}
			c.pps = nalu
			flush()
			continue
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			flush()
			continue
		case h264.NALUTypeSEI:
			// An SEI opens a new access unit (ITU-T H.264, 7.4.1.2.3).
			flush()
		case h264.NALUTypeNonIDR, h264.NALUTypeIDR:
			// first_mb_in_slice is the first field of the slice header, as
			// ue(v); it is 0, the first slice of a picture, when its first
			// bit is 1.
			if nalu[1]&0x80 != 0 {
				flush()
			}
			hasSlice = true
		}
		au = append(au, nalu)
	}
	flush()

	if c.sps == nil || c.pps == nil {
		return nil, errors.New("clip: no SPS or no PPS")
	}
	if len(c.aus) == 0 || !h264.IsRandomAccess(c.aus[0]) {
		return nil, errors.New("clip: does not start with an IDR")
	}
	for i, au := range c.aus {
		if h264.IsRandomAccess(au) {
			c.aus[i] = append([][]byte{c.sps, c.pps}, au...)
		}
	}

	var sps h264.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		return nil, fmt.Errorf("clip: SPS: %w", err)
	}
	if fps := sps.FPS(); fps != 0 && fps != frameRate {
		return nil, fmt.Errorf("clip: %g fps, want %d", fps, frameRate)
	}
	c.width, c.height = sps.Width(), sps.Height()
	return c, nil
}
