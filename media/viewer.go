package media

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Message is one message of a viewer's stream. Exactly one of Text and
// Binary is set: Text is a JSON control message (a WebSocket text frame),
// Binary is fMP4 (a binary frame). Binary slices are shared by every viewer
// of the camera and must not be modified.
type Message struct {
	Text   []byte
	Binary []byte
	// RTPIn is, for a live fragment, when the first RTP packet of its video
	// access unit was read from the camera (with a monotonic reading), so
	// that the writer can tell the latency the server added. It is zero for
	// control messages, init segments, and the fragments of the cached
	// group of pictures a new viewer starts with.
	RTPIn time.Time
	// Muxed is, for a live fragment, when it was made, right after its video
	// access unit was complete: from RTPIn to Muxed the unit's packets come
	// in and are muxed; from Muxed on, it is fanned out and written. Zero
	// when RTPIn is. A session's first keyframe held for the camera's audio
	// (see the package doc) is made when the hold ends: the hold, at most a
	// frame interval, is between RTPIn and Muxed.
	Muxed time.Time
}

func (m Message) size() int { return len(m.Text) + len(m.Binary) }

// The control messages besides codecs.
var (
	onlineMsg  = Message{Text: []byte(`{"type":"online"}`)}
	offlineMsg = Message{Text: []byte(`{"type":"offline"}`)}
)

// ErrTooSlow is [Viewer.Err] of a viewer dropped because it could not keep
// up with its camera.
var ErrTooSlow = errors.New("media: viewer too slow")

// hopelessStrikes is how many keyframes in a row may find a viewer's queue
// still too full before the viewer is dropped.
const hopelessStrikes = 3

// Viewer is one viewer of a camera: a stream of messages, read from
// [Viewer.Messages], until [Viewer.Close], the end of the context given to
// [Manager.Watch], [Manager.Close], or the viewer being dropped for falling
// hopelessly behind.
//
// Between the camera and the reader sits a queue bounded in bytes
// ([Config.QueueBytes]), filled by the camera goroutine, which never waits
// for it, and emptied into Messages by the viewer's own goroutine.
type Viewer struct {
	cam      *camera
	ctx      context.Context // from Watch: the viewer ends with it
	out      chan Message    // Messages; closed by pump
	done     chan struct{}   // closed by end
	endOnce  sync.Once
	err      error         // why it ended; written in endOnce, read after done
	pumpDone chan struct{} // closed when pump has returned
	wake     chan struct{} // capacity 1: the queue got a message

	mu     sync.Mutex // guards queue, head, queued
	queue  []Message  // queue[head:] waits to be sent
	head   int
	queued int // bytes in queue[head:]

	// Owned by the camera goroutine.
	init     *initSegment // the init segment the viewer was sent last
	skipping bool         // dropping fragments until a keyframe fits
	strikes  int          // keyframes in a row that did not fit
}

func newViewer(ctx context.Context, c *camera) *Viewer {
	return &Viewer{
		cam:      c,
		ctx:      ctx,
		out:      make(chan Message),
		done:     make(chan struct{}),
		pumpDone: make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

// Messages returns the viewer's stream. It is closed when the viewer ends.
func (v *Viewer) Messages() <-chan Message { return v.out }

// Close ends the viewer and detaches it from its camera; Messages is closed
// when Close returns. Close may be called more than once, from any
// goroutine.
func (v *Viewer) Close() {
	v.leave(nil)
	<-v.pumpDone
}

// Err tells, once Messages is closed, why the viewer ended: [ErrTooSlow]
// (dropped for falling behind), [ErrClosed] (the manager closed), the
// context's error, or nil (Close). It is nil while the viewer runs.
func (v *Viewer) Err() error {
	select {
	case <-v.done:
		return v.err
	default:
		return nil
	}
}

// leave ends the viewer and tells the camera.
func (v *Viewer) leave(err error) {
	v.end(err)
	select {
	case v.cam.chRemove <- v:
	case <-v.cam.quit:
	}
}

// end stops the pump, which closes Messages; queued messages are dropped.
// The first call's err is the viewer's Err.
func (v *Viewer) end(err error) {
	v.endOnce.Do(func() {
		v.err = err
		close(v.done)
	})
}

// push queues msgs whatever the bound (control messages, the start of a new
// viewer).
func (v *Viewer) push(msgs ...Message) {
	v.mu.Lock()
	v.appendLocked(msgs)
	v.mu.Unlock()
	v.signal()
}

// tryPush queues all of msgs if they fit under bound bytes, or none.
func (v *Viewer) tryPush(bound int, msgs ...Message) bool {
	n := 0
	for _, m := range msgs {
		n += m.size()
	}
	v.mu.Lock()
	if v.queued+n > bound {
		v.mu.Unlock()
		return false
	}
	v.appendLocked(msgs)
	v.mu.Unlock()
	v.signal()
	return true
}

func (v *Viewer) appendLocked(msgs []Message) {
	if v.head > 0 && len(v.queue)+len(msgs) > cap(v.queue) {
		n := copy(v.queue, v.queue[v.head:])
		clear(v.queue[n:])
		v.queue = v.queue[:n]
		v.head = 0
	}
	for _, m := range msgs {
		v.queue = append(v.queue, m)
		v.queued += m.size()
	}
}

func (v *Viewer) signal() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

func (v *Viewer) pop() (Message, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.head == len(v.queue) {
		v.queue = v.queue[:0]
		v.head = 0
		return Message{}, false
	}
	m := v.queue[v.head]
	v.queue[v.head] = Message{}
	v.head++
	v.queued -= m.size()
	return m, true
}

// queuedBytes is the size of the queue, for tests.
func (v *Viewer) queuedBytes() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.queued
}

// pump is the viewer's goroutine: it moves queued messages into Messages
// until the viewer ends, and closes Messages then.
func (v *Viewer) pump() {
	defer close(v.pumpDone)
	defer close(v.out)
	for {
		m, ok := v.pop()
		if !ok {
			select {
			case <-v.wake:
				continue
			case <-v.done:
				return
			case <-v.ctx.Done():
				v.leave(v.ctx.Err())
				return
			}
		}
		select {
		case v.out <- m:
		case <-v.done:
			return
		case <-v.ctx.Done():
			v.leave(v.ctx.Err())
			return
		}
	}
}
