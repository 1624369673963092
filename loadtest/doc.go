// Package loadtest will be linkgate's own load generator for the public edge:
// link opens, session exchanges, WebSocket sessions and media viewers, on an
// open-model rate with HDR latency histograms.
//
// Until it lands, BENCHMARKS.md measures link opens with wrk against a live
// gateway and a bare Fiber handler side by side (see bench-open.sh here).
package loadtest
