package tokens

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Schedule is a weekly timetable in an IANA time zone. The link is open while
// now falls in any slot.
type Schedule struct {
	TimeZone string `json:"timeZone"`
	Slots    []Slot `json:"slots"`

	once sync.Once
	loc  *time.Location
	days [7][]span // by time.Weekday: minutes after local midnight
}

// Slot is one weekly opening: on each of Days (mon, tue, wed, thu, fri, sat,
// sun) from Start to End, "HH:MM" local time. End may be "24:00". An End at or
// before Start runs past midnight into the next day.
type Slot struct {
	Days  []string `json:"days"`
	Start string   `json:"start"`
	End   string   `json:"end"`
}

type span struct{ from, to int } // minutes; to may exceed 1440 (past midnight)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Validate checks the time zone, days and times, naming the bad field.
func (s *Schedule) Validate() error {
	if s.TimeZone == "" {
		return &FieldError{Field: "schedule.timeZone", Reason: "required (an IANA name such as Europe/Berlin)"}
	}
	if _, err := time.LoadLocation(s.TimeZone); err != nil || strings.EqualFold(s.TimeZone, "local") {
		return &FieldError{Field: "schedule.timeZone", Reason: fmt.Sprintf("unknown time zone %q", s.TimeZone)}
	}
	if len(s.Slots) == 0 {
		return &FieldError{Field: "schedule.slots", Reason: "at least one slot is required"}
	}
	if len(s.Slots) > 64 {
		return &FieldError{Field: "schedule.slots", Reason: "at most 64 slots"}
	}
	for i, sl := range s.Slots {
		f := fmt.Sprintf("schedule.slots[%d]", i)
		if len(sl.Days) == 0 {
			return &FieldError{Field: f + ".days", Reason: "at least one day is required"}
		}
		for _, d := range sl.Days {
			if _, ok := weekdays[d]; !ok {
				return &FieldError{Field: f + ".days", Reason: fmt.Sprintf("unknown day %q (want mon..sun)", d)}
			}
		}
		from, err := parseClock(sl.Start, false)
		if err != nil {
			return &FieldError{Field: f + ".start", Reason: err.Error()}
		}
		to, err := parseClock(sl.End, true)
		if err != nil {
			return &FieldError{Field: f + ".end", Reason: err.Error()}
		}
		if from == to {
			return &FieldError{Field: f + ".end", Reason: "must differ from start"}
		}
	}
	return nil
}

func parseClock(s string, allow24 bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 || strings.Trim(h+m, "0123456789") != "" { // Atoi alone takes "+8"
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !allow24)) {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return hh*60 + mm, nil
}

// compile turns the slots into per-weekday spans once. Validate must have
// passed; an invalid schedule compiles to one that is never open.
func (s *Schedule) compile() {
	s.once.Do(func() {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			s.loc = time.UTC
			return
		}
		s.loc = loc
		for _, sl := range s.Slots {
			from, err1 := parseClock(sl.Start, false)
			to, err2 := parseClock(sl.End, true)
			if err1 != nil || err2 != nil || from == to {
				continue
			}
			if to < from {
				to += 24 * 60
			}
			for _, d := range sl.Days {
				if wd, ok := weekdays[d]; ok {
					s.days[wd] = append(s.days[wd], span{from, to})
				}
			}
		}
	})
}

// intervals calls fn with each opening interval that starts on the local days
// from one day before t to eight days after, in order of day.
func (s *Schedule) intervals(t time.Time, fn func(from, to time.Time) bool) {
	s.compile()
	lt := t.In(s.loc)
	y, m, d := lt.Date()
	for i := -1; i <= 8; i++ {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, s.loc)
		for _, sp := range s.days[day.Weekday()] {
			// Build wall-clock times so that DST shifts land where people expect.
			from := time.Date(y, m, d+i, 0, sp.from, 0, 0, s.loc)
			to := time.Date(y, m, d+i, 0, sp.to, 0, 0, s.loc)
			if !fn(from, to) {
				return
			}
		}
	}
}

// Open reports whether the schedule is open at t and, if not, when it next
// opens (zero if never).
func (s *Schedule) Open(t time.Time) (open bool, next time.Time) {
	s.intervals(t, func(from, to time.Time) bool {
		if !t.Before(from) && t.Before(to) {
			open = true
			return false
		}
		if from.After(t) && (next.IsZero() || from.Before(next)) {
			next = from
		}
		return true
	})
	if open {
		next = time.Time{}
	}
	return open, next
}

// closesAt returns the end of the slot open at t, or zero if none is open.
// Overlapping or adjacent slots are not merged; the earliest end wins, which
// errs on the side of closing and re-checking.
func (s *Schedule) closesAt(t time.Time) time.Time {
	var end time.Time
	s.intervals(t, func(from, to time.Time) bool {
		if !t.Before(from) && t.Before(to) && (end.IsZero() || to.Before(end)) {
			end = to
		}
		return true
	})
	return end
}
