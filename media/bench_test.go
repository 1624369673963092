package media

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkFanOut100 measures what one frame costs the camera goroutine
// with 100 viewers: the group-of-pictures cache and one queue push (and
// wake-up) per viewer, the fragment's bytes shared by all. The viewers'
// goroutines and 100 readers run as in production; between frames (timer
// stopped) the benchmark waits until every reader has taken the frame, as
// it would have by the next frame at 25 fps.
func BenchmarkFanOut100(b *testing.B) {
	const viewers = 100
	m := NewManager(Config{})
	defer m.Close()
	c := newCamera(m.ctx, m, "cam", &cameraStats{})

	var list []*Viewer
	for range viewers {
		v := newViewer(context.Background(), c)
		c.viewers[v] = struct{}{}
		list = append(list, v)
		c.pumps.Add(1)
		go func() {
			defer c.pumps.Done()
			v.pump()
		}()
		go func() {
			for range v.Messages() {
			}
		}()
	}
	defer func() {
		for _, v := range list {
			v.end(nil)
		}
		c.pumps.Wait()
	}()

	init := &initSegment{codecs: []byte(`{"type":"codecs"}`), data: make([]byte, 700)}
	key := &fragment{data: make([]byte, 20<<10), key: true, init: init}
	delta := &fragment{data: make([]byte, 2<<10), init: init}

	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%25 == 0 {
			c.publish(key)
		} else {
			c.publish(delta)
		}
		n++
		b.StopTimer()
		for _, v := range list {
			for v.queuedBytes() > 0 {
				runtime.Gosched()
			}
		}
		b.StartTimer()
	}
	if len(c.viewers) != viewers || c.stats.skips.Load() != 0 {
		b.Fatalf("%d viewers left, %d skips", len(c.viewers), c.stats.skips.Load())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/viewers, "ns/viewer")
}

// BenchmarkMuxFrame measures what one video frame costs a camera, once for
// all its viewers: normalization, decode time, AVCC and fMP4 marshaling.
func BenchmarkMuxFrame(b *testing.B) {
	c := loadClip(b, "h264.h264")
	var m muxer
	m.startSession(&tracks{video: codecH264, sps: c.sps, pps: c.pps})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := m.video(c.aus[i%len(c.aus)], int64(i)*3600, time.Time{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTimeToFirstFrame measures Watch on a camera that is already
// online to the first fragment out of Messages (real RTSP upstream, cached
// group of pictures); p50 and p99 are reported.
func BenchmarkTimeToFirstFrame(b *testing.B) {
	cam := startCam(b, camOpts{})
	m, _ := newTestManager(b, Config{Linger: time.Minute})
	warm, err := m.Watch(context.Background(), "cam", cam.source())
	if err != nil {
		b.Fatal(err)
	}
	defer warm.Close()
	go func() {
		for range warm.Messages() {
		}
	}()
	waitFor(b, 10*time.Second, "the camera to be online", func() bool { return m.Stats("cam").Online })

	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		v, err := m.Watch(context.Background(), "cam", cam.source())
		if err != nil {
			b.Fatal(err)
		}
		for msg := range v.Messages() {
			if len(msg.Binary) > 8 && string(msg.Binary[4:8]) == "moof" {
				break
			}
		}
		took = append(took, time.Since(start))
		v.Close()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "ns/first-frame-p50")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "ns/first-frame-p99")
}
