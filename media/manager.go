package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrClosed is returned by [Manager.Watch] after [Manager.Close].
var ErrClosed = errors.New("media: manager closed")

// Config configures a [Manager]. The zero value is ready to use: a zero (or
// negative) field takes its default.
type Config struct {
	// Linger is how long an upstream stays connected after its last viewer
	// leaves, so that a page reload or the next viewer reuses it.
	// It defaults to 10 s.
	Linger time.Duration
	// QueueBytes bounds each viewer's queue of messages not yet taken from
	// Messages. A viewer whose queue would grow past it skips to the next
	// keyframe; one that is still over it at 3 keyframes in a row is
	// dropped. The cached group of pictures given to a new viewer is kept
	// within half of it. It defaults to 4 MiB.
	QueueBytes int
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// upstream (re)connect attempts. They default to 500 ms and 10 s;
	// RetryMax is raised to RetryMin if below it.
	RetryMin, RetryMax time.Duration
	// Logger receives the package's logs, with component=media and
	// camera=<id>. It defaults to discarding them.
	Logger *slog.Logger
	// HLS configures the LL-HLS fallback ([Manager.ServeHLS]).
	HLS HLSConfig
}

// Defaults of Config.
const (
	DefaultLinger     = 10 * time.Second
	DefaultQueueBytes = 4 << 20
	DefaultRetryMin   = 500 * time.Millisecond
	DefaultRetryMax   = 10 * time.Second
)

// withDefaults fills in the defaults; it is the one place that does.
func (c Config) withDefaults() Config {
	if c.Linger <= 0 {
		c.Linger = DefaultLinger
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.HLS = c.HLS.withDefaults()
	return c
}

// CameraStats is a snapshot of one camera's counters. The counters cover the
// manager's whole life, across upstream stops and starts.
type CameraStats struct {
	Viewers  int  // viewers attached now
	Running  bool // an upstream is started (connecting, connected or waiting to retry)
	Online   bool // fragments are flowing
	Connects int  // upstream RTSP sessions opened so far (SETUP done)
	Failures int  // upstream connects that failed and sessions that ended
	Dropped  int  // viewers dropped as hopeless
	HLS      bool // the LL-HLS output runs (an HLS request came within Linger)

	Resyncs      int // times video waited for a keyframe after lost or bad data
	Skips        int // times a viewer fell behind and skipped to a keyframe
	PacketsLost  int // RTP packets lost, as the RTSP client counts them
	DecodeErrors int // RTP packets or access units that could not be decoded
}

// Manager runs the live path of every camera of this instance: at most one
// upstream per camera, shared by all of the camera's viewers. Its methods
// may be called from any goroutine.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // ends at Close; parent of every camera
	cancel context.CancelFunc
	wg     sync.WaitGroup // camera goroutines

	mu      sync.Mutex // guards cameras, stats, closed
	cameras map[string]*camera
	stats   map[string]*cameraStats
	closed  bool
}

// NewManager returns a manager; cfg's zero fields take their defaults.
func NewManager(cfg Config) *Manager {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "media"),
		ctx:     ctx,
		cancel:  cancel,
		cameras: make(map[string]*camera),
		stats:   make(map[string]*cameraStats),
	}
}

// Watch attaches a viewer to camera, pulling src if the camera has no
// upstream yet (or restarting it if src changed: the newest source wins).
// The viewer's messages start at once: the codecs message, the init segment
// and the cached group of pictures if the camera is online; offline if it is
// down; nothing yet if it is still connecting. The viewer ends when ctx is
// done or Close is called; Watch returns ctx's error if ctx ends first,
// [ErrInvalidSource] for a source that cannot be pulled, and [ErrClosed]
// after Close. A camera that cannot be reached is not an error: its viewers
// wait, told offline, while it is retried.
func (m *Manager) Watch(ctx context.Context, camera string, src Source) (*Viewer, error) {
	if camera == "" {
		return nil, fmt.Errorf("%w: empty camera id", ErrInvalidSource)
	}
	if _, _, err := src.parse(); err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := m.camera(camera)
		if err != nil {
			return nil, err
		}
		v := newViewer(ctx, c)
		select {
		case c.chAdd <- addRequest{v: v, src: src}:
			return v, nil
		case <-c.quit: // the camera is stopping: start a new one
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// camera returns the running camera of that id, started if need be.
func (m *Manager) camera(id string) (*camera, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if c := m.cameras[id]; c != nil {
		return c, nil
	}
	st := m.stats[id]
	if st == nil {
		st = &cameraStats{}
		m.stats[id] = st
	}
	c := newCamera(m.ctx, m, id, st)
	m.cameras[id] = c
	m.wg.Add(1)
	go c.run()
	return c, nil
}

// forget removes a stopping camera, so that the next Watch starts anew.
func (m *Manager) forget(c *camera) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cameras[c.id] == c {
		delete(m.cameras, c.id)
	}
}

// Stats returns camera's counters; a camera never watched has zero ones.
func (m *Manager) Stats(camera string) CameraStats {
	m.mu.Lock()
	st := m.stats[camera]
	m.mu.Unlock()
	if st == nil {
		return CameraStats{}
	}
	return st.snapshot()
}

// Close stops every upstream and ends every viewer (their Messages close),
// and returns when all of it is done. Watch fails with ErrClosed afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}
