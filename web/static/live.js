/* linkgate: the live layer of a device link. Plain ES2020, no build step.
 *
 * app.js renders the link's app screen from the session answer; this script
 * then opens the link's WebSocket (GET /l/{token}/ws, same origin, the
 * session cookie rides along) and keeps the page in step with the device.
 * Server messages:
 *   hello        the device's values, whether it is online; the controls go
 *                live. The app is re-rendered when the link or the device
 *                differs from what the session answer said.
 *   state        a property's new value (and a point on its sparkline)
 *   ack          the answer to one of the page's commands: done, or refused
 *                with the reason, the control put back to the last value the
 *                device reported
 *   permissions  an owner's edit: the app is re-rendered from the new link
 *                and device (controls may come or go, the time left may
 *                change); values are kept
 *   offline, online  the device-offline banner (controls off) and back
 *   closing      the screen for the reason (LinkGate.closed in app.js)
 * Commands: at most one in flight per property; changes made meanwhile are
 * folded into the next one, so a held-down arrow key sends the last value,
 * not a flood. Each shows pending (spinner, dimmed), then done (a check) or
 * refused (the reason), on its card and through an aria-live region.
 *
 * When the connection drops without a reason that ends the link, the page
 * comes back by itself: a new session (POST) and a new socket, with
 * exponential backoff and jitter up to 30 s. The first try is made quietly
 * on the app screen; after that the connection-lost screen counts down.
 *
 * The page's Content-Security-Policy refuses inline styles: everything is
 * built with DOM APIs, and the sparkline is SVG attributes plus classes
 * from app.css.
 */
(() => {
  "use strict";

  const LG = window.LinkGate;
  const appEl = document.getElementById("app");
  if (!LG || !appEl || document.body.dataset.page !== "link") return;

  // ---------- Settings ----------

  const HELLO_TIMEOUT = 10000; // an open socket without a hello is broken
  const ACK_TIMEOUT = 8000; // a command without an answer is given up
  const ECHO_WAIT = 3000; // after an ack, how long the device's echo may take
  const PENDING_SHOW = 150; // a quicker answer shows no spinner at all
  const DONE_SHOW = 1600;
  const REFUSED_SHOW = 8000;
  const STABLE_AFTER = 10000; // a connection this old resets the backoff
  const CHART_POINTS = 60;

  // Close codes, for when the closing message was lost on the way.
  const CLOSE_REASONS = {
    4001: "disabled",
    4002: "deleted",
    4003: "expired",
    4004: "outside-schedule",
    4005: "device-changed",
    4006: "server-shutdown",
    4007: "too-many-sessions",
    4008: "too-slow",
    4009: "unavailable",
    4010: "not-yet-active",
  };

  // Why a command was refused (ack error codes, and two of the page's own).
  const REFUSED = {
    forbidden: "This link may not change that.",
    "invalid-value": "The device doesn't take that value.",
    "unknown-property": "The device no longer has this setting.",
    "rate-limited": "Too many changes at once. Wait a moment, then try again.",
    "device-offline": "The device is offline.",
    unavailable: "The device can't be reached right now. Try again in a moment.",
    "invalid-message": "That change couldn't be sent. Please try again.",
    timeout: "No answer from the device. Please try again.",
    "not-connected": "Not connected right now. Wait a moment, then try again.",
  };

  // ---------- DOM helpers (as in app.js) ----------

  const SVG_NS = "http://www.w3.org/2000/svg";

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v != null && v !== false) el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c != null && c !== false) el.append(c);
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  function icon(name) {
    const el = svg("svg", { class: "icon", "aria-hidden": "true", focusable: "false" });
    el.append(svg("use", { href: "#i-" + name }));
    return el;
  }

  const spinner = () => h("span", { class: "spinner", "aria-hidden": "true" });
  const hiddenText = (text) => h("span", { class: "visually-hidden" }, text);

  // Command results are read out here; app.js's announcer says the screens.
  const announcer = h("div", { class: "visually-hidden", role: "status", "aria-live": "polite", "aria-atomic": "true" });
  document.body.append(announcer);
  let sayTimer = 0;

  function say(msg) {
    clearTimeout(sayTimer);
    announcer.textContent = "";
    sayTimer = setTimeout(() => {
      announcer.textContent = msg;
    }, 60);
  }

  const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  /** A property's name for people: "Switch, On". */
  function label(entry) {
    const prop = entry.prop.name || entry.prop.id;
    const node = entry.node.name || entry.node.id;
    return node && node !== prop ? `${node}, ${prop}` : prop;
  }

  /** A value for people: "on", "45 W", "heat". */
  function display(entry, v) {
    const { datatype, unit } = entry.prop;
    if (datatype === "boolean") return v === true || v === "true" ? "on" : "off";
    if (typeof v === "number") return `${numberFormat.format(v)}${unit ? " " + unit : ""}`;
    return String(v);
  }

  // ---------- Values ----------

  /** A control's value as the protocol wants it, by datatype; undefined if none. */
  function wireValue(prop, v) {
    switch (prop.datatype) {
      case "boolean":
        return v === true || v === "true";
      case "integer": {
        const n = Math.round(Number(v));
        return v === "" || v == null || !Number.isFinite(n) ? undefined : n;
      }
      case "float": {
        const n = Number(v);
        return v === "" || v == null || !Number.isFinite(n) ? undefined : n;
      }
      default:
        return v == null ? undefined : String(v);
    }
  }

  function sameValue(prop, a, b) {
    if (prop.datatype === "integer" || prop.datatype === "float") {
      const x = Number(a);
      const y = Number(b);
      return Number.isFinite(x) && Number.isFinite(y) && Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x));
    }
    const norm = (v) => String(v).replace(/\s+/g, "").toLowerCase();
    return a === b || norm(a) === norm(b);
  }

  /** What the page must re-render for: the link and the device's shape. */
  function signature(link, device) {
    const l = link || {};
    const d = device || {};
    return JSON.stringify([
      l.name,
      l.kind,
      l.permissions,
      l.window,
      l.schedule,
      l.closesAt,
      d.id,
      d.name,
      d.type,
      (d.nodes || []).map((n) => [
        n.id,
        n.name,
        (n.properties || []).map((p) => [p.id, p.name, p.datatype, p.unit || "", p.format || "", Boolean(p.settable)]),
      ]),
    ]);
  }

  // The last value the device reported, per property ("node/prop").
  const known = new Map();

  /** A value from the device: shown, unless a command of the page's own is
   * on its way (then an older value would make the control jump back). */
  function applyState(path, value) {
    known.set(path, value);
    const entry = LG.state.props.get(path);
    if (!entry) return;
    entry.view.el.dataset.known = JSON.stringify(value);
    chartPush(path, entry, value);
    const cmd = pending.get(path);
    if (cmd) {
      if (sameValue(entry.prop, cmd.value, value)) {
        echoed(cmd);
        LG.setValue(path, value);
      } else {
        cmd.held = true; // shown when the command settles, if nothing newer came
      }
      return;
    }
    LG.setValue(path, value);
  }

  /** Puts a control back to what the device last reported. */
  function revert(path) {
    LG.setValue(path, known.has(path) ? known.get(path) : null);
  }

  // ---------- Commands ----------

  let seq = 0;
  const pending = new Map(); // path -> {id, path, value, acked, held, next, timer}
  const byId = new Map(); // command id -> path

  function onUserSet(path, value, entry) {
    const v = wireValue(entry.prop, value);
    if (v === undefined) return;
    const cmd = pending.get(path);
    if (cmd && !cmd.acked) {
      cmd.next = { value: v }; // sent when this one is answered
      return;
    }
    send(path, v);
  }

  function send(path, value) {
    const old = pending.get(path);
    if (old) clearTimeout(old.timer);
    const ws = conn.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !conn.hello || !LG.state.live) {
      pending.delete(path);
      revert(path);
      refused(path, "not-connected");
      return;
    }
    const id = `c${++seq}`;
    const cmd = { id, path, value, acked: false, held: Boolean(old && old.held), next: null, timer: 0 };
    cmd.timer = setTimeout(() => timedOut(cmd), ACK_TIMEOUT);
    pending.set(path, cmd);
    byId.set(id, path);
    ws.send(JSON.stringify({ type: "set", id, property: path, value }));
    const entry = LG.state.props.get(path);
    if (!old || !entry || entry.view.el.dataset.cmd !== "pending") feedback(path, "pending");
  }

  function onAck(m) {
    const path = byId.get(m.id);
    if (path === undefined) return;
    byId.delete(m.id);
    const cmd = pending.get(path);
    if (!cmd || cmd.id !== m.id) return; // superseded, or settled by its echo
    clearTimeout(cmd.timer);
    if (cmd.next) {
      send(path, cmd.next.value);
      return;
    }
    if (m.ok) {
      cmd.acked = true;
      done(cmd);
      cmd.timer = setTimeout(() => release(cmd), ECHO_WAIT);
      return;
    }
    pending.delete(path);
    revert(path);
    refused(path, (m.error && m.error.code) || "invalid-message");
  }

  /** The device reported the value the command asked for. */
  function echoed(cmd) {
    clearTimeout(cmd.timer);
    if (cmd.next) {
      send(cmd.path, cmd.next.value);
      return;
    }
    pending.delete(cmd.path);
    if (!cmd.acked) done(cmd);
  }

  /** Acked, but no echo came: show what the device last said, if it said
   * anything while the command was on its way. */
  function release(cmd) {
    if (pending.get(cmd.path) !== cmd) return;
    pending.delete(cmd.path);
    if (cmd.held) revert(cmd.path);
  }

  function timedOut(cmd) {
    if (pending.get(cmd.path) !== cmd) return;
    pending.delete(cmd.path);
    byId.delete(cmd.id);
    revert(cmd.path);
    refused(cmd.path, "timeout");
  }

  function done(cmd) {
    feedback(cmd.path, "done");
    const entry = LG.state.props.get(cmd.path);
    if (entry) say(`${label(entry)}: ${display(entry, cmd.value)}`);
  }

  function refused(path, code) {
    const text = REFUSED[code] || REFUSED["invalid-message"];
    feedback(path, "refused", text);
    const entry = LG.state.props.get(path);
    if (entry) say(`${label(entry)}: not changed. ${text}`);
  }

  /** Forgets every command on its way (the socket is gone); controls go
   * back to what the device last reported. */
  function dropCommands() {
    for (const cmd of pending.values()) {
      clearTimeout(cmd.timer);
      revert(cmd.path);
      feedback(cmd.path, "idle");
    }
    pending.clear();
    byId.clear();
  }

  // ---------- Command feedback on the cards ----------

  const feedbackTimers = new Map(); // path -> timeout

  /** The mark beside a card's label and the note at its foot, made once per card. */
  function slots(card) {
    let mark = card.querySelector(".cmd-mark");
    if (!mark) {
      mark = h("span", { class: "cmd-mark", hidden: true });
      const lbl = card.querySelector("label");
      if (lbl) lbl.after(mark);
      else card.prepend(mark);
    }
    let note = card.querySelector(".cmd-note");
    if (!note) {
      note = h("p", { class: "cmd-note", hidden: true });
      card.append(note);
    }
    return { mark, note };
  }

  /** Shows a command's stage on its card: "pending", "done", "refused" (with
   * text) or "idle". */
  function feedback(path, kind, text) {
    clearTimeout(feedbackTimers.get(path));
    feedbackTimers.delete(path);
    const entry = LG.state.props.get(path);
    if (!entry) return;
    const card = entry.view.el;
    const { mark, note } = slots(card);
    card.classList.remove("cmd-pending", "cmd-done", "cmd-refused");
    card.removeAttribute("aria-busy");
    card.dataset.cmd = kind;
    mark.hidden = true;
    mark.replaceChildren();
    note.hidden = true;
    note.replaceChildren();
    const later = (ms, fn) => feedbackTimers.set(path, setTimeout(fn, ms));
    switch (kind) {
      case "pending":
        card.setAttribute("aria-busy", "true");
        later(PENDING_SHOW, () => {
          card.classList.add("cmd-pending");
          mark.hidden = false;
          mark.replaceChildren(spinner(), hiddenText("Sending"));
        });
        break;
      case "done":
        card.classList.add("cmd-done");
        mark.hidden = false;
        mark.replaceChildren(icon("check"), hiddenText("Done"));
        later(DONE_SHOW, () => feedback(path, "idle"));
        break;
      case "refused":
        card.classList.add("cmd-refused");
        note.hidden = false;
        note.replaceChildren(icon("alert"), h("span", {}, text));
        later(REFUSED_SHOW, () => feedback(path, "idle"));
        break;
    }
  }

  // ---------- Sparklines of numeric telemetry ----------

  const CHART_W = 120;
  const CHART_H = 36;
  const CHART_PAD = 4;
  const history = new Map(); // path -> numbers, oldest first, at most CHART_POINTS
  const charts = new Map(); // path -> {svg, line, area, dot, entry}
  const dirty = new Set();
  let drawQueued = false;

  const isTelemetry = (entry) => !entry.settable && (entry.prop.datatype === "integer" || entry.prop.datatype === "float");

  function chartPush(path, entry, value) {
    if (!isTelemetry(entry) || value == null || value === "") return;
    const n = Number(value);
    if (!Number.isFinite(n)) return;
    let points = history.get(path);
    if (!points) history.set(path, (points = []));
    points.push(n);
    if (points.length > CHART_POINTS) points.splice(0, points.length - CHART_POINTS);
    dirty.add(path);
    if (!drawQueued) {
      drawQueued = true;
      requestAnimationFrame(() => {
        drawQueued = false;
        for (const p of dirty) draw(p);
        dirty.clear();
      });
    }
  }

  /** Gives every telemetry card on screen its sparkline (after a render). */
  function attachCharts() {
    charts.clear();
    for (const [path, entry] of LG.state.props) {
      if (!isTelemetry(entry)) continue;
      const el = svg("svg", {
        class: "spark",
        viewBox: `0 0 ${CHART_W} ${CHART_H}`,
        preserveAspectRatio: "none",
        role: "img",
        "aria-label": `${label(entry)}: no readings yet`,
      });
      const area = svg("polygon", { class: "spark-area" });
      const line = svg("polyline", { class: "spark-line" });
      const dot = svg("path", { class: "spark-dot" });
      el.append(area, line, dot);
      entry.view.el.append(el);
      charts.set(path, { svg: el, area, line, dot, entry });
      draw(path);
    }
  }

  function draw(path) {
    const c = charts.get(path);
    const points = history.get(path) || [];
    if (!c || points.length === 0) return;
    let lo = Math.min(...points);
    let hi = Math.max(...points);
    const min = lo;
    const max = hi;
    if (hi - lo < 1e-9) {
      // A steady reading: a line across the middle.
      lo -= 1;
      hi += 1;
    }
    // The readings so far fill the width; the newest is at the right.
    const x = points.length > 1 ? (i) => (CHART_W * i) / (points.length - 1) : () => CHART_W;
    const y = (v) => CHART_PAD + (CHART_H - 2 * CHART_PAD) * (1 - (v - lo) / (hi - lo));
    const coords = points.map((v, i) => `${x(i).toFixed(2)},${y(v).toFixed(2)}`);
    if (points.length === 1) coords.unshift(`0,${y(points[0]).toFixed(2)}`);
    c.line.setAttribute("points", coords.join(" "));
    c.area.setAttribute("points", `0,${CHART_H} ${coords.join(" ")} ${CHART_W},${CHART_H}`);
    c.dot.setAttribute("d", `M${coords[coords.length - 1]}h0`);
    const unit = c.entry.prop.unit ? " " + c.entry.prop.unit : "";
    c.svg.setAttribute(
      "aria-label",
      `${label(c.entry)}: last ${points.length} readings, from ${numberFormat.format(min)} to ${numberFormat.format(max)}${unit}`
    );
  }

  // ---------- The socket ----------

  let lastDevice; // the id of the device the values in known and history are of

  const conn = {
    ws: null,
    epoch: 0, // bumped whenever the socket is let go: late events of an old one check it
    hello: false,
    worked: false, // the session cookie opened the last socket (a hello came)
    failures: 0, // connections in a row that did not last; for backoff
    busy: 0, // "too many sessions" in a row
    helloTimer: 0,
    stableTimer: 0,
    retryTimer: 0,
  };

  const backoff = LG.backoff;

  const socketURL = () => LG.socketURL("ws");

  /** Lets the current socket go, quietly, with its timers and commands. */
  function teardown() {
    conn.epoch++;
    clearTimeout(conn.helloTimer);
    clearTimeout(conn.stableTimer);
    clearTimeout(conn.retryTimer);
    const ws = conn.ws;
    conn.ws = null;
    conn.hello = false;
    if (ws) {
      try {
        ws.close(1000);
      } catch (e) {
        // Already closing.
      }
    }
    dropCommands();
  }

  function connect() {
    teardown();
    const link = LG.state.link;
    if (!link || link.kind === "camera" || !LG.state.token) return;
    const epoch = conn.epoch;
    let ws;
    try {
      ws = new WebSocket(socketURL());
    } catch (e) {
      lost();
      return;
    }
    conn.ws = ws;
    conn.helloTimer = setTimeout(() => {
      if (epoch === conn.epoch) lost();
    }, HELLO_TIMEOUT);
    ws.addEventListener("message", (e) => {
      if (epoch === conn.epoch) receive(e.data);
    });
    ws.addEventListener("close", (e) => {
      if (epoch === conn.epoch) end(CLOSE_REASONS[e.code] || "");
    });
  }

  function receive(data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!m || typeof m !== "object") return;
    switch (m.type) {
      case "hello":
        onHello(m);
        break;
      case "state":
        if (conn.hello && typeof m.property === "string") applyState(m.property, m.value);
        break;
      case "ack":
        onAck(m);
        break;
      case "permissions":
        if (conn.hello) onPermissions(m);
        break;
      case "offline":
        if (conn.hello) deviceOnline(false);
        break;
      case "online":
        if (conn.hello) deviceOnline(true);
        break;
      case "closing":
        end(String(m.reason || CLOSE_REASONS[m.code] || ""));
        break;
    }
  }

  function onHello(m) {
    clearTimeout(conn.helloTimer);
    conn.hello = true;
    conn.worked = true;
    conn.stableTimer = setTimeout(() => {
      conn.failures = 0;
      conn.busy = 0;
    }, STABLE_AFTER);
    const view = { link: m.link || LG.state.link, device: m.device || LG.state.device, state: {} };
    const deviceID = view.device && view.device.id;
    if (deviceID !== lastDevice) {
      // Another device (the link was moved): nothing reported so far holds.
      known.clear();
      history.clear();
      lastDevice = deviceID;
    }
    if (signature(view.link, view.device) !== signature(LG.state.link, LG.state.device)) {
      LG.render(view);
      attachCharts();
    } else if (charts.size === 0 || ![...charts.values()].every((c) => c.svg.isConnected)) {
      attachCharts();
    }
    for (const [path, v] of Object.entries(m.state || {})) applyState(path, v);
    if (LG.screen() !== "app") LG.showApp();
    deviceOnline(m.online !== false);
  }

  function onPermissions(m) {
    const link = Object.assign({}, m.link || LG.state.link);
    if (m.permissions) link.permissions = m.permissions;
    // Values come through applyState, so that commands on their way are
    // respected; values not in the message are kept.
    LG.render({ link, device: m.device || LG.state.device, state: {} });
    attachCharts();
    for (const [path, entry] of LG.state.props) {
      if (known.has(path)) entry.view.el.dataset.known = JSON.stringify(known.get(path));
      if (pending.has(path)) feedback(path, "pending");
    }
    for (const [path, v] of Object.entries(m.state || {})) applyState(path, v);
    for (const [path, cmd] of pending) {
      if (LG.state.props.has(path)) continue;
      clearTimeout(cmd.timer); // its control is gone; so is its answer's use
      pending.delete(path);
    }
    say("The owner changed what this link shares.");
  }

  function deviceOnline(on) {
    if (on) {
      LG.setLive(true);
      return;
    }
    LG.setLive(false, "The device is offline. Its controls come back when it reconnects.", "offline");
    // Older results no longer matter; the banner says what does.
    for (const [path, entry] of LG.state.props) {
      const kind = entry.view.el.dataset.cmd;
      if (kind && kind !== "idle" && kind !== "pending") feedback(path, "idle");
    }
  }

  /** The session ended: show what that means for the reason given. */
  function end(reason) {
    teardown();
    if (!LG.closed(reason, reconnect, () => conn.busy++)) lost();
  }

  /** The connection is gone for no lasting reason: try again, with backoff. */
  function lost() {
    teardown();
    const delay = backoff(conn.failures++);
    if (conn.failures === 1 && LG.screen() === "app") {
      // The first time, quietly: the app stays, its controls off.
      LG.setLive(false, "Connection lost. Reconnecting…");
      conn.retryTimer = setTimeout(reconnect, delay);
    } else {
      connectionLost(delay);
    }
  }

  /** The connection-lost screen; it tries again after delay ms. */
  function connectionLost(delay) {
    LG.refuse("connection-lost", {
      retry: reconnect,
      retryAfter: delay,
      message: "The connection to the device was interrupted. This page reconnects by itself.",
    });
  }

  /** Whether the session cookie may open the socket again: it worked last
   * time and has time left. Reusing it keeps network blips from counting as
   * uses of a link with a maximum. */
  function sessionReusable() {
    const s = LG.state.session;
    const expires = s && Date.parse(s.expiresAt);
    return conn.worked && expires && expires - Date.now() > 10000;
  }

  /** A new socket, on the same session while it lasts, otherwise on a new
   * one. The app screen comes back with the hello. */
  async function reconnect() {
    teardown();
    const epoch = conn.epoch;
    if (sessionReusable()) {
      conn.worked = false; // until this socket's hello proves the session still good
      connect();
      return;
    }
    const r = await LG.session();
    if (epoch !== conn.epoch) return; // something else took over meanwhile
    if (r.ok) {
      LG.state.session = r.view.session;
      connect();
      return;
    }
    LG.sessionRefused(r, reconnect, connectionLost, () => conn.failures++);
  }

  // ---------- Start ----------

  LG.onSet(onUserSet);
  document.addEventListener("linkgate:ready", connect);
  document.addEventListener("linkgate:closed", teardown);
  if (LG.screen() === "app" && LG.state.link) connect();
})();
