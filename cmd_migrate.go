package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"keycard/store/migrate"
	pgstore "keycard/store/postgres"
)

// migrateCmd is `keycard migrate --to URL [--db PATH]`: it copies a bbolt
// file into an empty PostgreSQL database (SPEC "Beyond one machine"),
// verifies the audit chain on both sides and compares the counts of every
// kind; progress goes to stderr when it is a terminal. The file lock keeps a
// running `keycard serve` out while it copies.
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate")
	// The URL defaults to KEYCARD_DATABASE_URL so that its password need not
	// be on the command line, where any local user can read it (ps).
	to := fs.String("to", os.Getenv("KEYCARD_DATABASE_URL"), "the PostgreSQL database: postgres://USER@HOST:PORT/DB (it must be empty; default KEYCARD_DATABASE_URL)")
	dbPath := fs.String("db", envOr("KEYCARD_DB", "keycard.db"), "the bbolt file to copy")
	if err := fs.Parse(args); err != nil {
		return usageError("migrate: unexpected %q", unexpectedArg(fs, args, err))
	}
	if fs.NArg() > 0 {
		return usageError("migrate: unexpected %q", fs.Arg(0))
	}
	if *to == "" {
		return usageError("migrate: --to URL or KEYCARD_DATABASE_URL is required (the PostgreSQL database to copy into)")
	}
	if _, err := os.Stat(*dbPath); err != nil {
		return err
	}
	src, err := openDB(*dbPath)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := pgstore.Open(ctx, *to, pgstore.Options{})
	if err != nil {
		return err
	}
	defer dst.Close()
	var bar *progress
	rep, err := migrate.Copy(ctx, src, dst, func(done, total int64) {
		if bar == nil {
			bar = newProgress(stderr, total, "rows", false)
		}
		bar.Set(done)
	})
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %s into %s\n", *dbPath, dst.Where())
	for _, k := range rep.Kinds() {
		fmt.Fprintf(stdout, "  %-16s %d -> %d\n", k.Kind, k.Source, k.Dest)
	}
	fmt.Fprintf(stdout, "audit chain verified on both sides: %d events, head %s\n", rep.Events, rep.Head)
	return nil
}
