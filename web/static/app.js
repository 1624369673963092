/* linkgate: the share-link app. Plain ES2020, no framework, no build step.
 *
 * On a link page (/l/{token}) it opens a session with POST /l/{token}/session
 * and renders the answer: the shared device's controls and readings, a
 * camera's player, or a refusal screen. On a refusal page rendered by the
 * server it turns the opening time into local time with a countdown and
 * retries by itself where that makes sense.
 *
 * The page runs under a strict Content-Security-Policy, so everything is built
 * with DOM APIs and textContent: no HTML is parsed from strings, and no
 * style attribute is written (a colour swatch uses the CSSOM, which the CSP
 * allows).
 *
 * Hooks for the live layers (the device WebSocket, live.js; the camera's
 * stream, camera.js), on window.LinkGate:
 *   state                  link, device, session, props ("node/prop" -> entry), live,
 *                          camera ({player, status}: the player box of a camera
 *                          link with the "live" level, else null)
 *   setValue(path, value)  show a property's current value
 *   setLive(on, note, mode)  enable (or disable, with a note) the controls;
 *                          mode "offline" shows the note as a device-offline banner;
 *                          "paused" and "error" (camera.js) name the pill
 *   onSet(fn)              fn(path, value, entry) runs when the user changes a control
 *   render(view)           re-render the app screen from {link, device, state}
 *                          (an owner's edit), keeping values and the live status
 *   session()              POST a new session without rendering: a promise of
 *                          {ok: true, view} or {ok: false, code, opts}
 *   connectionLost(retry, delay)  show the connection-lost screen; retry() runs
 *                          after delay ms (default: backoff)
 *   showApp()              bring the app screen back (after a reconnect)
 *   refuse(code, opts)     show a refusal screen ("expired", "disabled", ...)
 *   reopen()               show the loading screen and open a new session
 *   closed(reason, retry, busy)  show what a socket closing for reason means;
 *                          false: the layer should reconnect by itself
 *   sessionRefused(r, retry, lost, attempt)  show a refused new session (r
 *                          from session()), retrying where it is worth it
 *   screen()               the name of the screen on show ("app", "loading", a code)
 *   backoff(n)             ms to wait before retry n: 0.5–1 s, 1–2 s, ... 15–30 s
 *   socketURL(name)        the ws(s):// URL of this link's socket ("ws", "live")
 * and on document the events "linkgate:ready" (the app screen is up, detail is
 * state) and "linkgate:closed" (the app screen went away, detail.screen says
 * for what).
 */
(() => {
  "use strict";

  // ---------- DOM helpers ----------

  const SVG_NS = "http://www.w3.org/2000/svg";

  /** h("p", {class: "x", onclick: fn}, "text", child, [more]) builds an element.
   * Strings become text nodes; null, undefined and false are skipped. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c != null && c !== false) el.append(c);
    }
    return el;
  }

  /** An icon from the page's sprite (#i-name). */
  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const use = document.createElementNS(SVG_NS, "use");
    use.setAttribute("href", "#i-" + name);
    svg.append(use);
    return svg;
  }

  const spinner = () => h("span", { class: "spinner", "aria-hidden": "true" });

  /** "—" for an unknown value, read out as "unknown". */
  const unknown = () => [
    h("span", { "aria-hidden": "true" }, "—"),
    h("span", { class: "visually-hidden" }, "unknown"),
  ];

  let idCount = 0;
  const nextId = (prefix) => `${prefix}-${++idCount}`;

  // ---------- Time ----------

  // Server time minus local time, when the two disagree by more than a few
  // seconds (taken from the Date header of the session answer).
  let clockSkew = 0;
  const now = () => Date.now() + clockSkew;

  function noteServerClock(res) {
    const server = Date.parse(res.headers.get("Date") || "");
    if (!Number.isFinite(server)) return;
    const off = server - Date.now();
    clockSkew = Math.abs(off) > 3000 ? off : 0;
  }

  function parseTime(s) {
    if (typeof s !== "string" || s === "") return null;
    const t = Date.parse(s);
    return Number.isFinite(t) ? t : null;
  }

  const pad = (n) => String(n).padStart(2, "0");

  /** 2d 03:04:05, 3:04:05, 4:05 */
  function formatLeft(ms) {
    let s = Math.max(0, Math.ceil(ms / 1000));
    const d = Math.floor(s / 86400);
    s %= 86400;
    const hh = Math.floor(s / 3600);
    s %= 3600;
    const mm = Math.floor(s / 60);
    const ss = s % 60;
    if (d > 0) return `${d}d ${pad(hh)}:${pad(mm)}:${pad(ss)}`;
    if (hh > 0) return `${hh}:${pad(mm)}:${pad(ss)}`;
    return `${mm}:${pad(ss)}`;
  }

  /** A moment in local time: "Sun, 29 Nov, 11:00" (with the year when not this year). */
  function formatWhen(ms) {
    const d = new Date(ms);
    const thisYear = d.getFullYear() === new Date().getFullYear();
    return new Intl.DateTimeFormat(undefined, {
      weekday: "short",
      day: "numeric",
      month: "short",
      year: thisYear ? undefined : "numeric",
      hour: "numeric",
      minute: "2-digit",
    }).format(d);
  }

  // ---------- Screens ----------

  const app = document.getElementById("app");
  const announcer = document.getElementById("announcer");
  let current = app ? app.dataset.screen || "" : "";
  let currentTitle = "";

  // Timers and listeners that belong to the screen on show; cleared on change.
  let screenCleanups = [];

  function after(ms, fn) {
    const id = setTimeout(fn, ms);
    screenCleanups.push(() => clearTimeout(id));
  }

  function listen(target, type, fn) {
    target.addEventListener(type, fn);
    screenCleanups.push(() => target.removeEventListener(type, fn));
  }

  /** Calls onTick(msLeft) at each second until target, then onZero(). */
  function countdown(target, onTick, onZero) {
    const step = () => {
      const left = target - now();
      if (left <= 0) {
        onTick(0);
        onZero();
        return;
      }
      onTick(left);
      after(left % 1000 || 1000, step);
    };
    step();
  }

  function announce(msg) {
    if (!announcer) return;
    announcer.textContent = "";
    setTimeout(() => {
      announcer.textContent = msg;
    }, 60);
  }

  /** Replaces the screen. Focus follows to the new heading when it was on the old screen. */
  function show(name, node, title) {
    screenCleanups.forEach((stop) => stop());
    screenCleanups = [];
    const hadFocus = app.contains(document.activeElement) && document.activeElement !== app;
    const wasApp = current === "app";
    const same = name === current && title === currentTitle;
    app.replaceChildren(node);
    app.dataset.screen = current = name;
    currentTitle = title;
    if (name === "loading") app.setAttribute("aria-busy", "true");
    else app.removeAttribute("aria-busy");
    document.title = `${title} · linkgate`;
    if (name !== "loading" && !same) announce(title);
    if (hadFocus) {
      const heading = app.querySelector("h1");
      if (heading) heading.focus();
    }
    if (wasApp && name !== "app") {
      document.dispatchEvent(new CustomEvent("linkgate:closed", { detail: { screen: name } }));
    }
  }

  function brandBar(...extra) {
    return h("header", { class: "appbar" }, h("span", { class: "brand" }, icon("logo"), "linkgate"), extra);
  }

  const footnote = (text) => h("footer", { class: "footnote" }, text);

  function showLoading() {
    const kind = document.body.dataset.kind === "camera" ? "camera" : "device";
    const el = h(
      "div",
      { class: "loading" },
      brandBar(),
      h(
        "div",
        { class: "hero" },
        h("div", { class: "device-icon sk" }),
        h("div", { class: "hero-text" }, h("p", { class: "sk sk-line sk-title" }), h("p", { class: "sk sk-line sk-short" }))
      ),
      h(
        "div",
        { class: "content" },
        h("p", { class: "loading-note" }, spinner(), `Opening the shared ${kind}…`),
        kind === "camera" ? h("div", { class: "sk sk-player" }) : [1, 2, 3].map(() => h("div", { class: "sk sk-card" }))
      )
    );
    show("loading", el, kind === "camera" ? "Shared camera" : "Shared device");
  }

  // ---------- Refusals ----------

  // Wording, icon and tone per refusal code. Keep in step with refusals in
  // web.go. whenOpens replaces message when the opening time is known.
  const REFUSALS = {
    "not-found": {
      title: "This link doesn't work",
      message: "It may have been deleted or mistyped. Ask the person who shared it for a new link.",
      icon: "link-off",
      tone: "stop",
    },
    expired: {
      title: "This link has expired",
      message: "Its access period has ended. Ask the person who shared it if you still need access.",
      icon: "hourglass",
      tone: "stop",
    },
    disabled: {
      title: "This link is switched off",
      message: "The person who shared it has turned it off for now.",
      icon: "power",
      tone: "stop",
    },
    "used-up": {
      title: "This link has been used up",
      message: "It could only be opened a limited number of times. Ask for a new link if you still need access.",
      icon: "ticket",
      tone: "stop",
    },
    "not-yet-active": {
      title: "This link isn't open yet",
      message: "It hasn't started yet. Try again later.",
      whenOpens: "It starts working at the time below.",
      icon: "calendar",
      tone: "wait",
    },
    "outside-schedule": {
      title: "This link is closed right now",
      message: "It only works at set times. Try again later.",
      whenOpens: "It only works at set times. It opens again at the time below.",
      icon: "schedule",
      tone: "wait",
    },
    "rate-limited": {
      title: "Too many attempts",
      message: "Please wait a moment, then try again.",
      icon: "timer",
      tone: "warn",
    },
    unavailable: {
      title: "Service temporarily unavailable",
      message: "The service can't be reached right now. Please try again in a moment.",
      icon: "cloud-off",
      tone: "warn",
    },
    "connection-lost": {
      title: "Connection lost",
      message: "Check your internet connection.",
      icon: "wifi-off",
      tone: "warn",
    },
    // Only live.js shows this one (a WebSocket closing), so web.go has no page for it.
    "too-many-sessions": {
      title: "This link is busy",
      message: "It is open in as many places as its owner allows. Close it elsewhere, or wait: this page tries again by itself.",
      icon: "users",
      tone: "warn",
    },
  };
  const GENERIC = {
    title: "This link can't be opened",
    message: "Something went wrong. Please try again later.",
    icon: "alert",
    tone: "stop",
  };

  // Codes worth retrying by themselves, with backoff.
  const RETRYABLE = new Set(["rate-limited", "unavailable", "connection-lost", "too-many-sessions"]);

  function codeForStatus(status) {
    if (status === 404) return "not-found";
    if (status === 410) return "expired";
    if (status === 429) return "rate-limited";
    if (status >= 500 || (status >= 200 && status < 300)) return "unavailable";
    return "error";
  }

  /** Backoff with jitter: about 1.5 s, 3 s, 6 s, ... up to a minute. */
  function backoff(attempt) {
    const base = Math.min(60000, 1500 * 2 ** Math.min(attempt, 10));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  const jitter = (min, max) => min + Math.random() * (max - min);

  /** Retry-After (seconds or an HTTP date) in ms, or null. */
  function retryAfterMs(res) {
    const v = (res.headers.get("Retry-After") || "").trim();
    if (!v) return null;
    if (/^\d+$/.test(v)) return Number(v) * 1000;
    const t = Date.parse(v);
    return Number.isFinite(t) ? Math.max(0, t - Date.now()) : null;
  }

  /** The refusal screen: the same markup as the server's error page. */
  function refusalView(def, title, message) {
    const body = h(
      "div",
      { class: "refusal-body" },
      h("div", { class: "refusal-icon" }, icon(def.icon)),
      h("h1", { tabindex: "-1" }, title),
      h("p", { class: "message" }, message)
    );
    const el = h("div", { class: `refusal tone-${def.tone}` }, brandBar(), body, footnote("Shared with you through linkgate."));
    return { el, body };
  }

  /** Fills (or adds) the "Opens" box: local time and a countdown; onOpen() at
   * zero. When the time has already passed (clocks disagree), onOpen() waits
   * pastDelay more, so a page that retries does not knock in a tight loop. */
  function opensBox(container, target, iso, onOpen, pastDelay) {
    let box = container.querySelector(".opens");
    if (!box) {
      box = h(
        "div",
        { class: "opens" },
        h("p", { class: "opens-label" }, "Opens"),
        h("p", { class: "opens-time" }, h("time", { datetime: iso })),
        h("p", { class: "countdown", role: "timer" })
      );
      container.append(box);
    }
    const time = box.querySelector("time");
    time.textContent = formatWhen(target);
    time.setAttribute("title", new Date(target).toUTCString());
    const cd = box.querySelector(".countdown");
    cd.hidden = false;
    const extra = target <= now() ? pastDelay : 0;
    box.append(h("p", { class: "opens-note" }, "This page opens the link by itself then."));
    countdown(
      target,
      (left) => {
        cd.textContent = left > 0 ? `in ${formatLeft(left)}` : "Opening…";
      },
      // A little jitter, so that everyone waiting does not knock at once.
      () => after(jitter(1500, 4000) + extra, onOpen)
    );
  }

  /** Adds "Trying again in 8 s" with a "Try again now" button; retry() runs once. */
  function autoRetry(container, delay, retry) {
    const note = h("p", { class: "retry-note" });
    const button = h("button", { type: "button", class: "btn secondary" }, icon("refresh"), "Try again now");
    let done = false;
    const go = () => {
      if (done) return;
      done = true;
      button.disabled = true;
      note.replaceChildren(spinner(), "Trying again…");
      retry();
    };
    button.addEventListener("click", go);
    container.append(h("div", { class: "retry" }, note, button));
    countdown(
      now() + delay,
      (left) => {
        if (!done) note.textContent = `Trying again in ${Math.max(1, Math.ceil(left / 1000))} s`;
      },
      go
    );
    return go;
  }

  /** Shows the refusal screen for code. opts: message, opensAt (RFC 3339),
   * retryAfter (ms), retry (function; default: open the session again). */
  function refuse(code, opts = {}) {
    const def = REFUSALS[code] || GENERIC;
    const opensAt = parseTime(opts.opensAt);
    const message = opts.message || (def.whenOpens && opensAt != null ? def.whenOpens : def.message);
    const view = refusalView(def, def.title, message);
    show(code, view.el, def.title);

    const again = opts.retry || (() => openSession());
    if (opensAt != null) opensBox(view.body, opensAt, opts.opensAt, again, backoff(state.attempt++));
    if (RETRYABLE.has(code)) {
      let delay = backoff(state.attempt++);
      if (opts.retryAfter != null) delay = Math.min(600000, Math.max(1000, opts.retryAfter));
      const go = autoRetry(view.body, delay, again);
      if (code === "connection-lost") listen(window, "online", go);
    }
  }

  /** Shows the connection-lost screen; retry() (default: open the session
   * again) runs after delay ms (default: backoff). */
  function connectionLost(retry, delay) {
    refuse("connection-lost", { retry, retryAfter: delay });
  }

  // ---------- Session ----------

  const state = {
    token: null,
    link: null,
    device: null,
    session: null,
    props: new Map(), // "node/prop" -> {path, node, prop, settable, value, view: {el, update, enable}}
    live: false,
    camera: null, // {player, status}: where the live layer puts the picture
    attempt: 0, // failed attempts in a row, for backoff
  };
  const ui = { appView: null, liveNote: null, liveText: null, liveIcon: null, pill: null };
  // What setLive was last told; kept across re-renders.
  let liveStatus = { on: false, note: "", mode: "" };
  const setHandlers = new Set();

  /** The token from /l/{token}: base64url, nothing that could change the path. */
  function tokenFromPath(path) {
    const m = /^\/l\/([A-Za-z0-9_-]+)\/?$/.exec(path);
    return m ? m[1] : null;
  }

  /** The session answer as {link, device, session}: the server sends the
   * link's public view at the top level, with device and session in it. */
  function sessionView(body) {
    if (body.link) return body;
    const { device, session, ...link } = body;
    return { link, device, session };
  }

  /** POST /l/{token}/session (which sets the session cookie) without
   * rendering anything: {ok: true, view} or {ok: false, code, opts}, where
   * code is "connection-lost" when the server could not be reached and opts
   * is what refuse() takes. */
  async function requestSession() {
    let res;
    let body = null;
    try {
      res = await fetch(`/l/${state.token}/session`, {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      noteServerClock(res);
      body = await res.json().catch(() => null);
    } catch (e) {
      return { ok: false, code: "connection-lost", opts: {} };
    }
    if (res.ok && body && typeof body === "object" && (body.link || body.kind)) {
      return { ok: true, view: sessionView(body) };
    }
    const err = (body && body.error) || {};
    return {
      ok: false,
      code: err.code || codeForStatus(res.status),
      opts: { message: err.message, opensAt: err.opensAt, retryAfter: retryAfterMs(res) },
    };
  }

  let opening = false;

  /** POST /l/{token}/session and render what comes back. Quiet keeps the
   * current screen up while asking (retries), instead of showing loading. */
  async function openSession({ quiet = true } = {}) {
    if (opening) return;
    opening = true;
    if (!quiet) showLoading();
    const r = await requestSession();
    opening = false;
    if (r.ok) {
      state.attempt = 0;
      forgetReloads();
      renderApp(r.view);
      return;
    }
    if (r.code === "connection-lost") connectionLost();
    else refuse(r.code, r.opts);
  }

  // ---------- The app screen ----------

  const TYPE_ICONS = {
    plug: "plug",
    socket: "plug",
    outlet: "plug",
    light: "light",
    lamp: "light",
    bulb: "light",
    dimmer: "light",
    thermostat: "thermostat",
    heater: "thermostat",
    climate: "thermostat",
    sensor: "sensor",
    meter: "sensor",
    lock: "lock",
    switch: "switch",
    relay: "switch",
    camera: "camera",
  };

  /** When the link closes by itself: its window's end, or sooner its schedule's. */
  function closingTime(link) {
    const end = parseTime(link.window && link.window.end);
    const closes = parseTime(link.closesAt);
    if (closes != null && (end == null || closes < end)) return { at: closes, reason: "outside-schedule" };
    if (end != null) return { at: end, reason: "expired" };
    return null;
  }

  /** Renders the app screen for data ({link, device, session}). A fresh
   * render (a new session) starts disconnected and tells the live layer
   * (linkgate:ready); a re-render (render(), an owner's edit) keeps the
   * live status and tells no one. */
  function renderApp(data, { rerender = false } = {}) {
    const link = data.link;
    const device = data.device || {};
    Object.assign(state, { link, device, session: data.session || {}, props: new Map(), live: false, camera: null });
    if (!rerender) liveStatus = { on: false, note: "", mode: "" };
    const kind = link.kind === "camera" ? "camera" : "device";
    const title = link.name || (kind === "camera" ? "Shared camera" : "Shared device");

    ui.pill = h("span", { class: "pill" }, "Connecting…");
    ui.liveText = h("span", {}, "Live control connects in a moment");
    ui.liveIcon = h("span", { class: "live-note-icon" }, spinner());
    ui.liveNote = kind === "device" ? h("p", { class: "live-note" }, ui.liveIcon, ui.liveText) : null;

    const deadline = closingTime(link);
    const timeLeft = deadline ? timeLeftCard(link, deadline) : null;
    const typeIcon = TYPE_ICONS[String(device.type || "").toLowerCase()] || (kind === "camera" ? "camera" : "device");

    const el = h(
      "div",
      { class: "app" },
      brandBar(ui.pill),
      h(
        "section",
        { class: "hero" },
        h("div", { class: "device-icon" }, icon(typeIcon)),
        h(
          "div",
          { class: "hero-text" },
          h("h1", { tabindex: "-1" }, title),
          h("p", { class: "sub" }, device.name || (kind === "camera" ? "Camera" : "Device"))
        )
      ),
      h(
        "div",
        { class: "content" },
        timeLeft && timeLeft.el,
        kind === "camera" ? cameraView(link) : [ui.liveNote, propertiesView(link, device)]
      ),
      footnote("Shared with you through linkgate. Please don't pass this link on.")
    );
    ui.appView = { el, title, start: () => timeLeft && timeLeft.start() };
    applyLive();
    if (rerender && current !== "app") return; // shown when the app comes back
    showApp();
    if (!rerender) document.dispatchEvent(new CustomEvent("linkgate:ready", { detail: state }));
  }

  /** Re-renders the app screen from a new view of the link, {link, device,
   * state} (state: "node/prop" -> value, optional), as the live layer gets
   * it after an owner's edit: controls and readings may appear or go, the
   * time left may change. Values already shown are kept where the view has
   * none, the live status is kept, and focus stays on the same control when
   * it is still there. */
  function render(view) {
    if (!view || !view.link || !state.link) return;
    const values = new Map();
    for (const [path, entry] of state.props) values.set(path, entry.value);
    const active = document.activeElement;
    const focused = active && active.closest && app.contains(active) ? active.closest("[data-path]") : null;
    const focusPath = focused ? focused.dataset.path : null;

    renderApp({ link: view.link, device: view.device || state.device, session: state.session }, { rerender: true });
    const fresh = view.state || {};
    for (const path of state.props.keys()) {
      if (Object.prototype.hasOwnProperty.call(fresh, path)) setValue(path, fresh[path]);
      else if (values.get(path) !== undefined) setValue(path, values.get(path));
    }
    applyLive();
    const entry = focusPath && state.props.get(focusPath);
    const control = entry && entry.view.el.querySelector("input, select, button");
    if (control) control.focus();
  }

  /** Shows the app screen rendered last (e.g. again after a reconnect). */
  function showApp() {
    if (!ui.appView) return;
    state.attempt = 0;
    show("app", ui.appView.el, ui.appView.title);
    ui.appView.start();
  }

  /** The "time left" card, counting down each second; closes the app at zero. */
  function timeLeftCard(link, deadline) {
    const start = parseTime(link.window && link.window.start);
    const total = start != null && deadline.reason === "expired" ? deadline.at - start : 0;
    const value = h("p", { class: "countdown", role: "timer" });
    const bar = total > 0 ? h("progress", { max: 1000, value: 1000, "aria-hidden": "true" }) : null;
    const el = h(
      "section",
      { class: "card timeleft", "aria-label": "Time left" },
      h("p", { class: "timeleft-head" }, icon("clock"), "Time left"),
      value,
      h("p", { class: "until" }, `Until ${formatWhen(deadline.at)}`),
      bar
    );
    const run = () => {
      let prev = null;
      countdown(
        deadline.at,
        (left) => {
          value.textContent = formatLeft(left);
          el.classList.toggle("soon", left < 10 * 60000);
          if (bar) bar.value = Math.max(0, Math.min(1000, Math.round((1000 * left) / total)));
          // Say it when ten minutes and one minute are left (not on opening).
          for (const [ms, text] of [
            [10 * 60000, "10 minutes left"],
            [60000, "1 minute left"],
          ]) {
            if (prev != null && prev > ms && left <= ms) announce(text);
          }
          prev = left;
        },
        () => closed(deadline.reason)
      );
    };
    return { el, start: run };
  }

  /** The link closed by itself while open. */
  function closed(reason) {
    if (reason === "expired") {
      refuse("expired");
    } else {
      // Closed by its schedule: ask the server, a little later, when it opens again.
      refuse("outside-schedule");
      after(jitter(4000, 7000), () => openSession());
    }
    setLive(false);
  }

  // ---------- Properties ----------

  /** A card per permitted property, grouped by node, in the device's order. */
  function propertiesView(link, device) {
    const perms = link.permissions || {};
    const control = new Set(perms.control || []);
    const view = new Set(perms.view || []);
    const groups = [];
    for (const node of device.nodes || []) {
      const cards = [];
      for (const prop of node.properties || []) {
        const path = `${node.id}/${prop.id}`;
        if (!control.has(path) && !view.has(path)) continue;
        const entry = { path, node, prop, settable: Boolean(prop.settable) && control.has(path), value: undefined, view: null };
        const make = entry.settable ? RENDERERS[prop.datatype] || renderText : renderReadOnly;
        entry.view = make(entry);
        entry.view.el.dataset.path = path;
        state.props.set(path, entry);
        cards.push(entry.view.el);
      }
      if (!cards.length) continue;
      const id = nextId("node");
      groups.push(h("section", { class: "group", "aria-labelledby": id }, h("h2", { id }, node.name || node.id), cards));
    }
    if (groups.length) return groups;
    return h(
      "div",
      { class: "card empty" },
      h("h2", {}, "Nothing to show"),
      h("p", {}, "This link doesn't share any controls or readings of this device.")
    );
  }

  const propName = (entry) => entry.prop.name || entry.prop.id;

  /** Label (and "View only" when the device could but the link may not) for a card head. */
  function labelBlock(entry, id, ...below) {
    const viewOnly = !entry.settable && entry.prop.settable;
    return h(
      "div",
      {},
      h("label", { for: id }, propName(entry)),
      viewOnly && h("p", { class: "prop-tag" }, icon("eye"), "View only"),
      below
    );
  }

  const card = (...children) => h("div", { class: "card prop" }, children);

  const withUnit = (text, unit) => [text, unit ? h("span", { class: "unit" }, unit) : null];

  /** min:max[:step] from a numeric format, or null. */
  function parseRange(format, datatype) {
    const m = /^\s*(-?\d+(?:\.\d+)?)\s*:\s*(-?\d+(?:\.\d+)?)\s*(?::\s*(\d+(?:\.\d+)?))?\s*$/.exec(format || "");
    if (!m) return null;
    const min = Number(m[1]);
    const max = Number(m[2]);
    if (!(max > min)) return null;
    let step = m[3] ? Number(m[3]) : 0;
    if (!(step > 0)) step = datatype === "integer" ? 1 : 10 ** Math.floor(Math.log10((max - min) / 100));
    return { min, max, step };
  }

  const decimalsOf = (step) => (String(step).split(".")[1] || "").length;

  function formatNumber(entry, v) {
    const range = parseRange(entry.prop.format, entry.prop.datatype);
    const digits = entry.prop.datatype === "integer" ? 0 : range ? Math.min(6, decimalsOf(range.step)) : 2;
    return new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }).format(v);
  }

  // Colours: the input shows #rrggbb; Homie devices speak "r,g,b" or "h,s,v".
  function toHex(v, format) {
    if (typeof v === "string" && /^#[0-9a-f]{6}$/i.test(v.trim())) return v.trim().toLowerCase();
    const parts = (Array.isArray(v) ? v : String(v).split(",")).map(Number);
    if (parts.length !== 3 || parts.some((n) => !Number.isFinite(n))) return null;
    let [r, g, b] = parts;
    if (format === "hsv") [r, g, b] = hsvToRgb(parts[0], parts[1] / 100, parts[2] / 100);
    const hex = (n) => pad(Math.max(0, Math.min(255, Math.round(n))).toString(16));
    return `#${hex(r)}${hex(g)}${hex(b)}`;
  }

  function fromHex(hex, format) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    if (format !== "hsv") return `${r},${g},${b}`;
    const max = Math.max(r, g, b);
    const d = max - Math.min(r, g, b);
    let hue = 0;
    if (d) {
      if (max === r) hue = ((g - b) / d) % 6;
      else if (max === g) hue = (b - r) / d + 2;
      else hue = (r - g) / d + 4;
    }
    hue = Math.round((hue * 60 + 360) % 360);
    return `${hue},${Math.round(max ? (100 * d) / max : 0)},${Math.round((100 * max) / 255)}`;
  }

  function hsvToRgb(hue, s, v) {
    const f = (n) => {
      const k = (n + hue / 60) % 6;
      return 255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1)));
    };
    return [f(5), f(3), f(1)];
  }

  /** A property value as a device sends it, turned into what the card shows. */
  function normalize(prop, v) {
    if (v == null) return undefined;
    switch (prop.datatype) {
      case "boolean":
        return v === true || v === "true" || v === 1 || v === "1";
      case "integer":
      case "float": {
        if (v === "") return undefined;
        const n = Number(v);
        return Number.isFinite(n) ? n : undefined;
      }
      case "color":
        return toHex(v, prop.format) || undefined;
      default:
        return String(v);
    }
  }

  /** A value as text (and nodes), for read-only cards. */
  function formatValue(entry, v) {
    if (v === undefined) return unknown();
    const { datatype, unit } = entry.prop;
    switch (datatype) {
      case "boolean":
        return [v ? "On" : "Off"];
      case "integer":
      case "float":
        return withUnit(formatNumber(entry, v), unit);
      case "color": {
        const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
        swatch.style.backgroundColor = v; // CSSOM: allowed under style-src 'self'
        return [swatch, v];
      }
      case "datetime": {
        const t = parseTime(v);
        return [t != null ? formatWhen(t) : v];
      }
      default:
        return withUnit(v, unit);
    }
  }

  /** Tells the live layer that the user changed a control. */
  function emitSet(entry, value) {
    for (const fn of setHandlers) {
      try {
        fn(entry.path, value, entry);
      } catch (e) {
        console.error(e);
      }
    }
  }

  // One renderer per datatype, for settable properties. Each returns
  // {el, update(value), enable(on)}; value is already normalized (undefined
  // while unknown). Controls start disabled until setLive(true).
  const RENDERERS = {
    boolean: renderBoolean,
    integer: renderNumber,
    float: renderNumber,
    enum: renderEnum,
    color: renderColor,
    string: renderText,
  };

  function renderBoolean(entry) {
    const id = nextId("prop");
    const input = h("input", { type: "checkbox", role: "switch", class: "switch", id, disabled: true });
    input.indeterminate = true;
    const status = h("p", { class: "prop-tag" }, unknown());
    input.addEventListener("change", () => emitSet(entry, input.checked));
    return {
      el: card(h("div", { class: "prop-head" }, labelBlock(entry, id, status), input)),
      update(v) {
        input.indeterminate = v === undefined;
        input.checked = v === true;
        status.replaceChildren(...(v === undefined ? unknown() : [v ? "On" : "Off"]));
      },
      enable(on) {
        input.disabled = !on;
      },
    };
  }

  function renderNumber(entry) {
    const range = parseRange(entry.prop.format, entry.prop.datatype);
    if (!range) return renderNumberField(entry);
    const { min, max, step } = range;
    const unit = entry.prop.unit || "";
    const id = nextId("prop");
    const out = h("output", { class: "value big", for: id }, unknown());
    const input = h("input", { type: "range", id, min, max, step, value: min, class: "unknown", disabled: true, "aria-valuetext": "unknown" });
    const showValue = (v) => {
      out.replaceChildren(...withUnit(formatNumber(entry, v), unit));
      input.setAttribute("aria-valuetext", `${formatNumber(entry, v)} ${unit}`.trim());
    };
    // While the user drags, incoming values must not move the thumb.
    let dragging = false;
    input.addEventListener("pointerdown", () => (dragging = true));
    input.addEventListener("pointerup", () => (dragging = false));
    input.addEventListener("pointercancel", () => (dragging = false));
    input.addEventListener("input", () => {
      input.classList.remove("unknown");
      showValue(Number(input.value));
    });
    input.addEventListener("change", () => emitSet(entry, Number(input.value)));
    return {
      el: card(
        h("div", { class: "prop-head" }, labelBlock(entry, id), out),
        input,
        h("div", { class: "scale", "aria-hidden": "true" }, h("span", {}, withUnit(formatNumber(entry, min), unit)), h("span", {}, withUnit(formatNumber(entry, max), unit)))
      ),
      update(v) {
        if (dragging) return;
        input.classList.toggle("unknown", v === undefined);
        if (v === undefined) {
          input.value = String(min);
          out.replaceChildren(...unknown());
          input.setAttribute("aria-valuetext", "unknown");
          return;
        }
        input.value = String(v);
        showValue(v);
      },
      enable(on) {
        input.disabled = !on;
      },
    };
  }

  /** A number without a usable range: a plain number field. */
  function renderNumberField(entry) {
    const id = nextId("prop");
    const step = entry.prop.datatype === "integer" ? "1" : "any";
    const input = h("input", { type: "number", id, class: "field", step, inputmode: "decimal", placeholder: "—", disabled: true });
    input.addEventListener("change", () => {
      if (input.value !== "") emitSet(entry, Number(input.value));
    });
    return {
      el: card(labelBlock(entry, id), h("div", { class: "field-row" }, input, entry.prop.unit && h("span", { class: "unit" }, entry.prop.unit))),
      update(v) {
        if (document.activeElement !== input) input.value = v === undefined ? "" : String(v);
      },
      enable(on) {
        input.disabled = !on;
      },
    };
  }

  function renderEnum(entry) {
    const id = nextId("prop");
    const values = String(entry.prop.format || "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    const select = h(
      "select",
      { id, disabled: true },
      h("option", { value: "", disabled: true, selected: true }, "—"),
      values.map((v) => h("option", { value: v }, v))
    );
    select.addEventListener("change", () => emitSet(entry, select.value));
    return {
      el: card(labelBlock(entry, id), select),
      update(v) {
        if (v !== undefined && !values.includes(v)) {
          values.push(v);
          select.append(h("option", { value: v }, v));
        }
        select.value = v === undefined ? "" : v;
      },
      enable(on) {
        select.disabled = !on;
      },
    };
  }

  function renderColor(entry) {
    const id = nextId("prop");
    const input = h("input", { type: "color", id, value: "#000000", disabled: true });
    const out = h("span", {}, unknown());
    input.addEventListener("change", () => emitSet(entry, fromHex(input.value, entry.prop.format)));
    return {
      el: card(h("div", { class: "prop-head" }, labelBlock(entry, id, h("p", { class: "prop-tag" }, out)), input)),
      update(v) {
        if (v !== undefined) input.value = v;
        out.replaceChildren(...(v === undefined ? unknown() : [v]));
      },
      enable(on) {
        input.disabled = !on;
      },
    };
  }

  /** Strings, and any datatype without a renderer of its own. */
  function renderText(entry) {
    const id = nextId("prop");
    const input = h("input", { type: "text", id, class: "field", placeholder: "—", autocomplete: "off", disabled: true });
    const button = h("button", { type: "button", class: "btn", "aria-label": `Set ${propName(entry)}`, disabled: true }, "Set");
    const send = () => emitSet(entry, input.value);
    button.addEventListener("click", send);
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") send();
    });
    return {
      el: card(labelBlock(entry, id), h("div", { class: "field-row" }, input, entry.prop.unit && h("span", { class: "unit" }, entry.prop.unit), button)),
      update(v) {
        if (document.activeElement !== input) input.value = v === undefined ? "" : v;
      },
      enable(on) {
        input.disabled = !on;
        button.disabled = !on;
      },
    };
  }

  /** Anything the link may only see: label and value. */
  function renderReadOnly(entry) {
    const id = nextId("prop");
    const numeric = entry.prop.datatype === "integer" || entry.prop.datatype === "float";
    const out = h("output", { id, class: numeric ? "value big" : "value" }, unknown());
    return {
      el: card(h("div", { class: "prop-head" }, labelBlock(entry, id), out)),
      update(v) {
        out.replaceChildren(...formatValue(entry, v));
      },
      enable() {},
    };
  }

  // ---------- Camera ----------

  /** The player box (camera.js puts the picture in it), or, for a link
   * without the "live" level, a note saying so. */
  function cameraView(link) {
    const levels = new Set((link.permissions && link.permissions.camera) || []);
    const extras = [
      ["archive", "Recordings"],
      ["notices", "Notices"],
      ["download", "Downloads"],
    ].filter(([level]) => levels.has(level));
    let live;
    if (levels.has("live")) {
      const status = h("div", { class: "player-status" }, spinner(), h("p", { class: "player-title" }, "Connecting…"));
      live = h(
        "div",
        { class: "player", role: "group", "aria-label": "Live view", "data-state": "connecting" },
        h("div", { class: "player-bar" }, h("span", { class: "player-badge", "aria-hidden": "true" }, "LIVE")),
        status
      );
      state.camera = { player: live, status };
    } else {
      live = h(
        "div",
        { class: "card empty live-excluded" },
        icon("camera-off"),
        h("h3", {}, "No live view"),
        h("p", {}, "Live view isn't part of this link.")
      );
    }
    return h(
      "section",
      { class: "group", "aria-labelledby": "live-title" },
      h("div", { class: "camera-title" }, h("h2", { id: "live-title" }, "Live view")),
      live,
      extras.length > 0 &&
        h("div", { class: "card" }, h("p", { class: "prop-tag" }, "Also included"), h("div", { class: "chips" }, extras.map(([, name]) => h("span", { class: "pill" }, name))))
    );
  }

  // ---------- Live hooks ----------

  /** Shows a property's current value ("node/prop"). False when not on screen. */
  function setValue(path, value) {
    const entry = state.props.get(path);
    if (!entry) return false;
    entry.value = normalize(entry.prop, value);
    entry.view.update(entry.value);
    return true;
  }

  /** Enables the permitted controls (on) or disables them with a note.
   * With mode "offline" the note is a device-offline banner. */
  function setLive(on, note, mode) {
    const was = liveStatus;
    liveStatus = { on: Boolean(on), note: on ? "" : note || "", mode: on ? "" : mode || "" };
    applyLive();
    if (current !== "app" || (was.on === liveStatus.on && was.mode === liveStatus.mode && was.note === liveStatus.note)) return;
    const camera = state.link && state.link.kind === "camera";
    if (liveStatus.on && was.mode === "offline") announce(camera ? "The camera is back online" : "The device is back online");
    else if (liveStatus.on) announce(camera ? "Live view playing" : "Connected");
    else announce(liveStatus.note || "Connecting");
  }

  // The pill in the app bar, by live mode ("" is connecting).
  const PILLS = { offline: "Offline", paused: "Paused", error: "Unavailable" };

  /** Shows liveStatus: controls, the note above them, the pill, the player. */
  function applyLive() {
    state.live = liveStatus.on;
    const offline = liveStatus.mode === "offline";
    for (const entry of state.props.values()) entry.view.enable(state.live && entry.settable);
    if (ui.liveNote) {
      ui.liveNote.hidden = state.live;
      ui.liveNote.classList.toggle("offline", offline);
      ui.liveText.textContent = liveStatus.note || "Live control connects in a moment";
      ui.liveIcon.replaceChildren(offline ? icon("device-off") : spinner());
    }
    if (ui.pill) {
      ui.pill.textContent = state.live ? "Live" : PILLS[liveStatus.mode] || "Connecting…";
      ui.pill.classList.toggle("live", state.live);
      ui.pill.classList.toggle("offline", offline || liveStatus.mode === "error");
      // A camera link without live view has nothing that connects.
      ui.pill.hidden = Boolean(state.link && state.link.kind === "camera" && !state.camera);
    }
    if (ui.appView) {
      ui.appView.el.dataset.live = state.live ? "on" : liveStatus.mode || "connecting";
      ui.appView.el.classList.toggle("offline", offline);
    }
    if (state.camera) {
      state.camera.player.classList.toggle("live", state.live);
      state.camera.status.hidden = state.live;
    }
  }

  function onSet(fn) {
    setHandlers.add(fn);
    return () => setHandlers.delete(fn);
  }

  // ---------- The server's error page ----------

  // Reloads of the error page count towards backoff across page loads.
  const RELOADS_KEY = "linkgate.reloads";

  function reloads() {
    try {
      return Number(sessionStorage.getItem(RELOADS_KEY)) || 0;
    } catch (e) {
      return 0;
    }
  }

  function countReload() {
    try {
      sessionStorage.setItem(RELOADS_KEY, String(reloads() + 1));
    } catch (e) {
      // Storage off: backoff starts over on each load, which is fine.
    }
  }

  function forgetReloads() {
    try {
      sessionStorage.removeItem(RELOADS_KEY);
    } catch (e) {
      // Nothing to forget.
    }
  }

  function enhanceErrorPage() {
    const code = document.body.dataset.code || "";
    const body = app.querySelector(".refusal-body");
    if (!body) return;
    const heading = body.querySelector("h1");
    currentTitle = heading ? heading.textContent : "";
    const reload = () => {
      countReload();
      location.reload();
    };
    const time = body.querySelector("time[datetime]");
    const opensAt = time && parseTime(time.getAttribute("datetime"));
    if (opensAt != null) opensBox(body, opensAt, time.getAttribute("datetime"), reload, backoff(reloads()));
    if (RETRYABLE.has(code)) autoRetry(body, backoff(reloads()), reload);
  }

  // ---------- Start ----------

  /** Exponential backoff with jitter, shared by the live layers' reconnects:
   * 0.5–1 s, 1–2 s, 2–4 s, ... 15–30 s. */
  function backoff(n) {
    const base = Math.min(30000, 1000 * 2 ** Math.min(n, 5));
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }

  function socketURL(name) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/l/${state.token}/${name}`;
  }

  const reopen = () => openSession({ quiet: false });
  const screen = () => current;

  /** What a live layer's socket closing for reason means, the same for the
   * device socket and the camera stream: the link's end shows its screen; a
   * change only the server can explain (not open yet, outside the schedule,
   * another device, live view taken away) opens a new session; too many
   * sessions waits its turn and then runs retry, busy() giving the attempt.
   * Returns false for the reasons the layer recovers from itself (shutdown,
   * unavailable, too slow, a dropped network). */
  function closed(reason, retry, busy) {
    switch (reason) {
      case "disabled":
        refuse("disabled");
        return true;
      case "deleted":
        refuse("not-found");
        return true;
      case "expired":
        refuse("expired");
        return true;
      case "not-yet-active":
      case "outside-schedule":
      case "device-changed":
      case "level-revoked":
        reopen();
        return true;
      case "too-many-sessions":
        refuse("too-many-sessions", { retry, retryAfter: backoff(2 + busy()) });
        return true;
    }
    return false;
  }

  /** What a live layer does when the new session it asked for was refused
   * (r from session()): a lost connection shows the layer's lost(delay)
   * screen and a busy server its refusal, both retrying after a wait,
   * attempt() giving the attempt; the link's own refusal (disabled,
   * expired, not open yet...) shows as it is. */
  function sessionRefused(r, retry, lost, attempt) {
    switch (r.code) {
      case "connection-lost":
        lost(backoff(attempt()));
        break;
      case "unavailable":
      case "rate-limited": {
        const wait = r.opts.retryAfter != null ? r.opts.retryAfter : backoff(attempt());
        refuse(r.code, Object.assign({}, r.opts, { retry, retryAfter: wait }));
        break;
      }
      default:
        refuse(r.code, r.opts);
    }
  }

  window.LinkGate = Object.freeze({
    state,
    setValue,
    setLive,
    onSet,
    render,
    session: requestSession,
    connectionLost,
    showApp,
    refuse,
    reopen,
    closed,
    sessionRefused,
    screen,
    backoff,
    socketURL,
  });

  if (!app) return;
  if (document.body.dataset.page === "error") {
    enhanceErrorPage();
    return;
  }
  state.token = tokenFromPath(location.pathname);
  if (!state.token) {
    refuse("not-found");
    return;
  }
  openSession();
})();
