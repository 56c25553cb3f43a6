package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/server"
	"keycard/policy"
	"keycard/store"
)

// openDB opens the store for a command-line tool; it shares the file lock
// with a running `keycard serve`, so say so when it is held.
func openDB(path string) (*store.DB, error) {
	db, err := store.Open(path, store.Options{Timeout: 2 * time.Second})
	if access.CodeOf(err) == access.CodeUnavailable { // bbolt's lock timeout
		return nil, fmt.Errorf("%s is locked by another process (is keycard serve running? stop it, or export from Slack with /export): %w", path, err)
	}
	return db, err
}

// parseMoment reads an RFC 3339 time or a date (midnight UTC).
func parseMoment(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
	}
	return t, nil
}

// cliUser names the person running a command-line export.
func cliUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// cliEnv is what command-line tools need: the store and, when the policy
// file is readable, the connectors (holders snapshots read the IdP).
type cliEnv struct {
	db  *cliStore
	svc *handlers.Service
}

func (e *cliEnv) Close() { e.db.Close() }

// openCLI opens the store the flags name (the bbolt file, or PostgreSQL with
// KEYCARD_DATABASE_URL) and builds the service over it.
func openCLI(ctx context.Context, sf *storeFlags) (*cliEnv, error) {
	db, err := sf.open(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := server.LoadConfig()
	if err != nil {
		db.Close()
		return nil, err
	}
	clock := access.SystemClock{}
	var set *policy.Set
	var conns handlers.Connectors
	var inst handlers.Instance
	if _, statErr := os.Stat(cfg.Policy); statErr == nil {
		if set, err = policy.Load(cfg.Policy); err != nil {
			db.Close()
			return nil, err
		}
		cs, err := server.BuildConnectors(set, cfg, db.Static(), clock)
		if err != nil {
			db.Close()
			return nil, err
		}
		conns = cs
		inst = server.Instance(set, cfg)
	}
	svc := handlers.New(db.Store(), conns, set, clock, handlers.Options{Verify: server.Verifier(db.Chain()), Instance: inst})
	return &cliEnv{db: db, svc: svc}, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newFlagSet is a subcommand's flag set: parsing stops at an error rather
// than exiting, and package flag prints nothing, because the subcommand
// reports the error itself, in keycard's usage form (usageError).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseAnywhere parses fs's flags wherever they stand among the positional
// arguments (the flag package stops at the first one) and returns those. An
// unknown flag counts as a positional argument, as it did when policy check
// read its arguments by hand (it is then the file that cannot be read).
func parseAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			bad := unexpectedArg(fs, args, err)
			i := slices.Index(args, bad)
			if i < 0 || fs.Lookup(strings.TrimLeft(strings.SplitN(bad, "=", 2)[0], "-")) != nil {
				return nil, err
			}
			rest = append(rest, bad)
			args = args[i+1:]
			continue
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// unexpectedArg names the argument fs.Parse stumbled on, so a command keeps
// saying `unexpected "--x"` as it did when it parsed its arguments by hand:
// an unknown flag, or a flag that needs a value given none.
func unexpectedArg(fs *flag.FlagSet, args []string, err error) string {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			return a
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if !hasValue && i == len(args)-1 {
			return a
		}
	}
	return err.Error()
}

const usage = `usage (--database-url defaults to KEYCARD_DATABASE_URL: when set, the tools read PostgreSQL, not the bbolt file):
  keycard [serve]                    run the bot (needs SLACK_BOT_TOKEN, SLACK_APP_TOKEN)
  keycard policy check [FILE]        validate the policy file and summarise each policy
  keycard policy who-can [--policy P] [--user EMAIL] [--policy-file NEW] [--db PATH | --database-url URL]
                                     who may request what and who would approve, as CSV
  keycard policy import --connector NAME [--out FILE] [--policy FILE]
                                     write a starting policy from the groups inside a connector's scope
  keycard policy apply --by EMAIL [--emergency --reason TEXT]
                                     reload the policy in the running keycard (staged for a second
                                     admin's approval when the policy says change_approval: true)
  keycard export [--kind access|events|holders|policies|jobs|campaign|who-can|delegations] [--policy P] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
                 [--db PATH | --database-url URL]
                                     CSV to stdout (--events is short for --kind events)
  keycard export verify MANIFEST [--csv FILE] [--db PATH | --database-url URL]
                                     re-check an export against its manifest and the audit chain
  keycard audit verify [--db PATH | --database-url URL]
                                     check the audit hash chain; exit 1 on any break
  keycard backup [--db PATH] [--dir DIR]
                                     hot copy of the bbolt file (asks a running keycard over KEYCARD_HTTP_ADDR);
                                     refused with PostgreSQL: use pg_dump
  keycard migrate [--to URL] [--db PATH]
                                     copy the bbolt file into an empty PostgreSQL database, verified
                                     (--to defaults to KEYCARD_DATABASE_URL)
  keycard demo                       the whole lifecycle offline, against a built-in Slack emulator
  keycard version
`

type usageErr string

func (e usageErr) Error() string { return string(e) }

func usageError(format string, args ...any) error { return usageErr(fmt.Sprintf(format, args...)) }

// exitCode ends the command with a code after it printed its own message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// newLogger builds the process logger (text or JSON on stderr).
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
