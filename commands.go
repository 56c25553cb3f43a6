package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
	"keycard/store"
)

// policyCmd: keycard policy check [FILE].
func policyCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError("policy: expected `policy check [FILE]`")
	}
	path := os.Getenv("KEYCARD_POLICY")
	if path == "" {
		path = "policy.yaml"
	}
	if len(args) > 1 {
		path = args[1]
	}
	set, err := policy.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, policy.Summary(set))
	return nil
}

// openDB opens the store for a command-line tool; it shares the file lock
// with a running `keycard serve`, so say so when it is held.
func openDB(path string) (*store.DB, error) {
	db, err := store.Open(path, store.Options{Timeout: 2 * time.Second})
	if err != nil && strings.Contains(err.Error(), "timeout") {
		return nil, fmt.Errorf("%s is locked by another process (is keycard serve running? stop it, or export from Slack with /export): %w", path, err)
	}
	return db, err
}

// exportCmd: keycard export [--kind access|events] [--policy P] [--from D] [--to D] [--db PATH].
func exportCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("kind", "access", "access or events")
	events := fs.Bool("events", false, "short for --kind events")
	pol := fs.String("policy", "", "only this policy")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: 90 days ago)")
	to := fs.String("to", "", "last day included, YYYY-MM-DD (default: today)")
	dbPath := fs.String("db", envOr("KEYCARD_DB", "keycard.db"), "database file")
	if err := fs.Parse(args); err != nil {
		return usageError("export: %v", err)
	}
	if *events {
		*kind = "events"
	}
	p, err := handlers.Period(*from, *to, access.SystemClock{}.Now())
	if err != nil {
		return usageError("export: %v", err)
	}
	p.Policy = *pol
	db, err := openDB(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := handlers.New(storeAdapter{db}, nil, nil, access.SystemClock{}, handlers.Options{})
	w := bufio.NewWriterSize(stdout, 64<<10)
	switch *kind {
	case "access":
		_, err = svc.ExportAccess(w, p)
	case "events":
		_, err = svc.ExportEvents(w, p)
	default:
		return usageError("export: unknown --kind %q (access or events)", *kind)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// auditCmd: keycard audit verify [--db PATH].
func auditCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError("audit: expected `audit verify [--db PATH]`")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dbPath := fs.String("db", envOr("KEYCARD_DB", "keycard.db"), "database file")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError("audit verify: %v", err)
	}
	if _, err := os.Stat(*dbPath); err != nil {
		return err
	}
	db, err := openDB(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Verify(1, nil)
	if err != nil {
		return err
	}
	if res.Problem != "" {
		fmt.Fprintf(stdout, "audit chain BROKEN at event %d: %s\n", res.BadSeq, res.Problem)
		return exitCode(1)
	}
	fmt.Fprintf(stdout, "audit chain ok: %d events (seq %d..%d), head %s\n", res.Count, res.First, res.Last, res.Head)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var errNotYet = errors.New("not built yet")
