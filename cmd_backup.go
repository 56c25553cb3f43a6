package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"keycard/access"
	"keycard/internal/server"
	"keycard/store"
)

// backupCmd: keycard backup [--db PATH] [--dir DIR]. With keycard serve
// running (the file is locked), it asks the running server over
// KEYCARD_HTTP_ADDR instead. With PostgreSQL (KEYCARD_DATABASE_URL or
// --database-url) it refuses: that database is backed up with pg_dump.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup")
	sf := addStoreFlags(fs, "database file")
	dbPath := sf.db
	dirFlag := fs.String("dir", os.Getenv("KEYCARD_BACKUP_DIR"), "where the backup goes")
	if err := fs.Parse(args); err != nil {
		return usageError("backup: unexpected %q", unexpectedArg(fs, args, err))
	}
	if fs.NArg() > 0 {
		return usageError("backup: unexpected %q", fs.Arg(0))
	}
	if pg, err := sf.postgres(); err != nil {
		return err
	} else if pg {
		return pgBackupRefusal()
	}
	dir := *dirFlag
	if dir == "" {
		return usageError("backup: set KEYCARD_BACKUP_DIR or pass --dir")
	}
	db, err := store.Open(*dbPath, store.Options{Timeout: time.Second})
	if access.CodeOf(err) == access.CodeUnavailable {
		addr := os.Getenv("KEYCARD_HTTP_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/backup", nil)
		req.Header.Set("Authorization", "Bearer "+server.ReadOpsToken(*dbPath))
		resp, herr := http.DefaultClient.Do(req)
		if herr != nil {
			return fmt.Errorf("%s is locked by a running keycard and its %s did not answer: %w", *dbPath, addr, herr)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("running keycard refused the backup: %s", strings.TrimSpace(string(body)))
		}
		fmt.Fprintf(stdout, "backup written by the running keycard: %s", body)
		return nil
	}
	if err != nil {
		return err
	}
	defer db.Close()
	var size int64 = -1
	if fi, err := os.Stat(*dbPath); err == nil {
		size = fi.Size()
	}
	bar := newProgress(stderr, size, "backup", true)
	path, err := db.Backup(dir, envInt("KEYCARD_BACKUP_KEEP", 14), access.SystemClock{}.Now(), bar.Writer)
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "backup written:", path)
	return nil
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
