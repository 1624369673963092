// Package web holds what a share link's recipient sees in the browser: the
// app-like page served at GET /l/{token}, the refusal pages, and the static
// assets (stylesheet, script, icon) served under /static/.
//
// Everything is plain, hand-written HTML, CSS and JavaScript, embedded into
// the binary. The pages are built for a strict Content-Security-Policy
// (default-src 'none'; script-src 'self'; style-src 'self'; ...): they carry
// no inline script, no inline style and no third-party resource.
//
// The link page is a shell that holds no link data at all, so it is the same
// bytes for every link of a kind and is rendered once, at init. Its script,
// /static/app.js, reads the token from the address, opens a session with
// POST /l/{token}/session and renders the JSON answer: the link's controls
// and readings, a camera's player, or a refusal screen. /static/live.js then
// opens the link's WebSocket (/l/{token}/ws): it fills in the values, sends
// the recipient's commands with per-command feedback, follows the owner's
// changes, shows offline and closing screens, and reconnects with backoff
// (on the same session while it lasts, so blips do not count as uses).
// On camera links /static/camera.js plays /l/{token}/live through Media
// Source Extensions and holds the picture within half a second of live.
//
// The refusal pages (RenderError) are rendered on the server, so they work
// without JavaScript; when it runs, app.js turns the opening time into local
// time with a countdown.
package web
