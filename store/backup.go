package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Backup writes a consistent copy of the database (a read transaction's
// WriteTo: writers are not blocked) into dir as keycard-<UTC time>.db, mode
// 0600, via a temporary file and rename, then keeps the newest `keep`.
// through, when not nil, wraps the file's writer (the command line's progress
// bar counts the bytes).
func (db *DB) Backup(dir string, keep int, now time.Time, through func(io.Writer) io.Writer) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("KEYCARD_BACKUP_DIR: %w", err)
	}
	name := filepath.Join(dir, "keycard-"+now.UTC().Format("20060102T150405.000000000Z")+".db")
	tmp, err := os.OpenFile(name+".tmp", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	var w io.Writer = tmp
	if through != nil {
		w = through(tmp)
	}
	if _, err := db.WriteTo(w); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return "", err
	}
	if keep > 0 {
		old, _ := filepath.Glob(filepath.Join(dir, "keycard-*.db"))
		sort.Strings(old)
		for len(old) > keep {
			os.Remove(old[0])
			old = old[1:]
		}
	}
	return name, nil
}
