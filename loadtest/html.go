package loadtest

// This file writes a report as one self-contained HTML page: tables and
// inline SVG plots drawn with gonum/plot, no script, nothing fetched.

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// maxPlotMetrics bounds the metrics plotted (the tables list them all).
const maxPlotMetrics = 8

// WriteHTML writes r as an HTML page: the run, the thresholds, the metrics
// and counts tables, latency over time (p50 and p99 each second) and
// operations per second, the generator's CPU each second, latency by
// percentile (log-scaled, as HdrHistogram
// plots it), the generator's CPU and the scenario's own figures. The page
// is one file: the plots are inline SVG, it has no script and it loads
// nothing.
func WriteHTML(w io.Writer, r *Report) error {
	page := htmlPage{R: r, Title: "linkgate load test: " + r.Scenario}
	metrics := sortedKeys(r.Metrics)
	if len(metrics) > maxPlotMetrics {
		metrics = metrics[:maxPlotMetrics]
	}
	for _, name := range metrics {
		if svg, err := latencyPlot(r, name); err != nil {
			return err
		} else if svg != "" {
			page.Plots = append(page.Plots, htmlPlot{Caption: name + ": latency each second", SVG: svg})
		}
	}
	if svg, err := seriesPlot(r, "operations per second", "ops/s", 2, opsPerSecond); err != nil {
		return err
	} else if svg != "" {
		page.Plots = append(page.Plots, htmlPlot{Caption: "operations finished each second", SVG: svg})
	}
	if svg, err := seriesPlot(r, "generator CPU", "% of one core", 3, func(s Second, _ float64) float64 { return s.CPU }); err != nil {
		return err
	} else if svg != "" {
		page.Plots = append(page.Plots, htmlPlot{Caption: "the load generator's CPU use each second: near cores × 100 % the generator is the limit", SVG: svg})
	}
	if svg, err := percentilePlot(r, metrics); err != nil {
		return err
	} else if svg != "" {
		page.Plots = append(page.Plots, htmlPlot{Caption: "latency by percentile, whole run", SVG: svg})
	}
	return htmlTemplate.Execute(w, page)
}

type htmlPage struct {
	Title string
	R     *Report
	Plots []htmlPlot
}

type htmlPlot struct {
	Caption string
	SVG     template.HTML // made by gonum/plot from our own numbers
}

// plotSVG renders p as an SVG element for inline use: the XML prolog is
// cut off.
func plotSVG(p *plot.Plot) (template.HTML, error) {
	wt, err := p.WriterTo(18*vg.Centimeter, 8*vg.Centimeter, "svg")
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	i := strings.Index(s, "<svg")
	if i < 0 {
		return "", fmt.Errorf("loadtest: the plot has no <svg> element")
	}
	return template.HTML(s[i:]), nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Y.Min = 0
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a line of pts (finite points only) in the i-th color.
func addLine(p *plot.Plot, name string, i int, pts plotter.XYs) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Width = vg.Points(1.2)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// latencyPlot plots metric's p50 and p99 each second; "" when the series
// has fewer than two seconds with samples.
func latencyPlot(r *Report, metric string) (template.HTML, error) {
	var p50, p99 plotter.XYs
	for _, s := range r.Series {
		if m, ok := s.Metrics[metric]; ok && m.Count > 0 {
			p50 = append(p50, plotter.XY{X: s.At, Y: m.P50})
			p99 = append(p99, plotter.XY{X: s.At, Y: m.P99})
		}
	}
	if len(p50) < 2 {
		return "", nil
	}
	p := newPlot(metric+": latency over time", "seconds", "ms")
	p.X.Min = 0
	if err := addLine(p, "p99", 1, p99); err != nil {
		return "", err
	}
	if err := addLine(p, "p50", 0, p50); err != nil {
		return "", err
	}
	p.Y.Max *= 1.2 // room for the legend
	return plotSVG(p)
}

// opsPerSecond is a second's operations per second of its span.
func opsPerSecond(s Second, span float64) float64 {
	if span <= 0 {
		return float64(s.Ops)
	}
	return float64(s.Ops) / span
}

// seriesPlot plots y of each second (given the seconds it spans), named
// what; "" for a series of fewer than two seconds.
func seriesPlot(r *Report, title, what string, color int, y func(s Second, span float64) float64) (template.HTML, error) {
	if len(r.Series) < 2 {
		return "", nil
	}
	pts := make(plotter.XYs, 0, len(r.Series))
	prev := 0.0
	for _, s := range r.Series {
		// A second's figures are over the time since the previous one:
		// the last second of a run is usually a part of one.
		pts = append(pts, plotter.XY{X: s.At, Y: y(s, s.At-prev)})
		prev = s.At
	}
	p := newPlot(title, "seconds", what)
	p.X.Min = 0
	if err := addLine(p, what, color, pts); err != nil {
		return "", err
	}
	p.Legend = plot.NewLegend() // one line: the axis says what it is
	p.Y.Max = max(p.Y.Max*1.1, 1)
	return plotSVG(p)
}

// percentilePlot plots the metrics' latency by percentile with the x axis
// log-scaled in 1/(1-p): 0 %, 90 %, 99 %, 99.9 % ... equally spaced; ""
// when no metric has two points to draw.
func percentilePlot(r *Report, metrics []string) (template.HTML, error) {
	p := newPlot("latency by percentile", "percentile", "ms")
	p.X.Scale = plot.LogScale{}
	top := 1.0
	lines := 0
	for i, name := range metrics {
		var pts plotter.XYs
		for _, pt := range r.Metrics[name].Percentiles {
			if pt.P >= 100 || pt.P < 0 {
				continue // the max lies at infinity on this axis
			}
			x := 1 / (1 - pt.P/100)
			pts = append(pts, plotter.XY{X: x, Y: pt.Ms})
			top = max(top, x)
		}
		if len(pts) < 2 {
			continue
		}
		if err := addLine(p, name, i, pts); err != nil {
			return "", err
		}
		lines++
	}
	if lines == 0 {
		return "", nil
	}
	p.X.Min = 1
	var ticks []plot.Tick
	for d := 0; ; d++ {
		x := math.Pow(10, float64(d))
		if x > top*1.0001 && d > 1 {
			break
		}
		ticks = append(ticks, plot.Tick{Value: x, Label: percentLabel(d)})
		if d == 0 {
			ticks = append(ticks, plot.Tick{Value: 2, Label: "50%"})
		}
	}
	p.X.Max = ticks[len(ticks)-1].Value
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Max *= 1.1
	return plotSVG(p)
}

// percentLabel labels the tick at x = 1/(1-p) = 10^d with p: "0%",
// "90%", "99%", "99.9%", "99.99%"...
func percentLabel(d int) string {
	switch d {
	case 0:
		return "0%"
	case 1:
		return "90%"
	}
	return "99" + strings.TrimSuffix("."+strings.Repeat("9", d-2), ".") + "%"
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":    func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) },
	"num":   func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) },
	"fixed": func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) },
	"pct": func(n, of int64) string {
		if of <= 0 {
			return "-"
		}
		return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 2, 64)
	},
	"keys":      sortedKeys[Summary],
	"countKeys": sortedKeys[int64],
	"infoKeys":  sortedKeys[float64],
	"isOpen":    func(m Model) bool { return m == Open },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .2em .8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.pass { color: #176f2c; font-weight: bold; } td.fail { color: #b00020; font-weight: bold; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: .9em; }
svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{with .R}}
<table id="run">
<tr><th>scenario</th><td>{{.Scenario}}</td></tr>
{{if .Target}}<tr><th>target</th><td>{{.Target}}</td></tr>{{end}}
<tr><th>model</th><td>{{.Model}}{{if isOpen .Model}}, {{num .Rate}}/s intended{{end}}, {{.Connections}} connections</td></tr>
<tr><th>started</th><td>{{.Started.Format "2006-01-02 15:04:05 UTC"}}</td></tr>
<tr><th>elapsed</th><td>{{fixed .Elapsed 2}} s</td></tr>
<tr><th>operations</th><td>{{.Ops}}</td></tr>
<tr><th>achieved</th><td>{{fixed .Achieved 1}}/s</td></tr>
{{if isOpen .Model}}<tr><th>late</th><td>{{.Late}}</td></tr>
<tr><th>dropped</th><td>{{.Dropped}}</td></tr>{{end}}
<tr><th>bytes in / out</th><td>{{.BytesIn}} / {{.BytesOut}}</td></tr>
<tr><th>generator CPU</th><td>{{fixed .Generator.CPU 0}}% of one core, {{.Generator.Cores}} cores</td></tr>
</table>
{{if .Thresholds}}
<h2>Thresholds</h2>
<table id="thresholds">
<tr><th>threshold</th><th>measured</th><th>result</th></tr>
{{range .Thresholds}}<tr><td>{{.Expr}}</td><td>{{if .Note}}{{.Note}}{{else}}{{num .Value}}{{.Unit}}{{end}}</td>{{if .Pass}}<td class="pass">pass</td>{{else}}<td class="fail">FAIL</td>{{end}}</tr>
{{end}}</table>
{{end}}
<h2>Latency (ms)</h2>
<table id="metrics">
<tr><th>metric</th><th>count</th><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
{{range $name := keys .Metrics}}{{with index $.R.Metrics $name}}<tr><td>{{$name}}</td><td>{{.Count}}</td><td>{{ms .Min}}</td><td>{{ms .Mean}}</td><td>{{ms .P50}}</td><td>{{ms .P90}}</td><td>{{ms .P99}}</td><td>{{ms .P999}}</td><td>{{ms .Max}}</td></tr>
{{end}}{{end}}</table>
{{end}}
{{range .Plots}}<figure>
{{.SVG}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{end}}
{{with .R}}
<h2>Counts</h2>
<table id="counts">
<tr><th>count</th><th>n</th><th>% of ops</th></tr>
{{range $k := countKeys .Counts}}<tr><td>{{$k}}</td><td>{{index $.R.Counts $k}}</td><td>{{pct (index $.R.Counts $k) $.R.Ops}}</td></tr>
{{end}}</table>
{{if .Info}}
<h2>Scenario figures</h2>
<table id="info">
<tr><th>figure</th><th>value</th></tr>
{{range $k := infoKeys .Info}}<tr><td>{{$k}}</td><td>{{num (index $.R.Info $k)}}</td></tr>
{{end}}</table>
{{end}}
{{end}}
</body>
</html>
`))
