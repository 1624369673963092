package loadtest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// plotReport is a report with a series and percentile distributions, as a
// run of five seconds would make.
func plotReport() *Report {
	r := testReport()
	r.Started = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r.Elapsed = 5
	r.Connections = 8
	r.Target = "http://127.0.0.1:8080"
	for name, s := range r.Metrics {
		h := newHist()
		for i := range int64(s.Count) {
			h.RecordValue(100 + i%997*(1+i%7))
		}
		s.Percentiles = distribution(h)
		r.Metrics[name] = s
	}
	for i := range 5 {
		r.Series = append(r.Series, Second{
			At:  float64(i + 1),
			Ops: 2000 + int64(i*10),
			CPU: 80 + float64(i),
			Metrics: map[string]Summary{
				"latency": {Count: 2000, P50: 0.5 + float64(i)/10, P99: 4 + float64(i)},
				"command": {Count: 100, P50: 1, P99: 3},
			},
			Counts: map[string]int64{"status 200": 1990, "error timeout": 1},
		})
	}
	r.Info = map[string]float64{"server cpu %": 7.5, "redis calls": 0}
	ts, _ := ParseThresholds([]string{"latency.p99<=5ms", "achieved>=1000"})
	CheckThresholds(r, ts)
	return r
}

func TestJSONRoundTrip(t *testing.T) {
	r := plotReport()
	var first bytes.Buffer
	if err := WriteJSON(&first, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	if err := WriteJSON(&second, back); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Fatalf("the report changed through JSON:\n%s\n---\n%s", first.String(), second.String())
	}
	if !back.Started.Equal(r.Started) || back.Metrics["latency"].P99 != 4.2 || len(back.Metrics["latency"].Percentiles) < 10 ||
		len(back.Series) != 5 || back.Series[2].Ops != 2020 || len(back.Thresholds) != 2 || back.Thresholds[1].Pass {
		t.Fatalf("round trip lost fields: %+v", back)
	}
	if !strings.Contains(first.String(), "\n  \"scenario\": \"opens\"") {
		t.Fatalf("not indented JSON:\n%.200s", first.String())
	}
	if _, err := ReadJSON(strings.NewReader("{")); err == nil {
		t.Fatal("ReadJSON took broken JSON")
	}
}

func TestHTML(t *testing.T) {
	r := plotReport()
	// Names from a scenario are text, never markup.
	r.Scenario = `opens<script>alert(1)</script>`
	r.Counts[`status <img src=x>`] = 1
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	tables := map[string]string{} // id -> text
	var text func(*html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var s strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			s.WriteString(text(c))
			s.WriteString(" ")
		}
		return s.String()
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			counts[n.Data]++
			for _, a := range n.Attr {
				switch {
				case a.Key == "src", strings.HasPrefix(a.Key, "on"):
					t.Errorf("<%s %s=%q>: the page loads or runs something", n.Data, a.Key, a.Val)
				case a.Key == "href" && !strings.HasPrefix(a.Val, "#"):
					t.Errorf("<%s href=%q>: the page links outside", n.Data, a.Val)
				}
			}
			if n.Data == "table" {
				for _, a := range n.Attr {
					if a.Key == "id" {
						tables[a.Val] = text(n)
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for _, bad := range []string{"script", "link", "iframe", "object", "embed", "img"} {
		if counts[bad] > 0 {
			t.Errorf("the page has %d <%s> elements", counts[bad], bad)
		}
	}
	// Latency over time for both metrics, ops and CPU per second,
	// percentiles.
	if counts["svg"] != 5 {
		t.Errorf("the page has %d <svg> plots, want 5", counts["svg"])
	}
	for id, want := range map[string][]string{
		"run":        {"opens<script>", "open", "1000/s intended", "8 connections", "http://127.0.0.1:8080", "2026-03-01 12:00:00 UTC", "999.5/s"},
		"thresholds": {"latency.p99<=5ms", "4.2ms", "pass", "achieved>=1000", "FAIL"},
		"metrics":    {"latency", "command", "p99.9", "4.200", "12.000", "30.000"},
		"counts":     {"status 200", "9950", "99.50", "error timeout", "status <img src=x>"},
		"info":       {"server cpu %", "7.5", "redis calls"},
	} {
		got, ok := tables[id]
		if !ok {
			t.Errorf("no table %q", id)
			continue
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("table %q lacks %q: %s", id, w, got)
			}
		}
	}
	page := b.String()
	for _, w := range []string{"latency by percentile", "99.9%", "latency over time", "operations per second", "Content-Security-Policy"} {
		if !strings.Contains(page, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	for _, bad := range []string{"<?xml", "http://www.w3.org/1999/xhtml\"", "url(", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
}

// TestHTMLShortRun: a run too short for a series still makes a page, with
// the tables and whatever plots it can draw.
func TestHTMLShortRun(t *testing.T) {
	r := &Report{Scenario: "opens", Model: Closed, Metrics: map[string]Summary{"latency": {Count: 1, P50: 1, Percentiles: []Percentile{{0, 1}, {100, 1}}}}, Counts: map[string]int64{}}
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<svg") || !strings.Contains(b.String(), `<table id="metrics">`) {
		t.Fatalf("short run page:\n%s", b.String())
	}
}

func TestDistribution(t *testing.T) {
	h := newHist()
	for i := int64(1); i <= 100000; i++ {
		h.RecordValue(i) // 1 µs .. 100 ms, uniform
	}
	d := distribution(h)
	if d[0].P != 0 || d[len(d)-1].P != 100 || d[len(d)-1].Ms < 99.9 {
		t.Fatalf("ends: %+v ... %+v", d[0], d[len(d)-1])
	}
	for i := 1; i < len(d); i++ {
		if d[i].P <= d[i-1].P || d[i].Ms < d[i-1].Ms {
			t.Fatalf("not increasing at %d: %+v then %+v", i, d[i-1], d[i])
		}
	}
	var p50, p99 float64
	for _, pt := range d {
		if pt.P == 50 {
			p50 = pt.Ms
		}
		if pt.P > 99 && p99 == 0 {
			p99 = pt.Ms
		}
	}
	if p50 < 49.9 || p50 > 50.1 || p99 < 99 {
		t.Fatalf("p50 %v, first point past p99 %v", p50, p99)
	}
	// 100000 samples resolve 1 - p down to 1e-5: about 16.6 halvings.
	if n := len(d); n < 5*16 || n > 5*18+2 {
		t.Fatalf("%d points", n)
	}
}
