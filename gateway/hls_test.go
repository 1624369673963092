package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linkgate/linkgate/gateway/ownerapi"
)

// hlsSession opens a session on a link and returns its cookie header.
func hlsSession(t *testing.T, in *instance, token string) string {
	t.Helper()
	a := want(t, call(t, "POST", in.url+"/l/"+token+"/session", "", nil), http.StatusOK)
	var cookies []string
	for _, c := range a.Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	return strings.Join(cookies, "; ")
}

// getHLS fetches one HLS file of a link with the cookie (none if empty).
func getHLS(t *testing.T, in *instance, token, file, cookie string) answer {
	t.Helper()
	var h []string
	if cookie != "" {
		h = append(h, "Cookie", cookie)
	}
	return call(t, "GET", in.url+"/l/"+token+"/hls/"+file, "", nil, h...)
}

// firstPlaylist fetches the multivariant playlist until the camera's first
// segment is there (503 camera-not-ready before).
func firstPlaylist(t *testing.T, in *instance, token, cookie string) answer {
	t.Helper()
	var a answer
	eventually(t, 30*time.Second, "the first HLS playlist", func() bool {
		a = getHLS(t, in, token, "index.m3u8", cookie)
		if a.StatusCode == http.StatusServiceUnavailable && a.errorCode(t) == "camera-not-ready" {
			return false
		}
		return true
	})
	return want(t, a, http.StatusOK)
}

// TestCameraHLS: the LL-HLS fallback of a camera link plays with the
// link's session, its playlists are private and never name the camera's
// RTSP source, and it is gated on every request like the live socket.
func TestCameraHLS(t *testing.T) {
	t.Parallel()
	c := newCameraEnv(t)
	cookie := hlsSession(t, c.in, c.live.Token)

	mv := firstPlaylist(t, c.in, c.live.Token, cookie)
	media := want(t, getHLS(t, c.in, c.live.Token, "video1_stream.m3u8", cookie), http.StatusOK)
	for _, a := range []answer{mv, media} {
		if ct := a.Header.Get("Content-Type"); ct != "application/vnd.apple.mpegurl" {
			t.Errorf("%s: Content-Type %q", a.Request.URL.Path, ct)
		}
		if cc := a.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", a.Request.URL.Path, cc)
		}
		if rp := a.Header.Get("Referrer-Policy"); rp != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q, want no-referrer", a.Request.URL.Path, rp)
		}
		if b := string(a.body); strings.Contains(b, "rtsp") || strings.Contains(b, "127.0.0.1") || !strings.HasPrefix(b, "#EXTM3U") {
			t.Errorf("%s names the camera's source, or is no playlist:\n%s", a.Request.URL.Path, b)
		}
	}
	// A segment the playlist lists plays: fMP4.
	seg := ""
	for _, line := range strings.Split(string(media.body), "\n") {
		if strings.HasSuffix(line, ".mp4") && !strings.HasPrefix(line, "#") && line != "gap.mp4" {
			seg = line
		}
	}
	if a := want(t, getHLS(t, c.in, c.live.Token, seg, cookie), http.StatusOK); a.Header.Get("Content-Type") != "video/mp4" || len(a.body) < 100 {
		t.Errorf("segment %q: %q, %d bytes", seg, a.Header.Get("Content-Type"), len(a.body))
	}
	// Bad blocking parameters: 400 with the field; unknown files 404.
	wantError(t, getHLS(t, c.in, c.live.Token, "video1_stream.m3u8?_HLS_msn=x", cookie), http.StatusBadRequest, "invalid-field")
	wantError(t, getHLS(t, c.in, c.live.Token, "nothing.mp4", cookie), http.StatusNotFound, "not-found")

	// No session, another link's session, no live level, a device link.
	wantError(t, getHLS(t, c.in, c.live.Token, "index.m3u8", ""), http.StatusUnauthorized, "session-invalid")
	other := c.owner.link(t, map[string]any{"device": c.cam.ID, "permissions": map[string]any{"camera": []string{"live"}}})
	wantError(t, getHLS(t, c.in, other.Token, "index.m3u8", cookie), http.StatusUnauthorized, "session-invalid")
	noLive := c.owner.link(t, map[string]any{"device": c.cam.ID, "permissions": map[string]any{"camera": []string{"archive"}}})
	wantError(t, getHLS(t, c.in, noLive.Token, "index.m3u8", hlsSession(t, c.in, noLive.Token)), http.StatusForbidden, "level-not-granted")
	wantError(t, getHLS(t, c.in, c.link.Token, "index.m3u8", hlsSession(t, c.in, c.link.Token)), http.StatusNotFound, "not-found")
	wantError(t, call(t, "GET", c.in.url+"/l/"+c.live.Token+"/hls/index.m3u8", "", nil, "Cookie", cookie, "Origin", "https://evil.example"),
		http.StatusForbidden, "forbidden-origin")

	// Owner changes refuse the very next request.
	for _, tc := range []struct {
		name   string
		change func(l ownerapi.Link)
		status int
		code   string
	}{
		{"disable", func(l ownerapi.Link) {
			want(t, c.owner.do(t, "POST", "/links/"+l.ID+"/disable", nil), http.StatusOK)
		}, http.StatusGone, "disabled"},
		{"live taken away", func(l ownerapi.Link) {
			want(t, c.owner.do(t, "PATCH", "/links/"+l.ID, map[string]any{"permissions": map[string]any{"camera": []string{"notices"}}}), http.StatusOK)
		}, http.StatusForbidden, "level-not-granted"},
		{"delete", func(l ownerapi.Link) {
			want(t, c.owner.do(t, "DELETE", "/links/"+l.ID, nil), http.StatusNoContent)
		}, http.StatusNotFound, "not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := c.owner.link(t, map[string]any{"device": c.cam.ID, "permissions": map[string]any{"camera": []string{"live"}}})
			ck := hlsSession(t, c.in, l.Token)
			firstPlaylist(t, c.in, l.Token, ck)
			want(t, getHLS(t, c.in, l.Token, "video1_stream.m3u8", ck), http.StatusOK)
			tc.change(l)
			wantError(t, getHLS(t, c.in, l.Token, "video1_stream.m3u8", ck), tc.status, tc.code)
		})
	}
}
