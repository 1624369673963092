package tokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// sameRecord compares two links as stored: by their JSON, and by Uses.
func sameRecord(t testing.TB, got, want *Link) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) || got.Uses != want.Uses {
		t.Fatalf("record =\n %s (uses %d), want\n %s (uses %d)", g, got.Uses, w, want.Uses)
	}
}

func TestStoreCreateGet(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	ctx := t.Context()
	l := create(t, e.store, e.ring, "alice", "dev-1", func(l *Link) {
		l.Kind = KindCamera
		l.Permissions = Permissions{Camera: []string{LevelLive, LevelArchive}}
		l.Window = Window{Start: t0, End: t0.Add(48 * time.Hour)}
		l.Schedule = &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("09:00", "17:00", "mon")}}
		l.MaxUses, l.MaxSessions = 5, 2
	})
	if l.ID == (LinkID{}) || l.Status != StatusActive || l.Generation != 1 || l.Version != 1 {
		t.Fatalf("Create left %+v", l)
	}
	if !l.Created.Equal(t0.Add(time.Millisecond)) || !l.Updated.Equal(l.Created) {
		t.Fatalf("Created, Updated = %v, %v; want the store's clock", l.Created, l.Updated)
	}
	if c, err := e.ring.Verify(l.Token); err != nil || c != l.Claims() {
		t.Fatalf("token verifies to %+v, %v; want %+v", c, err, l.Claims())
	}

	got, err := e.store.Get(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, got, l)
	if got, err := e.store.GetOwned(ctx, "alice", l.ID); err != nil || got.ID != l.ID {
		t.Fatalf("GetOwned(alice) = %v, %v", got, err)
	}
	if _, err := e.store.GetOwned(ctx, "mallory", l.ID); err != ErrNotFound {
		t.Fatalf("GetOwned(another owner) = %v, want ErrNotFound", err)
	}
	if _, err := e.store.Get(ctx, NewLinkID()); err != ErrNotFound {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if ids, err := e.store.LinksOfDevice(ctx, "dev-1"); err != nil || !slices.Equal(ids, []LinkID{l.ID}) {
		t.Fatalf("LinksOfDevice = %v, %v", ids, err)
	}
	if ev := feedEvents(t, e.rdb); len(ev) != 1 || ev[0] != (Event{Seq: 1, Link: l.ID, Op: OpCreated}) {
		t.Fatalf("feed = %+v, want one created event", ev)
	}

	// Every key of the link shares its hash tag.
	keys, err := e.rdb.Keys(ctx, "*"+l.ID.String()+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.Contains(k, "{"+l.ID.String()+"}") {
			t.Errorf("key %q lacks the hash tag", k)
		}
	}

	// A corrupt record is an error, but not "not found" and not a panic.
	if err := e.rdb.Set(ctx, linkKey(l.ID), "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Get(ctx, l.ID); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(corrupt) = %v, want a corruption error", err)
	}
}

func TestStoreUpdate(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	ctx := t.Context()
	l := create(t, e.store, e.ring, "alice", "dev-1", nil)

	got, err := e.store.Update(ctx, "alice", l.ID, "", func(l *Link) error {
		l.Name = "back door"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "back door" || got.Version != 2 || !got.Updated.After(l.Updated) || !got.Created.Equal(l.Created) {
		t.Fatalf("Update returned %+v", got)
	}
	stored, err := e.store.Get(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, stored, got)

	// fn's error aborts the update.
	boom := errors.New("boom")
	if _, err := e.store.Update(ctx, "alice", l.ID, "", func(l *Link) error { l.Name = "lost"; return boom }); err != boom {
		t.Fatalf("Update with failing fn = %v, want its error", err)
	}
	if _, err := e.store.Update(ctx, "mallory", l.ID, "", func(*Link) error { t.Error("fn called for another owner"); return nil }); err != ErrNotFound {
		t.Fatalf("Update by another owner = %v, want ErrNotFound", err)
	}
	if _, err := e.store.Update(ctx, "alice", NewLinkID(), "", func(*Link) error { return nil }); err != ErrNotFound {
		t.Fatalf("Update(unknown) = %v, want ErrNotFound", err)
	}
	if stored, _ := e.store.Get(ctx, l.ID); stored.Version != 2 || stored.Name != "back door" {
		t.Fatalf("refused updates changed the record: %+v", stored)
	}

	// Moving the link to another device moves its index entry.
	if _, err := e.store.Update(ctx, "alice", l.ID, OpDisabled, func(l *Link) error {
		l.Device, l.Status = "dev-2", StatusDisabled
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := e.store.LinksOfDevice(ctx, "dev-1"); len(ids) != 0 {
		t.Fatalf("LinksOfDevice(old) = %v, want none", ids)
	}
	if ids, _ := e.store.LinksOfDevice(ctx, "dev-2"); !slices.Equal(ids, []LinkID{l.ID}) {
		t.Fatalf("LinksOfDevice(new) = %v, want [%v]", ids, l.ID)
	}
	var ops []Op
	for _, ev := range feedEvents(t, e.rdb) {
		ops = append(ops, ev.Op)
	}
	if want := []Op{OpCreated, OpUpdated, OpDisabled}; !slices.Equal(ops, want) {
		t.Fatalf("feed ops = %v, want %v", ops, want)
	}
}

// TestStoreConcurrentUpdates: two writers update one record 20 times each;
// compare-and-set must lose none of the 40 updates.
func TestStoreConcurrentUpdates(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	l := create(t, e.store, e.ring, "alice", "dev-1", func(l *Link) { l.Permissions = Permissions{} })
	const writers, updates = 2, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range updates {
				mark := fmt.Sprintf("w%d-%d", w, i)
				for {
					_, err := e.store.Update(t.Context(), "alice", l.ID, "", func(l *Link) error {
						l.Permissions.View = append(l.Permissions.View, mark)
						return nil
					})
					if errors.Is(err, ErrConflict) {
						continue // lost eight races in a row: documented, try again
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := e.store.Get(t.Context(), l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1+writers*updates {
		t.Fatalf("version = %d, want %d", got.Version, 1+writers*updates)
	}
	if len(got.Permissions.View) != writers*updates {
		t.Fatalf("%d of %d updates kept: %v", len(got.Permissions.View), writers*updates, got.Permissions.View)
	}
	seen := map[string]bool{}
	for _, m := range got.Permissions.View {
		if seen[m] {
			t.Fatalf("update %s applied twice", m)
		}
		seen[m] = true
	}
}

func TestStoreDelete(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	ctx := t.Context()
	l := create(t, e.store, e.ring, "alice", "dev-1", func(l *Link) { l.MaxUses = 10 })
	keep := create(t, e.store, e.ring, "alice", "dev-1", nil)
	if _, err := e.store.Use(ctx, l, Access{At: t0, Event: "session", Session: "s1"}); err != nil {
		t.Fatal(err)
	}

	stale := *l
	if _, err := e.store.Update(ctx, "alice", l.ID, OpDisabled, func(l *Link) error { l.Status = StatusDisabled; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Use(ctx, &stale, Access{At: t0, Event: "session", Session: "s2"}); err != ErrStale {
		t.Fatalf("Use of the record before the disable = %v, want ErrStale", err)
	}
	if err := e.store.Delete(ctx, "mallory", l.ID); err != ErrNotFound {
		t.Fatalf("Delete by another owner = %v, want ErrNotFound", err)
	}
	if _, err := e.store.Get(ctx, l.ID); err != nil {
		t.Fatalf("after a refused delete: %v", err)
	}
	if err := e.store.Delete(ctx, "alice", l.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Use(ctx, l, Access{At: t0, Event: "session", Session: "s3"}); err != ErrStale {
		t.Fatalf("Use of a deleted link = %v, want ErrStale", err)
	}
	if _, err := e.store.Get(ctx, l.ID); err != ErrNotFound {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if n, err := e.rdb.Exists(ctx, linkKey(l.ID), usesKey(l.ID), logKey(l.ID)).Result(); err != nil || n != 0 {
		t.Fatalf("%d of the link's keys left after Delete (%v)", n, err)
	}
	if ids, _ := e.store.LinksOfDevice(ctx, "dev-1"); !slices.Equal(ids, []LinkID{keep.ID}) {
		t.Fatalf("LinksOfDevice = %v, want only [%v]", ids, keep.ID)
	}
	if items, _, err := e.store.List(ctx, "alice", "", 0); err != nil || len(items) != 1 || items[0].ID != keep.ID {
		t.Fatalf("List after Delete = %v, %v", items, err)
	}
	if err := e.store.Delete(ctx, "alice", l.ID); err != ErrNotFound {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if ev := feedEvents(t, e.rdb); ev[len(ev)-1] != (Event{Seq: int64(len(ev)), Link: l.ID, Op: OpDeleted}) {
		t.Fatalf("last feed event = %+v, want deleted", ev[len(ev)-1])
	}
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	ctx := t.Context()
	var mine []*Link // oldest first
	for i := range 7 {
		mine = append(mine, create(t, e.store, e.ring, "alice", "dev-1", func(l *Link) { l.Name = fmt.Sprint("link ", i) }))
		create(t, e.store, e.ring, "bob", "dev-1", nil) // interleaved: must not show up
	}
	var pages [][]string
	cursor := ""
	for range 10 {
		items, next, err := e.store.List(ctx, "alice", cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range items {
			if l.Owner != "alice" {
				t.Fatalf("List(alice) returned a link of %s", l.Owner)
			}
			names = append(names, l.Name)
		}
		pages = append(pages, names)
		if next == "" {
			break
		}
		cursor = next
	}
	want := [][]string{{"link 6", "link 5", "link 4"}, {"link 3", "link 2", "link 1"}, {"link 0"}}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Fatalf("pages = %q, want %q", pages, want)
	}

	// A page that ends exactly at the last link has no next.
	items, next, err := e.store.List(ctx, "alice", "", 7)
	if err != nil || len(items) != 7 || next != "" {
		t.Fatalf("List(limit 7) = %d items, next %q, %v; want 7 and no next", len(items), next, err)
	}
	if items, _, err := e.store.List(ctx, "alice", "", 0); err != nil || len(items) != 7 {
		t.Fatalf("List(default limit) = %d items, %v", len(items), err)
	}
	if items, next, err := e.store.List(ctx, "nobody", "", 3); err != nil || len(items) != 0 || next != "" {
		t.Fatalf("List(nobody) = %v, %q, %v", items, next, err)
	}

	for _, bad := range []string{
		"!!!",
		"a",
		b64.EncodeToString([]byte("short:1")),
		b64.EncodeToString([]byte("no colon in this cursor at all")),
	} {
		_, _, err := e.store.List(ctx, "alice", bad, 3)
		if fe, ok := AsFieldError(err); !ok || fe.Field != "cursor" {
			t.Errorf("List(cursor %q) = %v, want a *FieldError for cursor", bad, err)
		}
	}

	// An index entry left behind by an interrupted delete is skipped and
	// removed.
	if err := e.rdb.Del(ctx, linkKey(mine[6].ID)).Err(); err != nil {
		t.Fatal(err)
	}
	items, _, err = e.store.List(ctx, "alice", "", 3)
	if err != nil || len(items) != 2 || items[0].Name != "link 5" {
		t.Fatalf("List with a dangling entry = %d items, %v", len(items), err)
	}
	if n, _ := e.rdb.ZCard(ctx, ownerLinksKey("alice")).Result(); n != 6 {
		t.Fatalf("owner index has %d entries, want the dangling one removed (6)", n)
	}
}

// TestStoreListSameMillisecond: links created within one millisecond must
// still list newest first. Today the owner index orders them by id (see
// indexMember in store.go), which gateway's TestLinkLifecycle trips on.
func TestStoreListSameMillisecond(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	e.store.now = func() time.Time { return t0 } // a burst: one clock reading
	var made []string
	for range 7 {
		made = append(made, create(t, e.store, e.ring, "alice", "dev-1", nil).ID.String())
	}
	items, _, err := e.store.List(t.Context(), "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range items {
		got = append(got, l.ID.String())
	}
	slices.Reverse(made)
	if !slices.Equal(got, made) {
		t.Fatalf("List = %v, want newest first %v", got, made)
	}
}

func TestStoreUse(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	ctx := t.Context()
	l := create(t, e.store, e.ring, "alice", "dev-1", func(l *Link) { l.MaxUses = 3 })
	longUA := strings.Repeat("x", 300)
	for i := 1; i <= 3; i++ {
		a := Access{At: t0.Add(time.Duration(i) * time.Second), Event: "session", Session: fmt.Sprint("s", i), IP: "192.0.2.1", UserAgent: longUA}
		n, err := e.store.Use(ctx, l, a)
		if err != nil || n != int64(i) {
			t.Fatalf("Use #%d = %d, %v", i, n, err)
		}
	}
	if _, err := e.store.Use(ctx, l, Access{At: t0, Event: "session", Session: "s4"}); err != ErrUsedUp {
		t.Fatalf("4th Use = %v, want ErrUsedUp", err)
	}
	got, err := e.store.Get(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Uses != 3 {
		t.Fatalf("Uses = %d, want 3", got.Uses)
	}
	if err := got.Check(t0); err != ErrUsedUp {
		t.Fatalf("Check = %v, want ErrUsedUp", err)
	}
	usedUp := 0
	for _, ev := range feedEvents(t, e.rdb) {
		if ev.Op == OpUsedUp && ev.Link == l.ID {
			usedUp++
		}
	}
	if usedUp != 1 {
		t.Fatalf("%d used-up events, want 1 (on the last use)", usedUp)
	}

	log, err := e.store.AccessLog(ctx, "alice", l.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	var sessions []string
	for _, a := range log {
		sessions = append(sessions, a.Session)
		if len(a.UserAgent) != 256 || a.IP != "192.0.2.1" || a.Event != "session" {
			t.Errorf("entry %+v: want the user agent cut to 256 bytes and IP, event kept", a)
		}
	}
	if !slices.Equal(sessions, []string{"s3", "s2", "s1"}) {
		t.Fatalf("access log sessions = %v, want newest first [s3 s2 s1]", sessions)
	}
	if !log[0].At.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("newest entry at %v", log[0].At)
	}
	if log, _ := e.store.AccessLog(ctx, "alice", l.ID, 2); len(log) != 2 || log[0].Session != "s3" {
		t.Fatalf("AccessLog(limit 2) = %+v", log)
	}
	if _, err := e.store.AccessLog(ctx, "mallory", l.ID, 10); err != ErrNotFound {
		t.Fatalf("AccessLog by another owner = %v, want ErrNotFound", err)
	}

	unlimited := create(t, e.store, e.ring, "alice", "dev-1", nil)
	for i := range 10 {
		if _, err := e.store.Use(ctx, unlimited, Access{Event: "session"}); err != nil {
			t.Fatalf("Use #%d of an unlimited link: %v", i+1, err)
		}
	}
}

// TestStoreUseConcurrent: many recipients race for the last uses; exactly
// MaxUses of them win.
func TestStoreUseConcurrent(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	l := create(t, e.store, e.ring, "alice", "dev-1", func(l *Link) { l.MaxUses = 5 })
	var mu sync.Mutex
	won, lost := 0, 0
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := e.store.Use(t.Context(), l, Access{Event: "session", Session: fmt.Sprint(i)})
			mu.Lock()
			defer mu.Unlock()
			switch err {
			case nil:
				won++
			case ErrUsedUp:
				lost++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won != 5 || lost != 15 {
		t.Fatalf("%d uses won, %d lost; want 5 and 15", won, lost)
	}
}

func TestStoreLinksOfDevice(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	ctx := t.Context()
	a1 := create(t, e.store, e.ring, "alice", "dev-a", nil)
	a2 := create(t, e.store, e.ring, "bob", "dev-a", nil)
	create(t, e.store, e.ring, "alice", "dev-b", nil)
	ids, err := e.store.LinksOfDevice(ctx, "dev-a")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ids, func(a, b LinkID) int { return strings.Compare(a.String(), b.String()) })
	want := []LinkID{a1.ID, a2.ID}
	slices.SortFunc(want, func(a, b LinkID) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(ids, want) {
		t.Fatalf("LinksOfDevice(dev-a) = %v, want %v", ids, want)
	}
	if ids, err := e.store.LinksOfDevice(ctx, "dev-none"); err != nil || len(ids) != 0 {
		t.Fatalf("LinksOfDevice(unknown) = %v, %v", ids, err)
	}
	if err := e.store.PublishDevice(ctx, "dev-a"); err != nil {
		t.Fatal(err)
	}
	if ev := feedEvents(t, e.rdb); ev[len(ev)-1].Device != "dev-a" || ev[len(ev)-1].Op != OpDevice || ev[len(ev)-1].Link != (LinkID{}) {
		t.Fatalf("device event = %+v", ev[len(ev)-1])
	}
}

// TestStoreUnavailable: with Redis gone, every operation says so with
// ErrUnavailable, never ErrNotFound.
func TestStoreUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	s := newTestStore(rdb)
	ring := testRing(t, testKey(1))
	ctx := t.Context()
	id := NewLinkID()
	checks := map[string]error{
		"Get":     func() error { _, err := s.Get(ctx, id); return err }(),
		"Create":  s.Create(ctx, ring, &Link{Owner: "alice"}),
		"Update":  func() error { _, err := s.Update(ctx, "alice", id, "", nil); return err }(),
		"Delete":  s.Delete(ctx, "alice", id),
		"List":    func() error { _, _, err := s.List(ctx, "alice", "", 3); return err }(),
		"Use":     func() error { _, err := s.Use(ctx, &Link{ID: id}, Access{}); return err }(),
		"Devices": func() error { _, err := s.LinksOfDevice(ctx, "dev"); return err }(),
		"Publish": s.PublishDevice(ctx, "dev"),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Redis down = %v, want ErrUnavailable", name, err)
		}
	}
}

// TestRenewSessions: one call renews the leases of many sessions on many
// links; a session already released does not get its place back.
func TestRenewSessions(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	e.store.now = time.Now // leases expire in Redis's time
	ctx := t.Context()
	a := create(t, e.store, e.ring, "alice", "dev-1", func(l *Link) { l.MaxSessions = 3 })
	b := create(t, e.store, e.ring, "alice", "dev-2", nil)
	for _, s := range []struct {
		l  *Link
		id string
	}{{a, "a1"}, {a, "a2"}, {b, "b1"}} {
		if err := e.store.AcquireSession(ctx, s.l, s.id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.ReleaseSession(ctx, a.ID, "a2"); err != nil {
		t.Fatal(err)
	}
	score := func(id LinkID, session string) float64 {
		v, err := e.rdb.ZScore(ctx, liveKey(id), session).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		return v
	}
	before := score(a.ID, "a1")
	time.Sleep(2 * time.Millisecond) // the renewal's end is after the acquisitions'
	if err := e.store.RenewSessions(ctx, map[LinkID][]string{a.ID: {"a1", "a2"}, b.ID: {"b1"}}); err != nil {
		t.Fatal(err)
	}
	renewed := score(a.ID, "a1")
	if renewed <= before || score(b.ID, "b1") != renewed {
		t.Errorf("leases: a1 %v (was %v), b1 %v; want both renewed to the same end", renewed, before, score(b.ID, "b1"))
	}
	if n, _ := e.rdb.ZCard(ctx, liveKey(a.ID)).Result(); n != 1 {
		t.Errorf("link a has %d places after renewing a released session, want 1", n)
	}
	for _, id := range []LinkID{a.ID, b.ID} {
		if at, _ := e.rdb.PExpireTime(ctx, liveKey(id)).Result(); at.Milliseconds() != int64(renewed) {
			t.Errorf("the places of %v expire at %v, want with the lease (%v)", id, at.Milliseconds(), int64(renewed))
		}
	}
	if err := e.store.RenewSessions(ctx, nil); err != nil {
		t.Errorf("renewing nothing: %v", err)
	}
}
