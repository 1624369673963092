package media

import (
	"errors"
	"testing"
)

var hlsRequestCases = []struct {
	file, query string
	kind        hlsFileKind
	err         string // "notfound", "query" or ""
}{
	{"index.m3u8", "", hlsMultivariant, ""},
	{"video1_stream.m3u8", "", hlsMediaPlaylist, ""},
	{"audio2_stream.m3u8", "_HLS_msn=12&_HLS_part=3", hlsMediaPlaylist, ""},
	{"video1_stream.m3u8", "_HLS_msn=12&_HLS_skip=YES", hlsMediaPlaylist, ""},
	{"video1_stream.m3u8", "_HLS_skip=v2&other=x", hlsMediaPlaylist, ""},
	{"0123456789ab_video1_init.mp4", "", hlsInit, ""},
	{"0123456789ab_video1_seg7.mp4", "", hlsSegment, ""},
	{"0123456789ab_audio2_part123.mp4", "x=1", hlsPart, ""},
	{"", "", 0, "notfound"},
	{"index.m3u", "", 0, "notfound"},
	{"../index.m3u8", "", 0, "notfound"},
	{"video_stream.m3u8", "", 0, "notfound"},
	{"video1_stream.m3u8x", "", 0, "notfound"},
	{"0123456789AB_video1_init.mp4", "", 0, "notfound"},
	{"0123456789ab_video1_seg.mp4", "", 0, "notfound"},
	{"0123456789ab_video1_seg-1.mp4", "", 0, "notfound"},
	{"0123456789ab_video1_seg+1.mp4", "", 0, "notfound"},
	{"0123456789ab_video1_part99999999999999999999.mp4", "", 0, "notfound"},
	{"0123456789ab_video1_x_init.mp4", "", 0, "notfound"},
	{"video1_stream.m3u8", "_HLS_part=1", 0, "query"},
	{"video1_stream.m3u8", "_HLS_msn=", 0, "query"},
	{"video1_stream.m3u8", "_HLS_msn=1e3", 0, "query"},
	{"video1_stream.m3u8", "_HLS_msn=18446744073709551616", 0, "query"},
	{"video1_stream.m3u8", "_HLS_msn=1&_HLS_part=-1", 0, "query"},
	{"video1_stream.m3u8", "_HLS_skip=yes", 0, "query"},
	{"video1_stream.m3u8", "_HLS_msn=1&_HLS_msn=2", 0, "query"},
	{"video1_stream.m3u8", "%zz", 0, "query"},
}

func TestParseHLSRequest(t *testing.T) {
	for _, tc := range hlsRequestCases {
		got, err := parseHLSRequest(HLSRequest{File: tc.file, Query: tc.query})
		var qe *HLSQueryError
		switch {
		case tc.err == "notfound" && !errors.Is(err, ErrHLSNotFound),
			tc.err == "query" && !errors.As(err, &qe),
			tc.err == "" && err != nil:
			t.Errorf("%q ? %q: error %v, want %s", tc.file, tc.query, err, tc.err)
		case tc.err == "" && got.kind != tc.kind:
			t.Errorf("%q: kind %d, want %d", tc.file, got.kind, tc.kind)
		}
	}
}

// FuzzHLSRequest: any file name and query give a target or one of the two
// documented errors, never a panic; a target's file is short and of the
// muxer's alphabet, and the query handed to gohlslib parses back to the
// same target.
func FuzzHLSRequest(f *testing.F) {
	for _, tc := range hlsRequestCases {
		f.Add(tc.file, tc.query)
	}
	f.Fuzz(func(t *testing.T, file, query string) {
		got, err := parseHLSRequest(HLSRequest{File: file, Query: query})
		if err != nil {
			var qe *HLSQueryError
			if !errors.Is(err, ErrHLSNotFound) && !errors.As(err, &qe) {
				t.Fatalf("undocumented error %T %v", err, err)
			}
			return
		}
		if len(got.file) > maxHLSFileName || got.kind < hlsMultivariant || got.kind > hlsPart {
			t.Fatalf("target %+v", got)
		}
		for i := range len(got.file) {
			c := got.file[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
				t.Fatalf("file %q has %q", got.file, c)
			}
		}
		again, err := parseHLSRequest(HLSRequest{File: got.file, Query: got.query()})
		if err != nil || again != got {
			t.Fatalf("round trip: %+v, then %+v (%v)", got, again, err)
		}
	})
}
