package media

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// Bounds on what the package accepts from a camera.
const (
	// maxAccessUnitSize bounds one video access unit; mediacommon's decoders
	// use the same bound.
	maxAccessUnitSize = 8 << 20
	// maxNALUs bounds the NAL units of one access unit.
	maxNALUs = 64
	// maxParamSetSize bounds one VPS, SPS or PPS; real ones are tens to a
	// few hundred bytes.
	maxParamSetSize = 4 << 10
)

var (
	errParamSetSize = errors.New("parameter set empty or too large")
	errSPS          = errors.New("SPS does not parse")
)

// videoCodec is the video codec of a camera.
type videoCodec int

const (
	codecH264 videoCodec = iota + 1
	codecH265
)

func (c videoCodec) String() string {
	switch c {
	case codecH264:
		return "H.264"
	case codecH265:
		return "H.265"
	}
	return "unknown"
}

// codecStringH264 returns the RFC 6381 codec string of an H.264 stream,
// avc1.PPCCLL: profile_idc, the constraint flags byte and level_idc of the
// SPS, in hex.
func codecStringH264(sps []byte) (string, error) {
	if len(sps) == 0 || len(sps) > maxParamSetSize {
		return "", errParamSetSize
	}
	var p h264.SPS
	if err := p.Unmarshal(sps); err != nil {
		return "", fmt.Errorf("%w: %w", errSPS, err)
	}
	raw := h264.EmulationPreventionRemove(sps)
	if len(raw) < 4 {
		return "", errSPS
	}
	const hex = "0123456789abcdef"
	b := []byte("avc1.000000")
	for i, v := range raw[1:4] {
		b[5+2*i] = hex[v>>4]
		b[6+2*i] = hex[v&0x0f]
	}
	return string(b), nil
}

// codecStringH265 returns the codec string of an H.265 stream as ISO/IEC
// 14496-15 annex E spells it for the hvc1 sample entry:
// hvc1.<profile space letter><profile_idc>.<compatibility flags, bit-reversed,
// hex>.<tier L or H><level_idc>.<constraint bytes, hex, trailing zero bytes
// left out>, for example hvc1.1.6.L93.B0.
func codecStringH265(sps []byte) (string, error) {
	if len(sps) == 0 || len(sps) > maxParamSetSize {
		return "", errParamSetSize
	}
	var p h265.SPS
	if err := p.Unmarshal(sps); err != nil {
		return "", fmt.Errorf("%w: %w", errSPS, err)
	}
	ptl := p.ProfileTierLevel
	if ptl.GeneralProfileSpace > 3 {
		return "", errSPS
	}

	var b strings.Builder
	b.WriteString("hvc1.")
	if ptl.GeneralProfileSpace > 0 {
		b.WriteByte("ABC"[ptl.GeneralProfileSpace-1])
	}
	b.WriteString(strconv.Itoa(int(ptl.GeneralProfileIdc)))

	var compat uint32
	for j, set := range ptl.GeneralProfileCompatibilityFlag {
		if set {
			compat |= 1 << j
		}
	}
	b.WriteByte('.')
	b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(compat), 16)))

	b.WriteByte('.')
	if ptl.GeneralTierFlag != 0 {
		b.WriteByte('H')
	} else {
		b.WriteByte('L')
	}
	b.WriteString(strconv.Itoa(int(ptl.GeneralLevelIdc)))

	// The 48 constraint bits are bytes 8 to 13 of the SPS without emulation
	// prevention: 2 bytes of NAL header, 1 of VPS id and sub-layers, 1 of
	// profile space, tier and profile, 4 of compatibility flags.
	unesc := h264.EmulationPreventionRemove(sps)
	if len(unesc) < 14 {
		return "", errSPS
	}
	constraints := unesc[8:14]
	n := len(constraints)
	for n > 0 && constraints[n-1] == 0 {
		n--
	}
	for _, c := range constraints[:n] {
		b.WriteByte('.')
		b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(c), 16)))
	}
	return b.String(), nil
}

// codecStringAAC returns mp4a.40.<audio object type>, for example mp4a.40.2
// for AAC-LC.
func codecStringAAC(c *mpeg4audio.AudioSpecificConfig) string {
	return "mp4a.40." + strconv.Itoa(int(c.Type))
}

// checkParamSet bounds a VPS, SPS or PPS.
func checkParamSet(nalu []byte) error {
	if len(nalu) < 2 || len(nalu) > maxParamSetSize {
		return errParamSetSize
	}
	return nil
}

// checkSPS bounds and parses an SPS of the codec, so that a muxer or a codec
// string never sees one that mediacommon cannot read.
func checkSPS(codec videoCodec, sps []byte) error {
	if err := checkParamSet(sps); err != nil {
		return err
	}
	var err error
	switch codec {
	case codecH264:
		_, err = codecStringH264(sps)
	case codecH265:
		_, err = codecStringH265(sps)
	default:
		err = errSPS
	}
	return err
}
