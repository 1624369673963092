package loadtest

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/linkgate/linkgate/tokens"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mix
		err  bool
	}{
		{in: "valid=90,forged=4,expired=3,disabled=3", want: DefaultMix},
		{in: " forged = 2 , valid=1 ", want: Mix{Valid: 1, Forged: 2}},
		{in: "forged", want: Mix{Forged: 1}},
		{in: "expired=0,disabled=5", want: Mix{Disabled: 5}},
		{in: "", err: true},
		{in: "valid=0", err: true},
		{in: "bogus=3", err: true},
		{in: "valid=-1", err: true},
		{in: "valid=x", err: true},
		{in: "valid=100000,forged=1", err: true}, // a cycle longer than maxMixTotal
	} {
		got, err := ParseMix(tc.in)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("ParseMix(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil {
			if back, err := ParseMix(got.String()); err != nil || back != got {
				t.Errorf("ParseMix(%q.String() = %q) = %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}

// TestMixSequence: each kind appears its weight's share of every cycle, and
// is spread out: no stretch of the cycle has far more of a kind than its
// share.
func TestMixSequence(t *testing.T) {
	for _, m := range []Mix{DefaultMix, {Valid: 1}, {Forged: 3, Expired: 3}, {Valid: 2, Forged: 1, Disabled: 1}, {Valid: 997, Forged: 3}} {
		seq := m.Sequence()
		r := m.reduced()
		if len(seq) != r.total() {
			t.Fatalf("%v: cycle of %d, want %d", m, len(seq), r.total())
		}
		n := map[Kind]int{}
		for _, k := range seq {
			n[k]++
		}
		for _, k := range Kinds {
			if n[k] != *r.get(k) {
				t.Errorf("%v: %s %d times in the cycle, want %d", m, k, n[k], *r.get(k))
			}
		}
		// In any window of w operations, a kind of share s appears within
		// one of w*s (smooth weighted round robin).
		for _, k := range m.kinds() {
			share := float64(*r.get(k)) / float64(len(seq))
			for w := 1; w <= len(seq); w *= 3 {
				for start := range seq {
					c := 0
					for i := range w {
						if seq[(start+i)%len(seq)] == k {
							c++
						}
					}
					if d := float64(c) - share*float64(w); d > 2 || d < -2 {
						t.Fatalf("%v: %s %d times in %d ops from %d, want about %.1f", m, k, c, w, start, share*float64(w))
					}
				}
			}
		}
	}
}

func TestKindStatus(t *testing.T) {
	want := map[Kind]int{Valid: http.StatusOK, Forged: http.StatusNotFound, Expired: http.StatusGone, Disabled: http.StatusGone}
	for _, k := range Kinds {
		if k.Status() != want[k] {
			t.Errorf("%s: status %d, want %d", k, k.Status(), want[k])
		}
	}
}

// TestForge: a forged token keeps the shape and key id of the token it is
// made from, and fails verification.
func TestForge(t *testing.T) {
	keys, err := tokens.ParseKeys("3:" + tokens.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := tokens.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	tok := ring.Mint(tokens.Claims{Link: tokens.NewLinkID(), Generation: 1})
	forged, err := Forge(tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(forged) != len(tok) || forged == tok || forged[:40] != tok[:40] {
		t.Fatalf("forged %q from %q: want the same length and payload, another MAC", forged, tok)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(forged); err != nil {
		t.Fatalf("forged %q is not strict base64url: %v", forged, err)
	}
	if _, err := ring.Verify(forged); err == nil {
		t.Fatalf("forged %q verifies", forged)
	}
	if _, err := ring.Verify(tok); err != nil {
		t.Fatalf("the original no longer verifies: %v", err)
	}
	if _, err := Forge("short"); err == nil {
		t.Error("Forge of a short string: no error")
	}
	if got := tokenOf("http://127.0.0.1:8080/l/" + tok); got != tok {
		t.Errorf("tokenOf(URL) = %q", got)
	}
}

func TestParseCommandStats(t *testing.T) {
	in := "# Commandstats\r\ncmdstat_mget:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setname:calls=2,usec=1\r\ncmdstat_XREAD:calls=7,usec=5\r\n"
	got, err := parseCommandStats(in)
	if err != nil {
		t.Fatal(err)
	}
	if got["mget"] != 12 || got["client|setname"] != 2 || got["xread"] != 7 || len(got) != 3 {
		t.Fatalf("got %v", got)
	}
	if _, err := parseCommandStats("cmdstat_get:calls=x"); err == nil {
		t.Fatal("bad count: no error")
	}
}

func TestBuildRequest(t *testing.T) {
	tg, err := parseTarget("http://127.0.0.1:9/")
	if err != nil {
		t.Fatal(err)
	}
	if !tg.loopback || tg.addr != "127.0.0.1:9" {
		t.Fatalf("target %+v", tg)
	}
	got := string(tg.buildRequest("POST", "/l/x/session"))
	if !strings.HasPrefix(got, "POST /l/x/session HTTP/1.1\r\nHost: 127.0.0.1:9\r\n") ||
		!strings.Contains(got, "Content-Length: 0\r\n") || !strings.HasSuffix(got, "\r\n\r\n") {
		t.Fatalf("request %q", got)
	}
	if _, err := parseTarget("https://127.0.0.1/"); err == nil {
		t.Error("https target: no error")
	}
	if ip := sourceIP(0).String(); ip != "127.1.0.2" {
		t.Errorf("sourceIP(0) = %s", ip)
	}
	if a, b := sourceIP(249).String(), sourceIP(250).String(); a != "127.1.0.251" || b != "127.1.1.2" {
		t.Errorf("sourceIP(249), (250) = %s, %s", a, b)
	}
}
