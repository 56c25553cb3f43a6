package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"keycard/access"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrStop, returned by a callback of an iterating method, ends the iteration
// early without an error.
var ErrStop = errors.New("stop")

// schemaVersion is the layout this code reads and writes.
const schemaVersion = 3

// migrations[v] upgrades a file from version v-1 to version v. They run in
// order inside the single Update that opens the file, so a crash half way
// leaves the file at its old version. Version 1 is the first layout: creating
// the buckets is all it needs, which Open does for every version.
var migrations = []func(*bolt.Tx) error{
	0: nil,
	1: nil,
	2: requestsToBinary,
	3: requestsByNumber,
}

// defaultTimeout bounds the wait for bbolt's exclusive file lock: a second
// keycard on the same file must fail fast with a clear error, not hang.
const defaultTimeout = time.Second

// batchDelay is how long DB.Batch waits for more callers before it commits.
// bbolt's default is 10 ms, ten times an fsync on the disks keycard runs on
// (internal/bench BenchmarkAuditAppendBatch32: ~0.5 ms per commit): with 32
// clicking approvers the default made batching only 1.5× one writer because
// every commit waited for the timer, not the disk. 1 ms still gathers every
// caller that arrives during the previous commit. Durability is unchanged:
// no caller returns before its commit is fsynced.
const batchDelay = time.Millisecond

// Options tune Open.
type Options struct {
	Timeout time.Duration // bbolt open timeout (file lock); default 1s
	NoSync  bool          // tests/benchmarks only: skips fsync, a crash may lose commits
}

// DB is an open keycard database.
type DB struct {
	bolt *bolt.DB
	path string
}

// Open opens (creating with mode 0600 when absent) the database at path,
// creates missing buckets, and runs schema migrations. It refuses a file that
// is group- or world-writable: anyone who can write it can rewrite the audit
// log and the grants. Open reads only the meta bucket, never the data set, so
// start-up time does not grow with the audit log.
func Open(path string, opt Options) (*DB, error) {
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, access.Errorf(access.CodeInvalid, "database %s is not a regular file (mode %s)", path, fi.Mode())
		}
		if perm := fi.Mode().Perm(); perm&0o022 != 0 {
			return nil, access.Errorf(access.CodeForbidden,
				"database %s has mode %04o: it is writable by group or others; run chmod 600 %s", path, perm, path)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: stat %s: %w", path, err)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = defaultTimeout
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opt.Timeout, NoSync: opt.NoSync})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, access.Wrap(access.CodeUnavailable, err,
				"database %s is locked by another process (is another keycard running?)", path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	bdb.MaxBatchDelay = batchDelay
	db := &DB{bolt: bdb, path: path}
	if err := bdb.Update(initialize); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("store: initialize %s: %w", path, err)
	}
	return db, nil
}

// initialize creates every bucket and brings the schema up to date.
func initialize(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return migrate(tx, migrations)
}

// migrate runs steps[v] for every version v after the file's, up to
// len(steps)-1, and records the new version. A file newer than the code is
// refused: an old keycard must not write a layout it does not know.
func migrate(tx *bolt.Tx, steps []func(*bolt.Tx) error) error {
	target := uint64(len(steps) - 1)
	meta := tx.Bucket(bMeta)
	var have uint64
	if v := meta.Get(keySchema); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("schema version: %d bytes, want 8", len(v))
		}
		have = binary.BigEndian.Uint64(v)
	}
	if have > target {
		return fmt.Errorf("the file has schema version %d, newer than this keycard understands (%d)", have, target)
	}
	if have == target {
		return nil
	}
	for v := have + 1; v <= target; v++ {
		if m := steps[v]; m != nil {
			if err := m(tx); err != nil {
				return fmt.Errorf("migration to schema version %d: %w", v, err)
			}
		}
	}
	return meta.Put(keySchema, u64(target))
}

// Close closes the file. Open transactions must have finished.
func (db *DB) Close() error { return db.bolt.Close() }

// Path is the file's path as given to Open.
func (db *DB) Path() string { return db.path }

// Update runs fn in one read-write transaction whose time is now. fn's error
// rolls everything back, and the fields the store assigned to caller values
// (Request ID/Rev/CreatedAt, Op ID/CreatedAt) are restored, so a caller can
// retry with the same values.
func (db *DB) Update(now time.Time, fn func(*Tx) error) error {
	var undo UndoLog
	err := db.bolt.Update(func(btx *bolt.Tx) error {
		return fn(&Tx{tx: btx, now: now.UTC(), undo: &undo})
	})
	if err != nil {
		undo.Run()
	}
	return err
}

// Batch is Update through bbolt's DB.Batch: concurrent callers share one
// commit (one fsync), which is what keeps many simultaneous clicks cheap.
// fn may run more than once; before each new run the store restores the
// fields it assigned in the previous run, so PutRequest's compare-and-swap
// still matches on a retry.
func (db *DB) Batch(now time.Time, fn func(*Tx) error) error {
	var undo UndoLog
	err := db.bolt.Batch(func(btx *bolt.Tx) error {
		undo.Run()
		return fn(&Tx{tx: btx, now: now.UTC(), undo: &undo})
	})
	if err != nil {
		undo.Run()
	}
	return err
}

// View runs fn in a read-only transaction. Its Now is the zero time.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error {
		return fn(&Tx{tx: btx})
	})
}

// WriteTo writes a consistent copy of the whole file to w (a hot backup)
// from one read transaction; writers are not blocked.
func (db *DB) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(btx *bolt.Tx) error {
		var err error
		n, err = btx.WriteTo(w)
		return err
	})
	return n, err
}

// StaticMembers is Tx.StaticMembers in its own read transaction.
func (db *DB) StaticMembers(connector, group string) ([]string, error) {
	return Read(db.View, func(tx *Tx) ([]string, error) { return tx.StaticMembers(connector, group) })
}

// SetStaticMember is Tx.SetStaticMember in its own write transaction.
func (db *DB) SetStaticMember(now time.Time, connector, group, userID string, member bool) error {
	return db.Update(now, func(tx *Tx) error {
		return tx.SetStaticMember(connector, group, userID, member)
	})
}

// Tx is one transaction. now is the single time of a write transaction:
// every timestamp the store assigns in it is this value.
type Tx struct {
	tx   *bolt.Tx
	now  time.Time
	undo *UndoLog
}

// Now is the transaction's time (zero in View).
func (tx *Tx) Now() time.Time { return tx.now }

// UndoLog restores caller-visible fields the store assigned when the
// transaction does not commit (both backends keep one per transaction).
type UndoLog []func()

// Add records f, which puts back a field the transaction assigned.
func (u *UndoLog) Add(f func()) {
	if u != nil {
		*u = append(*u, f)
	}
}

// Run puts every recorded field back, newest first, and empties the log.
func (u *UndoLog) Run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = (*u)[:0]
}

// writable refuses a write in a View.
func (tx *Tx) writable() error {
	if !tx.tx.Writable() {
		return access.Errorf(access.CodeInternal, "store: write in a read-only transaction")
	}
	return nil
}
