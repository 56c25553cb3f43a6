package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"keycard/access"
	"keycard/store"
)

// auditCmd: keycard audit verify [--db PATH].
func auditCmd(args []string, stdout, stderr io.Writer) error {
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
	var total int64 = -1
	if err := db.View(func(tx *store.Tx) error { seq, _, _ := tx.Head(); total = int64(seq); return nil }); err != nil {
		return err
	}
	bar := newProgress(stderr, total, "events", false)
	res, err := db.Verify(1, func(access.Event) error { bar.Add(1); return nil })
	bar.Done()
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
