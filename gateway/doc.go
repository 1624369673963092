// Package gateway is linkgate's public edge: a Fiber app that serves link
// pages and sessions to recipients, the owner API under /api/v1, health and
// metrics. It composes the other packages: tokens for links, emulator for
// devices, web for pages.
//
// The gateway keeps no state of its own that another instance would need:
// Redis holds the records, and the invalidation feed tells every instance
// what changed.
package gateway
