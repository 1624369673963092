package media

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

var (
	errEmptyAU       = errors.New("empty access unit")
	errTooManyNALUs  = errors.New("too many NAL units in access unit")
	errAUTooLarge    = errors.New("access unit too large")
	errNALUHeader    = errors.New("invalid NAL unit header")
	errNoParamSets   = errors.New("keyframe before its parameter sets")
	errUnknownCodec  = errors.New("unknown video codec")
	errNotSynced     = errors.New("waiting for a keyframe")
	errVideoGap      = errors.New("video packets lost")
	errDTS           = errors.New("decode time not computable")
	errSessionFormat = errors.New("session has no usable video")
)

// normalizer puts access units of one camera into the shape the muxer and
// the browser want: no access unit delimiters, no filler, no parameter sets
// in the middle of a group, and the current parameter sets (VPS, SPS, PPS)
// in front of every keyframe. Parameter sets that arrive in band replace the
// current ones, so a camera that changes resolution is followed. It checks
// sizes and NAL unit headers and parses every new SPS, so whatever it lets
// through can be muxed. Only the camera goroutine uses it.
type normalizer struct {
	codec         videoCodec
	vps, sps, pps []byte
}

// setParams installs parameter sets known out of band (from the SDP). Sets
// that fail the checks are ignored: the stream may still carry good ones.
func (n *normalizer) setParams(vps, sps, pps []byte) {
	if n.codec == codecH265 && checkParamSet(vps) == nil {
		n.vps = vps
	}
	if checkSPS(n.codec, sps) == nil {
		n.sps = sps
	}
	if checkParamSet(pps) == nil {
		n.pps = pps
	}
}

// normalize returns au normalized, and whether it is a keyframe (an IDR for
// H.264; an IDR or CRA for H.265). An access unit with no picture in it
// (parameter sets or SEI alone) updates the parameter sets and returns nil.
// The returned slices share memory with au and with the parameter sets.
func (n *normalizer) normalize(au [][]byte) (out [][]byte, key bool, err error) {
	if len(au) == 0 {
		return nil, false, errEmptyAU
	}
	if len(au) > maxNALUs {
		return nil, false, errTooManyNALUs
	}
	size := 0
	keep := 0    // NAL units that stay
	vcl := false // a picture is present
	for _, nalu := range au {
		size += len(nalu)
		if size > maxAccessUnitSize {
			return nil, false, errAUTooLarge
		}
		class, err := n.classify(nalu)
		if err != nil {
			return nil, false, err
		}
		switch class {
		case naluParam:
			if err := n.update(nalu); err != nil {
				return nil, false, err
			}
		case naluDrop:
		case naluKey:
			key = true
			vcl = true
			keep++
		case naluPicture:
			vcl = true
			keep++
		default:
			keep++
		}
	}
	if !vcl {
		return nil, false, nil
	}

	params := 0
	if key {
		if n.sps == nil || n.pps == nil || (n.codec == codecH265 && n.vps == nil) {
			return nil, false, errNoParamSets
		}
		params = 2
		if n.codec == codecH265 {
			params = 3
		}
	}
	out = make([][]byte, 0, params+keep)
	if key {
		if n.codec == codecH265 {
			out = append(out, n.vps)
		}
		out = append(out, n.sps, n.pps)
	}
	for _, nalu := range au {
		class, _ := n.classify(nalu) // checked above
		switch class {
		case naluParam, naluDrop:
		default:
			out = append(out, nalu)
		}
	}
	return out, key, nil
}

type naluClass int

const (
	naluOther   naluClass = iota // SEI and the like: kept
	naluPicture                  // a slice of a picture
	naluKey                      // a slice of a keyframe
	naluParam                    // VPS, SPS, PPS: taken out, re-inserted before keyframes
	naluDrop                     // access unit delimiter, filler, end of sequence/stream
)

func (n *normalizer) classify(nalu []byte) (naluClass, error) {
	switch n.codec {
	case codecH264:
		if len(nalu) < 1 || nalu[0]&0x80 != 0 {
			return 0, errNALUHeader
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeIDR:
			return naluKey, nil
		case h264.NALUTypeNonIDR, h264.NALUTypeDataPartitionA,
			h264.NALUTypeDataPartitionB, h264.NALUTypeDataPartitionC:
			return naluPicture, nil
		case h264.NALUTypeSPS, h264.NALUTypePPS:
			return naluParam, nil
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData,
			h264.NALUTypeEndOfSequence, h264.NALUTypeEndOfStream:
			return naluDrop, nil
		}
		if nalu[0]&0x1f >= 24 { // RTP packetization types, never in an access unit
			return naluDrop, nil
		}
		return naluOther, nil

	case codecH265:
		if len(nalu) < 2 || nalu[0]&0x80 != 0 {
			return 0, errNALUHeader
		}
		typ := h265.NALUType((nalu[0] >> 1) & 0x3f)
		switch {
		case typ == h265.NALUType_IDR_W_RADL || typ == h265.NALUType_IDR_N_LP ||
			typ == h265.NALUType_CRA_NUT:
			return naluKey, nil
		case typ <= 31: // VCL
			return naluPicture, nil
		case typ == h265.NALUType_VPS_NUT || typ == h265.NALUType_SPS_NUT ||
			typ == h265.NALUType_PPS_NUT:
			return naluParam, nil
		case typ == h265.NALUType_AUD_NUT || typ == h265.NALUType_FD_NUT ||
			typ == h265.NALUType_EOS_NUT || typ == h265.NALUType_EOB_NUT,
			typ >= 48: // RTP packetization types, never in an access unit
			return naluDrop, nil
		}
		return naluOther, nil
	}
	return 0, errUnknownCodec
}

// update installs an in-band parameter set if it differs from the current one.
func (n *normalizer) update(nalu []byte) error {
	var cur *[]byte
	isSPS := false
	switch n.codec {
	case codecH264:
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			cur, isSPS = &n.sps, true
		default:
			cur = &n.pps
		}
	case codecH265:
		switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			cur = &n.vps
		case h265.NALUType_SPS_NUT:
			cur, isSPS = &n.sps, true
		default:
			cur = &n.pps
		}
	}
	if bytes.Equal(*cur, nalu) {
		return nil
	}
	if err := checkParamSet(nalu); err != nil {
		return err
	}
	if isSPS {
		if err := checkSPS(n.codec, nalu); err != nil {
			return fmt.Errorf("in-band %w", err)
		}
	}
	// Copy: the access unit's memory is shared with the fragment being built
	// and must not keep a large buffer alive for the parameter sets' sake.
	*cur = bytes.Clone(nalu)
	return nil
}
