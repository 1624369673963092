// Package loadtest is linkgate's own load generator for the public edge: link
// opens, session exchanges, WebSocket sessions and camera viewers.
//
// A run ([Run]) drives a [Scenario] under a [Config]: a closed model
// (Connections workers back to back) or an open one (a fixed arrival Rate,
// latency measured from each operation's due time, so that coordinated
// omission is corrected, with late and dropped operations counted). Workers
// record to a [Recorder]: HDR histograms per metric, counts per status and
// error kind, bytes, and a per-second series. The [Report] adds the
// generator's own CPU use, so that a saturated generator shows.
//
// Runs are bounded (a duration or a count) and refuse targets outside
// loopback unless the operator says they own the target.
package loadtest
