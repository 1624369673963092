package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
)

// runLink runs "linkgate link ARGS..." and returns the exit status.
func runLink(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return linkGroup.run(ctx, &cliEnv{stdin: os.Stdin, stdout: stdout, stderr: stderr}, args)
}

var linkGroup = &cliGroup{
	name:    "link",
	summary: "Manage share links over the owner API.",
	common:  apiFlagsHelp,
	commands: []*cliCommand{
		{
			name: "create", args: "--device ID [flags]", summary: "mint a link and print its URL",
			help: `Mint a link to a device or camera and print its URL.

Permissions are lists of properties, "node/prop", comma-separated or given
more than once: --control for what the holder may set, --view for what the
holder may see (controllable properties are visible too). A camera link
takes --camera levels: live, archive, notices, download.

Without --end the link never expires. --schedule limits it to weekly slots
in the time zone of --schedule-tz, for example
  --schedule-tz Europe/Berlin --schedule 'mon-fri 08:00-18:00; sat 10:00-12:00'
Days are mon..sun, as lists (mon,wed) or ranges (mon-fri); a slot whose end
is at or before its start runs past midnight; 24:00 ends a day.`,
			run: linkCreate,
		},
		{
			name: "list", args: "[--limit N] [--all]", summary: "list links, newest first",
			help: `List links, newest first, one page at a time: --cursor takes the next
page's cursor, which list prints on stderr; --all fetches every page.`,
			run: linkList,
		},
		{name: "show", args: "ID", summary: "show a link", help: "Show a link.", run: linkShow},
		{
			name: "edit", args: "ID [flags]", summary: "change a link's name, device, permissions, window, schedule or limits",
			help: `Change a link. Only the flags given change; the link keeps its URL, and
open sessions follow the change at once.

A list flag replaces that list, others are kept: --view '' empties the
view list. --start or --end alone keeps the other side of the window;
either as '' removes that side. --eternal removes the window (combine it
with --start to keep a start). --schedule or --schedule-tz alone keeps
the other; --no-schedule removes the schedule. --max-uses 0 and
--max-sessions 0 remove the limit.`,
			run: linkEdit,
		},
		{
			name: "disable", args: "ID", summary: "switch a link off (it answers 410; open sessions close)",
			help: "Switch a link off: it answers 410 until enabled again, and its open sessions close.",
			run:  func(ctx context.Context, e *cliEnv, args []string) error { return linkSetStatus(ctx, e, args, false) },
		},
		{
			name: "enable", args: "ID", summary: "switch a disabled link back on",
			help: "Switch a disabled link back on.",
			run:  func(ctx context.Context, e *cliEnv, args []string) error { return linkSetStatus(ctx, e, args, true) },
		},
		{
			name: "delete", args: "ID", summary: "delete a link for good",
			help: "Delete a link for good: its URL answers 404 and its open sessions close.",
			run:  linkDelete,
		},
		{
			name: "log", args: "ID [--limit N]", summary: "show a link's access log, newest first",
			help: "Show a link's access log, newest first.",
			run:  linkLog,
		},
	},
}

// linkFlags are the flags that describe a link, for create and edit.
type linkFlags struct {
	name, device          string
	control, view, camera listFlag
	start, end            string
	scheduleTZ, schedule  string
	maxUses, maxSessions  int
}

func (f *linkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "the link's `name`; on create it defaults to the device's name")
	fs.StringVar(&f.device, "device", "", "the `ID` of the device or camera to share")
	fs.Var(&f.control, "control", "properties the holder may set, `node/prop,...`")
	fs.Var(&f.view, "view", "properties the holder may see, `node/prop,...`")
	fs.Var(&f.camera, "camera", "camera `levels`: live, archive, notices, download")
	fs.StringVar(&f.start, "start", "", "when the link opens, RFC 3339 `time` such as 2026-11-22T10:00:00+01:00")
	fs.StringVar(&f.end, "end", "", "when the link expires, RFC 3339 `time`; none: never")
	fs.StringVar(&f.scheduleTZ, "schedule-tz", "", "the schedule's IANA time `zone`, such as Europe/Berlin")
	fs.StringVar(&f.schedule, "schedule", "", "weekly `slots`, such as 'mon-fri 08:00-18:00; sat 10:00-12:00'")
	fs.IntVar(&f.maxUses, "max-uses", 0, "most sessions the link hands out, `N`; 0: no limit")
	fs.IntVar(&f.maxSessions, "max-sessions", 0, "most sessions open at once, `N`; 0: no limit")
}

func linkCreate(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	e.apiFlags(fs)
	var f linkFlags
	f.register(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if f.device == "" {
		return usageErrorf("--device is required")
	}
	req := ownerapi.LinkCreate{
		Device: f.device,
		Name:   f.name,
		Permissions: tokens.Permissions{
			Control: f.control.list(), View: f.view.list(), Camera: f.camera.list(),
		},
	}
	if f.start != "" || f.end != "" {
		req.Window = new(ownerapi.Window)
		if req.Window.Start, err = parseTimeFlag("start", f.start); err != nil {
			return err
		}
		if req.Window.End, err = parseTimeFlag("end", f.end); err != nil {
			return err
		}
	}
	switch {
	case f.schedule != "" && f.scheduleTZ != "":
		if req.Schedule, err = parseSchedule(f.scheduleTZ, f.schedule); err != nil {
			return err
		}
	case f.schedule != "":
		return usageErrorf("--schedule needs --schedule-tz, an IANA time zone such as Europe/Berlin")
	case f.scheduleTZ != "":
		return usageErrorf("--schedule-tz needs --schedule")
	}
	if req.MaxUses, err = nonNegative("max-uses", f.maxUses); err != nil {
		return err
	}
	if req.MaxSessions, err = nonNegative("max-sessions", f.maxSessions); err != nil {
		return err
	}

	c, err := e.client()
	if err != nil {
		return err
	}
	l, err := c.CreateLink(ctx, req)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(l)
	}
	return writeLink(e.stdout, l)
}

func linkList(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	e.apiFlags(fs)
	limit := fs.Int("limit", 0, "links per page, 1 to 200; 0: the server's default (50)")
	cursor := fs.String("cursor", "", "start at this page `cursor`, from a previous list")
	all := fs.Bool("all", false, "fetch every page")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := checkLimit(*limit); err != nil {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	page, err := collect(*cursor, *all, func(cursor string) (*ownerapi.Page[ownerapi.Link], error) {
		return c.ListLinks(ctx, cursor, *limit)
	})
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(page)
	}
	t := newTable(e.stdout, "ID", "NAME", "DEVICE", "KIND", "STATUS", "WINDOW", "USES")
	for _, l := range page.Items {
		uses := strconv.FormatInt(l.Uses, 10)
		if l.MaxUses > 0 {
			uses += "/" + strconv.Itoa(l.MaxUses)
		}
		t.row(l.ID, l.Name, l.Device, l.Kind, l.Status, formatWindow(l.Window), uses)
	}
	if err := t.flush(); err != nil {
		return err
	}
	moreHint(e, page.Next)
	return nil
}

// collect fetches the page at cursor, or with all every page from there on,
// joined into one.
func collect[T any](cursor string, all bool, fetch func(cursor string) (*ownerapi.Page[T], error)) (*ownerapi.Page[T], error) {
	page, err := fetch(cursor)
	if err != nil || !all {
		return page, err
	}
	for page.Next != "" {
		if page.Next == cursor {
			return nil, fmt.Errorf("the server answered the same page cursor twice (%q)", cursor)
		}
		cursor = page.Next
		p, err := fetch(cursor)
		if err != nil {
			return nil, err
		}
		page.Items = append(page.Items, p.Items...)
		page.Next = p.Next
	}
	return page, nil
}

// moreHint tells, on stderr, how to get the next page.
func moreHint(e *cliEnv, next string) {
	if next != "" {
		fmt.Fprintf(e.stderr, "more: %s --cursor %s (or --all)\n", e.path(), next)
	}
}

func linkShow(ctx context.Context, e *cliEnv, args []string) error {
	c, id, err := e.idCommand(args, "link ID")
	if err != nil {
		return err
	}
	l, err := c.GetLink(ctx, id)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(l)
	}
	return writeLink(e.stdout, l)
}

// idCommand parses a command whose only argument is an id.
func (e *cliEnv) idCommand(args []string, what string) (*ownerapi.Client, string, error) {
	fs := e.newFlags()
	e.apiFlags(fs)
	pos, err := e.parse(fs, args)
	if err != nil {
		return nil, "", err
	}
	id, err := oneArg(pos, what)
	if err != nil {
		return nil, "", err
	}
	c, err := e.client()
	return c, id, err
}

func linkEdit(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	e.apiFlags(fs)
	var f linkFlags
	f.register(fs)
	eternal := fs.Bool("eternal", false, "remove the window: open from now on, forever (with --start: from then on)")
	noSchedule := fs.Bool("no-schedule", false, "remove the weekly schedule")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneArg(pos, "link ID")
	if err != nil {
		return err
	}
	set := visited(fs)
	switch {
	case *eternal && set["end"]:
		return usageErrorf("--eternal and --end contradict each other")
	case *noSchedule && (set["schedule"] || set["schedule-tz"]):
		return usageErrorf("--no-schedule and --schedule or --schedule-tz contradict each other")
	}
	c, err := e.client()
	if err != nil {
		return err
	}

	// Permissions, a window side and a schedule half are sent whole, so
	// what the flags leave out is taken from the link as it is now. The
	// link is read only when needed, and at most once.
	var current *ownerapi.Link
	now := func() (*ownerapi.Link, error) {
		if current == nil {
			l, err := c.GetLink(ctx, id)
			if err != nil {
				return nil, err
			}
			current = l
		}
		return current, nil
	}

	var p ownerapi.LinkPatch
	changed := false
	if set["name"] {
		p.Name, changed = &f.name, true
	}
	if set["device"] {
		p.Device, changed = &f.device, true
	}
	if set["control"] || set["view"] || set["camera"] {
		l, err := now()
		if err != nil {
			return err
		}
		perms := l.Permissions
		if set["control"] {
			perms.Control = f.control.list()
		}
		if set["view"] {
			perms.View = f.view.list()
		}
		if set["camera"] {
			perms.Camera = f.camera.list()
		}
		p.Permissions, changed = &perms, true
	}
	switch {
	case *eternal && !set["start"]:
		p.Window, changed = ownerapi.Null[ownerapi.Window](), true
	case *eternal || set["start"] || set["end"]:
		var w ownerapi.Window
		if !*eternal && !(set["start"] && set["end"]) {
			l, err := now()
			if err != nil {
				return err
			}
			w = l.Window
		}
		if set["start"] {
			if w.Start, err = parseTimeFlag("start", f.start); err != nil {
				return err
			}
		}
		if set["end"] {
			if w.End, err = parseTimeFlag("end", f.end); err != nil {
				return err
			}
		}
		p.Window, changed = ownerapi.Some(w), true
	}
	switch {
	case *noSchedule:
		p.Schedule, changed = ownerapi.Null[*tokens.Schedule](), true
	case set["schedule"] || set["schedule-tz"]:
		tz, slots := f.scheduleTZ, f.schedule
		if !set["schedule"] || !set["schedule-tz"] {
			l, err := now()
			if err != nil {
				return err
			}
			if l.Schedule == nil {
				return usageErrorf("the link has no schedule yet: give both --schedule and --schedule-tz")
			}
			if !set["schedule"] {
				slots = formatSlots(l.Schedule.Slots)
			} else {
				tz = l.Schedule.TimeZone
			}
		}
		s, err := parseSchedule(tz, slots)
		if err != nil {
			return err
		}
		p.Schedule, changed = ownerapi.Some(s), true
	}
	if set["max-uses"] {
		n, err := nonNegative("max-uses", f.maxUses)
		if err != nil {
			return err
		}
		p.MaxUses, changed = &n, true
	}
	if set["max-sessions"] {
		n, err := nonNegative("max-sessions", f.maxSessions)
		if err != nil {
			return err
		}
		p.MaxSessions, changed = &n, true
	}
	if !changed {
		return usageErrorf("nothing to change: give at least one flag")
	}

	l, err := c.UpdateLink(ctx, id, p)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(l)
	}
	return writeLink(e.stdout, l)
}

func linkSetStatus(ctx context.Context, e *cliEnv, args []string, enable bool) error {
	c, id, err := e.idCommand(args, "link ID")
	if err != nil {
		return err
	}
	var l *ownerapi.Link
	if enable {
		l, err = c.EnableLink(ctx, id)
	} else {
		l, err = c.DisableLink(ctx, id)
	}
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(l)
	}
	return writeLink(e.stdout, l)
}

func linkDelete(ctx context.Context, e *cliEnv, args []string) error {
	c, id, err := e.idCommand(args, "link ID")
	if err != nil {
		return err
	}
	if err := c.DeleteLink(ctx, id); err != nil {
		return err
	}
	if !e.json {
		fmt.Fprintf(e.stdout, "deleted link %s\n", clean(id))
	}
	return nil
}

func linkLog(ctx context.Context, e *cliEnv, args []string) error {
	fs := e.newFlags()
	e.apiFlags(fs)
	limit := fs.Int("limit", 0, "most entries, 1 to 200; 0: the server's default (50)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneArg(pos, "link ID")
	if err != nil {
		return err
	}
	if err := checkLimit(*limit); err != nil {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	page, err := c.AccessLog(ctx, id, *limit)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(page)
	}
	t := newTable(e.stdout, "TIME", "EVENT", "SESSION", "IP", "USER AGENT")
	for _, a := range page.Items {
		t.row(formatTime(a.At), a.Event, a.Session, a.IP, a.UserAgent)
	}
	return t.flush()
}

// writeLink prints a link as "key: value" lines, its URL first.
func writeLink(w io.Writer, l *ownerapi.Link) error {
	f := newFields(w)
	f.add("url", l.URL)
	f.add("id", l.ID)
	f.add("name", l.Name)
	f.add("device", l.Device)
	f.add("kind", l.Kind)
	f.add("status", l.Status)
	f.add("window", formatWindow(l.Window))
	schedule := "none"
	if l.Schedule != nil {
		schedule = formatSlots(l.Schedule.Slots) + " (" + l.Schedule.TimeZone + ")"
	}
	f.add("schedule", schedule)
	if l.Kind == string(tokens.KindCamera) || len(l.Permissions.Camera) > 0 {
		f.add("camera", joinOrNone(l.Permissions.Camera))
	}
	f.add("control", joinOrNone(l.Permissions.Control))
	f.add("view", joinOrNone(l.Permissions.View))
	f.add("uses", strconv.FormatInt(l.Uses, 10))
	f.add("max uses", limitOrZero(l.MaxUses))
	f.add("max sessions", limitOrZero(l.MaxSessions))
	f.add("created", formatTime(l.CreatedAt))
	f.add("updated", formatTime(l.UpdatedAt))
	f.add("version", strconv.FormatInt(l.Version, 10))
	return f.flush()
}

func joinOrNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// parseTimeFlag parses an RFC 3339 time; "" is none.
func parseTimeFlag(name, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, usageErrorf("--%s %q: want an RFC 3339 time such as 2026-11-22T10:00:00Z or 2026-11-22T10:00:00+01:00", name, v)
	}
	return &t, nil
}

func nonNegative(name string, n int) (int, error) {
	if n < 0 {
		return 0, usageErrorf("--%s: want 0 (no limit) or more", name)
	}
	return n, nil
}

// dayNames are the schedule's days, in order, as tokens.Slot spells them.
var dayNames = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// parseSchedule parses --schedule: slots separated by ";", each "DAYS
// HH:MM-HH:MM", where DAYS is a comma list of days and day ranges
// ("mon-fri"; "fri-mon" wraps over the weekend). The server checks the
// times and the zone.
func parseSchedule(tz, spec string) (*tokens.Schedule, error) {
	tz = strings.TrimSpace(tz)
	if tz == "" {
		return nil, usageErrorf("--schedule-tz: want an IANA time zone such as Europe/Berlin")
	}
	s := &tokens.Schedule{TimeZone: tz}
	for part := range strings.SplitSeq(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Fields(part)
		if len(f) != 2 {
			return nil, usageErrorf("--schedule: slot %q: want DAYS HH:MM-HH:MM, such as mon-fri 08:00-18:00", part)
		}
		days, err := parseDays(f[0])
		if err != nil {
			return nil, usageErrorf("--schedule: slot %q: %v", part, err)
		}
		start, end, ok := strings.Cut(f[1], "-")
		if !ok || !isClock(start) || !isClock(end) {
			return nil, usageErrorf("--schedule: slot %q: want times HH:MM-HH:MM, such as 08:00-18:00", part)
		}
		s.Slots = append(s.Slots, tokens.Slot{Days: days, Start: start, End: end})
	}
	if len(s.Slots) == 0 {
		return nil, usageErrorf("--schedule: no slots; want DAYS HH:MM-HH:MM[; ...]")
	}
	return s, nil
}

func parseDays(v string) ([]string, error) {
	var days []string
	add := func(d string) {
		for _, have := range days {
			if have == d {
				return
			}
		}
		days = append(days, d)
	}
	for item := range strings.SplitSeq(strings.ToLower(v), ",") {
		from, to, isRange := strings.Cut(item, "-")
		i, j := dayIndex(from), dayIndex(to)
		switch {
		case i < 0:
			return nil, fmt.Errorf("unknown day %q (want mon, tue, wed, thu, fri, sat, sun)", from)
		case !isRange:
			add(dayNames[i])
		case j < 0:
			return nil, fmt.Errorf("unknown day %q (want mon, tue, wed, thu, fri, sat, sun)", to)
		default:
			for k := i; ; k = (k + 1) % len(dayNames) {
				add(dayNames[k])
				if k == j {
					break
				}
			}
		}
	}
	return days, nil
}

func dayIndex(d string) int {
	for i, n := range dayNames {
		if n == d {
			return i
		}
	}
	return -1
}

// isClock reports whether v looks like HH:MM; the server checks the range.
func isClock(v string) bool {
	if len(v) != 5 || v[2] != ':' {
		return false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// formatSlots prints slots in the syntax of --schedule.
func formatSlots(slots []tokens.Slot) string {
	parts := make([]string, len(slots))
	for i, s := range slots {
		parts[i] = formatDays(s.Days) + " " + s.Start + "-" + s.End
	}
	return strings.Join(parts, "; ")
}

// formatDays joins days with commas, writing three or more consecutive
// days as a range: mon-fri.
func formatDays(days []string) string {
	var parts []string
	for i := 0; i < len(days); {
		j := i
		for j+1 < len(days) && j-i < len(dayNames)-1 && dayIndex(days[j]) >= 0 &&
			dayIndex(days[j+1]) == (dayIndex(days[j])+1)%len(dayNames) {
			j++
		}
		if j-i >= 2 {
			parts = append(parts, days[i]+"-"+days[j])
		} else {
			parts = append(parts, days[i:j+1]...)
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
