package democam

import (
	"context"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/rtp"
)

// frameDuration is the time between two access units.
const frameDuration = time.Second / frameRate

// maxLag is how far publishing may fall behind its schedule (a stalled
// process, a suspended machine) before the schedule restarts from now rather
// than bursting the missed access units.
const maxLag = time.Second

// publisher plays a clip in a loop at its frame rate, as RTP packets. Access
// unit n, counted from the start and across loops, is due at
// start+n*frameDuration and carries the RTP timestamp rtpStart+n*3600, so
// timestamps keep growing when the clip starts over (modulo 2^32, as RTP
// timestamps do). Only the goroutine in run uses it.
type publisher struct {
	clip     *clip
	enc      *rtph264.Encoder
	rtpStart uint32
	// write sends one packet; ntp is the wall-clock time the packet's
	// access unit stands for, for RTCP sender reports.
	write func(pkt *rtp.Packet, ntp time.Time) error
}

// run publishes until ctx is done, starting at once with the first access
// unit (an IDR), and returns nil then, or the first error of write.
func (p *publisher) run(ctx context.Context) error {
	ticker := time.NewTicker(frameDuration)
	defer ticker.Stop()

	start := time.Now()
	var n int64 // access units sent
	for {
		now := time.Now()
		if now.Sub(start)-time.Duration(n)*frameDuration > maxLag {
			start = now.Add(-time.Duration(n) * frameDuration)
		}
		for {
			due := start.Add(time.Duration(n) * frameDuration)
			if due.After(now) {
				break
			}
			if err := p.send(n, due); err != nil {
				return err
			}
			n++
		}

		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// send writes access unit n as RTP packets.
func (p *publisher) send(n int64, ntp time.Time) error {
	au := p.clip.aus[n%int64(len(p.clip.aus))]
	pkts, err := p.enc.Encode(au)
	if err != nil {
		return fmt.Errorf("democam: RTP encoding: %w", err)
	}
	ts := p.rtpStart + uint32(n*clockRate/frameRate)
	for _, pkt := range pkts {
		pkt.Timestamp = ts
		if err := p.write(pkt, ntp); err != nil {
			return err
		}
	}
	return nil
}
