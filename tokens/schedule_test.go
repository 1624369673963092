package tokens

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func slot(start, end string, days ...string) Slot { return Slot{Days: days, Start: start, End: end} }

var weekdaysMonFri = []string{"mon", "tue", "wed", "thu", "fri"}
var everyDay = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

func TestScheduleValidate(t *testing.T) {
	t.Parallel()
	ok := slot("09:00", "17:00", weekdaysMonFri...)
	good := []*Schedule{
		{TimeZone: "Europe/Berlin", Slots: []Slot{ok}},
		{TimeZone: "UTC", Slots: []Slot{slot("20:00", "24:00", "sat")}},
		{TimeZone: "America/Los_Angeles", Slots: []Slot{slot("22:00", "06:00", "fri")}},
		{TimeZone: "Pacific/Kiritimati", Slots: []Slot{slot("00:00", "24:00", everyDay...)}},
		{TimeZone: "Asia/Kolkata", Slots: []Slot{slot("23:59", "00:00", "sun"), ok}},
	}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", s, err)
		}
	}

	many := make([]Slot, 65)
	for i := range many {
		many[i] = ok
	}
	bad := []struct {
		name  string
		s     *Schedule
		field string
	}{
		{"no time zone", &Schedule{Slots: []Slot{ok}}, "schedule.timeZone"},
		{"unknown time zone", &Schedule{TimeZone: "Mars/Base", Slots: []Slot{ok}}, "schedule.timeZone"},
		{"Local", &Schedule{TimeZone: "Local", Slots: []Slot{ok}}, "schedule.timeZone"},
		{"local", &Schedule{TimeZone: "local", Slots: []Slot{ok}}, "schedule.timeZone"},
		{"path", &Schedule{TimeZone: "../../etc/passwd", Slots: []Slot{ok}}, "schedule.timeZone"},
		{"no slots", &Schedule{TimeZone: "UTC"}, "schedule.slots"},
		{"empty slots", &Schedule{TimeZone: "UTC", Slots: []Slot{}}, "schedule.slots"},
		{"65 slots", &Schedule{TimeZone: "UTC", Slots: many}, "schedule.slots"},
		{"no days", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("09:00", "17:00")}}, "schedule.slots[0].days"},
		{"bad day", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("09:00", "17:00", "mon", "funday")}}, "schedule.slots[0].days"},
		{"long day name", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("09:00", "17:00", "monday")}}, "schedule.slots[0].days"},
		{"capital day", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("09:00", "17:00", "Mon")}}, "schedule.slots[0].days"},
		{"hour 25", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("25:00", "26:00", "mon")}}, "schedule.slots[0].start"},
		{"one-digit hour", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("8:00", "17:00", "mon")}}, "schedule.slots[0].start"},
		{"minute 60", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:60", "17:00", "mon")}}, "schedule.slots[0].start"},
		{"start 24:00", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("24:00", "06:00", "mon")}}, "schedule.slots[0].start"},
		{"empty start", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("", "06:00", "mon")}}, "schedule.slots[0].start"},
		{"seconds", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:00:00", "17:00", "mon")}}, "schedule.slots[0].start"},
		{"sign", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("+8:00", "17:00", "mon")}}, "schedule.slots[0].start"},
		{"minus zero", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:00", "-0:00", "mon")}}, "schedule.slots[0].end"},
		{"signed minutes", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:+5", "17:00", "mon")}}, "schedule.slots[0].start"},
		{"letters", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("ab:cd", "17:00", "mon")}}, "schedule.slots[0].start"},
		{"end 24:01", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:00", "24:01", "mon")}}, "schedule.slots[0].end"},
		{"end 25:00", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:00", "25:00", "mon")}}, "schedule.slots[0].end"},
		{"end == start", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:00", "08:00", "mon")}}, "schedule.slots[0].end"},
		{"midnight to midnight", &Schedule{TimeZone: "UTC", Slots: []Slot{slot("00:00", "00:00", "mon")}}, "schedule.slots[0].end"},
		{"second slot bad", &Schedule{TimeZone: "UTC", Slots: []Slot{ok, slot("09:00", "9:30", "mon")}}, "schedule.slots[1].end"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			fe, ok := AsFieldError(tc.s.Validate())
			if !ok {
				t.Fatalf("Validate = %v, want a *FieldError for %s", tc.s.Validate(), tc.field)
			}
			if fe.Field != tc.field {
				t.Fatalf("Validate names %q (%v), want %q", fe.Field, fe, tc.field)
			}
		})
	}
}

// utc parses an RFC 3339 time; the tests give instants in UTC and say in a
// comment what the local clock shows.
func utc(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type openCase struct {
	at     string // UTC
	open   bool
	next   string // when closed: the next opening, UTC ("" = never)
	closes string // when open: the end of the slot, UTC
}

func checkOpen(t *testing.T, s *Schedule, cases []openCase) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		at := utc(t, tc.at)
		// The caller's location must not matter.
		for _, in := range []*time.Location{time.UTC, mustLoc(t, "Asia/Tokyo"), mustLoc(t, "America/New_York")} {
			open, next := s.Open(at.In(in))
			if open != tc.open {
				t.Errorf("%s: Open(%s) = %v, want %v", s.TimeZone, tc.at, open, tc.open)
				continue
			}
			if open {
				if !next.IsZero() {
					t.Errorf("%s: Open(%s) is open but next = %v", s.TimeZone, tc.at, next)
				}
				if got := s.closesAt(at.In(in)); !got.Equal(utc(t, tc.closes)) {
					t.Errorf("%s: closesAt(%s) = %v, want %s", s.TimeZone, tc.at, got.UTC(), tc.closes)
				}
				continue
			}
			want := time.Time{}
			if tc.next != "" {
				want = utc(t, tc.next)
			}
			if !next.Equal(want) {
				t.Errorf("%s: Open(%s) next = %v, want %v", s.TimeZone, tc.at, next.UTC(), want)
			}
			if got := s.closesAt(at.In(in)); !got.IsZero() {
				t.Errorf("%s: closesAt(%s) = %v while closed, want zero", s.TimeZone, tc.at, got)
			}
		}
	}
}

func TestScheduleWeekdays(t *testing.T) {
	t.Parallel()
	// Berlin in January is UTC+1. 2026-01-05 is a Monday.
	s := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("09:00", "17:00", weekdaysMonFri...)}}
	checkOpen(t, s, []openCase{
		{at: "2026-01-05T07:59:59Z", next: "2026-01-05T08:00:00Z"},               // Mon 08:59:59
		{at: "2026-01-05T08:00:00Z", open: true, closes: "2026-01-05T16:00:00Z"}, // Mon 09:00
		{at: "2026-01-05T15:59:59Z", open: true, closes: "2026-01-05T16:00:00Z"}, // Mon 16:59:59
		{at: "2026-01-05T16:00:00Z", next: "2026-01-06T08:00:00Z"},               // Mon 17:00
		{at: "2026-01-09T16:00:00Z", next: "2026-01-12T08:00:00Z"},               // Fri 17:00
		{at: "2026-01-10T11:00:00Z", next: "2026-01-12T08:00:00Z"},               // Sat noon
		{at: "2026-01-11T23:30:00Z", next: "2026-01-12T08:00:00Z"},               // Mon 00:30, Sun in UTC
	})
}

func TestScheduleOvernight(t *testing.T) {
	t.Parallel()
	s := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("22:00", "06:00", "fri")}}
	checkOpen(t, s, []openCase{
		{at: "2026-01-08T22:00:00Z", next: "2026-01-09T21:00:00Z"},               // Thu 23:00: the slot is Friday's
		{at: "2026-01-09T20:59:59Z", next: "2026-01-09T21:00:00Z"},               // Fri 21:59:59
		{at: "2026-01-09T21:00:00Z", open: true, closes: "2026-01-10T05:00:00Z"}, // Fri 22:00
		{at: "2026-01-09T23:30:00Z", open: true, closes: "2026-01-10T05:00:00Z"}, // Sat 00:30
		{at: "2026-01-10T04:59:59Z", open: true, closes: "2026-01-10T05:00:00Z"}, // Sat 05:59:59
		{at: "2026-01-10T05:00:00Z", next: "2026-01-16T21:00:00Z"},               // Sat 06:00: a week on
	})
	// A Sunday night slot runs into Monday, across the week's end.
	sun := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("22:00", "06:00", "sun")}}
	checkOpen(t, sun, []openCase{
		{at: "2026-01-12T02:00:00Z", open: true, closes: "2026-01-12T05:00:00Z"}, // Mon 03:00
		{at: "2026-01-12T05:00:00Z", next: "2026-01-18T21:00:00Z"},               // Mon 06:00
	})
	// 24:00 ends a slot at the next midnight.
	eve := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("20:00", "24:00", "sat")}}
	checkOpen(t, eve, []openCase{
		{at: "2026-01-10T22:59:59Z", open: true, closes: "2026-01-10T23:00:00Z"}, // Sat 23:59:59
		{at: "2026-01-10T23:00:00Z", next: "2026-01-17T19:00:00Z"},               // Sun 00:00
	})
	// Overlapping slots: the earliest end is reported.
	both := &Schedule{TimeZone: "UTC", Slots: []Slot{slot("08:00", "12:00", "mon"), slot("10:00", "11:00", "mon")}}
	checkOpen(t, both, []openCase{
		{at: "2026-01-05T10:30:00Z", open: true, closes: "2026-01-05T11:00:00Z"},
		{at: "2026-01-05T11:30:00Z", open: true, closes: "2026-01-05T12:00:00Z"},
	})
}

func TestScheduleDST(t *testing.T) {
	t.Parallel()
	// Europe/Berlin: on Sunday 2026-03-29 the clock jumps from 02:00 CET to
	// 03:00 CEST (01:00 UTC); on Sunday 2026-10-25 it falls back from 03:00
	// CEST to 02:00 CET (01:00 UTC).
	daily := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("09:00", "10:00", everyDay...)}}
	checkOpen(t, daily, []openCase{
		{at: "2026-03-28T09:00:00Z", next: "2026-03-29T07:00:00Z"},               // Sat 10:00 CET → Sun 09:00 CEST, 22 h on
		{at: "2026-03-29T07:30:00Z", open: true, closes: "2026-03-29T08:00:00Z"}, // Sun 09:30 CEST
		{at: "2026-10-24T08:00:00Z", next: "2026-10-25T08:00:00Z"},               // Sat 10:00 CEST → Sun 09:00 CET, 24 h on
		{at: "2026-10-25T08:30:00Z", open: true, closes: "2026-10-25T09:00:00Z"}, // Sun 09:30 CET
	})
	// A slot across the change lasts as long as the wall clock says: 01:00
	// to 04:00 is two real hours in March and four in October.
	night := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("01:00", "04:00", "sun")}}
	checkOpen(t, night, []openCase{
		{at: "2026-03-28T23:59:59Z", next: "2026-03-29T00:00:00Z"},
		{at: "2026-03-29T00:00:00Z", open: true, closes: "2026-03-29T02:00:00Z"},
		{at: "2026-03-29T01:30:00Z", open: true, closes: "2026-03-29T02:00:00Z"}, // 03:30 CEST
		{at: "2026-03-29T02:00:00Z", next: "2026-04-04T23:00:00Z"},               // 04:00 CEST
		{at: "2026-10-24T23:00:00Z", open: true, closes: "2026-10-25T03:00:00Z"}, // 01:00 CEST
		{at: "2026-10-25T01:30:00Z", open: true, closes: "2026-10-25T03:00:00Z"}, // 02:30 CET, the second time
		{at: "2026-10-25T03:00:00Z", next: "2026-11-01T00:00:00Z"},               // 04:00 CET
	})
	// A slot that starts in the skipped hour opens when the clock jumps
	// past its start.
	gap := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("02:00", "04:00", "sun")}}
	checkOpen(t, gap, []openCase{
		{at: "2026-03-29T00:30:00Z", next: "2026-03-29T01:00:00Z"},               // 01:30 CET
		{at: "2026-03-29T01:00:00Z", open: true, closes: "2026-03-29T02:00:00Z"}, // 03:00 CEST
	})
}

func TestScheduleFarFromUTC(t *testing.T) {
	t.Parallel()
	// Kiritimati is UTC+14: its Monday morning is Sunday evening in UTC.
	kiri := &Schedule{TimeZone: "Pacific/Kiritimati", Slots: []Slot{slot("09:00", "10:00", "mon")}}
	checkOpen(t, kiri, []openCase{
		{at: "2026-01-04T18:59:59Z", next: "2026-01-04T19:00:00Z"},
		{at: "2026-01-04T19:30:00Z", open: true, closes: "2026-01-04T20:00:00Z"}, // Mon 09:30 local, Sun in UTC
		{at: "2026-01-05T19:30:00Z", next: "2026-01-11T19:00:00Z"},               // Tue 09:30 local
	})
	// Los Angeles: a Friday night slot, before and after the change to
	// daylight time on Sunday 2026-03-08 (UTC-8, then UTC-7).
	la := &Schedule{TimeZone: "America/Los_Angeles", Slots: []Slot{slot("22:00", "02:00", "fri")}}
	checkOpen(t, la, []openCase{
		{at: "2026-03-07T05:59:59Z", next: "2026-03-07T06:00:00Z"},               // Fri 21:59:59 PST
		{at: "2026-03-07T07:00:00Z", open: true, closes: "2026-03-07T10:00:00Z"}, // Fri 23:00 PST; Sat in UTC
		{at: "2026-03-07T10:00:00Z", next: "2026-03-14T05:00:00Z"},               // Sat 02:00 PST → Fri 22:00 PDT
		{at: "2026-03-14T08:59:59Z", open: true, closes: "2026-03-14T09:00:00Z"}, // Sat 01:59:59 PDT
	})
}

func TestScheduleInvalidNeverOpens(t *testing.T) {
	t.Parallel()
	for _, s := range []*Schedule{
		{TimeZone: "Mars/Base", Slots: []Slot{slot("00:00", "24:00", everyDay...)}},
		{TimeZone: "UTC", Slots: []Slot{slot("9:00", "24:00", everyDay...), slot("10:00", "10:00", "mon")}},
		{TimeZone: "UTC"},
	} {
		if open, next := s.Open(t0); open || !next.IsZero() {
			t.Errorf("%+v: Open = %v, %v; want closed for ever", s, open, next)
		}
	}
}

func TestScheduleJSON(t *testing.T) {
	t.Parallel()
	in := `{"timeZone":"Europe/Berlin","slots":[{"days":["mon","fri"],"start":"09:00","end":"24:00"}]}`
	var s Schedule
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("round trip:\n got  %s\n want %s", out, in)
	}
}

// TestScheduleConcurrentFirstUse shares one schedule, not yet compiled,
// between goroutines, as a cached link's schedule is shared by requests.
func TestScheduleConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	s := &Schedule{TimeZone: "Europe/Berlin", Slots: []Slot{slot("09:00", "17:00", weekdaysMonFri...)}}
	at := utc(t, "2026-01-05T10:00:00Z")
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			open, _ := s.Open(at)
			if !open {
				errs <- fmt.Errorf("closed at %v", at)
				return
			}
			errs <- nil
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParseClock: a clock that parses is written exactly as its value
// prints, so a stored schedule has one spelling.
func FuzzParseClock(f *testing.F) {
	for _, s := range []string{"00:00", "09:30", "23:59", "24:00", "24:01", "8:00", "+8:00", "-0:00", "25:00", "12:60", "", ":", "0a:00"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, allow24 bool) {
		v, err := parseClock(s, allow24)
		if err != nil {
			return
		}
		if v < 0 || v > 24*60 || (v == 24*60 && !allow24) {
			t.Fatalf("parseClock(%q, %v) = %d: out of range", s, allow24, v)
		}
		if back := fmt.Sprintf("%02d:%02d", v/60, v%60); back != s {
			t.Fatalf("parseClock(%q) = %d, which prints as %q", s, v, back)
		}
	})
}
