package tokens

import (
	"errors"
	"testing"
	"time"
)

func TestLinkCheck(t *testing.T) {
	t.Parallel()
	// 2026-01-05 is a Monday. The schedule is office hours in UTC.
	office := func() *Schedule {
		return &Schedule{TimeZone: "UTC", Slots: []Slot{slot("09:00", "17:00", weekdaysMonFri...)}}
	}
	jan := Window{Start: utc(t, "2026-01-01T00:00:00Z"), End: utc(t, "2026-02-01T00:00:00Z")}
	cases := []struct {
		name  string
		link  Link
		now   string
		want  error     // sentinel, matched with errors.Is
		opens time.Time // for a *ClosedError
	}{
		{name: "eternal", link: Link{Status: StatusActive}, now: "2026-01-05T12:00:00Z"},
		{name: "inside window", link: Link{Status: StatusActive, Window: jan}, now: "2026-01-05T12:00:00Z"},
		{name: "at start", link: Link{Status: StatusActive, Window: jan}, now: "2026-01-01T00:00:00Z"},
		{name: "inside schedule", link: Link{Status: StatusActive, Window: jan, Schedule: office()}, now: "2026-01-05T09:00:00Z"},
		{name: "disabled", link: Link{Status: StatusDisabled}, now: "2026-01-05T12:00:00Z", want: ErrDisabled},
		{name: "disabled and expired", link: Link{Status: StatusDisabled, Window: jan}, now: "2026-03-01T00:00:00Z", want: ErrDisabled},
		{name: "expired at end", link: Link{Status: StatusActive, Window: jan}, now: "2026-02-01T00:00:00Z", want: ErrExpired},
		{name: "expired after end", link: Link{Status: StatusActive, Window: jan, MaxUses: 1, Uses: 1}, now: "2027-01-01T00:00:00Z", want: ErrExpired},
		{name: "last second", link: Link{Status: StatusActive, Window: jan}, now: "2026-01-31T23:59:59Z"},
		{name: "used up", link: Link{Status: StatusActive, MaxUses: 3, Uses: 3}, now: "2026-01-05T12:00:00Z", want: ErrUsedUp},
		{name: "over used", link: Link{Status: StatusActive, MaxUses: 3, Uses: 4}, now: "2026-01-05T12:00:00Z", want: ErrUsedUp},
		{name: "one use left", link: Link{Status: StatusActive, MaxUses: 3, Uses: 2}, now: "2026-01-05T12:00:00Z"},
		{name: "no limit", link: Link{Status: StatusActive, Uses: 1 << 40}, now: "2026-01-05T12:00:00Z"},
		{name: "used up before start", link: Link{Status: StatusActive, Window: jan, MaxUses: 1, Uses: 1}, now: "2025-12-01T00:00:00Z", want: ErrUsedUp},
		{
			name:  "not yet active",
			link:  Link{Status: StatusActive, Window: jan},
			now:   "2025-12-31T23:59:59Z",
			want:  ErrNotYetActive,
			opens: jan.Start,
		},
		{
			name:  "not yet active, open-ended",
			link:  Link{Status: StatusActive, Window: Window{Start: jan.Start}},
			now:   "2025-06-01T00:00:00Z",
			want:  ErrNotYetActive,
			opens: jan.Start,
		},
		{
			name:  "not yet active, schedule open at start",
			link:  Link{Status: StatusActive, Window: Window{Start: utc(t, "2026-01-05T10:00:00Z"), End: jan.End}, Schedule: office()},
			now:   "2026-01-05T09:30:00Z",
			want:  ErrNotYetActive,
			opens: utc(t, "2026-01-05T10:00:00Z"),
		},
		{
			name:  "not yet active, opens at the first slot after start",
			link:  Link{Status: StatusActive, Window: jan, Schedule: office()}, // starts on a Thursday at 00:00
			now:   "2025-12-24T12:00:00Z",
			want:  ErrNotYetActive,
			opens: utc(t, "2026-01-01T09:00:00Z"),
		},
		{
			name:  "not yet active, start on a Saturday",
			link:  Link{Status: StatusActive, Window: Window{Start: utc(t, "2026-01-03T12:00:00Z")}, Schedule: office()},
			now:   "2026-01-02T12:00:00Z",
			want:  ErrNotYetActive,
			opens: utc(t, "2026-01-05T09:00:00Z"),
		},
		{
			name: "not yet active, no slot inside the window",
			link: Link{Status: StatusActive, Window: Window{Start: utc(t, "2026-01-03T12:00:00Z"), End: utc(t, "2026-01-04T12:00:00Z")}, Schedule: office()},
			now:  "2026-01-02T12:00:00Z",
			want: ErrNotYetActive,
		},
		{
			name:  "outside schedule",
			link:  Link{Status: StatusActive, Window: jan, Schedule: office()},
			now:   "2026-01-05T17:00:00Z",
			want:  ErrOutsideSchedule,
			opens: utc(t, "2026-01-06T09:00:00Z"),
		},
		{
			name:  "outside schedule, weekend",
			link:  Link{Status: StatusActive, Schedule: office()},
			now:   "2026-01-10T12:00:00Z",
			want:  ErrOutsideSchedule,
			opens: utc(t, "2026-01-12T09:00:00Z"),
		},
		{
			name: "outside schedule, next slot after the end",
			link: Link{Status: StatusActive, Window: Window{Start: jan.Start, End: utc(t, "2026-01-05T20:00:00Z")}, Schedule: office()},
			now:  "2026-01-05T18:00:00Z",
			want: ErrOutsideSchedule,
		},
		{
			name: "outside schedule, next slot exactly at the end",
			link: Link{Status: StatusActive, Window: Window{Start: jan.Start, End: utc(t, "2026-01-06T09:00:00Z")}, Schedule: office()},
			now:  "2026-01-05T18:00:00Z",
			want: ErrOutsideSchedule,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.link.Check(utc(t, tc.now))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			var ce *ClosedError
			closed := errors.As(err, &ce)
			if wantClosed := tc.want == ErrNotYetActive || tc.want == ErrOutsideSchedule; closed != wantClosed {
				t.Fatalf("Check = %#v: *ClosedError %v, want %v", err, closed, wantClosed)
			}
			if closed && !ce.Opens.Equal(tc.opens) {
				t.Fatalf("Check opens at %v, want %v", ce.Opens, tc.opens)
			}
		})
	}
}

func TestLinkClosesAt(t *testing.T) {
	t.Parallel()
	office := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("09:00", "17:00", weekdaysMonFri...)}}
	end := utc(t, "2026-01-20T00:00:00Z")
	cases := []struct {
		name string
		link Link
		now  string
		want string // "" = never
	}{
		{"eternal", Link{}, "2026-01-05T12:00:00Z", ""},
		{"window end", Link{Window: Window{End: end}}, "2026-01-05T12:00:00Z", "2026-01-20T00:00:00Z"},
		{"slot end first", Link{Window: Window{End: end}, Schedule: office}, "2026-01-05T12:00:00Z", "2026-01-05T16:00:00Z"},
		{"slot end, eternal", Link{Schedule: office}, "2026-01-05T12:00:00Z", "2026-01-05T16:00:00Z"},
		{"window end first", Link{Window: Window{End: utc(t, "2026-01-05T13:00:00Z")}, Schedule: office}, "2026-01-05T12:00:00Z", "2026-01-05T13:00:00Z"},
		{"schedule closed", Link{Window: Window{End: end}, Schedule: office}, "2026-01-05T20:00:00Z", "2026-01-20T00:00:00Z"},
		{"schedule closed, eternal", Link{Schedule: office}, "2026-01-05T20:00:00Z", ""},
	}
	for _, tc := range cases {
		got := tc.link.ClosesAt(utc(t, tc.now))
		var want time.Time
		if tc.want != "" {
			want = utc(t, tc.want)
		}
		if !got.Equal(want) {
			t.Errorf("%s: ClosesAt = %v, want %v", tc.name, got, want)
		}
	}
}

func TestWindowValidate(t *testing.T) {
	t.Parallel()
	a, b := t0, t0.Add(time.Hour)
	for _, w := range []Window{{}, {Start: a}, {End: a}, {Start: a, End: b}} {
		if err := w.Validate(); err != nil {
			t.Errorf("%+v: %v", w, err)
		}
	}
	for _, w := range []Window{{Start: a, End: a}, {Start: b, End: a}} {
		if fe, ok := AsFieldError(w.Validate()); !ok || fe.Field != "window.end" {
			t.Errorf("%+v: %v, want a *FieldError for window.end", w, w.Validate())
		}
	}
	if !(Window{Start: a}).Eternal() || (Window{End: b}).Eternal() {
		t.Error("Eternal is wrong")
	}
}

func TestLinkClaims(t *testing.T) {
	t.Parallel()
	r := testRing(t, testKey(1))
	l := Link{ID: fixedID, Generation: 4, Window: Window{Start: t0, End: t0.Add(time.Hour)}}
	c, err := r.Verify(r.Mint(l.Claims()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Link != l.ID || c.Generation != 4 || !c.NotBefore.Equal(t0) || !c.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Fatalf("claims of %+v = %+v", l, c)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	p := Permissions{Control: []string{"light/on"}, View: []string{"sensor/temp"}, Camera: []string{LevelLive}}
	if !p.CanControl("light/on") || p.CanControl("sensor/temp") {
		t.Error("CanControl")
	}
	// A controllable property is visible too.
	if !p.CanView("light/on") || !p.CanView("sensor/temp") || p.CanView("door/lock") {
		t.Error("CanView")
	}
	if !p.HasLevel(LevelLive) || p.HasLevel(LevelDownload) {
		t.Error("HasLevel")
	}
}

func TestLinkIDText(t *testing.T) {
	t.Parallel()
	id := NewLinkID()
	if id == (LinkID{}) || id == NewLinkID() {
		t.Fatal("NewLinkID is not random")
	}
	text, _ := id.MarshalText()
	var back LinkID
	if err := back.UnmarshalText(text); err != nil || back != id {
		t.Fatalf("UnmarshalText(%s) = %v, %v", text, back, err)
	}
	for _, bad := range []string{"", "00", id.String() + "0", id.String()[:31] + "g", "0x" + id.String()[2:]} {
		if _, err := ParseLinkID(bad); err != ErrNotFound {
			t.Errorf("ParseLinkID(%q) = %v, want ErrNotFound", bad, err)
		}
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) succeeded", bad)
		}
	}
}
