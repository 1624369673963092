package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// startG711Camera starts an RTSP camera with H.264 video (the demo clip at
// 25 fps) and G.711 µ-law sound (silence, 20 ms a packet): sound that
// fragmented MP4 in a browser cannot carry.
func startG711Camera(t *testing.T) string {
	t.Helper()
	aus, sps, pps := loadDemoClip(t)
	video := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
	videoMedia := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{video}}
	audio := &format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}
	audioMedia := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{audio}}
	enc, err := video.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	c := startTestCamera(t, "/g711", []*description.Media{videoMedia, audioMedia}, func(ctx context.Context, c *skippingCamera) {
		silence := bytes.Repeat([]byte{0xff}, 160) // 20 ms at 8 kHz
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				pkt := &rtp.Packet{
					Header:  rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(n), Timestamp: uint32(n * 160), SSRC: 0x5151},
					Payload: silence,
				}
				if err := c.stream.WritePacketRTPWithNTP(audioMedia, pkt, now); err != nil {
					return
				}
				if n%2 != 0 {
					continue
				}
				f := n / 2 // a picture every 40 ms
				pkts, err := enc.Encode(aus[f%len(aus)])
				if err != nil {
					t.Errorf("RTP encoding: %v", err)
					return
				}
				for _, p := range pkts {
					p.Timestamp = uint32(f * 3600)
					if err := c.stream.WritePacketRTPWithNTP(videoMedia, p, now); err != nil {
						return
					}
				}
			}
		}
	})
	return c.url
}

// TestCameraBrowserAudioNote: a camera whose sound is G.711 plays as video
// in Chromium, and the page says, under the player, that the sound can't be
// played.
func TestCameraBrowserAudioNote(t *testing.T) {
	needChromium(t)
	url := startG711Camera(t)
	e := newWSEnv(t)
	var dev struct {
		ID string `json:"id"`
	}
	want(t, e.owner.do(t, "POST", "/cameras", map[string]any{"name": "Gate", "rtsp": map[string]any{"url": url}}), http.StatusCreated).json(t, &dev)
	live := e.owner.link(t, map[string]any{"device": dev.ID, "permissions": map[string]any{"camera": []string{"live"}}})

	b := startBrowserWithin(t, 60*time.Second)
	p := b.tab(t)
	p.open(live.URL)
	p.waitFor("the live picture", 20*time.Second,
		`document.querySelector('.player[data-state="live"] video') !== null && document.querySelector(".player video").currentTime > 0`)
	note := eval[string](p, `(() => { const n = document.querySelector(".player-note"); return n && !n.hidden ? n.textContent : ""; })()`)
	if note == "" {
		t.Fatal("the page plays a G.711 camera without saying its sound can't be played")
	}
	t.Logf("note: %q", note)
	b.checkConsole(t)
}
