package media

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// SPSs from elsewhere than the committed clips.
var (
	// x264, High 4.0, 1920x1080.
	spsH264High40 = []byte{
		0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00,
		0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
	}
	// x265, Main, level 3.1, 1280x720 (the constraint byte is 0xb0).
	spsH265Main31 = []byte{
		0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0xb0, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
		0x00, 0x5d, 0xa0, 0x02, 0x80, 0x80, 0x2d, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a, 0x70,
		0x80, 0x00, 0x01, 0xf4, 0x80, 0x00, 0x3a, 0x98, 0x04,
	}
)

func TestCodecStrings(t *testing.T) {
	for _, tt := range []struct {
		name  string
		codec videoCodec
		sps   []byte
		want  string
	}{
		{"clip h264", codecH264, loadClip(t, "h264.h264").sps, "avc1.64000d"},
		{"clip h264 main", codecH264, loadClip(t, "h264-small.h264").sps, "avc1.4d400b"},
		{"high 4.0", codecH264, spsH264High40, "avc1.640028"},
		{"clip h265", codecH265, loadClip(t, "h265.h265").sps, "hvc1.1.6.L60.90"},
		{"main 3.1", codecH265, spsH265Main31, "hvc1.1.6.L93.B0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			var err error
			if tt.codec == codecH264 {
				got, err = codecStringH264(tt.sps)
				if want := expectedAVC1(tt.sps); got != want {
					t.Errorf("got %s, the SPS bytes say %s", got, want)
				}
			} else {
				got, err = codecStringH265(tt.sps)
				if want := expectedHVC1(t, tt.sps); got != want {
					t.Errorf("got %s, the SPS bytes say %s", got, want)
				}
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	for _, bad := range [][]byte{nil, {0x67}, {0x67, 0x64, 0x00}, bytes.Repeat([]byte{0x67}, maxParamSetSize+1)} {
		if s, err := codecStringH264(bad); err == nil {
			t.Errorf("codecStringH264(%x) = %s, want an error", bad, s)
		}
		if s, err := codecStringH265(bad); err == nil {
			t.Errorf("codecStringH265(%x) = %s, want an error", bad, s)
		}
	}

	aac := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}
	if got := codecStringAAC(aac); got != "mp4a.40.2" {
		t.Errorf("AAC-LC: %s", got)
	}
}

var (
	avc1Pattern = regexp.MustCompile(`^avc1\.[0-9a-f]{6}$`)
	hvc1Pattern = regexp.MustCompile(`^hvc1\.[ABC]?[0-9]+\.[0-9A-F]{1,8}\.[LH][0-9]+(\.[0-9A-F]{1,2}){0,6}$`)
)

// FuzzCodecString feeds SPS bytes, as a camera sends them, to the codec
// string builders and, when they accept them, to the init segment muxer,
// which must take any SPS they accept.
func FuzzCodecString(f *testing.F) {
	for _, sps := range [][]byte{
		loadClip(f, "h264.h264").sps, loadClip(f, "h264-small.h264").sps, loadClip(f, "h265.h265").sps,
		spsH264High40, spsH265Main31,
	} {
		f.Add(sps)
	}
	f.Fuzz(func(t *testing.T, sps []byte) {
		if s, err := codecStringH264(sps); err == nil {
			if !avc1Pattern.MatchString(s) {
				t.Errorf("malformed codec string %q", s)
			}
			roundTripInit(t, &mp4.CodecH264{SPS: sps, PPS: []byte{0x68, 0xee}})
		}
		if s, err := codecStringH265(sps); err == nil {
			if !hvc1Pattern.MatchString(s) {
				t.Errorf("malformed codec string %q", s)
			}
			roundTripInit(t, &mp4.CodecH265{VPS: []byte{0x40, 0x01}, SPS: sps, PPS: []byte{0x44, 0x01}})
		}
	})
}

func roundTripInit(t *testing.T, c mp4.Codec) {
	t.Helper()
	var buf seekablebuffer.Buffer
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: videoTimescale, Codec: c}}}
	if err := init.Marshal(&buf); err != nil {
		return // refused, which is fine; a panic is not
	}
	var back fmp4.Init
	if err := back.Unmarshal(bytes.NewReader(buf.Bytes())); err != nil {
		t.Errorf("init segment of an accepted SPS does not parse: %v", err)
	}
}

func TestRenameSampleEntry(t *testing.T) {
	c := loadClip(t, "h265.h265")
	var buf seekablebuffer.Buffer
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{
		{ID: 1, TimeScale: videoTimescale, Codec: &mp4.CodecH265{VPS: c.vps, SPS: c.sps, PPS: c.pps}},
		{ID: 2, TimeScale: 48000, Codec: &mp4.CodecOpus{ChannelCount: 2}},
	}}
	if err := init.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if err := renameSampleEntry(data, "hev1", "hvc1"); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("hev1")) || bytes.Count(data, []byte("hvc1")) != 1 {
		t.Errorf("hev1 not renamed")
	}
	var back fmp4.Init
	if err := back.Unmarshal(bytes.NewReader(data)); err != nil {
		t.Fatalf("renamed init does not parse: %v", err)
	}
	if _, ok := back.Tracks[0].Codec.(*mp4.CodecH265); !ok || len(back.Tracks) != 2 {
		t.Errorf("tracks %+v", back.Tracks)
	}

	// Nothing to rename, or boxes that do not add up: an error, no panic.
	if err := renameSampleEntry(data, "hev1", "hvc1"); err == nil {
		t.Errorf("second rename found an hev1")
	}
	for _, bad := range [][]byte{{0, 0, 0, 9, 'm', 'o', 'o', 'v'}, {0, 0, 0, 1}, data[:len(data)-3]} {
		if err := renameSampleEntry(append([]byte(nil), bad...), "hev1", "hvc1"); err == nil {
			t.Errorf("renameSampleEntry(%x) = nil", bad)
		}
	}
}
