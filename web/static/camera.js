/* linkgate: the live picture of a camera link. Plain ES2020, no build step.
 *
 * app.js renders a camera link's app screen with an empty player; this
 * script opens the link's stream socket (GET /l/{token}/live, same origin,
 * the session cookie rides along) and plays it through Media Source
 * Extensions: ManagedMediaSource where the browser has it (Safari on iOS
 * 17.1 and later), MediaSource elsewhere. On device pages, and on camera
 * links without the "live" level, it does nothing.
 * Server messages:
 *   codecs       text, first: the stream's MIME type. A SourceBuffer for it;
 *                a later codecs (the camera's parameters changed) gets a new
 *                one, and a new init segment follows it
 *   binary       the fMP4 init segment, then one fragment (moof+mdat) per
 *                video frame, the first a keyframe
 *   offline, online  the camera's upstream: an overlay over the last picture
 *   closing      the screen for the reason, as on device pages (live.js)
 *
 * Fragments go through one queue, in order: nothing is appended while the
 * SourceBuffer is updating. The buffer runs in "sequence" mode, so a new
 * upstream, a reconnect or frames a slow page lost are spliced on after the
 * picture already there instead of leaving gaps or overlaps.
 *
 * Holding the live edge: "behind" is the newest buffered time minus the
 * playhead. Over LIVE_MAX (0.5 s) the video plays faster, from 1.05x at
 * 0.5 s in proportion up to 1.25x at 1 s and beyond, until it is back under
 * LIVE_TARGET (0.25 s): a hiccup of a second is made up in about three.
 * Over LIVE_JUMP (2 s), or outside the newest buffered range, it jumps to
 * JUMP_TO (0.1 s) before the end; so does a playhead that ran more than
 * OVERSHOOT past the end (a renderer starved of CPU), which would otherwise
 * stand still until the picture caught up. For SETTLE after an init segment
 * (a new socket, a new upstream) anything over LIVE_MAX is jumped, so that
 * the keyframe group the server sends first is not played through: the
 * picture starts live. Every TRIM_EVERY, picture older than KEEP (10 s)
 * behind the playhead is removed, cut at a keyframe so that nothing still
 * shown loses its references; QuotaExceededError trims harder and retries
 * once. So memory and delay stay flat over hours.
 *
 * Browsers with neither ManagedMediaSource nor MediaSource but native HLS
 * (Safari on iPhones before iOS 17.1) play the link's LL-HLS fallback
 * instead: the video's src is GET /l/{token}/hls/index.m3u8 (relative, so
 * the session cookie rides along) and the browser does the rest. Since HLS
 * has no closing message, the page asks the playlist itself when the
 * player fails and every HLS_CHECK: its error code ("disabled",
 * "level-not-granted", "camera-not-ready", ...) picks the same screens as
 * the socket's closing reasons. With neither, the player says so.
 *
 * Autoplay is muted and inline; where the browser still refuses it, a play
 * button. The player shows connecting, live (the LIVE badge and the delay
 * behind the newest picture, "0.3 s"), camera offline (over the last
 * picture), reconnecting, and what this browser cannot do. When the socket
 * drops without a reason that ends the link, it comes back as on device
 * pages: the same session while it lasts, exponential backoff with jitter,
 * the first try quiet (the last picture stays), then the connection-lost
 * screen.
 *
 * The page's Content-Security-Policy refuses inline styles: everything is
 * built with DOM APIs and classes from app.css.
 */
(() => {
  "use strict";

  const LG = window.LinkGate;
  const appEl = document.getElementById("app");
  if (!LG || !appEl || document.body.dataset.page !== "link") return;

  // ---------- Settings ----------

  const FIRST_TIMEOUT = 10000; // an open socket that says nothing is broken
  const STABLE_AFTER = 10000; // a connection this old resets the backoff
  const LIVE_MAX = 0.5; // s behind the newest picture before catching up
  const LIVE_TARGET = 0.25; // s behind at which normal speed resumes
  const LIVE_JUMP = 2; // s behind before jumping instead
  const HIDDEN_JUMP = 10; // the same while the page is hidden (jumps to a keyframe)
  const JUMP_TO = 0.1; // s behind the newest picture after a jump
  const OVERSHOOT = 0.25; // s the playhead may run past the newest picture before it is brought back
  const SETTLE = 2000; // ms after an init segment in which LIVE_MAX already jumps
  const MIN_RATE = 1.05; // at LIVE_MAX behind
  const MAX_RATE = 1.25; // from LIVE_MAX + RATE_SPAN behind
  const RATE_SPAN = 0.5;
  const KEEP = 10; // s of picture kept behind the playhead
  const TRIM_EVERY = 5000; // ms
  const MAX_QUEUE = 250; // fragments waiting for the SourceBuffer (10 s at 25 fps)
  const TICK = 250; // ms between looks at the player
  const STALL_SHOW = 1500; // ms without a new picture before saying so
  const HLS_CHECK = 5000; // ms between looks at the HLS playlist's status

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
    4011: "level-revoked",
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

  const delayFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

  // ---------- What this browser can play ----------

  const MSE = window.ManagedMediaSource || window.MediaSource || null;
  const managed = MSE !== null && MSE === window.ManagedMediaSource;
  /** Native HLS, used only without Media Source Extensions. */
  const HLS =
    !MSE &&
    (() => {
      try {
        return document.createElement("video").canPlayType("application/vnd.apple.mpegurl") !== "";
      } catch (e) {
        return false;
      }
    })();

  function canPlay(mime) {
    try {
      return Boolean(MSE && MSE.isTypeSupported(mime));
    } catch (e) {
      return false;
    }
  }

  /** The codec of a MIME type, for people: "H.265". */
  function codecName(mime) {
    const m = /codecs\s*=\s*"?\s*([a-z0-9]+)/i.exec(mime || "");
    const c = m ? m[1].toLowerCase() : "";
    if (c === "avc1" || c === "avc3") return "H.264";
    if (c === "hvc1" || c === "hev1") return "H.265";
    if (c === "av01") return "AV1";
    if (c === "vp09" || c === "vp9") return "VP9";
    return "";
  }

  // ---------- fMP4 boxes ----------

  // Just enough of ISO BMFF to know which fragments start with a keyframe:
  // the buffer is trimmed at keyframes, and a page that fell behind skips to
  // the next one.

  const u32 = (b, i) => (i + 4 <= b.length ? ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0 : NaN);
  const fourcc = (b, i) => String.fromCharCode(b[i], b[i + 1], b[i + 2], b[i + 3]);

  /** The boxes in b[from, to): [{type, start (of the body), end}]. */
  function boxes(b, from, to) {
    const out = [];
    let i = from;
    while (i + 8 <= to) {
      let size = u32(b, i);
      let head = 8;
      if (size === 1) {
        size = u32(b, i + 8) * 2 ** 32 + u32(b, i + 12);
        head = 16;
      } else if (size === 0) {
        size = to - i;
      }
      if (!(size >= head) || i + size > to) break;
      out.push({ type: fourcc(b, i + 4), start: i + head, end: i + size });
      i += size;
    }
    return out;
  }

  const child = (b, box, type) => boxes(b, box.start, box.end).find((x) => x.type === type);

  /** From an init segment: the video track's id and each track's default
   * sample flags (trex). Null when it does not parse. */
  function parseInit(b) {
    const moov = boxes(b, 0, b.length).find((x) => x.type === "moov");
    if (!moov) return null;
    const info = { video: null, flags: new Map() };
    for (const x of boxes(b, moov.start, moov.end)) {
      if (x.type === "trak") {
        const tkhd = child(b, x, "tkhd");
        const mdia = child(b, x, "mdia");
        const hdlr = mdia && child(b, mdia, "hdlr");
        if (!tkhd || !hdlr) continue;
        const id = u32(b, tkhd.start + 4 + (b[tkhd.start] === 1 ? 16 : 8));
        if (fourcc(b, hdlr.start + 8) === "vide" && info.video === null) info.video = id;
      } else if (x.type === "mvex") {
        for (const t of boxes(b, x.start, x.end)) {
          if (t.type === "trex") info.flags.set(u32(b, t.start + 4), u32(b, t.start + 20));
        }
      }
    }
    return info;
  }

  /** Whether a fragment's first video sample is a sync sample: true, false,
   * or null when the fragment does not say. */
  function isKeyframe(b, info) {
    const moof = boxes(b, 0, b.length).find((x) => x.type === "moof");
    if (!moof) return null;
    for (const traf of boxes(b, moof.start, moof.end)) {
      if (traf.type !== "traf") continue;
      const tfhd = child(b, traf, "tfhd");
      const trun = child(b, traf, "trun");
      if (!tfhd || !trun) continue;
      const id = u32(b, tfhd.start + 4);
      if (info && info.video !== null && id !== info.video) continue;
      let flags = info && info.flags.has(id) ? info.flags.get(id) : null;
      const hf = u32(b, tfhd.start) & 0xffffff;
      let p = tfhd.start + 8;
      if (hf & 0x1) p += 8; // base data offset
      if (hf & 0x2) p += 4; // sample description index
      if (hf & 0x8) p += 4; // default duration
      if (hf & 0x10) p += 4; // default size
      if (hf & 0x20) flags = u32(b, p); // default flags
      const rf = u32(b, trun.start) & 0xffffff;
      let q = trun.start + 8; // after the sample count
      if (rf & 0x1) q += 4; // data offset
      if (rf & 0x4) {
        flags = u32(b, q); // first sample's flags
      } else if (rf & 0x400 && u32(b, trun.start + 4) > 0) {
        if (rf & 0x100) q += 4; // duration
        if (rf & 0x200) q += 4; // size
        flags = u32(b, q);
      }
      if (flags === null || Number.isNaN(flags)) return null;
      return (flags & 0x10000) === 0; // sample_is_non_sync_sample
    }
    return null;
  }

  // ---------- The player ----------

  // The elements of the player box app.js made (state.camera); the video
  // moves along when app.js renders the app again.
  const ui = { player: null, status: null, video: null, delay: null, sound: null, audioNote: null };

  // What the player shows: "connecting", "live", "waiting", "offline",
  // "reconnecting", "paused", or one of the fatal ones, "no-mse" and "codec".
  const view = {
    state: "",
    fatal: "",
    blocked: false, // the browser refused to play without a tap
    playPending: false,
    lastTime: -1,
    movedAt: 0, // when the playhead last moved (performance.now())
    picture: false, // a frame has been decoded
    unplayable: "", // the MIME type of a stream this browser cannot play
    ticker: 0,
  };

  function makeVideo() {
    const video = h("video", { class: "player-video", muted: true, autoplay: true, playsinline: true, "aria-hidden": "true" });
    video.muted = true;
    video.defaultMuted = true;
    video.playsInline = true;
    video.autoplay = true;
    if (managed) video.disableRemotePlayback = true; // ManagedMediaSource wants it (no AirPlay source here)
    video.addEventListener("playing", () => {
      view.blocked = false;
      media.played = true;
      tick();
    });
    video.addEventListener("loadeddata", () => {
      view.picture = true;
      if (ui.player) ui.player.classList.add("has-picture");
    });
    video.addEventListener("error", () => {
      if (media.ms && video.error) mediaBroken();
      else if (conn.hls && video.error) checkHLS();
    });
    video.addEventListener("playing", () => {
      if (conn.hls) hlsOpened();
    });
    return video;
  }

  /** Puts the picture into the player box app.js rendered. False when there
   * is none (the link has no live view) or this browser cannot play. */
  function mount() {
    const cam = LG.state.camera;
    if (!cam || !cam.player || !cam.status) return false;
    if (ui.player !== cam.player) {
      ui.player = cam.player;
      ui.status = cam.status;
      view.state = "";
      if (MSE || HLS) {
        if (!ui.video) ui.video = makeVideo();
        if (!ui.delay) {
          ui.delay = h("span", { class: "player-delay", title: "Delay behind the newest picture", "aria-hidden": "true" });
        }
        ui.player.prepend(ui.video);
        (ui.player.querySelector(".player-bar") || ui.player).append(ui.delay);
        ui.player.classList.toggle("has-picture", view.picture);
        if (ui.sound) ui.player.append(ui.sound);
      }
    }
    if (!MSE && !HLS) view.fatal = "no-mse";
    if (view.fatal) {
      show(view.fatal);
      return false;
    }
    if (!view.ticker) view.ticker = setInterval(tick, TICK);
    return true;
  }

  /** The overlay over the picture: an icon or spinner, a line, maybe a note
   * and a button. */
  function setStatus(visual, title, note, button) {
    ui.status.replaceChildren(
      ...[visual, h("p", { class: "player-title" }, title), note && h("p", { class: "player-note" }, note), button].filter(Boolean)
    );
  }

  /** Shows state on the player and tells app.js (the pill, the announcer). */
  function show(state) {
    if (!ui.player || state === view.state) return;
    view.state = state;
    ui.player.dataset.state = state;
    switch (state) {
      case "live":
        ui.status.replaceChildren();
        LG.setLive(true);
        return;
      case "connecting":
        setStatus(spinner(), "Connecting…");
        if (LG.state.live) LG.setLive(false, "Connecting to the camera…"); // the page opens connecting anyway
        return;
      case "waiting":
        setStatus(spinner(), "Waiting for the picture…");
        LG.setLive(false, "Waiting for the camera's picture…");
        return;
      case "reconnecting":
        setStatus(spinner(), "Reconnecting…", "The connection was interrupted.");
        LG.setLive(false, "Connection lost. Reconnecting…");
        return;
      case "offline":
        setStatus(icon("camera-off"), "Camera offline", "The picture comes back when the camera reconnects.");
        LG.setLive(false, "The camera is offline. The picture comes back when it reconnects.", "offline");
        return;
      case "paused": {
        const button = h("button", { type: "button", class: "player-play" }, icon("play"), "Play live view");
        button.addEventListener("click", () => play(true));
        setStatus(null, "Live view is paused", "Your browser waits for a tap before it plays video.", button);
        LG.setLive(false, "Live view is paused. Press play to watch.", "paused");
        return;
      }
      case "no-mse":
        setStatus(icon("alert"), "This browser can't play live video here", "Open this link in a current version of Chrome, Edge, Firefox or Safari.");
        LG.setLive(false, "This browser can't play live video here.", "error");
        return;
      case "codec": {
        const name = codecName(view.unplayable);
        setStatus(
          icon("alert"),
          "This browser can't play this camera's video",
          `The camera sends ${name || "a video format"} that this browser doesn't support. Try another browser or device.`
        );
        LG.setLive(false, "This browser can't play this camera's video.", "error");
        return;
      }
    }
  }

  /** A state nothing here can mend: no more connecting. */
  function fatal(state) {
    view.fatal = state;
    conn.reconnecting = false;
    teardown();
    resetMedia();
    show(state);
  }

  /** Looks at the player: keeps it at the live edge and says what it shows. */
  function tick() {
    const v = ui.video;
    if (!ui.player || !v || view.fatal || !ui.player.isConnected) return; // not on screen: no socket either
    keepLive();
    const now = performance.now();
    if (v.currentTime !== view.lastTime) {
      view.lastTime = v.currentTime;
      if (!v.paused) view.movedAt = now;
    }
    if (v.paused && media.started && !view.blocked && !view.playPending && !document.hidden) play(false);
    let state;
    if (conn.reconnecting) state = "reconnecting";
    else if (conn.offline) state = "offline";
    else if (view.blocked && v.paused) state = "paused";
    else if (!media.played) state = "connecting";
    else if (!v.paused && now - view.movedAt < STALL_SHOW) state = "live";
    else state = view.state === "live" || view.state === "waiting" ? "waiting" : "connecting";
    show(state);
    if (state === "live") {
      const behind = liveDelay();
      ui.delay.textContent = behind === null ? "" : `${delayFormat.format(Math.max(0, behind))} s`;
    }
  }

  /** Plays; byUser when a person pressed play. */
  function play(byUser) {
    const v = ui.video;
    if (!v) return;
    if (byUser) {
      view.blocked = false;
      media.settleUntil = performance.now() + SETTLE; // back to live at once, not sped through
    }
    view.playPending = true;
    let p;
    try {
      p = v.play();
    } catch (e) {
      p = null;
    }
    if (!p || typeof p.then !== "function") {
      view.playPending = false;
      return;
    }
    p.then(
      () => {
        view.playPending = false;
        view.blocked = false;
      },
      (e) => {
        view.playPending = false;
        if (e && e.name === "NotAllowedError") view.blocked = true;
        tick();
      }
    );
  }

  // ---------- Sound, for cameras that send it ----------

  function soundButton(on) {
    if (!on) {
      if (ui.sound) ui.sound.hidden = true;
      return;
    }
    if (!ui.sound) {
      ui.sound = h("button", { type: "button", class: "player-sound", "aria-pressed": "false", "aria-label": "Sound" }, icon("sound-off"));
      ui.sound.addEventListener("click", () => {
        const v = ui.video;
        v.muted = !v.muted;
        ui.sound.setAttribute("aria-pressed", String(!v.muted));
        ui.sound.replaceChildren(icon(v.muted ? "sound-off" : "sound"));
        if (v.paused) play(true);
      });
      if (ui.player) ui.player.append(ui.sound);
    }
    ui.sound.hidden = false;
  }

  /** Says, under the picture, that the camera's sound cannot be carried to
   * a browser (G.711 and the like): the stream is video only. */
  function audioNote(on) {
    if (!on) {
      if (ui.audioNote) ui.audioNote.hidden = true;
      return;
    }
    if (!ui.audioNote && ui.player) {
      ui.audioNote = h("p", { class: "player-note", role: "note" }, "This camera's sound can't be played in a browser; you see its video only.");
      ui.player.after(ui.audioNote);
    }
    if (ui.audioNote) ui.audioNote.hidden = false;
  }

  // ---------- Media Source ----------

  const media = {
    ms: null,
    url: "",
    sb: null,
    mime: "",
    info: null, // from the init segment: which track is video, default flags
    queue: [], // {op: "append", data, key} | {op: "remove", end} | {op: "type", mime}
    keys: [], // where keyframes start on the buffer's timeline (s), oldest first
    waitKey: false, // drop fragments until a keyframe
    started: false, // a fragment has been appended
    played: false, // the picture has played (after a reset: again)
    trimmed: 0, // when the buffer was last trimmed (ms)
    settleUntil: 0, // until then a new stream's first frames are jumped, not sped through
    keyed: false, // keyframes are told apart (else the buffer is cut by time alone)
  };

  /** A new MediaSource on the video; the SourceBuffer comes on sourceopen. */
  function openMedia() {
    closeMedia();
    const ms = new MSE();
    media.ms = ms;
    ms.addEventListener("sourceopen", () => {
      if (media.ms === ms) addBuffer();
    });
    media.url = URL.createObjectURL(ms);
    ui.video.src = media.url;
  }

  function closeMedia() {
    media.ms = null;
    media.sb = null;
    media.queue = [];
    media.keys = [];
    media.waitKey = false;
    media.started = false;
    media.played = false;
    if (media.url) URL.revokeObjectURL(media.url);
    media.url = "";
    if (ui.video && ui.video.hasAttribute("src")) {
      ui.video.removeAttribute("src");
      ui.video.load();
    }
  }

  /** Forgets the stream: the next codecs message starts over. */
  function resetMedia() {
    closeMedia();
    media.mime = "";
    media.info = null;
    media.keyed = false;
    view.picture = false;
    if (ui.player) ui.player.classList.remove("has-picture");
  }

  function addBuffer() {
    const ms = media.ms;
    if (!ms || ms.readyState !== "open" || media.sb || !media.mime) return;
    let sb;
    try {
      sb = ms.addSourceBuffer(media.mime);
    } catch (e) {
      mediaBroken();
      return;
    }
    try {
      sb.mode = "sequence";
    } catch (e) {
      // Timestamps as sent, then; the jumps below still find the picture.
    }
    sb.addEventListener("updateend", () => {
      if (media.sb === sb) updated();
    });
    media.sb = sb;
    pump();
  }

  /** The stream's type: a new SourceBuffer type, or the first one. */
  function onCodecs(mime) {
    if (!canPlay(mime)) {
      view.unplayable = mime;
      fatal("codec");
      return;
    }
    soundButton(/mp4a|opus|ac-3|ec-3/i.test(mime));
    if (mime === media.mime && media.ms) return; // the same: its new init segment follows
    const was = media.mime;
    media.mime = mime;
    if (!media.ms || !was) {
      openMedia();
    } else if (!media.sb) {
      media.queue = []; // nothing appended yet: the new type from the start
    } else if (typeof media.sb.changeType === "function") {
      queue({ op: "type", mime });
    } else {
      openMedia(); // a browser without changeType: a new MediaSource
    }
  }

  function onMedia(buf) {
    if (!media.ms || !(buf instanceof ArrayBuffer) || buf.byteLength < 8) return;
    const b = new Uint8Array(buf);
    const type = fourcc(b, 4);
    if (type === "ftyp" || type === "moov") {
      media.info = parseInit(b);
      media.waitKey = true;
      media.settleUntil = performance.now() + SETTLE; // the server's cached keyframe group follows at once
      queue({ op: "append", data: buf, key: false });
      return;
    }
    const key = isKeyframe(b, media.info);
    media.keyed = media.keyed || key === true;
    if (media.waitKey && key === false) return;
    media.waitKey = false;
    if (media.queue.length >= MAX_QUEUE) {
      // The buffer does not keep up: skip to the next keyframe.
      media.queue = media.queue.filter((op) => op.op !== "append" || !op.fragment);
      if (key === false) {
        media.waitKey = true;
        return;
      }
    }
    queue({ op: "append", data: buf, key: key === true, fragment: true });
  }

  function queue(op) {
    media.queue.push(op);
    pump();
  }

  /** Runs queued operations while the SourceBuffer is free. */
  function pump() {
    const { ms, sb } = media;
    if (!sb || !ms || ms.readyState !== "open") return;
    while (media.queue.length > 0 && !sb.updating) {
      const op = media.queue[0];
      try {
        if (op.op === "type") {
          media.queue.shift();
          sb.changeType(op.mime);
          continue;
        }
        if (op.op === "remove") {
          media.queue.shift();
          if (op.end > 0) sb.remove(0, op.end);
          continue;
        }
        const at = bufferedEnd();
        sb.appendBuffer(op.data);
        media.queue.shift();
        if (op.key) media.keys.push(at);
        media.started = media.started || op.fragment === true;
      } catch (e) {
        if (e && e.name === "QuotaExceededError" && op.op === "append" && !op.retried) {
          op.retried = true;
          if (makeRoom()) continue;
        }
        mediaBroken();
        return;
      }
    }
  }

  /** After each append or removal. */
  function updated() {
    keepLive();
    const now = Date.now();
    if (now - media.trimmed > TRIM_EVERY) {
      media.trimmed = now;
      trim();
    }
    if (media.started && ui.video.paused && !view.blocked && !view.playPending && !document.hidden) play(false);
    pump();
  }

  function bufferedEnd() {
    const b = ui.video.buffered;
    return b.length ? b.end(b.length - 1) : 0;
  }

  /** Seconds between the playhead and the newest picture, or null. */
  function liveDelay() {
    const v = ui.video;
    const b = v && v.buffered;
    if (!b || !b.length) return null;
    return b.end(b.length - 1) - v.currentTime;
  }

  /** The newest keyframe at or before t, or null. */
  function keyBefore(t) {
    for (let i = media.keys.length - 1; i >= 0; i--) if (media.keys[i] <= t) return media.keys[i];
    return null;
  }

  /** Removes picture older than KEEP behind the playhead, from a keyframe on
   * (so that what stays decodes). */
  function trim() {
    const v = ui.video;
    const b = v.buffered;
    if (!b.length) return;
    const limit = v.currentTime - KEEP;
    const cut = media.keyed ? keyBefore(limit) : limit;
    if (cut === null || cut - 0.1 <= b.start(0)) return;
    media.keys = media.keys.filter((k) => k >= cut);
    media.queue.unshift({ op: "remove", end: cut - 0.1 });
    pump();
  }

  /** The buffer is full: drops everything before the keyframe the playhead
   * is in; when everything is ahead of it (a page paused for long), jumps to
   * the newest keyframe first. False when nothing can go. */
  function makeRoom() {
    const v = ui.video;
    const b = v.buffered;
    if (!b.length) return false;
    let cut = media.keyed ? keyBefore(v.currentTime) : v.currentTime - 1;
    if (cut === null || cut - 0.1 <= b.start(0)) {
      const newest = media.keys.length ? media.keys[media.keys.length - 1] : null;
      if (newest === null || newest - 0.1 <= b.start(0)) return false;
      v.currentTime = newest;
      cut = newest;
    }
    media.keys = media.keys.filter((k) => k >= cut);
    media.queue.unshift({ op: "remove", end: cut - 0.1 });
    return true;
  }

  /** Keeps the playhead close behind the newest picture (see the top). */
  function keepLive() {
    const v = ui.video;
    if (!v || !media.sb) return;
    const b = v.buffered;
    if (!b.length) return;
    const start = b.start(b.length - 1);
    const end = b.end(b.length - 1);
    const t = v.currentTime;
    const behind = end - t;
    const jump = document.hidden ? HIDDEN_JUMP : performance.now() < media.settleUntil ? LIVE_MAX : LIVE_JUMP;
    if (t < start || behind > jump || behind < -OVERSHOOT) {
      let to = Math.max(start, end - JUMP_TO);
      if (document.hidden) {
        const k = keyBefore(end);
        if (k !== null && k >= start) to = k; // no decoding up to the end for a page no one sees
      }
      if (!v.seeking && Math.abs(to - t) > 0.02) v.currentTime = to;
      setRate(1);
      return;
    }
    if (behind > LIVE_MAX) {
      setRate(MIN_RATE + (MAX_RATE - MIN_RATE) * Math.min(1, (behind - LIVE_MAX) / RATE_SPAN));
    } else if (behind <= LIVE_TARGET) {
      setRate(1);
    }
  }

  function setRate(r) {
    const v = ui.video;
    if (Math.abs(v.playbackRate - r) > 0.005) v.playbackRate = r;
  }

  /** The media pipeline failed (a decode error, a rejected append): start
   * it over on a new socket, which begins with codecs, init and a keyframe. */
  function mediaBroken() {
    resetMedia();
    lost();
  }

  // ---------- The socket ----------

  const conn = {
    ws: null,
    epoch: 0, // bumped whenever the socket is let go: late events of an old one check it
    open: false, // the server spoke on this socket
    worked: false, // the session cookie opened the last socket
    offline: false, // the camera is offline, as the server last said
    reconnecting: false, // a quiet retry is on its way
    failures: 0, // connections in a row that did not last; for backoff
    busy: 0, // "too many sessions" in a row
    firstTimer: 0,
    stableTimer: 0,
    retryTimer: 0,
    hls: false, // the video plays the HLS fallback
    hlsTimer: 0,
  };

  const backoff = LG.backoff;

  const socketURL = () => LG.socketURL("live");

  /** Lets the current socket go, quietly, with its timers. The picture stays. */
  function teardown() {
    conn.epoch++;
    clearTimeout(conn.firstTimer);
    clearTimeout(conn.stableTimer);
    clearTimeout(conn.retryTimer);
    clearInterval(conn.hlsTimer);
    if (conn.hls) {
      conn.hls = false;
      closeMedia(); // the src goes; the next connect sets it again
    }
    const ws = conn.ws;
    conn.ws = null;
    conn.open = false;
    conn.offline = false;
    if (ws) {
      try {
        ws.close(1000);
      } catch (e) {
        // Already closing.
      }
    }
  }

  function isCamera() {
    const link = LG.state.link;
    return Boolean(link && link.kind === "camera" && LG.state.token);
  }

  function connect() {
    teardown();
    if (!isCamera() || !mount()) return;
    if (!MSE) {
      connectHLS();
      return;
    }
    const epoch = conn.epoch;
    let ws;
    try {
      ws = new WebSocket(socketURL());
    } catch (e) {
      lost();
      return;
    }
    ws.binaryType = "arraybuffer";
    conn.ws = ws;
    if (!media.played) show("connecting");
    conn.firstTimer = setTimeout(() => {
      if (epoch === conn.epoch) lost();
    }, FIRST_TIMEOUT);
    ws.addEventListener("message", (e) => {
      if (epoch === conn.epoch) receive(e.data);
    });
    ws.addEventListener("close", (e) => {
      if (epoch === conn.epoch) end(CLOSE_REASONS[e.code] || "");
    });
  }

  // ---------- The HLS fallback ----------

  const hlsURL = () => `/l/${LG.state.token}/hls/index.m3u8`;

  function connectHLS() {
    const epoch = conn.epoch;
    conn.hls = true;
    if (!media.played) show("connecting");
    media.started = true; // tick() presses play
    ui.video.src = hlsURL();
    play(false);
    conn.hlsTimer = setInterval(() => {
      if (epoch === conn.epoch) checkHLS();
    }, HLS_CHECK);
  }

  /** The picture plays: the connection works. */
  function hlsOpened() {
    conn.offline = false;
    if (conn.open) return;
    conn.open = true;
    conn.worked = true;
    conn.reconnecting = false;
    clearTimeout(conn.stableTimer);
    conn.stableTimer = setTimeout(() => {
      conn.failures = 0;
      conn.busy = 0;
    }, STABLE_AFTER);
    if (LG.screen() !== "app") LG.showApp();
    tick();
  }

  /** Asks the playlist how the link stands, after a player error and every
   * HLS_CHECK: an error code there means what a closing reason means. */
  async function checkHLS() {
    const epoch = conn.epoch;
    const failed = Boolean(ui.video && ui.video.error);
    let r;
    try {
      r = await fetch(hlsURL(), { credentials: "same-origin", cache: "no-store" });
    } catch (e) {
      if (epoch === conn.epoch && failed) lost();
      return;
    }
    if (epoch !== conn.epoch) return;
    if (r.ok) {
      if (conn.offline) {
        conn.offline = false;
        tick();
      }
      if (failed) lost(); // the player gave up, the stream is back: start it again
      return;
    }
    let code = "";
    try {
      code = ((await r.json()).error || {}).code || "";
    } catch (e) {
      // Not our JSON: a proxy's page.
    }
    if (epoch !== conn.epoch) return;
    switch (code) {
      case "disabled":
      case "expired":
        end(code);
        break;
      case "not-found":
        end("deleted");
        break;
      case "not-yet-active":
      case "outside-schedule":
      case "level-not-granted":
        end("level-revoked"); // asks the server what the link is now
        break;
      case "session-invalid":
        conn.worked = false; // a new session; its answer says if the link closed
        reconnect();
        break;
      case "camera-not-ready":
        conn.offline = true;
        tick();
        if (failed) lost();
        break;
      default:
        if (code === "used-up" || code === "forbidden-origin") {
          teardown();
          LG.refuse(code);
        } else if (failed || r.status >= 500) {
          lost();
        }
    }
  }

  function receive(data) {
    if (typeof data !== "string") {
      if (conn.open) onMedia(data);
      return;
    }
    let m;
    try {
      m = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!m || typeof m !== "object") return;
    switch (m.type) {
      case "codecs":
        opened();
        audioNote(m.audio === "unsupported");
        if (typeof m.mime === "string" && m.mime) onCodecs(m.mime);
        break;
      case "offline":
        opened();
        conn.offline = true;
        tick();
        break;
      case "online":
        conn.offline = false;
        tick();
        break;
      case "closing":
        end(String(m.reason || CLOSE_REASONS[m.code] || ""));
        break;
    }
  }

  /** The server spoke on a new socket: the connection works. */
  function opened() {
    if (conn.open) return;
    conn.open = true;
    conn.worked = true;
    conn.reconnecting = false;
    clearTimeout(conn.firstTimer);
    conn.stableTimer = setTimeout(() => {
      conn.failures = 0;
      conn.busy = 0;
    }, STABLE_AFTER);
    if (LG.screen() !== "app") LG.showApp();
    if (ui.video && media.started && ui.video.paused) play(false);
    tick();
  }

  /** The session ended: show what that means for the reason given. */
  function end(reason) {
    teardown();
    if (view.fatal) return;
    if (!LG.closed(reason, reconnect, () => conn.busy++)) lost();
  }

  /** The connection is gone for no lasting reason: try again, with backoff. */
  function lost() {
    teardown();
    const delay = backoff(conn.failures++);
    if (conn.failures === 1 && LG.screen() === "app") {
      // The first time, quietly: the last picture stays, with a note.
      conn.reconnecting = true;
      tick();
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
      message: "The connection to the camera was interrupted. This page reconnects by itself.",
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

  const signature = (v) => JSON.stringify([v.link, v.device]);

  /** A new socket, on the same session while it lasts, otherwise on a new
   * one (whose answer may show that the owner changed the link meanwhile). */
  async function reconnect() {
    teardown();
    const epoch = conn.epoch;
    if (sessionReusable()) {
      conn.worked = false; // until this socket proves the session still good
      connect();
      return;
    }
    const r = await LG.session();
    if (epoch !== conn.epoch) return; // something else took over meanwhile
    if (r.ok) {
      LG.state.session = r.view.session;
      if (signature(r.view) !== signature({ link: LG.state.link, device: LG.state.device })) {
        LG.render({ link: r.view.link, device: r.view.device, state: {} });
        if (!LG.state.camera) {
          // Live view is no longer part of the link: the app says so.
          conn.reconnecting = false;
          resetMedia();
          LG.showApp();
          return;
        }
      }
      connect();
      return;
    }
    LG.sessionRefused(r, reconnect, connectionLost, () => conn.failures++);
  }

  // ---------- Start ----------

  /** A fresh render of the app (a new session): a new stream. */
  function start() {
    teardown();
    resetMedia();
    conn.reconnecting = false;
    if (view.fatal === "codec") view.fatal = ""; // perhaps another camera now
    connect();
  }

  document.addEventListener("linkgate:ready", start);
  document.addEventListener("linkgate:closed", teardown);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    media.settleUntil = performance.now() + SETTLE; // a page seen again starts live
    tick();
  });
  if (LG.screen() === "app" && LG.state.link) start();
})();
