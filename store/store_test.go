package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"keycard/access"

	bolt "go.etcd.io/bbolt"
)

// t0 is the tests' fixed "now".
var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "keycard.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func update(t testing.TB, db *DB, now time.Time, fn func(*Tx) error) {
	t.Helper()
	if err := db.Update(now, fn); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFileMode(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode // of an existing file; 0 = no file yet
		refused bool
	}{
		{"new file is created 0600", 0, false},
		{"owner only", 0o600, false},
		{"group readable", 0o640, false},
		{"world writable", 0o666, true},
		{"group writable", 0o620, true},
		{"others writable", 0o602, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keycard.db")
			if tt.mode != 0 {
				db, err := Open(path, Options{NoSync: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			db, err := Open(path, Options{NoSync: true})
			if tt.refused {
				if err == nil {
					_ = db.Close()
					t.Fatal("opened a group/world-writable file")
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprintf("%04o", tt.mode)) {
					t.Errorf("error %q does not name the path and the mode", err)
				}
				if access.CodeOf(err) != access.CodeForbidden {
					t.Errorf("code = %s, want forbidden", access.CodeOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.mode
			if want == 0 {
				want = 0o600
			}
			if fi.Mode().Perm() != want {
				t.Errorf("mode = %04o, want %04o", fi.Mode().Perm(), want)
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keycard.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put(keySchema, u64(schemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(path, Options{NoSync: true}); err == nil {
		_ = db.Close()
		t.Fatal("opened a file with a newer schema")
	}
}

func TestOpenLockedFailsFast(t *testing.T) {
	db := openTest(t)
	_, err := Open(db.Path(), Options{Timeout: 20 * time.Millisecond})
	if access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("second open: %v (code %s), want unavailable", err, access.CodeOf(err))
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keycard.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &access.Request{Policy: "p", State: access.StatePending, Requester: access.Person{Email: "ann@x"}}
	op := &access.Op{Kind: access.OpAdd, Group: "g"}
	var ev access.Event
	update(t, db, t0, func(tx *Tx) error {
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		if err := tx.Enqueue(op); err != nil {
			return err
		}
		if err := tx.SetCursor("okta.since", "abc"); err != nil {
			return err
		}
		var err error
		ev, err = tx.Append(access.Event{Type: access.EvRequestSubmitted, RequestID: r.ID})
		return err
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	update(t, db, t0.Add(time.Minute), func(tx *Tx) error {
		seq, hash, at := tx.Head()
		if seq != 1 || hash != ev.Hash || !at.Equal(ev.Time) {
			t.Errorf("head = %d %s %v, want 1 %s %v", seq, hash, at, ev.Hash, ev.Time)
		}
		got, err := tx.Request(r.ID)
		if err != nil || got.Rev != 1 {
			t.Errorf("request after restart: %+v, %v", got, err)
		}
		depth, oldest, err := tx.OutboxStats()
		if err != nil || depth != 1 || !oldest.Equal(t0) {
			t.Errorf("outbox = %d %v %v, want 1 %v", depth, oldest, err, t0)
		}
		if c, _ := tx.Cursor("okta.since"); c != "abc" {
			t.Errorf("cursor = %q", c)
		}
		r2 := &access.Request{Policy: "p", State: access.StatePending}
		if err := tx.PutRequest(r2); err != nil {
			return err
		}
		if r2.ID != "REQ-1002" {
			t.Errorf("next request id = %s, want REQ-1002", r2.ID)
		}
		op2 := &access.Op{Kind: access.OpRemove}
		if err := tx.Enqueue(op2); err != nil {
			return err
		}
		if op2.ID != op.ID+1 {
			t.Errorf("next op id = %d, want %d", op2.ID, op.ID+1)
		}
		e2, err := tx.Append(access.Event{Type: access.EvAlert})
		if err != nil {
			return err
		}
		if e2.Seq != 2 || e2.PrevHash != ev.Hash {
			t.Errorf("next event = %d prev %s", e2.Seq, e2.PrevHash)
		}
		return nil
	})
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != 2 {
		t.Fatalf("verify after restart: %+v %v", res, err)
	}
}

var errBoom = errors.New("boom")

func TestWriteToBackup(t *testing.T) {
	db := openTest(t)
	update(t, db, t0, func(tx *Tx) error {
		for i := 0; i < 10; i++ {
			if _, err := tx.Append(access.Event{Type: access.EvAlert}); err != nil {
				return err
			}
		}
		return nil
	})
	var buf bytes.Buffer
	n, err := db.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	backup, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer backup.Close()
	res, err := backup.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != 10 {
		t.Fatalf("verify backup: %+v %v", res, err)
	}
}

// be is a tiny helper for raw keys in tests.
func be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func TestMigrate(t *testing.T) {
	if len(migrations)-1 != schemaVersion {
		t.Fatalf("migrations has %d entries for schema version %d", len(migrations), schemaVersion)
	}
	db := openTest(t)
	var ran []int
	step := func(v int) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { ran = append(ran, v); return nil }
	}
	version := func() uint64 {
		var v uint64
		_ = db.bolt.View(func(tx *bolt.Tx) error { v = binary.BigEndian.Uint64(tx.Bucket(bMeta).Get(keySchema)); return nil })
		return v
	}
	// plus is the real migrations followed by steps for later versions.
	const sv = schemaVersion
	plus := func(steps ...func(*bolt.Tx) error) []func(*bolt.Tx) error {
		return append(append([]func(*bolt.Tx) error(nil), migrations...), steps...)
	}
	tests := []struct {
		name    string
		steps   []func(*bolt.Tx) error
		ran     []int
		version uint64
		fails   bool
	}{
		{"current file: nothing runs", migrations, nil, schemaVersion, false},
		{"two new versions run in order", plus(step(sv+1), step(sv+2)), []int{sv + 1, sv + 2}, sv + 2, false},
		{"already migrated", plus(step(sv+1), step(sv+2)), nil, sv + 2, false},
		{"a failing step rolls back", plus(nil, nil, step(sv+3), func(*bolt.Tx) error { return errBoom }), []int{sv + 3}, sv + 2, true},
		{"file newer than the code", migrations, nil, sv + 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran = nil
			err := db.bolt.Update(func(tx *bolt.Tx) error { return migrate(tx, tt.steps) })
			if (err != nil) != tt.fails {
				t.Fatalf("migrate: %v", err)
			}
			if !reflect.DeepEqual(ran, tt.ran) || version() != tt.version {
				t.Errorf("ran %v, version %d; want %v, %d", ran, version(), tt.ran, tt.version)
			}
		})
	}
}
