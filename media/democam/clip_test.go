package democam

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

// The committed clip is what make.sh promises: small, 640x360, 8 s at
// 25 fps, an IDR every second carrying the SPS and the PPS, one slice per
// picture.
func TestClip(t *testing.T) {
	if len(clipData) > 400<<10 {
		t.Errorf("clip is %d bytes, want under 400 KiB", len(clipData))
	}
	c, err := loadClip()
	if err != nil {
		t.Fatal(err)
	}
	if c.width != 640 || c.height != 360 {
		t.Errorf("clip is %dx%d, want 640x360", c.width, c.height)
	}
	if len(c.aus) != 8*frameRate {
		t.Errorf("clip has %d access units, want %d", len(c.aus), 8*frameRate)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		t.Fatal(err)
	}
	if sps.ProfileIdc != 66 {
		t.Errorf("profile_idc %d, want 66 (baseline)", sps.ProfileIdc)
	}
	for i, au := range c.aus {
		idr := h264.IsRandomAccess(au)
		if idr != (i%frameRate == 0) {
			t.Errorf("access unit %d: IDR %v, want an IDR every %d", i, idr, frameRate)
		}
		slices := au
		if idr {
			if len(au) < 3 || !bytes.Equal(au[0], c.sps) || !bytes.Equal(au[1], c.pps) {
				t.Errorf("access unit %d: an IDR without SPS and PPS first", i)
				continue
			}
			slices = au[2:]
		}
		if len(slices) != 1 {
			t.Errorf("access unit %d: %d NAL units after the parameter sets, want one slice", i, len(slices))
		}
	}
}

// NAL units of a made-up stream, for grouping tests: the SPS and PPS are the
// clip's, so that they parse; slices are a header byte and the first byte of
// the slice header, whose top bit says whether first_mb_in_slice is 0.
var (
	testClip, _ = loadClip()
	nalSPS      = testClip.sps
	nalPPS      = testClip.pps
	nalAUD      = []byte{0x09, 0xf0}
	nalSEI      = []byte{0x06, 0x05, 0x01, 0x00, 0x80}
	nalIDR      = []byte{0x65, 0x88, 0x84}       // first slice of an IDR picture
	nalIDR2     = []byte{0x65, 0x40, 0x84}       // a later slice of it
	nalP        = []byte{0x41, 0x9a, 0x02}       // first slice of a P picture
	nalFiller   = []byte{0x0c, 0xff, 0xff, 0x80} // filler data
)

// annexB joins NAL units with 4-byte start codes.
func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

// parseClipTests double as the seeds of FuzzParseClip.
var parseClipTests = []struct {
	name  string
	in    []byte
	want  [][][]byte // access units, when the stream is accepted
	error string     // part of the error, when it is not
}{
	{
		name: "parameter sets before the first IDR only",
		in:   annexB(nalSPS, nalPPS, nalIDR, nalP, nalP, nalIDR, nalP),
		want: [][][]byte{
			{nalSPS, nalPPS, nalIDR}, {nalP}, {nalP},
			{nalSPS, nalPPS, nalIDR}, {nalP},
		},
	},
	{
		name: "delimiters, SEI, filler and multi-slice pictures",
		in:   annexB(nalAUD, nalSPS, nalPPS, nalSEI, nalIDR, nalIDR2, nalAUD, nalP, nalFiller, nalAUD, nalSEI, nalP),
		want: [][][]byte{
			{nalSPS, nalPPS, nalSEI, nalIDR, nalIDR2}, {nalP}, {nalSEI, nalP},
		},
	},
	{
		name: "parameter sets repeated",
		in:   annexB(nalSPS, nalPPS, nalIDR, nalP, nalSPS, nalPPS, nalIDR),
		want: [][][]byte{{nalSPS, nalPPS, nalIDR}, {nalP}, {nalSPS, nalPPS, nalIDR}},
	},
	{name: "empty", in: nil, error: "NALU"},
	{name: "no start code", in: []byte{0x65, 0x88}, error: "delimiter"},
	{name: "no SPS", in: annexB(nalPPS, nalIDR), error: "no SPS"},
	{name: "no PPS", in: annexB(nalSPS, nalIDR), error: "no PPS"},
	{name: "P first", in: annexB(nalSPS, nalPPS, nalP, nalIDR), error: "IDR"},
	{name: "no pictures", in: annexB(nalSPS, nalPPS), error: "IDR"},
	{name: "truncated NAL unit", in: annexB(nalSPS, nalPPS, []byte{0x65}), error: "truncated"},
	{name: "two SPS", in: annexB(nalSPS, nalPPS, nalIDR, append(bytes.Clone(nalSPS), 0x80)), error: "more than one SPS"},
	{name: "two PPS", in: annexB(nalSPS, nalPPS, nalIDR, append(bytes.Clone(nalPPS), 0x80)), error: "more than one PPS"},
	{name: "bad SPS", in: annexB([]byte{0x67, 0x42}, nalPPS, nalIDR), error: "SPS"},
}

func TestParseClip(t *testing.T) {
	for _, tt := range parseClipTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseClip(tt.in)
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("error %v, want one with %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalAUs(c.aus, tt.want) {
				t.Errorf("access units\n%x\nwant\n%x", c.aus, tt.want)
			}
		})
	}
}

func FuzzParseClip(f *testing.F) {
	for _, tt := range parseClipTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := parseClip(in)
		if err != nil {
			return
		}
		// Whatever it accepts can be looped: it starts at an IDR and every
		// IDR carries the parameter sets.
		if len(c.aus) == 0 || !h264.IsRandomAccess(c.aus[0]) {
			t.Fatal("accepted a stream that does not start with an IDR")
		}
		for _, au := range c.aus {
			if h264.IsRandomAccess(au) && (!bytes.Equal(au[0], c.sps) || !bytes.Equal(au[1], c.pps)) {
				t.Fatal("an IDR without the parameter sets")
			}
		}
	})
}

func equalAUs(a, b [][][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if !bytes.Equal(a[i][j], b[i][j]) {
				return false
			}
		}
	}
	return true
}

// sent is an access unit as the publisher's write saw it.
type sent struct {
	at  time.Time // synthetic
	ntp time.Time
	ts  uint32
	au  [][]byte
}

// publish runs a publisher of the embedded clip for d of synthetic time,
// with a write that decodes the packets back into access units, and returns
// them. stall, when set, runs in write and may sleep.
func publish(t *testing.T, d time.Duration, rtpStart uint32, stall func(n int)) []sent {
	t.Helper()
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	enc, err := forma.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var out []sent
	p := &publisher{
		clip:     testClip,
		enc:      enc,
		rtpStart: rtpStart,
		write: func(pkt *rtp.Packet, ntp time.Time) error {
			au, err := dec.Decode(pkt)
			if errors.Is(err, rtph264.ErrMorePacketsNeeded) {
				return nil
			}
			if err != nil {
				return err
			}
			out = append(out, sent{at: time.Now(), ntp: ntp, ts: pkt.Timestamp, au: au})
			if stall != nil {
				stall(len(out))
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- p.run(ctx) }()
	time.Sleep(d)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return out
}

// The publisher sends the first IDR at once, then one access unit every
// 40 ms; across the loop (200 access units) the timestamps keep growing by
// 3600 (through the 2^32 wrap, too) and the NTP times follow the schedule.
func TestPublisherPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		const rtpStart = 1<<32 - 3600*100 // wraps in the middle of the first loop
		out := publish(t, 10*time.Second-time.Millisecond, rtpStart, nil)
		if len(out) != 10*frameRate {
			t.Fatalf("%d access units in 10 s, want %d", len(out), 10*frameRate)
		}
		for i, s := range out {
			want := start.Add(time.Duration(i) * frameDuration)
			if !s.at.Equal(want) || !s.ntp.Equal(want) {
				t.Fatalf("access unit %d sent at %v for %v, want %v", i, s.at.Sub(start), s.ntp.Sub(start), want.Sub(start))
			}
			if wantTS := uint32(rtpStart + i*3600); s.ts != wantTS {
				t.Fatalf("access unit %d: timestamp %d, want %d", i, s.ts, wantTS)
			}
			if !equalAUs([][][]byte{s.au}, [][][]byte{testClip.aus[i%len(testClip.aus)]}) {
				t.Fatalf("access unit %d is not the clip's access unit %d", i, i%len(testClip.aus))
			}
		}
	})
}

// A short stall is caught up at once; after a long one (a suspended
// machine) the schedule restarts instead of bursting, and the timestamps
// still count access units.
func TestPublisherStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		out := publish(t, 6*time.Second-time.Millisecond, 0, func(n int) {
			switch n {
			case 10: // after access unit 9, sent at 360 ms
				time.Sleep(200 * time.Millisecond)
			case 50: // after access unit 49, sent at 1960 ms
				time.Sleep(3 * time.Second)
			}
		})
		for i, s := range out {
			if s.ts != uint32(i*3600) {
				t.Fatalf("access unit %d: timestamp %d, want %d", i, s.ts, i*3600)
			}
		}
		at := func(i int) time.Duration { return out[i].at.Sub(start) }
		// Access units 10 to 14 were due during the short stall and went
		// out together when it ended; 15 is back on schedule.
		for i, want := range map[int]time.Duration{10: 560 * time.Millisecond, 14: 560 * time.Millisecond, 15: 600 * time.Millisecond} {
			if at(i) != want {
				t.Errorf("access unit %d sent at %v, want %v", i, at(i), want)
			}
		}
		// After the long stall access unit 50 goes out at once, and the
		// schedule restarts from it: 76 access units in all by 6 s.
		if want := 4960 * time.Millisecond; at(50) != want || !out[50].ntp.Equal(out[50].at) {
			t.Errorf("access unit 50 sent at %v for %v, want both %v", at(50), out[50].ntp.Sub(start), want)
		}
		if want := 5000 * time.Millisecond; at(51) != want {
			t.Errorf("access unit 51 sent at %v, want %v", at(51), want)
		}
		if len(out) != 76 {
			t.Errorf("%d access units, want 76", len(out))
		}
		if !out[60].ntp.Equal(out[50].ntp.Add(10 * frameDuration)) {
			t.Errorf("NTP times not 40 ms apart after the restart")
		}
	})
}
