package gateway

import (
	"runtime"
	"sync"
	"weak"

	"github.com/linkgate/linkgate/emulator"
)

// deviceShare hands the open pages of one device one decoded copy of it.
// Each page's session used to keep the copy it read from Redis (about
// 0.6 KiB for a small device; BENCHMARKS.md, "WebSocket sessions"): with
// 10,000 pages on 10 devices, 9,990 of them the same. A copy is shared
// only while it is the device's current version and some page holds it;
// the entry goes when the last page does (a weak pointer and a cleanup).
//
// Shared devices are read, never written: an emulator.Session only reads
// its device.
type deviceShare struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[emulator.Device]
}

// share returns the copy pages hold of dev's device at dev's version, or
// makes dev that copy.
func (d *deviceShare) share(dev *emulator.Device) *emulator.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.m[dev.ID].Value(); p != nil && p.Version == dev.Version {
		return p
	}
	if d.m == nil {
		d.m = make(map[string]weak.Pointer[emulator.Device])
	}
	d.m[dev.ID] = weak.Make(dev)
	runtime.AddCleanup(dev, d.forget, dev.ID)
	return dev
}

// forget drops id's entry once no page holds its copy.
func (d *deviceShare) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if wp, ok := d.m[id]; ok && wp.Value() == nil {
		delete(d.m, id)
	}
}

// len is the number of devices with a shared copy, for tests.
func (d *deviceShare) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}
