package media

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

func h264Types(au [][]byte) []int {
	var ts []int
	for _, n := range au {
		ts = append(ts, int(n[0]&0x1f))
	}
	return ts
}

func TestNormalizeH264(t *testing.T) {
	c := loadClip(t, "h264.h264")
	sps, pps := c.sps, c.pps
	aud := []byte{0x09, 0xf0}
	idr := []byte{0x65, 0x88, 0x84, 0x00}
	p := []byte{0x41, 0x9a, 0x02}
	sei := []byte{0x06, 0x05, 0x01, 0x00, 0x80}
	sps2 := loadClip(t, "h264-small.h264").sps

	for _, tt := range []struct {
		name    string
		initial [][]byte // parameter sets known before (SDP): sps, pps
		au      [][]byte
		want    []int // NAL unit types out
		key     bool
		err     error
		wantSPS []byte // the SPS in force after
	}{
		{name: "params in front of IDR", initial: [][]byte{sps, pps}, au: [][]byte{aud, idr},
			want: []int{7, 8, 5}, key: true, wantSPS: sps},
		{name: "in-band params move in front", au: [][]byte{aud, sei, sps, pps, idr},
			want: []int{7, 8, 6, 5}, key: true, wantSPS: sps},
		{name: "P-frame as is", initial: [][]byte{sps, pps}, au: [][]byte{aud, p}, want: []int{1}},
		{name: "params out of a P-frame", initial: [][]byte{sps, pps}, au: [][]byte{sps, pps, p},
			want: []int{1}, wantSPS: sps},
		{name: "new SPS in band replaces", initial: [][]byte{sps, pps}, au: [][]byte{sps2, pps, idr},
			want: []int{7, 8, 5}, key: true, wantSPS: sps2},
		{name: "params alone: nothing out", au: [][]byte{sps, pps}, wantSPS: sps},
		{name: "SEI alone: nothing out", au: [][]byte{sei}},
		{name: "filler and end of stream dropped", initial: [][]byte{sps, pps}, au: [][]byte{p, {0x0c, 0xff}, {0x0b}},
			want: []int{1}},
		{name: "RTP packetization types dropped", initial: [][]byte{sps, pps}, au: [][]byte{{0x1c, 0x85}, p},
			want: []int{1}},
		{name: "IDR before any params", au: [][]byte{idr}, err: errNoParamSets},
		{name: "empty", au: nil, err: errEmptyAU},
		{name: "empty NAL unit", au: [][]byte{{}}, err: errNALUHeader},
		{name: "forbidden bit", au: [][]byte{{0x85, 0x00}}, err: errNALUHeader},
		{name: "too many NAL units", au: bytes.Fields(bytes.Repeat([]byte("A "), maxNALUs+1)), err: errTooManyNALUs},
		{name: "too large", au: [][]byte{make([]byte, maxAccessUnitSize/2+1), make([]byte, maxAccessUnitSize/2)}, err: errAUTooLarge},
		{name: "SPS that does not parse", au: [][]byte{{0x67, 0xff}, idr}, err: errSPS},
		{name: "SPS too large", au: [][]byte{append([]byte{0x67}, make([]byte, maxParamSetSize)...)}, err: errParamSetSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := normalizer{codec: codecH264}
			if tt.initial != nil {
				n.setParams(nil, tt.initial[0], tt.initial[1])
			}
			out, key, err := n.normalize(tt.au)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if got := h264Types(out); !equalInts(got, tt.want) || key != tt.key {
				t.Errorf("got %v key=%v, want %v key=%v", got, key, tt.want, tt.key)
			}
			if tt.wantSPS != nil && !bytes.Equal(n.sps, tt.wantSPS) {
				t.Errorf("SPS in force is not the expected one")
			}
		})
	}
}

func TestNormalizeH265(t *testing.T) {
	c := loadClip(t, "h265.h265")
	aud := []byte{0x46, 0x01, 0x50}
	idr := []byte{0x28, 0x01, 0xaf}   // IDR_N_LP
	cra := []byte{0x2a, 0x01, 0xaf}   // CRA
	trail := []byte{0x02, 0x01, 0xd0} // TRAIL_R
	n := normalizer{codec: codecH265}
	if _, _, err := n.normalize([][]byte{aud, idr}); !errors.Is(err, errNoParamSets) {
		t.Fatalf("IDR without parameter sets: %v", err)
	}
	if out, _, err := n.normalize([][]byte{aud, c.vps, c.sps, c.pps}); out != nil || err != nil {
		t.Fatalf("parameter sets alone: %v, %v", out, err)
	}
	for _, k := range [][]byte{idr, cra} {
		out, key, err := n.normalize([][]byte{aud, k})
		if err != nil || !key || len(out) != 4 {
			t.Fatalf("keyframe: %d units, key=%v, %v", len(out), key, err)
		}
		for i, want := range []byte{32, 33, 34} {
			if out[i][0]>>1&0x3f != want {
				t.Errorf("unit %d has type %d, want %d", i, out[i][0]>>1&0x3f, want)
			}
		}
	}
	if out, key, err := n.normalize([][]byte{aud, trail}); err != nil || key || len(out) != 1 {
		t.Errorf("trailing picture: %d units, key=%v, %v", len(out), key, err)
	}
	if _, _, err := n.normalize([][]byte{{0x28}}); !errors.Is(err, errNALUHeader) {
		t.Errorf("one-byte H.265 NAL unit: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzNormalize feeds an Annex-B access unit, as a camera might send it,
// through the whole per-camera path (normalizer, decode times, muxer) of an
// H.264 and of an H.265 camera, between two good access units. Whatever the
// input, nothing panics, keyframes go out with parameter sets first, and
// the fragments that come out parse, with decode times going up.
func FuzzNormalize(f *testing.F) {
	for _, name := range []string{"h264.h264", "h264-small.h264", "h265.h265"} {
		c := loadClip(f, name)
		for _, au := range c.aus[:3] {
			b, err := h264.AnnexB(au).Marshal()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0xff, 0, 0, 1, 0x65, 0x88})
	f.Add([]byte{0, 0, 1, 0x1c, 0x85, 0, 0, 1})

	h264Clip, h265Clip := loadClip(f, "h264.h264"), loadClip(f, "h265.h265")
	f.Fuzz(func(t *testing.T, annexB []byte) {
		var au h264.AnnexB
		if err := au.Unmarshal(annexB); err != nil {
			au = [][]byte{annexB}
		}
		for _, c := range []*clip{h264Clip, h265Clip} {
			n := normalizer{codec: c.codec}
			out, key, err := n.normalize(au)
			if err == nil && key {
				params := 2
				if c.codec == codecH265 {
					params = 3
				}
				if len(out) <= params {
					t.Fatalf("keyframe with %d units", len(out))
				}
				for _, p := range out[:params] {
					if class, _ := n.classify(p); class != naluParam {
						t.Fatalf("keyframe does not start with parameter sets")
					}
				}
			}
			for _, u := range out {
				if class, _ := n.classify(u); class == naluDrop || class == naluParam && !key {
					t.Fatalf("unit of class %d left in", class)
				}
			}

			// The whole path: a good keyframe, the input, a good frame.
			var m muxer
			var frags []*fragment
			keep := func(held, f *fragment, _ error) {
				for _, f := range []*fragment{held, f} {
					if f != nil {
						frags = append(frags, f)
					}
				}
			}
			m.startSession(&tracks{video: c.codec, vps: c.vps, sps: c.sps, pps: c.pps})
			keep(m.video(c.aus[0], 0, time.Time{}))
			keep(m.video(au, 3600, time.Time{}))
			keep(m.video(c.aus[1], 7200, time.Time{}))
			keep(m.video(c.aus[0], 10800, time.Time{}))
			m.resync()
			var last uint64
			for i, fr := range frags {
				var parts fmp4.Parts
				if err := parts.Unmarshal(fr.data); err != nil || len(parts) != 1 {
					t.Fatalf("fragment %d does not parse: %v", i, err)
				}
				bt := parts[0].Tracks[0].BaseTime
				if i > 0 && bt <= last {
					t.Fatalf("decode time %d after %d", bt, last)
				}
				last = bt
			}
		}
	})
}
