package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"keycard/access"
	"keycard/store"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune Open.
type Options struct {
	MaxConns int32 // pool size; pgxpool's default when 0
	Retries  int   // how often Update retries a serialization failure; default 50
	// TxTimeout bounds one attempt of an Update, from taking a connection to
	// its COMMIT; default 30s. A network that drops packets without
	// resetting connections would otherwise hold a Slack action until TCP
	// gives up (minutes); past it the attempt fails as unavailable, and
	// nothing commits. Writes make no network calls inside (STYLE.md), so a
	// healthy one takes milliseconds. View is not bounded: an export may
	// stream for longer.
	TxTimeout time.Duration
}

// DB is an open keycard database in PostgreSQL. Safe for concurrent use.
type DB struct {
	where     string // host:port/database, for logs: never the password
	pool      *pgxpool.Pool
	ctx       context.Context
	retries   int
	txTimeout time.Duration
}

// Open connects to the database at url (a postgres:// URL, as in
// KEYCARD_DATABASE_URL), checks it answers, and applies missing schema
// migrations under an advisory lock. A malformed url is an error naming
// KEYCARD_DATABASE_URL that never repeats the password.
func Open(ctx context.Context, rawURL string, opt Options) (*DB, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without connect_timeout a dead host blocks for the OS TCP timeout
		// (minutes); a transaction should fail fast as unavailable.
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if opt.Retries <= 0 {
		opt.Retries = 50
	}
	if opt.TxTimeout <= 0 {
		opt.TxTimeout = 30 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, access.Wrap(access.CodeInvalid, err, "KEYCARD_DATABASE_URL: %s", err)
	}
	db := &DB{pool: pool, ctx: context.Background(), retries: opt.Retries, txTimeout: opt.TxTimeout, where: where(cfg)}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, access.Wrap(access.CodeUnavailable, err, "PostgreSQL at %s is unreachable: %s", where(cfg), safeErr(err))
	}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: schema: %w", err)
	}
	return db, nil
}

// CheckURL checks the shape of KEYCARD_DATABASE_URL (a postgres:// URL
// with a host) without connecting; its error never contains the URL (and so
// never the password).
func CheckURL(raw string) error {
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return access.Errorf(access.CodeInvalid,
			"KEYCARD_DATABASE_URL is malformed: want postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=…")
	}
	return nil
}

// parseURL parses KEYCARD_DATABASE_URL; its errors never contain the URL
// (and so never the password).
func parseURL(raw string) (*pgxpool.Config, error) {
	if err := CheckURL(raw); err != nil {
		return nil, err
	}
	u, _ := url.Parse(raw)
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, access.Errorf(access.CodeInvalid,
			"KEYCARD_DATABASE_URL is malformed (%s): want postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=…", u.Redacted())
	}
	return cfg, nil
}

func where(cfg *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

// safeErr is err's text for a log line: pgx's connect errors name host and
// user, never the password.
func safeErr(err error) string { return err.Error() }

// Where is host:port/database, safe to log (no user, no password).
func (db *DB) Where() string { return db.where }

// Close closes the pool. Open transactions must have finished.
func (db *DB) Close() error { db.pool.Close(); return nil }

// Ping proves the server answers now (readiness): one round trip on a
// pooled connection, bounded by timeout. A lost server is
// access.CodeUnavailable.
func (db *DB) Ping(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(db.ctx, timeout)
	defer cancel()
	if err := db.pool.Ping(ctx); err != nil {
		return access.Wrap(access.CodeUnavailable, err, "PostgreSQL at %s does not answer: %s", db.where, safeErr(err))
	}
	return nil
}

// Pool is the connection pool, for callers that need PostgreSQL itself
// (leases, LISTEN/NOTIFY, benchmarks).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// retryable reports a transient failure worth running the transaction again:
// serialization_failure or deadlock_detected, by SQLSTATE.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// Update runs fn in one SERIALIZABLE read-write transaction whose time is now.
// fn's error rolls everything back and restores the fields the store assigned
// to caller values. A serialization failure or deadlock is retried, so fn may
// run more than once (see the package doc).
func (db *DB) Update(now time.Time, fn func(*Tx) error) error {
	now = now.UTC()
	var undo store.UndoLog
	var err error
	for attempt := 0; ; attempt++ {
		undo.Run()
		var tx *Tx
		tx, err = db.attempt(now, &undo, fn)
		if err == nil {
			return nil
		}
		if !retryable(err) && !(tx != nil && retryable(tx.dbErr)) {
			break
		}
		if attempt >= db.retries {
			err = access.Wrap(access.CodeUnavailable, err, "The database stayed busy; try again.")
			break
		}
		d := time.Duration(1+min(attempt, 6)) * time.Millisecond
		time.Sleep(d/2 + rand.N(d))
	}
	undo.Run()
	return lost(err)
}

// Unavailable is what a person is told when the database cannot be
// reached (SPEC "Beyond one machine": a database lost mid-run).
const Unavailable = "keycard is unavailable, try again in a minute."

// lost turns a lost or refused connection (the server gone, restarting or
// out of connections; a network error; a dead socket) into
// access.CodeUnavailable, whose message a person may see: nothing was
// committed, and trying again later is right. Anything else — the caller's
// own errors, constraint and data errors — passes through unchanged.
func lost(err error) error {
	if err == nil || access.CodeOf(err) == access.CodeUnavailable {
		return err
	}
	var pe *pgconn.PgError
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &pe):
		// Class 08 connection exception; 57P01-57P03 admin shutdown, crash
		// shutdown, cannot connect now; 53300 too many connections.
		if !strings.HasPrefix(pe.Code, "08") && pe.Code != "57P01" && pe.Code != "57P02" && pe.Code != "57P03" && pe.Code != "53300" {
			return err
		}
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, pgconn.ErrConnClosed), pgconn.Timeout(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
	default:
		return err
	}
	return access.Wrap(access.CodeUnavailable, err, Unavailable)
}

func (db *DB) attempt(now time.Time, undo *store.UndoLog, fn func(*Tx) error) (*Tx, error) {
	ctx, cancel := context.WithTimeout(db.ctx, db.txTimeout)
	defer cancel()
	tx, err := db.begin(ctx, beginSerializable)
	if err != nil {
		return nil, err
	}
	tx.now, tx.undo, tx.write = now, undo, true
	defer tx.release()
	if err := fn(tx); err != nil {
		tx.rollback()
		return tx, err
	}
	if err := tx.commit(); err != nil {
		tx.rollback()
		return tx, fmt.Errorf("pgstore: commit: %w", err)
	}
	return tx, nil
}

// idleInWriteSQL bounds how long a write transaction's session may sit idle
// (see Tx.send); the server then ends the session and releases its locks.
const idleInWriteSQL = "set local idle_in_transaction_session_timeout = '5s'"

const (
	beginSerializable = "begin isolation level serializable"
	beginReadOnly     = "begin isolation level repeatable read read only"
)

// begin takes a connection for one transaction. BEGIN itself is not sent
// yet: it travels with the first statement (one round trip, not two).
func (db *DB) begin(ctx context.Context, sql string) (*Tx, error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, access.Wrap(access.CodeUnavailable, err, Unavailable)
	}
	return &Tx{ctx: ctx, conn: conn, beginSQL: sql}, nil
}

// Batch is Update (fn may run more than once, as Batch's contract allows).
func (db *DB) Batch(now time.Time, fn func(*Tx) error) error { return db.Update(now, fn) }

// View runs fn in a read-only snapshot (REPEATABLE READ READ ONLY). Its Now is
// the zero time.
func (db *DB) View(fn func(*Tx) error) error {
	tx, err := db.begin(db.ctx, beginReadOnly)
	if err != nil {
		return err
	}
	defer tx.release()
	defer tx.rollback()
	return lost(fn(tx))
}

// StaticMembers is Tx.StaticMembers in its own read transaction.
func (db *DB) StaticMembers(connector, group string) ([]string, error) {
	return store.Read(db.View, func(tx *Tx) ([]string, error) { return tx.StaticMembers(connector, group) })
}

// SetStaticMember is Tx.SetStaticMember in its own write transaction.
func (db *DB) SetStaticMember(now time.Time, connector, group, userID string, member bool) error {
	return db.Update(now, func(tx *Tx) error {
		return tx.SetStaticMember(connector, group, userID, member)
	})
}

// Tx is one transaction; now is its single time.
//
// Round trips are what a PostgreSQL transaction costs (the server is a
// network hop away), so the Tx sends its BEGIN together with its first
// statement, and writes whose result nothing reads (the audit event and the
// head move) wait to travel with the next statement or with the COMMIT, in
// one pgx batch.
type Tx struct {
	ctx      context.Context
	conn     *pgxpool.Conn
	beginSQL string
	begun    bool     // BEGIN has been sent
	pending  []queued // deferred writes, sent with the next statement
	now      time.Time
	undo     *store.UndoLog
	write    bool
	dbErr    error             // the first database error, so a swallowed 40001 still retries
	revs     map[string]uint64 // stored Rev of the requests this transaction read or wrote
}

type queued struct {
	sql  string
	args []any
}

// Now is the transaction's time (zero in View).
func (tx *Tx) Now() time.Time { return tx.now }

func (tx *Tx) writable() error {
	if !tx.write {
		return access.Errorf(access.CodeInternal, "store: write in a read-only transaction")
	}
	return nil
}

func (tx *Tx) note(err error) error {
	if err != nil && tx.dbErr == nil && !errors.Is(err, pgx.ErrNoRows) {
		tx.dbErr = err
	}
	return err
}

// direct reports that nothing waits to be sent: a statement can go alone.
func (tx *Tx) direct() bool { return tx.begun && len(tx.pending) == 0 }

// send queues BEGIN (first time) and the deferred writes before last, sends
// them in one batch and reads the results of all but last.
func (tx *Tx) send(sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	n := len(tx.pending)
	if !tx.begun {
		b.Queue(tx.beginSQL)
		n++
		if tx.write {
			// A replica that dies mid-write (power, a silent network)
			// would otherwise leave its session idle in transaction,
			// holding the lease row's FOR SHARE lock (every fenced write
			// takes it) or the audit head's lock, until TCP keepalive
			// notices: hours, with every other replica's lease renewal and
			// Slack action waiting. Writes make no network calls inside
			// (STYLE.md), so a healthy one is never idle for this long.
			b.Queue(idleInWriteSQL)
			n++
		}
	}
	for _, q := range tx.pending {
		b.Queue(q.sql, q.args...)
	}
	b.Queue(sql, args...)
	tx.begun, tx.pending = true, nil
	br := tx.conn.SendBatch(tx.ctx, b)
	for i := 0; i < n; i++ {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, tx.note(err)
		}
	}
	return br, nil
}

func (tx *Tx) exec(sql string, args ...any) (pgconn.CommandTag, error) {
	if tx.direct() {
		tag, err := tx.conn.Exec(tx.ctx, sql, args...)
		return tag, tx.note(err)
	}
	br, err := tx.send(sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, tx.note(err)
}

// later queues a write whose result nothing reads; its error surfaces at the
// next statement or the commit, which is still inside this transaction.
func (tx *Tx) later(sql string, args ...any) {
	tx.pending = append(tx.pending, queued{sql, args})
}

// one scans the single row of sql into dest; false when there is none.
func (tx *Tx) one(sql string, args []any, dest ...any) (bool, error) {
	var err error
	if tx.direct() {
		err = tx.conn.QueryRow(tx.ctx, sql, args...).Scan(dest...)
	} else {
		var br pgx.BatchResults
		if br, err = tx.send(sql, args); err != nil {
			return false, err
		}
		err = br.QueryRow().Scan(dest...)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	err = tx.note(err)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// each runs sql and calls scan for every row; the rows are closed before it
// returns, so callbacks that run after it may use the transaction again.
func (tx *Tx) each(sql string, args []any, scan func(pgx.Rows) error) error {
	var rows pgx.Rows
	var br pgx.BatchResults
	var err error
	if tx.direct() {
		rows, err = tx.conn.Query(tx.ctx, sql, args...)
	} else if br, err = tx.send(sql, args); err == nil {
		rows, err = br.Query()
	}
	if err != nil {
		if br != nil {
			_ = br.Close()
		}
		return tx.note(err)
	}
	for rows.Next() {
		if err := scan(rows); err != nil {
			rows.Close()
			if br != nil {
				_ = br.Close()
			}
			return err
		}
	}
	rows.Close()
	err = rows.Err()
	if br != nil {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	return tx.note(err)
}

// collect runs a query through each and returns one value per row, made by
// row (which scans it); nil with the first error.
func collect[T any](tx *Tx, sql string, args []any, row func(pgx.Rows) (T, error)) ([]T, error) {
	var out []T
	err := tx.each(sql, args, func(rows pgx.Rows) error {
		v, err := row(rows)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// commit sends the deferred writes and COMMIT in one batch. A transaction
// that never sent a statement has nothing to commit. PostgreSQL answers
// COMMIT of a failed transaction with ROLLBACK, not an error: that is one.
func (tx *Tx) commit() error {
	if !tx.begun && len(tx.pending) == 0 {
		return nil
	}
	tag, err := tx.exec("commit")
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" {
		return tx.note(fmt.Errorf("the transaction was rolled back by the server (%s)", tag))
	}
	tx.begun = false
	return nil
}

// rollback ends a transaction that was begun; a connection that cannot
// roll back is closed, never returned to the pool mid-transaction.
func (tx *Tx) rollback() {
	tx.pending = nil
	if !tx.begun {
		return
	}
	tx.begun = false
	// Bounded: on a connection that stopped answering, close it instead.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := tx.conn.Exec(ctx, "rollback"); err != nil {
		_ = tx.conn.Conn().Close(context.Background())
	}
}

func (tx *Tx) release() { tx.conn.Release() }

var (
	minKeyTime = time.Unix(0, math.MinInt64)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

// ns is t in Unix nanoseconds, clamped like bbolt's time keys, so the two
// stores order and compare times alike.
func ns(t time.Time) int64 {
	switch {
	case t.Before(minKeyTime):
		return math.MinInt64
	case t.After(maxKeyTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func nsTime(n int64) time.Time { return time.Unix(0, n).UTC() }

// stopped turns store.ErrStop from a callback into the end of a walk.
func stopped(err error) error {
	if errors.Is(err, store.ErrStop) {
		return nil
	}
	return err
}

// lowerEmail is the store's case-insensitive email form.
func lowerEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// chunk is how many rows one query of a long walk reads (keyset pages).
const chunk = 1000
