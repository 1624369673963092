package main

// This file holds what the management commands (link, device, camera,
// owner) share: subcommand dispatch, the API flags, exit codes, error
// reporting and output helpers.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/linkgate/linkgate/gateway/ownerapi"
	"github.com/linkgate/linkgate/tokens"
)

// Exit codes of the management commands. Scripts may rely on them.
const (
	exitOK           = 0 // success
	exitFailure      = 1 // server error, network, anything else
	exitUsage        = 2 // bad flags or arguments, missing API key
	exitNotFound     = 3 // the server answered 404
	exitInvalid      = 4 // the server refused the request as invalid: 400, 409, 413
	exitUnauthorized = 5 // the server answered 401: no or a bad API key
)

const exitStatusHelp = `Exit status:
  0  success
  1  failure: server error, network, anything else
  2  usage error: bad flags or arguments, missing API key
  3  not found (HTTP 404)
  4  refused by the server as invalid (HTTP 400, 409, 413)
  5  unauthorized (HTTP 401)
`

const (
	defaultServer = "http://127.0.0.1:8080"
	envServer     = "LINKGATE_SERVER"
	envAPIKey     = "LINKGATE_API_KEY"
)

// apiFlagsHelp describes the flags that every owner API command takes.
const apiFlagsHelp = `Every command takes:
  --server URL    the gateway, default ` + defaultServer + ` [` + envServer + `]
  --api-key KEY   the owner's API key [` + envAPIKey + `]; prefer the
                  environment variable: flags show in ps
  --json          print the API's JSON, indented, for scripts
`

// cliGroup is a command with subcommands, such as "link".
type cliGroup struct {
	name     string // "link"
	summary  string
	common   string // help on the flags that every subcommand takes
	commands []*cliCommand
}

// cliCommand is one subcommand, such as "link create".
type cliCommand struct {
	name    string
	args    string // the synopsis after the name: "ID [flags]"
	summary string // one line, for the group's usage
	help    string // paragraphs, for the command's usage
	run     func(ctx context.Context, e *cliEnv, args []string) error
}

// cliEnv is one run of a subcommand: its I/O, the flags every API command
// takes, and the secrets that must not reach the terminal in messages.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	group          *cliGroup
	cmd            *cliCommand

	server  string
	apiKey  string
	json    bool
	secrets []string // cut out of every error message
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run dispatches args (what follows the group's name) to a subcommand and
// returns the exit status.
func (g *cliGroup) run(ctx context.Context, e *cliEnv, args []string) int {
	e.group = g
	if len(args) == 0 {
		g.usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		g.usage(e.stderr)
		return exitOK
	}
	for _, c := range g.commands {
		if c.name == args[0] {
			e.cmd = c
			return e.exit(c.run(ctx, e, args[1:]))
		}
	}
	fmt.Fprintf(e.stderr, "linkgate: unknown %s command %q\nRun 'linkgate %s -h' for usage.\n", g.name, args[0], g.name)
	return exitUsage
}

func (g *cliGroup) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: linkgate %s <command> [arguments] [flags]\n\n%s\n\nCommands:\n", g.name, g.summary)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range g.commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s\nRun 'linkgate %s <command> -h' for a command's flags.\n\n%s", g.common, g.name, exitStatusHelp)
}

// path is the command as typed, "linkgate link create".
func (e *cliEnv) path() string { return "linkgate " + e.group.name + " " + e.cmd.name }

// newFlags returns the command's flag set. Errors and usage are printed by
// parse and exit, so that every message has the same shape.
func (e *cliEnv) newFlags() *flag.FlagSet {
	fs := flag.NewFlagSet(e.path(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// apiFlags adds the flags of every owner API command.
func (e *cliEnv) apiFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.server, "server", envString(envServer, defaultServer), "the gateway's base `URL` ["+envServer+"]")
	// The key's default is not taken from the environment here: usage
	// would print it.
	fs.StringVar(&e.apiKey, "api-key", "", "the owner's API `key` ["+envAPIKey+"]; prefer the environment variable: flags show in ps")
	fs.BoolVar(&e.json, "json", false, "print the API's JSON, indented, for scripts")
}

// parse parses flags that may come before, between and after the
// positional arguments, which it returns. -h prints the command's usage.
func (e *cliEnv) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			e.usage(fs)
			return nil, err
		}
		if err != nil {
			return nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil // everything after -- is positional
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usage prints the command's help, flags and exit codes to stderr.
func (e *cliEnv) usage(fs *flag.FlagSet) {
	w := e.stderr
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n\nFlags:\n", e.path(), e.cmd.args, strings.TrimSpace(e.cmd.help))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintf(w, "\n%s", exitStatusHelp)
}

// oneArg returns the single positional argument, named what in errors.
func oneArg(pos []string, what string) (string, error) {
	switch {
	case len(pos) == 0:
		return "", usageErrorf("missing %s", what)
	case len(pos) > 1:
		return "", usageErrorf("unexpected argument %q after %s", pos[1], what)
	case pos[0] == "":
		return "", usageErrorf("empty %s", what)
	}
	return pos[0], nil
}

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	return nil
}

// client returns an owner API client from the flags and their environment
// twins.
func (e *cliEnv) client() (*ownerapi.Client, error) {
	key := e.apiKey
	if key == "" {
		key = os.Getenv(envAPIKey)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, usageErrorf("no API key: set %s or give --api-key (linkgate owner create makes one)", envAPIKey)
	}
	e.secrets = append(e.secrets, key)
	u, err := url.Parse(e.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("--server: want an http:// or https:// URL such as %s", defaultServer)
	}
	return &ownerapi.Client{BaseURL: e.server, APIKey: key}, nil
}

// exit reports err on stderr and returns the exit status for it.
func (e *cliEnv) exit(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK // usage is printed
	}
	code, msg := exitFailure, err.Error()
	var ue *usageError
	var ae *ownerapi.Error
	var fe *tokens.FieldError
	switch {
	case errors.As(err, &ue):
		code = exitUsage
	case errors.As(err, &ae):
		code, msg = exitForStatus(ae.Status), describeAPIError(ae)
	case errors.As(err, &fe):
		code = exitInvalid
	}
	for _, s := range e.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	fmt.Fprintf(e.stderr, "linkgate: %s\n", msg)
	if code == exitUsage {
		fmt.Fprintf(e.stderr, "Run '%s -h' for usage.\n", e.path())
	}
	return code
}

func exitForStatus(status int) int {
	switch status {
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
		return exitInvalid
	case http.StatusUnauthorized:
		return exitUnauthorized
	}
	return exitFailure
}

// describeAPIError says what the server answered: code, field, message and
// status, each once.
func describeAPIError(e *ownerapi.Error) string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		b.WriteString(" (" + e.Field + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.OpensAt != nil {
		b.WriteString("; opens " + formatTime(*e.OpensAt))
	}
	fmt.Fprintf(&b, " [HTTP %d]", e.Status)
	return b.String()
}

// printJSON prints v as indented JSON, URLs unescaped.
func (e *cliEnv) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fields prints "key: value" lines, aligned.
type fields struct{ tw *tabwriter.Writer }

func newFields(w io.Writer) *fields {
	return &fields{tw: tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)}
}

func (f *fields) add(key, value string) { fmt.Fprintf(f.tw, "%s:\t%s\n", key, clean(value)) }

func (f *fields) flush() error { return f.tw.Flush() }

// table prints rows in aligned columns under a header.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	fmt.Fprintln(t.tw, strings.Join(header, "\t"))
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c = clean(c); c == "" {
			c = "-"
		}
		cells[i] = c
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// clean makes text from the server safe for a terminal and a table: control
// characters (escape sequences, tabs, newlines) become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// formatTime prints t in UTC to the minute, or to the second when it has
// seconds.
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Second() != 0 || t.Nanosecond() != 0 {
		return t.Format("2006-01-02 15:04:05 UTC")
	}
	return t.Format("2006-01-02 15:04 UTC")
}

// formatWindow prints a window as "eternal", "from ...", "until ..." or
// "2026-11-22 10:00 → 2026-11-29 10:00 UTC".
func formatWindow(w ownerapi.Window) string {
	switch {
	case w.Start == nil && w.End == nil:
		return "eternal"
	case w.End == nil:
		return "from " + formatTime(*w.Start)
	case w.Start == nil:
		return "until " + formatTime(*w.End)
	}
	start := strings.TrimSuffix(formatTime(*w.Start), " UTC")
	return start + " → " + formatTime(*w.End)
}

// limitOrZero formats a maximum where 0 is no limit.
func limitOrZero(n int) string {
	if n == 0 {
		return "no limit"
	}
	return strconv.Itoa(n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// checkLimit checks a --limit flag against the server's page bounds.
func checkLimit(limit int) error {
	if limit < 0 || limit > tokens.MaxPageSize {
		return usageErrorf("--limit: want 1 to %d (0: the server's default)", tokens.MaxPageSize)
	}
	return nil
}

// listFlag is a flag holding a list: comma-separated, and repeatable.
// Giving it as "" sets the empty list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	if *l == nil {
		*l = []string{}
	}
	*l = append(*l, splitList(s)...)
	return nil
}

// list returns the values, an empty list rather than nil.
func (l listFlag) list() []string {
	if l == nil {
		return []string{}
	}
	return l
}

// visited returns the names of the flags given on the command line.
func visited(fs *flag.FlagSet) map[string]bool {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
