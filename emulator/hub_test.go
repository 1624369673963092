package emulator

import "testing"

// TestDispatchSharesMessage: one change reaches every subscriber of its
// device with one shared message, so its state message is encoded once for
// all of them.
func TestDispatchSharesMessage(t *testing.T) {
	h := NewHub(nil, nil)
	var got []Change
	subs := map[*Subscription]struct{}{}
	for range 3 {
		subs[&Subscription{device: "dev", deliver: func(c Change) { got = append(got, c) }}] = struct{}{}
	}
	h.devices["dev"] = &watched{subs: subs}
	h.dispatch(Change{Device: "dev", Property: "meter/power", Value: []byte("1")})
	h.dispatch(Change{Device: "other", Property: "meter/power", Value: []byte("1")})
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3", len(got))
	}
	for _, c := range got {
		if c.msg == nil || c.msg != got[0].msg {
			t.Fatal("the subscribers of one change were not given one shared message")
		}
	}
}
