package main

// This file lists the scenarios of `linkgate loadtest` and turns each
// one's own flags into its loadtest config.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/linkgate/linkgate/loadtest"
	"github.com/linkgate/linkgate/web"
)

func init() {
	loadtestScenarios = []*loadtestScenario{
		{
			name:    "opens",
			summary: "GET /l/{token}: a mix of valid, forged, expired and disabled tokens",
			help: `Opens links as a browser or a link-preview bot does: GET /l/{token}, with
a mix of valid, forged, expired and disabled tokens, each kind's expected
status counted ok ("ok valid", "ok forged", ...). Tokens not given are
minted through the owner API with the API key (a device and a link per
kind, deleted after the run); a forged token is made from another one.
With --redis the target's Redis calls are counted from Redis itself.

Against a gateway at its default per-IP limits, refused kinds beyond the
limit are answered 429 and counted "limited <kind>"; each worker connects
from its own 127.x address unless --same-source.

  linkgate loadtest opens --target http://127.0.0.1:8080 --duration 10s \
      --threshold 'latency.p99<=5ms' --threshold 'unexpected *==0'`,
			flags: opensFlags,
		},
		{
			name:    "sessions",
			summary: "POST /l/{token}/session: session exchanges on one valid link",
			help: `Exchanges a link for sessions as its page does when it opens: POST
/l/{token}/session. Each answer with the session cookie counts "ok
session"; 429 (the per-IP limit) counts "limited session". The link is
minted through the owner API with the API key unless --link gives one.
Each exchange counts a use and writes the access log.`,
			flags: sessionsFlags,
		},
		{
			name:    "baseline",
			summary: "the reference: a bare Fiber handler; --addr serves it, else load it at --target",
			help: `The reference the link opens are measured against. With --addr, serves a
bare Fiber handler of GET /l/{token} that sends the gateway's link page
with its headers and does nothing else, until interrupted; without it,
loads such a server at --target with the same client as the opens
scenario, so that both are measured alike:

  linkgate loadtest baseline --addr 127.0.0.1:8081 &
  linkgate loadtest baseline --target http://127.0.0.1:8081`,
			flags: baselineFlags,
			serve: serveBaseline,
		},
		{
			name:    "ws",
			summary: "WebSocket device sessions sending commands; handshake, command, echo, delivery",
			metric:  "command",
			help: `Opens --connections device-page sessions (POST /l/{token}/session, then
the /l/{token}/ws WebSocket), each sending "set" commands at
--command-rate a second and reading everything it is sent: handshake,
command (set to ack), echo (set to the device's state message) and
delivery latency. Devices and links are minted through the owner API with
the API key (and deleted after), unless --links gives links.`,
			flags: func(fs *flag.FlagSet, o *loadtestOptions) func(*loadtest.Config) (loadtest.Scenario, error) {
				return socketsFlags(fs, o, false)
			},
		},
		{
			name:    "revoke",
			summary: "disable the links of open WebSocket sessions; time the closes and refusals",
			metric:  "revoke",
			help: `The revocation test: opens --connections device-page sessions on
--link-count minted links (spread over the target and --instances on the
same Redis), then disables every link through the owner API, --revoke-rate
links a second (0: all at the same instant, the stress case), and times
each session's close from its link's disable call ("revoke"), and the
first refused open of each link after its call returned ("refuse"). The
gateways' own stage histograms (feed lag, relink, close write) are read
from their /metrics into the report's info. Each session opens once; the
run ends when measured.

  linkgate loadtest revoke --target http://127.0.0.1:8080 \
      --instances http://127.0.0.1:8081 --connections 10000 \
      --link-count 1000 --devices 10 --ramp 2000 --revoke-rate 20`,
			flags: func(fs *flag.FlagSet, o *loadtestOptions) func(*loadtest.Config) (loadtest.Scenario, error) {
				return socketsFlags(fs, o, true)
			},
		},
		viewersScenario, // loadtest_viewers.go
	}
}

// twin names a scenario flag's environment twin for its help.
func twin(name string) string { return " [" + envLoadtest + envName(name) + "]" }

func envName(flagName string) string {
	b := []byte(flagName)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// httpFlags are the flags the HTTP scenarios share.
type httpFlags struct {
	redisURL   string
	sameSource bool
	rotate     int
	timeout    time.Duration
}

func (h *httpFlags) add(fs *flag.FlagSet, rotate bool) {
	fs.StringVar(&h.redisURL, "redis", "", "the target's Redis `URL`, to count the run's Redis calls from Redis itself; prefer the environment variable: flags show in ps"+twin("redis"))
	fs.BoolVar(&h.sameSource, "same-source", false, "connect every worker from the default source address instead of one 127.x address each"+twin("same-source"))
	if rotate {
		fs.IntVar(&h.rotate, "rotate", 0, "requests per connection before a worker moves to a fresh source address; 0: never"+twin("rotate"))
	}
	fs.DurationVar(&h.timeout, "timeout", loadtest.DefaultHTTPTimeout, "bound on each request"+twin("timeout"))
}

func opensFlags(fs *flag.FlagSet, o *loadtestOptions) func(*loadtest.Config) (loadtest.Scenario, error) {
	var h httpFlags
	h.add(fs, true)
	mix := fs.String("mix", loadtest.DefaultMix.String(), "the share of each kind of token, kind=weight,..."+twin("mix"))
	var toks loadtest.Tokens
	fs.StringVar(&toks.Valid, "valid", "", "a valid link's token or URL; default: minted"+twin("valid"))
	fs.StringVar(&toks.Forged, "forged", "", "a forged token; default: made from another token"+twin("forged"))
	fs.StringVar(&toks.Expired, "expired", "", "an expired link's token or URL; default: minted"+twin("expired"))
	fs.StringVar(&toks.Disabled, "disabled", "", "a disabled link's token or URL; default: minted"+twin("disabled"))
	return func(*loadtest.Config) (loadtest.Scenario, error) {
		m, err := loadtest.ParseMix(*mix)
		if err != nil {
			return nil, fmt.Errorf("--%w", err)
		}
		return loadtest.NewOpens(loadtest.OpensConfig{
			Mix: m, Tokens: toks, APIKey: o.apiKey, RedisURL: h.redisURL,
			SameSource: h.sameSource, Rotate: h.rotate, Timeout: h.timeout,
		})
	}
}

func sessionsFlags(fs *flag.FlagSet, o *loadtestOptions) func(*loadtest.Config) (loadtest.Scenario, error) {
	var h httpFlags
	h.add(fs, true)
	link := fs.String("link", "", "a valid link's token or URL, without maxUses; default: minted"+twin("link"))
	origin := fs.String("origin", "", "the Origin header to send; default none, as a client that is not a browser"+twin("origin"))
	return func(*loadtest.Config) (loadtest.Scenario, error) {
		return loadtest.NewSessions(loadtest.SessionsConfig{
			Token: *link, APIKey: o.apiKey, RedisURL: h.redisURL, Origin: *origin,
			SameSource: h.sameSource, Rotate: h.rotate, Timeout: h.timeout,
		})
	}
}

// baselineAddrFlag is the baseline's --addr: set, the command serves.
var baselineAddrFlag = "addr"

func baselineFlags(fs *flag.FlagSet, o *loadtestOptions) func(*loadtest.Config) (loadtest.Scenario, error) {
	var h httpFlags
	h.add(fs, false)
	fs.String(baselineAddrFlag, "", "serve the baseline on this `host:port` until interrupted, instead of loading one"+twin("addr"))
	return func(*loadtest.Config) (loadtest.Scenario, error) {
		if h.redisURL != "" {
			return nil, errors.New("--redis: the baseline has no Redis")
		}
		return loadtest.NewBaseline(loadtest.BaselineConfig{SameSource: h.sameSource, Timeout: h.timeout})
	}
}

// serveBaseline serves the baseline when --addr is given; it returns
// errNotServing otherwise.
func serveBaseline(ctx context.Context, fs *flag.FlagSet, stdout, _ io.Writer) error {
	addr := fs.Lookup(baselineAddrFlag).Value.String()
	if addr == "" {
		return errNotServing
	}
	return loadtest.ServeBaseline(ctx, addr, web.LinkPage("device"), func(a net.Addr) {
		fmt.Fprintf(stdout, "baseline listening on http://%s\n", a)
	})
}

// errNotServing: a scenario with a serve mode was not asked to serve.
var errNotServing = errors.New("not serving")

func socketsFlags(fs *flag.FlagSet, o *loadtestOptions, revoke bool) func(*loadtest.Config) (loadtest.Scenario, error) {
	var sc loadtest.SocketsConfig
	var links, instances listFlag
	if !revoke {
		fs.Var(&links, "links", "link URLs to open, comma-separated, instead of minting; session i opens link i mod n"+twin("links"))
		fs.Float64Var(&sc.Rate, "command-rate", 0, "commands a second per session; 0: idle sessions"+twin("command-rate"))
	}
	fs.Var(&instances, "instances", "more gateway base URLs on the same Redis, comma-separated; sessions spread over the target and them"+twin("instances"))
	fs.IntVar(&sc.LinkCount, "link-count", 1, "links to mint; session i opens link i mod n"+twin("link-count"))
	fs.IntVar(&sc.Devices, "devices", 0, "devices to create; default one per link"+twin("devices"))
	fs.StringVar(&sc.Device, "device", "", "an existing device `ID` to link to instead of creating devices"+twin("device"))
	fs.StringVar(&sc.DeviceType, "device-type", loadtest.DefaultSocketDeviceType, "type of the devices created: light, plug, rgb-lamp, thermostat, lock"+twin("device-type"))
	fs.StringVar(&sc.Property, "property", "", "the property the commands set, node/prop; default the type's"+twin("property"))
	fs.Float64Var(&sc.Ramp, "ramp", 0, "sessions started a second; 0: all at once"+twin("ramp"))
	fs.BoolVar(&sc.SameAddress, "same-source", false, "connect every session from the default source address instead of one 127.x address each"+twin("same-source"))
	fs.DurationVar(&sc.Timeout, "timeout", loadtest.DefaultSocketTimeout, "bound on a session's opening"+twin("timeout"))
	fs.DurationVar(&sc.Settle, "settle", loadtest.DefaultSocketSettle, "wait after the last session opened before sampling memory (and revoking)"+twin("settle"))
	fs.BoolVar(&sc.Keep, "keep", false, "keep the minted devices and links"+twin("keep"))
	if revoke {
		fs.DurationVar(&sc.CloseWait, "close-wait", loadtest.DefaultSocketCloseWait, "bound on the wait for the sessions to close"+twin("close-wait"))
		fs.DurationVar(&sc.RefuseWait, "refuse-wait", loadtest.DefaultSocketRefuseWait, "bound on the wait for an open to be refused"+twin("refuse-wait"))
		fs.Float64Var(&sc.RevokeRate, "revoke-rate", loadtest.DefaultRevokeRate, "links disabled a second, one call each; 0: every link at the same instant"+twin("revoke-rate"))
	}
	return func(cfg *loadtest.Config) (loadtest.Scenario, error) {
		sc.APIKey, sc.Links, sc.Instances, sc.Revoke = o.apiKey, links, instances, revoke
		if cfg.Model == loadtest.Open {
			return nil, errors.New("--model: sessions last the run: the closed model only (--command-rate sets the commands' rate)")
		}
		if revoke {
			if cfg.Count != 0 {
				return nil, errors.New("--count: the revocation opens each of --connections sessions once")
			}
			cfg.Count = int64(cfg.Connections)
			if cfg.Duration == 0 {
				cfg.Duration = 10 * time.Minute // a bound; the run ends when measured
			}
		}
		return loadtest.NewSockets(sc)
	}
}
