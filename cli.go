package main

import (
	"flag"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
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
	db  *store.DB
	svc *handlers.Service
}

func (e *cliEnv) Close() { e.db.Close() }

func openCLI(dbPath string) (*cliEnv, error) {
	db, err := openDB(dbPath)
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
		cs, err := server.BuildConnectors(set, cfg, db, clock)
		if err != nil {
			db.Close()
			return nil, err
		}
		conns = cs
		inst = server.Instance(set, cfg)
	}
	svc := handlers.New(adapt.Store(db), conns, set, clock, handlers.Options{Verify: server.Verifier(db), Instance: inst})
	return &cliEnv{db: db, svc: svc}, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
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
