package gateway

import (
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the gateway's own counters; the cache's and feed's counters
// are read from those components when scraped.
type metrics struct {
	opens       *prometheus.CounterVec
	opensOK     prometheus.Counter
	opensBy     map[string]prometheus.Counter // refusal code -> child, made once
	sessions    *prometheus.CounterVec
	rateLimited prometheus.Counter
	// cameraLatency and cameraSendLatency are observed by each camera
	// socket's writer, once per live fragment written.
	cameraLatency     prometheus.Histogram
	cameraSendLatency prometheus.Histogram
	// The stages of an owner change reaching open pages: feedLag is
	// observed by the feed's goroutine for each event, relink by the
	// goroutine that applies a link's change to its sessions here,
	// closeWrite by each socket's writer as it closes the session.
	feedLag    prometheus.Histogram
	relink     prometheus.Histogram
	closeWrite prometheus.Histogram
	handler    fiber.Handler
}

// stageBuckets are fine from 0.1 ms to 20 ms (the revocation's targets are
// 15 ms at p99, 100 ms at most), with a coarse tail to 5 s.
var stageBuckets = []float64{
	.0001, .00025, .0005, .00075, .001, .0015, .002, .003, .004, .005, .0075, .01,
	.015, .02, .03, .05, .1, .25, .5, 1, 2.5, 5,
}

// cameraLatencyBuckets are fine to 100 ms, finest below 10 ms (the issue's
// target) and around a 25 fps frame interval (what a muxer that held each
// frame until the next one added), with a coarse tail to 5 s.
var cameraLatencyBuckets = []float64{
	.00025, .0005, .001, .002, .003, .004, .005, .0075, .01, .015, .02, .025, .03,
	.035, .0375, .04, .0425, .045, .0475, .05, .06, .075, .1, .25, .5, 1, 2.5, 5,
}

func newCameraLatency() (added, send prometheus.Histogram) {
	added = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "linkgate_camera_added_latency_seconds",
		Help:    "Latency this server adds to live video: from reading the first RTP packet of an access unit to the return of the WebSocket write of its fragment, per viewer. It includes the arrival of the unit's other packets and the muxing, and, for an upstream session's first keyframe of a camera that announces audio, the wait for the first audio (at most one frame interval).",
		Buckets: cameraLatencyBuckets,
	})
	send = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "linkgate_camera_send_latency_seconds",
		Help:    "The part of linkgate_camera_added_latency_seconds after the fragment is made: fan-out, the viewer's queue, the WebSocket write.",
		Buckets: cameraLatencyBuckets,
	})
	return added, send
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		opens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkgate_link_opens_total", Help: "Link page opens by outcome (ok or an error code).",
		}, []string{"outcome"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkgate_sessions_total", Help: "Session exchanges by outcome (ok or an error code).",
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkgate_rate_limited_total", Help: "Requests refused with 429.",
		}),
	}
	m.cameraLatency, m.cameraSendLatency = newCameraLatency()
	m.feedLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "linkgate_feed_lag_seconds",
		Help:    "Invalidation feed events: from the publish (the publisher's clock) to this instance reading the event.",
		Buckets: stageBuckets,
	})
	m.relink = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "linkgate_relink_seconds",
		Help:    "Link changes with open sessions here: from reading the feed event to each session told (closed at once for a disable or a delete; otherwise once the link's record is read again and applied).",
		Buckets: stageBuckets,
	})
	m.closeWrite = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "linkgate_session_close_seconds",
		Help:    "Sessions closed by the server: from the decision to close to the return of the close frame's write.",
		Buckets: stageBuckets,
	})
	cache, feed := s.cache.Stats(), s.feed.Stats()
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		m.opens, m.sessions, m.rateLimited, m.cameraLatency, m.cameraSendLatency,
		m.feedLag, m.relink, m.closeWrite,
		counter("linkgate_link_cache_hits_total", "Link cache hits.", func() float64 { return float64(cache.Hits.Load()) }),
		counter("linkgate_link_cache_misses_total", "Link cache misses (each costs at most one shared Redis read).", func() float64 { return float64(cache.Misses.Load()) }),
		counter("linkgate_link_cache_flushes_total", "Whole-cache flushes (feed reconnects and gaps).", func() float64 { return float64(cache.Flushes.Load()) }),
		counter("linkgate_feed_events_total", "Invalidation feed events read.", func() float64 { return float64(feed.Events.Load()) }),
		counter("linkgate_feed_gaps_total", "Gaps seen in the invalidation feed.", func() float64 { return float64(feed.Gaps.Load()) }),
		counter("linkgate_feed_reconnects_total", "Invalidation feed reconnects.", func() float64 { return float64(feed.Reconnects.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "linkgate_feed_healthy", Help: "1 while the invalidation feed is followed."}, func() float64 {
			if s.feed.Healthy() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "linkgate_link_cache_entries", Help: "Link records cached."}, func() float64 { return float64(s.cache.Len()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// The hot path's child is created once, so opens do no label look-up.
	m.opensOK = m.opens.WithLabelValues("ok")
	m.opensBy = make(map[string]prometheus.Counter)
	for _, code := range []string{codeNotFound, codeDisabled, codeExpired, codeUsedUp, codeNotYetActive, codeOutsideSched, codeRateLimited, codeUnavailable, codeInternal} {
		m.opensBy[code] = m.opens.WithLabelValues(code)
	}
	m.handler = adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

// openRefused counts a refused open by its code.
func (m *metrics) openRefused(code string) {
	if c, ok := m.opensBy[code]; ok {
		c.Inc()
		return
	}
	m.opens.WithLabelValues(code).Inc()
}
