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
// A report is read by a person ([Progress] each second, [WriteSummary] at
// the end), by scripts ([WriteJSON]) and in a browser ([WriteHTML]: one
// self-contained page with latency-over-time and percentile plots), and
// checked by CI: [ParseThreshold] reads conditions such as
// "latency.p99<=5ms" or "errors<0.1%" and [CheckThresholds] records their
// verdicts in the report.
//
// Runs are bounded (a duration or a count) and refuse targets outside
// loopback unless the operator says they own the target.
package loadtest
