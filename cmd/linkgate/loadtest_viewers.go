package main

// This file hooks the camera viewers scenario into `linkgate loadtest`.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/linkgate/linkgate/loadtest"
)

// viewersScenario is `linkgate loadtest viewers`.
var viewersScenario = &loadtestScenario{
	name:    "viewers",
	summary: "camera viewers of one live link: time to first frame, bytes/s, stalls, server CPU",
	metric:  "ttff",
	help: `Watches one camera link with --connections viewers, each like the live
page: POST /l/{token}/session, then the /l/{token}/live socket with the
cookie and the link's Origin, reading the codecs message, the init segment
and the fragments. Records the time to first frame ("ttff": socket dial to
the first fragment after the init segment; "ttff-session": from the
viewer's arrival), stalls (gaps between fragments over --stall-after),
offline/online events, closes by code and reason, bytes, and each viewer's
bytes and fragments a second. Each session connects from its own 127.x
address unless --same-source (the gateway limits sessions per client IP).

The link is --link, or minted through the owner API with the API key for a
camera registered with --rtsp (both deleted after the run). Unless
--no-server-metrics, the target's /metrics is read around a window that
starts --settle after every viewer has had its first fragment and lasts
--window (default: to the end): "server cpu %" (of one core) and "server
rss MiB" in the report's figures, with the generator's own CPU over the
same window. "window measured" on stderr marks the window's end.

Closed model: --connections viewers watch (for --hold each, then the
worker reconnects); open model: viewers arrive at --rate and watch for
--hold, which it then needs.

  linkgate loadtest viewers --target http://127.0.0.1:8080 \
      --rtsp rtsp://127.0.0.1:8554/cam --connections 100 --duration 40s \
      --window 20s --threshold 'info.server cpu %<=8' --threshold 'ttff.p50<=50ms'`,
	flags: viewersFlags,
}

func viewersFlags(fs *flag.FlagSet, o *loadtestOptions) func(*loadtest.Config) (loadtest.Scenario, error) {
	env := func(name string) string {
		return " [" + envLoadtest + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "]"
	}
	var vc loadtest.ViewersConfig
	fs.StringVar(&vc.Link, "link", "", "the camera link `URL` to watch, http://host/l/{token}; default: minted for --rtsp"+env("link"))
	fs.StringVar(&vc.RTSPURL, "rtsp", "", "the camera's RTSP `URL`, registered for the run when --link is not given"+env("rtsp"))
	fs.StringVar(&vc.RTSPTransport, "rtsp-transport", "", "the registered camera's transport, tcp or udp; default the gateway's (tcp)"+env("rtsp-transport"))
	fs.StringVar(&vc.Origin, "origin", "", "the Origin header; default the link's origin, as the page sends"+env("origin"))
	fs.DurationVar(&vc.Hold, "hold", 0, "how long each viewer watches before it leaves and the next comes; 0: until the end (closed model)"+env("hold"))
	fs.DurationVar(&vc.Ramp, "ramp", 0, "closed model: worker i starts i*ramp after the start; 0: all at once"+env("ramp"))
	fs.DurationVar(&vc.StallAfter, "stall-after", loadtest.DefaultStallAfter, "a longer gap between two fragments is a stall"+env("stall-after"))
	fs.DurationVar(&vc.Timeout, "timeout", loadtest.DefaultViewerTimeout, "bound on the session request and the socket's handshake"+env("timeout"))
	fs.DurationVar(&vc.RetryPause, "retry-pause", loadtest.DefaultRetryPause, "pause after a viewer that had no fragment, before the next"+env("retry-pause"))
	fs.BoolVar(&vc.SameSource, "same-source", false, "connect every viewer from the default source address instead of one 127.x address each"+env("same-source"))
	fs.BoolVar(&vc.NoServerMetrics, "no-server-metrics", false, "do not read the target's /metrics for its CPU and memory"+env("no-server-metrics"))
	fs.DurationVar(&vc.Settle, "settle", loadtest.DefaultSettle, "closed model: wait after every viewer's first fragment before the server's window"+env("settle"))
	fs.DurationVar(&vc.Window, "window", 0, "how long the server's window lasts; 0: to the end of the run"+env("window"))
	return func(*loadtest.Config) (loadtest.Scenario, error) {
		vc.APIKey = o.apiKey
		if vc.Link == "" && (vc.APIKey == "" || vc.RTSPURL == "") {
			return nil, fmt.Errorf("--link: give a camera link, or --rtsp and an API key (--api-key or %s) to make one", envAPIKey)
		}
		if !o.quiet {
			vc.Ready = stderrLine(os.Stderr, "viewers: every viewer is watching")
		}
		// A script waits for this line to start other load after the window.
		vc.Measured = stderrLine(os.Stderr, "viewers: window measured")
		return loadtest.NewViewers(vc)
	}
}

// stderrLine returns a func that prints line on w once.
func stderrLine(w io.Writer, line string) func() {
	return sync.OnceFunc(func() { fmt.Fprintln(w, line) })
}
