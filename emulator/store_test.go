package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/linkgate/linkgate/tokens"
	"github.com/linkgate/linkgate/tokens/redistest"
)

const (
	ownerA = "owner-a"
	ownerB = "owner-b"
)

func newStore(t *testing.T) (*Store, *redis.Client) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	return NewStore(rdb), rdb
}

// create stores a fresh demo device of owner.
func create(t *testing.T, s *Store, owner string, i int) *Device {
	t.Helper()
	demo := DemoDevices()
	d := demo[i%len(demo)]
	d.Owner = owner
	d.Name = fmt.Sprintf("%s %d", d.Name, i)
	if err := s.Create(t.Context(), d); err != nil {
		t.Fatalf("Create(%s): %v", d.Name, err)
	}
	return d
}

func sameDevice(t *testing.T, got, want *Device) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("device = %s\nwant %s", g, w)
	}
}

// listAll pages through owner's devices and returns their ids and the
// length of each page.
func listAll(t *testing.T, s *Store, owner string, limit int) (ids []string, pages []int) {
	t.Helper()
	cursor := ""
	for range 100 {
		items, next, err := s.List(t.Context(), owner, cursor, limit)
		if err != nil {
			t.Fatalf("List(%q, %q, %d): %v", owner, cursor, limit, err)
		}
		if len(items) > limit {
			t.Fatalf("List(limit %d) returned %d items", limit, len(items))
		}
		for _, d := range items {
			if d.Owner != owner {
				t.Fatalf("List(%q) returned a device of %q", owner, d.Owner)
			}
			ids = append(ids, d.ID)
		}
		pages = append(pages, len(items))
		if next == "" {
			return ids, pages
		}
		cursor = next
	}
	t.Fatal("List never ended")
	return nil, nil
}

// newestFirst sorts devices as the index does: by creation time, then id,
// both descending, and returns their ids.
func newestFirst(devs []*Device) []string {
	devs = slices.Clone(devs)
	slices.SortFunc(devs, func(a, b *Device) int { return strings.Compare(indexMember(b), indexMember(a)) })
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	return ids
}

func TestStoreCreateGet(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := t.Context()

	before := time.Now().Add(-time.Millisecond)
	d := create(t, s, ownerA, 0)
	if !validID(d.ID) || d.Version != 1 || !d.Created.Equal(d.Updated) {
		t.Errorf("Create set id %q, version %d, created %v, updated %v", d.ID, d.Version, d.Created, d.Updated)
	}
	if d.Created.Location() != time.UTC || !d.Created.Equal(d.Created.Truncate(time.Millisecond)) ||
		d.Created.Before(before) || d.Created.After(time.Now()) {
		t.Errorf("Created = %v, want now in UTC, whole milliseconds", d.Created)
	}

	got, err := s.Get(ctx, ownerA, d.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameDevice(t, got, d)
	got, err = s.GetAny(ctx, d.ID)
	if err != nil {
		t.Fatalf("GetAny: %v", err)
	}
	sameDevice(t, got, d)

	// The documented layout.
	if n, err := rdb.Exists(ctx, "lg:dev:{"+d.ID+"}").Result(); err != nil || n != 1 {
		t.Errorf("device key: %d, %v", n, err)
	}
	members, err := rdb.ZRangeWithScores(ctx, "lg:owner:{"+ownerA+"}:devices", 0, -1).Result()
	want := fmt.Sprintf("%015d:%s", d.Created.UnixMilli(), d.ID)
	if err != nil || len(members) != 1 || members[0].Member != want || members[0].Score != 0 {
		t.Errorf("index = %v, %v; want member %q with score 0", members, err, want)
	}

	for _, id := range []string{"", "nope", strings.Repeat("0", 32), strings.ToUpper(d.ID), d.ID + "0", "{" + d.ID[2:] + "}"} {
		if _, err := s.Get(ctx, ownerA, id); !errors.Is(err, ErrDeviceNotFound) {
			t.Errorf("Get(%q) = %v, want ErrDeviceNotFound", id, err)
		}
		if _, err := s.GetAny(ctx, id); !errors.Is(err, ErrDeviceNotFound) {
			t.Errorf("GetAny(%q) = %v, want ErrDeviceNotFound", id, err)
		}
	}
}

func TestStoreCreateInvalid(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := t.Context()

	d := DemoDevices()[0]
	d.Owner = ownerA
	d.Nodes[0].Properties[0].Datatype = "number"
	err := s.Create(ctx, d)
	if fe, ok := tokens.AsFieldError(err); !ok || fe.Field != "nodes[0].properties[0].datatype" {
		t.Errorf("Create(invalid) = %v, want a field error", err)
	}
	if d.ID != "" || d.Version != 0 || !d.Created.IsZero() {
		t.Errorf("failed Create changed the device: %+v", d)
	}

	d = DemoDevices()[0]
	if fe, ok := tokens.AsFieldError(s.Create(ctx, d)); !ok || fe.Field != "owner" {
		t.Errorf("Create(no owner) = %v, want a field error for owner", err)
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		t.Errorf("failed creates left %d keys", n)
	}
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()

	var devs []*Device
	for i := range 7 {
		devs = append(devs, create(t, s, ownerA, i))
	}
	create(t, s, ownerB, 0)
	want := newestFirst(devs)

	ids, pages := listAll(t, s, ownerA, 3)
	if !slices.Equal(pages, []int{3, 3, 1}) {
		t.Errorf("pages of 3 = %v, want [3 3 1]", pages)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("ids = %q\nwant %q (newest first)", ids, want)
	}

	// A full page at the end is followed by no empty page.
	if _, pages := listAll(t, s, ownerA, 7); !slices.Equal(pages, []int{7}) {
		t.Errorf("pages of 7 = %v, want [7]", pages)
	}

	for _, tt := range []struct{ limit, want int }{{0, 7}, {-5, 1}, {1, 1}, {1000, 7}} {
		items, _, err := s.List(ctx, ownerA, "", tt.limit)
		if err != nil || len(items) != tt.want {
			t.Errorf("List(limit %d) = %d items, %v; want %d", tt.limit, len(items), err, tt.want)
		}
	}

	for _, cursor := range []string{"!!!", "bm9wZQ", base64.RawURLEncoding.EncodeToString([]byte("000000000000001:" + strings.Repeat("g", 32)))} {
		_, _, err := s.List(ctx, ownerA, cursor, 3)
		if fe, ok := tokens.AsFieldError(err); !ok || fe.Field != "cursor" {
			t.Errorf("List(cursor %q) = %v, want a field error for cursor", cursor, err)
		}
	}
	if items, next, err := s.List(ctx, "owner-c", "", 3); err != nil || len(items) != 0 || next != "" {
		t.Errorf("List(no devices) = %v, %q, %v", items, next, err)
	}
}

// TestStoreListDangling puts index entries without records in front of and
// between real ones, as a crash inside Create or Delete leaves them.
func TestStoreListDangling(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := t.Context()
	idx := ownerKey(ownerA)

	var devs []*Device
	for i := range 3 {
		devs = append(devs, create(t, s, ownerA, i))
	}
	entry := func(created time.Time, i int) string {
		return fmt.Sprintf("%015d:%032x", created.UnixMilli(), i)
	}
	old := entry(time.Now().Add(-time.Hour), 1)
	var young []string
	for i := range 30 { // newer than the devices, more than one List call reads
		young = append(young, entry(time.Now().Add(time.Minute), 100+i))
	}
	for _, m := range append(young, old) {
		if err := rdb.ZAdd(ctx, idx, redis.Z{Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}

	ids, pages := listAll(t, s, ownerA, 1)
	if want := newestFirst(devs); !slices.Equal(ids, want) {
		t.Errorf("ids = %q, want %q (pages %v)", ids, want, pages)
	}
	if _, err := rdb.ZScore(ctx, idx, old).Result(); !errors.Is(err, redis.Nil) {
		t.Errorf("old dangling entry still indexed: %v", err)
	}
	if n, _ := rdb.ZCard(ctx, idx).Result(); n != int64(len(devs)+len(young)) {
		t.Errorf("index has %d entries, want the %d devices and the %d young entries kept", n, len(devs), len(young))
	}
}

func TestStoreUpdate(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	d := create(t, s, ownerA, 1)

	got, err := s.Update(ctx, ownerA, d.ID, func(d *Device) error {
		d.Name = "Renamed"
		d.Nodes[0].Properties[1].Format = "0:50"
		d.Version = 99 // the store's to set
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got.Name != "Renamed" || got.Version != 2 || got.Updated.Before(d.Updated) || !got.Created.Equal(d.Created) {
		t.Errorf("Update() = %+v", got)
	}
	stored, err := s.Get(ctx, ownerA, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, stored, got)

	errFn := errors.New("fn failed")
	for _, tt := range []struct {
		name   string
		fn     func(*Device) error
		target error
		field  string
	}{
		{"fn error", func(*Device) error { return errFn }, errFn, ""},
		{"id", func(d *Device) error { d.ID = strings.Repeat("a", 32); return nil }, nil, "id"},
		{"owner", func(d *Device) error { d.Owner = ownerB; return nil }, nil, "owner"},
		{"created", func(d *Device) error { d.Created = d.Created.Add(time.Hour); return nil }, nil, "createdAt"},
		{"invalid", func(d *Device) error { d.Name = ""; return nil }, nil, "name"},
		{"camera without rtsp", func(d *Device) error { d.Type = TypeCamera; return nil }, nil, "rtsp"},
	} {
		_, err := s.Update(ctx, ownerA, d.ID, tt.fn)
		if tt.target != nil && !errors.Is(err, tt.target) {
			t.Errorf("%s: Update() = %v, want %v", tt.name, err, tt.target)
		}
		if fe, ok := tokens.AsFieldError(err); tt.field != "" && (!ok || fe.Field != tt.field) {
			t.Errorf("%s: Update() = %v, want a field error for %q", tt.name, err, tt.field)
		}
	}
	after, err := s.Get(ctx, ownerA, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, after, got) // failed updates wrote nothing

	if _, err := s.Update(ctx, ownerA, strings.Repeat("0", 32), func(*Device) error { return nil }); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("Update(missing) = %v, want ErrDeviceNotFound", err)
	}
}

// TestStoreUpdateConcurrent counts in the device name from two writers:
// with optimistic concurrency no increment is lost.
func TestStoreUpdateConcurrent(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	d := create(t, s, ownerA, 0)
	if _, err := s.Update(t.Context(), ownerA, d.ID, func(d *Device) error { d.Name = "count 0"; return nil }); err != nil {
		t.Fatal(err)
	}
	const writers, updates = 2, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*updates)
	for range writers {
		wg.Go(func() {
			for range updates {
				_, err := s.Update(t.Context(), ownerA, d.ID, func(d *Device) error {
					n, err := strconv.Atoi(strings.TrimPrefix(d.Name, "count "))
					if err != nil {
						return err
					}
					d.Name = fmt.Sprintf("count %d", n+1)
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update: %v", err)
	}
	got, err := s.Get(t.Context(), ownerA, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("count %d", writers*updates); got.Name != want || got.Version != 2+writers*updates {
		t.Errorf("after %d updates: name %q, version %d; want %q, version %d",
			writers*updates, got.Name, got.Version, want, 2+writers*updates)
	}
}

func TestStoreDelete(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := t.Context()
	d := create(t, s, ownerA, 0)
	keep := create(t, s, ownerA, 1)

	if err := s.Delete(ctx, ownerA, d.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, ownerA, d.ID); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrDeviceNotFound", err)
	}
	if err := s.Delete(ctx, ownerA, d.ID); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("Delete(deleted) = %v, want ErrDeviceNotFound", err)
	}
	if _, err := s.Update(ctx, ownerA, d.ID, func(*Device) error { return nil }); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("Update(deleted) = %v, want ErrDeviceNotFound", err)
	}
	if ids, _ := listAll(t, s, ownerA, 10); !slices.Equal(ids, []string{keep.ID}) {
		t.Errorf("List after delete = %q, want only %q", ids, keep.ID)
	}
	if n, _ := rdb.ZCard(ctx, ownerKey(ownerA)).Result(); n != 1 {
		t.Errorf("index has %d entries after delete, want 1", n)
	}
}

// TestStoreTenants checks that an owner cannot tell another owner's device
// from a missing one.
func TestStoreTenants(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	a := create(t, s, ownerA, 0)
	b := create(t, s, ownerB, 1)

	if _, err := s.Get(ctx, ownerB, a.ID); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("B Get(A's) = %v, want ErrDeviceNotFound", err)
	}
	called := false
	if _, err := s.Update(ctx, ownerB, a.ID, func(d *Device) error { called = true; return nil }); !errors.Is(err, ErrDeviceNotFound) || called {
		t.Errorf("B Update(A's) = %v (fn called: %v), want ErrDeviceNotFound", err, called)
	}
	if err := s.Delete(ctx, ownerB, a.ID); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("B Delete(A's) = %v, want ErrDeviceNotFound", err)
	}
	if ids, _ := listAll(t, s, ownerB, 10); !slices.Equal(ids, []string{b.ID}) {
		t.Errorf("B List = %q, want only B's %q", ids, b.ID)
	}
	got, err := s.Get(ctx, ownerA, a.ID)
	if err != nil {
		t.Fatalf("A Get(A's): %v", err)
	}
	sameDevice(t, got, a)
	if got, err := s.GetAny(ctx, a.ID); err != nil || got.Owner != ownerA {
		t.Errorf("GetAny(A's) = %v, %v", got, err)
	}
}

// TestStoreCluster runs the store against a Redis Cluster, with owners and
// devices spread over the slots of all masters.
func TestStoreCluster(t *testing.T) {
	t.Parallel()
	cc := redistest.StartCluster(t).Client(t)
	s := NewStore(cc)
	ctx := t.Context()

	owners := []string{"owner-1", "owner-2", "owner-3", "owner-4"}
	devs := map[string][]*Device{}
	for i := range 12 {
		owner := owners[i%len(owners)]
		devs[owner] = append(devs[owner], create(t, s, owner, i))
	}
	for _, owner := range owners {
		for _, d := range devs[owner] {
			got, err := s.Get(ctx, owner, d.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			sameDevice(t, got, d)
		}
		if ids, _ := listAll(t, s, owner, 2); !slices.Equal(ids, newestFirst(devs[owner])) {
			t.Errorf("%s: List = %q, want %q", owner, ids, newestFirst(devs[owner]))
		}
	}

	d := devs["owner-1"][0]
	if _, err := s.Update(ctx, "owner-1", d.ID, func(d *Device) error { d.Name = "Renamed"; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Delete(ctx, "owner-1", d.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "owner-1", d.ID); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrDeviceNotFound", err)
	}
	if ids, _ := listAll(t, s, "owner-1", 2); !slices.Equal(ids, newestFirst(devs["owner-1"][1:])) {
		t.Errorf("List after delete = %q", ids)
	}

	// The keys really are spread: more than one master holds some.
	var masters atomic.Int32 // ForEachMaster calls concurrently
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		if n, err := c.DBSize(ctx).Result(); err == nil && n > 0 {
			masters.Add(1)
		}
		return nil
	})
	if err != nil || masters.Load() < 2 {
		t.Errorf("keys on %d masters (%v), want them spread", masters.Load(), err)
	}
}
