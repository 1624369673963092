package gateway

import (
	"runtime"
	"testing"
	"time"

	"github.com/linkgate/linkgate/emulator"
)

// TestDeviceShare: pages of one device at one version get one copy; a new
// version replaces it; no entry outlives the pages holding its copy.
func TestDeviceShare(t *testing.T) {
	var d deviceShare
	read := func(id string, version int64) *emulator.Device { // as GetAny decodes one
		return &emulator.Device{ID: id, Version: version, Name: "Plug"}
	}
	first := d.share(read("dev", 1))
	if got := d.share(read("dev", 1)); got != first {
		t.Fatal("two pages of a device at one version hold two copies")
	}
	if got := d.share(read("other", 1)); got == first {
		t.Fatal("another device shares the first one's copy")
	}
	v2 := read("dev", 2)
	if got := d.share(v2); got != v2 {
		t.Fatal("an edited device's pages get the old version")
	}
	if got := d.share(read("dev", 2)); got != v2 {
		t.Fatal("the new version is not shared")
	}
	runtime.KeepAlive(first)

	first, v2 = nil, nil
	deadline := time.Now().Add(5 * time.Second)
	for d.len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries left after their copies were collected", d.len())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
