package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/fasthttp/websocket"

	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/media/democam"
)

// cameraEnv is a gateway with a demo camera (a real RTSP server looping an
// H.264 clip) registered by an owner, and a live link to it.
type cameraEnv struct {
	*wsEnv
	cam  ownerapi.Device
	live ownerapi.Link
}

func newCameraEnv(t *testing.T, tweak ...func(*gateway.Config)) *cameraEnv {
	t.Helper()
	e := newWSEnv(t, tweak...)
	src, err := democam.Start("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	c := &cameraEnv{wsEnv: e}
	want(t, e.owner.do(t, "POST", "/cameras", map[string]any{"name": "Door", "rtsp": map[string]any{"url": src.URL()}}), http.StatusCreated).json(t, &c.cam)
	c.live = e.owner.link(t, map[string]any{"device": c.cam.ID, "permissions": map[string]any{"camera": []string{"live"}}})
	return c
}

// openLive opens a camera page's stream socket the way the browser does.
func openLive(t *testing.T, in *instance, token string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	s := call(t, "POST", in.url+"/l/"+token+"/session", "", nil)
	h := http.Header{"Origin": {in.url}}
	for _, c := range s.Cookies() {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(in.url, "http")+"/l/"+token+"/live", h)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, err
}

func TestCameraLive(t *testing.T) {
	t.Parallel()
	c := newCameraEnv(t)
	conn, resp, err := openLive(t, c.in, c.live.Token)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))

	// codecs first, then the init segment, then fragments from a keyframe on.
	var codecs struct{ Type, MIME string }
	for codecs.Type != "codecs" {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.TextMessage {
			t.Fatalf("binary before the codecs message")
		}
		_ = json.Unmarshal(data, &codecs)
	}
	if !strings.HasPrefix(codecs.MIME, `video/mp4; codecs="avc1.`) {
		t.Fatalf("codecs: %q", codecs.MIME)
	}
	typ, data, err := conn.ReadMessage()
	if err != nil || typ != websocket.BinaryMessage {
		t.Fatalf("init segment: %v %v", typ, err)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(data)); err != nil || len(init.Tracks) == 0 {
		t.Fatalf("init segment does not parse: %v", err)
	}
	var last uint64
	for i := 0; i < 30; {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.BinaryMessage {
			continue // online/offline
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(data); err != nil || len(parts) == 0 {
			t.Fatalf("fragment %d does not parse: %v", i, err)
		}
		for _, tr := range parts[0].Tracks {
			if tr.ID != init.Tracks[0].ID {
				continue
			}
			if i == 0 && tr.Samples[0].IsNonSyncSample {
				t.Fatal("the first fragment is not a keyframe")
			}
			if i > 0 && tr.BaseTime <= last {
				t.Fatalf("decode time went from %d to %d", last, tr.BaseTime)
			}
			last = tr.BaseTime
			i++
		}
	}
}

func TestCameraLinkGates(t *testing.T) {
	t.Parallel()
	c := newCameraEnv(t)
	// A camera link without the live level: no stream.
	noLive := c.owner.link(t, map[string]any{"device": c.cam.ID, "permissions": map[string]any{"camera": []string{"archive"}}})
	if _, resp, err := openLive(t, c.in, noLive.Token); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("link without live: %v %v", err, resp)
	}
	// A device link has no /live, a camera link no /ws.
	if _, resp, _ := openLive(t, c.in, c.link.Token); resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/live on a device link: %v", resp)
	}

	// Owner changes cut the stream at once.
	for _, tc := range []struct {
		name   string
		change func(l ownerapi.Link)
		reason string
		code   int
	}{
		{"disable", func(l ownerapi.Link) {
			want(t, c.owner.do(t, "POST", "/links/"+l.ID+"/disable", nil), http.StatusOK)
		}, "disabled", 4001},
		{"live taken away", func(l ownerapi.Link) {
			want(t, c.owner.do(t, "PATCH", "/links/"+l.ID, map[string]any{"permissions": map[string]any{"camera": []string{"notices"}}}), http.StatusOK)
		}, "level-revoked", 4011},
		{"delete", func(l ownerapi.Link) {
			want(t, c.owner.do(t, "DELETE", "/links/"+l.ID, nil), http.StatusNoContent)
		}, "deleted", 4002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := c.owner.link(t, map[string]any{"device": c.cam.ID, "permissions": map[string]any{"camera": []string{"live"}}})
			conn, resp, err := openLive(t, c.in, l.Token)
			if err != nil {
				t.Fatalf("dial: %v %v", err, resp)
			}
			// Wait for video, then change the link.
			p := &page{t: t, conn: conn, binary: true}
			p.await("video", isType("binary"))
			tc.change(l)
			if reason, code := p.closed(); reason != tc.reason || code != tc.code {
				t.Errorf("closed %q %d, want %q %d", reason, code, tc.reason, tc.code)
			}
		})
	}
}
