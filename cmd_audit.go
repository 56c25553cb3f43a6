package main

import (
	"context"
	"fmt"
	"io"

	"keycard/access"
	"keycard/handlers"
)

// auditCmd: keycard audit verify [--db PATH | --database-url URL]; with
// KEYCARD_DATABASE_URL it verifies the chain in PostgreSQL.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError("audit: expected `audit verify [--db PATH | --database-url URL]`")
	}
	fs := newFlagSet("audit verify")
	sf := addStoreFlags(fs, "database file")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError("audit verify: %v", err)
	}
	if fs.NArg() > 0 {
		return usageError("audit verify: unexpected %q", fs.Arg(0))
	}
	db, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	var total int64 = -1
	if err := db.Store().View(func(tx handlers.Tx) error { seq, _, _ := tx.Head(); total = int64(seq); return nil }); err != nil {
		return err
	}
	bar := newProgress(stderr, total, "events", false)
	res, err := db.Chain().Verify(1, func(access.Event) error { bar.Add(1); return nil })
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
