package loadtest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Report is what a run measured. Its JSON form is the load tool's report
// file; latencies are in milliseconds.
type Report struct {
	Scenario    string    `json:"scenario"`
	Target      string    `json:"target,omitempty"`
	Model       Model     `json:"model"`
	Connections int       `json:"connections"`
	Rate        float64   `json:"rate,omitempty"` // open model: the intended rate, per second
	Started     time.Time `json:"started"`
	Elapsed     float64   `json:"elapsed"` // seconds

	Ops      int64   `json:"ops"`               // operations finished
	Achieved float64 `json:"achieved"`          // operations finished per second
	Late     int64   `json:"late,omitempty"`    // open model: started over LateAfter past due
	Dropped  int64   `json:"dropped,omitempty"` // open model: due before the end, never started

	Metrics  map[string]Summary `json:"metrics"` // latency by metric name
	Counts   map[string]int64   `json:"counts"`  // "status 200", "error timeout", ...
	BytesIn  int64              `json:"bytesIn"`
	BytesOut int64              `json:"bytesOut"`
	Series   []Second           `json:"series"`

	Generator Generator `json:"generator"`
	// Info carries a scenario's own figures (Redis calls, RSS, ...).
	Info map[string]float64 `json:"info,omitempty"`
	// Thresholds holds the thresholds the run was checked against
	// ([CheckThresholds]), in the order given.
	Thresholds []ThresholdResult `json:"thresholds,omitempty"`
}

// Passed reports whether every threshold checked passed (true when none
// was).
func (r *Report) Passed() bool {
	for _, t := range r.Thresholds {
		if !t.Pass {
			return false
		}
	}
	return true
}

// Generator describes the load generator's own use of the machine. A CPU
// close to Cores*100 means the generator, not the target, was the limit.
type Generator struct {
	CPU   float64 `json:"cpu"`   // percent of one core, averaged over the run
	Cores int     `json:"cores"` // GOMAXPROCS
}

// ErrorKind names an error's kind for the counts: "timeout", "refused",
// "reset", "eof", "closed", "canceled" or "other".
func ErrorKind(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	var k interface{ Kind() string }
	if errors.As(err, &k) {
		return k.Kind()
	}
	return "other"
}

// SetInfo sets one of the report's own figures.
func (r *Report) SetInfo(name string, v float64) {
	if r.Info == nil {
		r.Info = map[string]float64{}
	}
	r.Info[name] = v
}
