package gateway

import (
	"context"
	"slices"
	"testing"

	"github.com/linkgate/linkgate/tokens"
)

type fakeLive struct {
	link tokens.LinkID
	id   string
}

func (f *fakeLive) linkKey() tokens.LinkID                           { return f.link }
func (f *fakeLive) sessionKey() string                               { return f.id }
func (f *fakeLive) deviceKey() string                                { return "dev" }
func (f *fakeLive) apply(context.Context, *tokens.Link, error, bool) {}
func (f *fakeLive) shut(string)                                      {}

// TestLiveLeases: what renewLeases renews is every open session, by link,
// and no session that has gone.
func TestLiveLeases(t *testing.T) {
	r := newLiveSessions()
	a, b := tokens.NewLinkID(), tokens.NewLinkID()
	gone := &fakeLive{a, "a3"}
	for _, ls := range []*fakeLive{{a, "a1"}, {a, "a2"}, {b, "b1"}, gone} {
		r.add(ls)
	}
	r.remove(gone)
	got := r.leases()
	slices.Sort(got[a])
	if len(got) != 2 || !slices.Equal(got[a], []string{"a1", "a2"}) || !slices.Equal(got[b], []string{"b1"}) {
		t.Errorf("leases %v", got)
	}
	if got := newLiveSessions().leases(); len(got) != 0 {
		t.Errorf("no sessions, leases %v", got)
	}
}
