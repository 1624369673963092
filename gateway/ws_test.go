package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/emulator"
	"github.com/linkgate/linkgate/gateway"
	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/tokens/redistest"
)

var thermostatBody = map[string]any{
	"name": "Hall thermostat", "type": "thermostat",
	"nodes": []any{map[string]any{"id": "thermostat", "name": "Thermostat", "properties": []any{
		map[string]any{"id": "mode", "name": "Mode", "datatype": "enum", "format": "off,heat,cool,auto", "settable": true},
		map[string]any{"id": "target", "name": "Target", "datatype": "float", "unit": "°C", "format": "5:30:0.5", "settable": true},
		map[string]any{"id": "temperature", "name": "Temperature", "datatype": "float", "unit": "°C"},
	}}},
}

// startFleet runs simulated devices for the owner's devices until the test
// ends.
func startFleet(t testing.TB, rdb redis.UniversalClient, in *instance) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	fleet := emulator.NewFleet(emulator.NewBus(rdb), emulator.NewStore(rdb), emulator.FleetOptions{
		Rescan: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sim:    emulator.SimOptions{Tick: 50 * time.Millisecond},
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = fleet.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// page is one WebSocket session as a test client sees it.
type page struct {
	t      testing.TB
	conn   *websocket.Conn
	binary bool // a camera stream: binary frames come as {"type": "binary"}
	mu     sync.Mutex
	raw    []string // every text frame received, for leak checks
}

func wsURL(in *instance, token string) string {
	return "ws" + strings.TrimPrefix(in.url, "http") + "/l/" + token + "/ws"
}

// openPage does what the browser does: POST the session, then open the
// socket with its cookie and the page's Origin.
func openPage(t testing.TB, in *instance, token string) *page {
	t.Helper()
	s := want(t, call(t, "POST", in.url+"/l/"+token+"/session", "", nil), http.StatusOK)
	h := http.Header{"Origin": {in.url}}
	for _, c := range s.Cookies() {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	p, resp, err := dialPage(t, in, token, h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	return p
}

func dialPage(t testing.TB, in *instance, token string, h http.Header) (*page, *http.Response, error) {
	conn, resp, err := websocket.DefaultDialer.Dial(wsURL(in, token), h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { conn.Close() })
	return &page{t: t, conn: conn}, resp, nil
}

// next reads the next message, failing the test after the timeout.
func (p *page) next(timeout time.Duration) (map[string]any, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	typ, data, err := p.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		if p.binary {
			return map[string]any{"type": "binary"}, nil
		}
		p.t.Fatalf("binary frame from a device socket")
	}
	p.mu.Lock()
	p.raw = append(p.raw, string(data))
	p.mu.Unlock()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		p.t.Fatalf("frame is not JSON: %s", data)
	}
	return m, nil
}

// await reads until a message matches, failing after 5 s.
func (p *page) await(what string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := p.next(time.Until(deadline))
		if err != nil {
			p.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(m) {
			return m
		}
	}
}

func isType(typ string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == typ }
}

func (p *page) set(id, prop string, value any) {
	p.t.Helper()
	if err := p.conn.WriteJSON(map[string]any{"type": "set", "id": id, "property": prop, "value": value}); err != nil {
		p.t.Fatal(err)
	}
}

// ack waits for the ack of id and returns its error code ("" when ok).
func (p *page) ack(id string) string {
	p.t.Helper()
	m := p.await("ack "+id, func(m map[string]any) bool { return m["type"] == "ack" && m["id"] == id })
	if m["ok"] == true {
		return ""
	}
	e, _ := m["error"].(map[string]any)
	return fmt.Sprint(e["code"])
}

// closed waits for the closing message and the close frame; it returns
// the reason and the close code.
func (p *page) closed() (string, int) {
	p.t.Helper()
	reason := ""
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := p.next(time.Until(deadline))
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return reason, ce.Code
		}
		if err != nil {
			p.t.Fatalf("waiting for the close: %v", err)
		}
		if m["type"] == "closing" {
			reason = fmt.Sprint(m["reason"])
		}
	}
}

func (p *page) sawText(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.raw {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

type wsEnv struct {
	rdb   redis.UniversalClient
	ring  *tokens.KeyRing
	in    *instance
	owner tenant
	plug  ownerapi.Device
	link  ownerapi.Link // controls switch/on, sees meter/power, not meter/energy
}

func startRedis(tb testing.TB) redis.UniversalClient { return redistest.Start(tb).Client(tb) }

func newWSEnv(t *testing.T, tweak ...func(*gateway.Config)) *wsEnv {
	t.Helper()
	rdb := startRedis(t)
	ring := testRing(t)
	in := startGateway(t, rdb, ring, tweak...)
	e := &wsEnv{rdb: rdb, ring: ring, in: in, owner: newTenant(t, in, "owner")}
	e.plug = e.owner.device(t, plugBody)
	e.link = e.owner.link(t, map[string]any{"device": e.plug.ID, "permissions": map[string]any{
		"control": []string{"switch/on"}, "view": []string{"meter/power"},
	}})
	startFleet(t, rdb, in)
	return e
}

// hello opens a page once its device is online, and returns its hello.
func (e *wsEnv) hello(t *testing.T, in *instance, token string) (*page, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := openPage(t, in, token)
		h := p.await("hello", isType("hello"))
		if h["online"] == true {
			return p, h
		}
		if time.Now().After(deadline) {
			t.Fatalf("device never online: %v", h)
		}
		p.conn.Close() // the fleet has not started the device yet
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWSProtocol(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	p, hello := e.hello(t, e.in, e.link.Token)
	if hello["online"] != true {
		t.Fatalf("device never online: %v", hello)
	}
	state, _ := hello["state"].(map[string]any)
	if _, ok := state["switch/on"]; !ok {
		t.Errorf("hello state lacks switch/on: %v", state)
	}
	if _, ok := state["meter/power"]; !ok {
		t.Errorf("hello state lacks meter/power: %v", state)
	}
	if link, _ := hello["link"].(map[string]any); link["name"] == nil {
		t.Errorf("hello without link view: %v", hello)
	}

	// A command reaches the device; its answer comes back as state.
	p.set("c1", "switch/on", true)
	if code := p.ack("c1"); code != "" {
		t.Fatalf("set switch/on: %s", code)
	}
	p.await("switch/on = true", func(m map[string]any) bool {
		return m["type"] == "state" && m["property"] == "switch/on" && m["value"] == true
	})
	p.await("power rises", func(m map[string]any) bool {
		v, _ := m["value"].(float64)
		return m["type"] == "state" && m["property"] == "meter/power" && v > 1
	})

	// Refusals: nothing of these reaches the device.
	for _, tc := range []struct {
		id, prop string
		value    any
		code     string
	}{
		{"r1", "meter/energy", 1.0, "forbidden"},
		{"r2", "meter/power", 5.0, "forbidden"}, // visible, not controllable
		{"r3", "meter/nothing", 1.0, "unknown-property"},
		{"r4", "switch/on", "yes", "invalid-value"},
		{"r5", "switch/on", nil, "invalid-value"},
	} {
		p.set(tc.id, tc.prop, tc.value)
		if code := p.ack(tc.id); code != tc.code {
			t.Errorf("set %s = %v: ack %q, want %q", tc.prop, tc.value, code, tc.code)
		}
	}
	for _, frame := range []string{`{`, `{"type":"set"`, `[1,2]`, `{"type":"fly","id":"x"}`, `{"type":"set","id":"z","property":"switch/on","value":true,"extra":1}`} {
		if err := p.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		m := p.await("ack of a bad frame", isType("ack"))
		if e, _ := m["error"].(map[string]any); m["ok"] != false || e["code"] != "invalid-message" {
			t.Errorf("frame %s: %v", frame, m)
		}
	}
	// Telemetry the link does not allow was never on the wire.
	time.Sleep(200 * time.Millisecond) // a few device ticks
	p.set("c2", "switch/on", false)
	p.ack("c2")
	if p.sawText("meter/energy\"") || p.sawText(`"energy"`) {
		t.Error("a forbidden property appeared on the wire")
	}
}

func TestWSValueChecks(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	th := e.owner.device(t, thermostatBody)
	l := e.owner.link(t, map[string]any{"device": th.ID, "permissions": map[string]any{
		"control": []string{"thermostat/mode", "thermostat/target"},
	}})
	p, _ := e.hello(t, e.in, l.Token)
	p.set("ok", "thermostat/target", 21.5)
	p.await("target 21.5 echoed", func(m map[string]any) bool {
		return m["type"] == "state" && m["property"] == "thermostat/target" && m["value"] == 21.5
	})
	for _, tc := range []struct {
		prop  string
		value any
		code  string
	}{
		{"thermostat/target", 99.0, "invalid-value"}, // out of range
		{"thermostat/target", 20.3, "invalid-value"}, // off the step
		{"thermostat/mode", "heat", ""},
		{"thermostat/mode", "boil", "invalid-value"}, // not in the enum
		{"thermostat/mode", 3.0, "invalid-value"},
		{"thermostat/temperature", 20.0, "forbidden"},
	} {
		id := fmt.Sprint(tc.prop, tc.value)
		p.set(id, tc.prop, tc.value)
		if code := p.ack(id); code != tc.code {
			t.Errorf("set %s = %v: ack %q, want %q", tc.prop, tc.value, code, tc.code)
		}
	}
}

func TestWSRefusedConnections(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	tok := e.link.Token
	// A foreign Origin: refused before the upgrade.
	_, resp, err := dialPage(t, e.in, tok, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: %v %v", err, resp)
	}
	// No Origin at all: refused.
	_, resp, err = dialPage(t, e.in, tok, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("no origin: %v %v", err, resp)
	}
	// A session cookie of another link: refused.
	other := e.owner.link(t, map[string]any{"device": e.plug.ID})
	s := want(t, call(t, "POST", e.in.url+"/l/"+other.Token+"/session", "", nil), http.StatusOK)
	h := http.Header{"Origin": {e.in.url}}
	for _, c := range s.Cookies() {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	_, resp, err = dialPage(t, e.in, tok, h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("other link's session: %v %v", err, resp)
	}
	// A forged token: 404. A disabled link: 410.
	_, resp, _ = dialPage(t, e.in, strings.Repeat("A", len(tok)), http.Header{"Origin": {e.in.url}})
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("forged token: %v", resp)
	}
	// A client without a session cookie may use the token itself.
	p, _, err := dialPage(t, e.in, tok, http.Header{"Origin": {e.in.url}})
	if err != nil {
		t.Fatalf("token-only client: %v", err)
	}
	p.await("hello", isType("hello"))
}

func TestWSFrameLimits(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t, func(c *gateway.Config) { c.WS.Commands = emulator.SessionLimits{Commands: 5, Burst: 5} })
	p, _ := e.hello(t, e.in, e.link.Token)

	// A flood beyond the rate: the excess is refused, the socket stays.
	for i := range 30 {
		p.set(fmt.Sprint("f", i), "switch/on", i%2 == 0)
	}
	limited := 0
	for i := range 30 {
		if p.ack(fmt.Sprint("f", i)) == "rate-limited" {
			limited++
		}
	}
	if limited < 20 {
		t.Errorf("%d of 30 flooded commands were rate-limited, want at least 20", limited)
	}

	// An oversized frame closes the socket with 1009.
	big := `{"type":"set","id":"big","property":"switch/on","value":"` + strings.Repeat("x", 8<<10) + `"}`
	if err := p.conn.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if _, code := p.closed(); code != websocket.CloseMessageTooBig {
		t.Errorf("oversized frame: close code %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

func TestWSPermissionsLive(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	p, _ := e.hello(t, e.in, e.link.Token)
	// The owner shows the energy meter and takes the switch away.
	want(t, e.owner.do(t, "PATCH", "/links/"+e.link.ID, map[string]any{"permissions": map[string]any{
		"view": []string{"meter/power", "meter/energy"},
	}}), http.StatusOK)
	m := p.await("permissions", isType("permissions"))
	perms, _ := m["permissions"].(map[string]any)
	if fmt.Sprint(perms["view"]) != "[meter/power meter/energy]" || fmt.Sprint(perms["control"]) != "[]" {
		t.Errorf("pushed permissions: %v", perms)
	}
	if st, _ := m["state"].(map[string]any); st["meter/energy"] == nil {
		t.Errorf("newly visible energy not in the pushed state: %v", m["state"])
	}
	p.set("s1", "switch/on", true)
	if code := p.ack("s1"); code != "forbidden" {
		t.Errorf("set after control was taken away: %q", code)
	}
}

func TestWSClosing(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	light := e.owner.device(t, lightBody)
	newLink := func() ownerapi.Link {
		return e.owner.link(t, map[string]any{"device": e.plug.ID, "permissions": map[string]any{"control": []string{"switch/on"}}})
	}
	cases := []struct {
		name   string
		change func(l ownerapi.Link)
		reason string
		code   int
	}{
		{"disable", func(l ownerapi.Link) {
			want(t, e.owner.do(t, "POST", "/links/"+l.ID+"/disable", nil), http.StatusOK)
		}, "disabled", 4001},
		{"delete", func(l ownerapi.Link) {
			want(t, e.owner.do(t, "DELETE", "/links/"+l.ID, nil), http.StatusNoContent)
		}, "deleted", 4002},
		{"window ends", func(l ownerapi.Link) {
			end := time.Now().Add(1500 * time.Millisecond).UTC().Truncate(time.Second).Add(time.Second)
			want(t, e.owner.do(t, "PATCH", "/links/"+l.ID, map[string]any{"window": map[string]any{"end": end}}), http.StatusOK)
		}, "expired", 4003},
		{"window moved to the past", func(l ownerapi.Link) {
			want(t, e.owner.do(t, "PATCH", "/links/"+l.ID, map[string]any{"window": map[string]any{"end": time.Now().Add(-time.Minute)}}), http.StatusOK)
		}, "expired", 4003},
		{"schedule closes", func(l ownerapi.Link) {
			want(t, e.owner.do(t, "PATCH", "/links/"+l.ID, map[string]any{"schedule": closedSchedule(time.Now())}), http.StatusOK)
		}, "outside-schedule", 4004},
		{"device swapped", func(l ownerapi.Link) {
			want(t, e.owner.do(t, "PATCH", "/links/"+l.ID, map[string]any{"device": light.ID, "permissions": map[string]any{"control": []string{"light/on"}}}), http.StatusOK)
		}, "device-changed", 4005},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLink()
			p, _ := e.hello(t, e.in, l.Token)
			start := time.Now()
			tc.change(l)
			reason, code := p.closed()
			if reason != tc.reason || code != tc.code {
				t.Errorf("closing %q (%d), want %q (%d)", reason, code, tc.reason, tc.code)
			}
			t.Logf("%s: closed %v after the change", tc.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestWSMaxSessions(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	l := e.owner.link(t, map[string]any{"device": e.plug.ID, "maxSessions": 1})
	first, _ := e.hello(t, e.in, l.Token)
	second := openPage(t, e.in, l.Token)
	if reason, code := second.closed(); reason != "too-many-sessions" || code != 4007 {
		t.Errorf("second session: %q %d", reason, code)
	}
	first.conn.Close()
	// The place is free again once the first page is gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := openPage(t, e.in, l.Token)
		m, err := p.next(5 * time.Second)
		if err == nil && m["type"] == "hello" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the place never came free: %v %v", m, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWSTwoInstances: a command through instance A reaches the device, and
// the state arrives on a page open on instance B too.
func TestWSTwoInstances(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	b := startGateway(t, e.rdb, e.ring)
	onA, _ := e.hello(t, e.in, e.link.Token)
	onB, _ := e.hello(t, b, e.link.Token)
	for _, v := range []bool{true, false} {
		id := fmt.Sprint("c", v)
		onA.set(id, "switch/on", v)
		if code := onA.ack(id); code != "" {
			t.Fatalf("set: %s", code)
		}
		for name, p := range map[string]*page{"A": onA, "B": onB} {
			p.await(fmt.Sprintf("switch/on = %v on %s", v, name), func(m map[string]any) bool {
				return m["type"] == "state" && m["property"] == "switch/on" && m["value"] == v
			})
		}
	}
	// An owner change made through A reaches the page on B.
	want(t, e.owner.do(t, "POST", "/links/"+e.link.ID+"/disable", nil), http.StatusOK)
	if reason, code := onB.closed(); reason != "disabled" || code != 4001 {
		t.Errorf("page on B: %q %d", reason, code)
	}
}

// TestWSSlowReader: a page that stops reading is dropped; the device and a
// page that keeps up are not held back (it may get coalesced values, but
// always the latest).
func TestWSSlowReader(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t, func(c *gateway.Config) {
		c.WS.WriteTimeout = 500 * time.Millisecond
		c.WS.PingInterval = 500 * time.Millisecond // a page that stops reading stops answering pings
	})
	d := e.owner.device(t, map[string]any{"name": "Ticker", "type": "display", "nodes": []any{map[string]any{
		"id": "text", "name": "Text", "properties": []any{map[string]any{"id": "line", "name": "Line", "datatype": "string"}},
	}}})
	l := e.owner.link(t, map[string]any{"device": d.ID, "permissions": map[string]any{"view": []string{"text/line"}}})
	e.hello(t, e.in, l.Token) // a page that never reads again
	fast, _ := e.hello(t, e.in, l.Token)
	var last string
	go func() {
		// The device floods changes, far faster than pages read them.
		bus := emulator.NewBus(e.rdb)
		line := strings.Repeat("x", 240)
		for i := range 4 {
			batch := make([]emulator.Change, 500)
			for j := range batch {
				v, _ := json.Marshal(fmt.Sprintf("%s %05d", line, i*500+j))
				batch[j] = emulator.Change{Property: "text/line", Value: v, TS: time.Now()}
			}
			if err := bus.Publish(context.Background(), d.ID, batch...); err != nil {
				return
			}
		}
	}()
	last = fmt.Sprintf("%s %05d", strings.Repeat("x", 240), 4*500-1)
	fast.await("the last change on the page that keeps up", func(m map[string]any) bool {
		return m["type"] == "state" && m["value"] == last
	})
	go func() { // the page that keeps up goes on reading, and so answers pings
		for {
			if _, err := fast.next(time.Minute); err != nil {
				return
			}
		}
	}()
	eventually(t, 10*time.Second, "the slow page is dropped", func() bool { return e.in.LiveSessions() == 1 })
	time.Sleep(time.Second) // several ping intervals: the page that reads stays
	if n := e.in.LiveSessions(); n != 1 {
		t.Errorf("%d sessions open, want the one that reads", n)
	}
}
