package main

import (
	"flag"
	"fmt"
	"os"
	"os/user"
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
// arguments (the flag package stops at the first one) and returns those.
func parseAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
