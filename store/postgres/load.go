package pgstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"

	"keycard/access"
	"keycard/store"

	"github.com/jackc/pgx/v5"
)

// Row types of a bulk load (Loader), one per kind the bbolt store holds. The
// JSON and binary values are copied as they are, byte for byte.
type (
	// EventRow is a stored event value (canonical bytes + raw hash).
	EventRow struct {
		Seq   uint64
		Value []byte
	}
	// OpRow is an outbox op.
	OpRow struct {
		ID   uint64
		JSON []byte
	}
	// PinRow is an identity pin.
	PinRow struct {
		SlackID string
		JSON    []byte
	}
	// CursorRow is a named cursor.
	CursorRow struct{ Name, Value string }
	// SeenRow is an envelope dedupe key with its times in Unix nanoseconds.
	SeenRow struct {
		Key         string
		AtNs, ExpNs int64
	}
	// StaticRow is a static connector membership.
	StaticRow struct{ Connector, Group, UserID string }
	// DocRow is a document.
	DocRow struct {
		Kind, ID string
		JSON     []byte
	}
)

// dataTables are every table that holds keycard's state (not the schema
// bookkeeping, not the leases: a replica may hold a lease on an empty
// database).
const dataTables = `keycard_counters, keycard_requests, keycard_waiting, keycard_audit_head,
	keycard_audit_events, keycard_outbox, keycard_pins, keycard_message_refs, keycard_cursors,
	keycard_seen, keycard_static, keycard_docs`

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const sqlCounts = `SELECT
	(SELECT count(*) FROM keycard_requests), (SELECT count(*) FROM keycard_audit_events),
	(SELECT count(*) FROM keycard_outbox), (SELECT count(*) FROM keycard_pins),
	(SELECT count(*) FROM keycard_message_refs), (SELECT count(*) FROM keycard_cursors),
	(SELECT count(*) FROM keycard_seen), (SELECT count(*) FROM keycard_static),
	(SELECT count(*) FROM keycard_docs),
	(SELECT seq FROM keycard_audit_head WHERE one),
	(SELECT coalesce(sum(n), 0) FROM keycard_counters)`

// counts reads the per-kind counts, and whether anything at all was ever
// written (the head moved or a counter was used, even if rows were deleted).
func counts(ctx context.Context, q querier) (store.Counts, bool, error) {
	var c store.Counts
	var head, ctr int64
	err := q.QueryRow(ctx, sqlCounts).Scan(&c.Requests, &c.Events, &c.Ops, &c.Pins, &c.MessageRefs,
		&c.Cursors, &c.Seen, &c.Static, &c.Docs, &head, &ctr)
	return c, c.Total() == 0 && head == 0 && ctr == 0, err
}

// Counts counts every kind the database holds.
func (db *DB) Counts(ctx context.Context) (store.Counts, error) {
	c, _, err := counts(ctx, db.pool)
	return c, err
}

// Loader writes a whole store into an empty database inside one
// transaction (DB.Load). Each method streams its rows with COPY, pulling
// them from the source one at a time, so a large file is never held in
// memory whole.
type Loader struct {
	ctx context.Context
	tx  pgx.Tx
	// Row is called after each row is read from a source (progress).
	Row func()
	// waiting rows, built from pending requests and written after them (a
	// connection runs one COPY at a time); only pending requests have them.
	waiting [][]any
}

// Load runs fn with a Loader in one transaction that first locks every
// data table (so no replica writes meanwhile) and refuses, with
// CodeConflict, a database that is not empty. fn's error rolls everything
// back: a failed load leaves the database as empty as it found it.
func (db *DB) Load(ctx context.Context, fn func(*Loader) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return access.Wrap(access.CodeUnavailable, err, "keycard cannot reach its database: %s", safeErr(err))
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+dataTables+" IN EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("pgstore: lock tables: %w", err)
	}
	c, empty, err := counts(ctx, tx)
	if err != nil {
		return fmt.Errorf("pgstore: count: %w", err)
	}
	if !empty {
		return access.Errorf(access.CodeConflict,
			"PostgreSQL at %s is not empty (%d requests, %d events, %d ops, %d docs): keycard copies only into an empty database",
			db.where, c.Requests, c.Events, c.Ops, c.Docs)
	}
	l := &Loader{ctx: ctx, tx: tx}
	if err := fn(l); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: commit the copy: %w", err)
	}
	return nil
}

// copyRows streams src into table with COPY; conv turns a row into column
// values (nil, nil skips it).
func copyRows[T any](l *Loader, table string, cols []string, src iter.Seq2[T, error], conv func(T) ([]any, error)) (int64, error) {
	next, stop := iter.Pull2(src)
	defer stop()
	n, err := l.tx.CopyFrom(l.ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
		for {
			v, err, ok := next()
			if !ok {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			if l.Row != nil {
				l.Row()
			}
			vals, err := conv(v)
			if err != nil || vals != nil {
				return vals, err
			}
		}
	}))
	if err != nil {
		return n, fmt.Errorf("pgstore: copy %s: %w", table, err)
	}
	return n, nil
}

// Requests copies stored request values (store.EncodeRequest's bytes), with
// every index column and waiting row derived as PutRequest derives them.
func (l *Loader) Requests(src iter.Seq2[[]byte, error]) (int64, error) {
	cols := []string{"num", "id", "created_ns", "state", "policy", "requester", "connector", "grp", "holds", "due_ns", "body"}
	n, err := copyRows(l, "keycard_requests", cols, src, func(body []byte) ([]any, error) {
		r, err := store.DecodeRequest(body)
		if err != nil {
			return nil, fmt.Errorf("request: %w", err)
		}
		var num int64
		if _, err := fmt.Sscanf(r.ID, "REQ-%d", &num); err != nil || fmt.Sprintf("REQ-%d", num) != r.ID {
			return nil, fmt.Errorf("request id %q is not REQ-<n>", r.ID)
		}
		var due *int64
		if d := r.NextDue(); !d.IsZero() {
			n := ns(d)
			due = &n
		}
		for _, e := range store.WaitingEmails(&r) {
			l.waiting = append(l.waiting, []any{e, ns(r.CreatedAt), r.ID})
		}
		return []any{num, r.ID, ns(r.CreatedAt), string(r.State), r.Policy, lowerEmail(r.Requester.Email),
			r.Connector, r.Group, r.State.HoldsMembership(), due, body}, nil
	})
	if err != nil {
		return n, err
	}
	if len(l.waiting) > 0 {
		_, err = l.tx.CopyFrom(l.ctx, pgx.Identifier{"keycard_waiting"}, []string{"email", "created_ns", "id"}, pgx.CopyFromRows(l.waiting))
		l.waiting = nil
		if err != nil {
			return n, fmt.Errorf("pgstore: copy keycard_waiting: %w", err)
		}
	}
	return n, nil
}

// Events copies stored event values in seq order and moves the head to the
// last one, as Append would have.
func (l *Loader) Events(src iter.Seq2[EventRow, error]) (int64, error) {
	var last EventRow
	n, err := copyRows(l, "keycard_audit_events", []string{"seq", "at_ns", "body"}, src, func(e EventRow) ([]any, error) {
		if len(e.Value) < 17+hashLen || e.Seq > math.MaxInt64 {
			return nil, fmt.Errorf("event %d: %d bytes, too short for an event", e.Seq, len(e.Value))
		}
		last = e
		return []any{int64(e.Seq), int64(binary.BigEndian.Uint64(e.Value[9:17])), e.Value}, nil
	})
	if err != nil || last.Seq == 0 {
		return n, err
	}
	v := last.Value
	_, err = l.tx.Exec(l.ctx, "UPDATE keycard_audit_head SET seq = $1, hash = $2, at_ns = $3 WHERE one",
		int64(last.Seq), v[len(v)-hashLen:], int64(binary.BigEndian.Uint64(v[9:17])))
	return n, err
}

// Ops copies outbox ops with their ids.
func (l *Loader) Ops(src iter.Seq2[OpRow, error]) (int64, error) {
	return copyRows(l, "keycard_outbox", []string{"id", "body"}, src, func(o OpRow) ([]any, error) {
		if o.ID > math.MaxInt64 {
			return nil, fmt.Errorf("op id %d out of range", o.ID)
		}
		return []any{int64(o.ID), o.JSON}, nil
	})
}

// Pins copies identity pins.
func (l *Loader) Pins(src iter.Seq2[PinRow, error]) (int64, error) {
	return copyRows(l, "keycard_pins", []string{"slack_id", "body"}, src, func(p PinRow) ([]any, error) {
		return []any{p.SlackID, p.JSON}, nil
	})
}

// MessageRefs copies message refs (JSON), keyed as PutMessageRef keys them.
func (l *Loader) MessageRefs(src iter.Seq2[[]byte, error]) (int64, error) {
	return copyRows(l, "keycard_message_refs", []string{"request_id", "kind", "step", "slack_user", "body"}, src, func(v []byte) ([]any, error) {
		var ref access.MessageRef
		if err := json.Unmarshal(v, &ref); err != nil {
			return nil, fmt.Errorf("message ref: %w", err)
		}
		return []any{ref.RequestID, ref.Kind, int64(ref.Step), ref.SlackUser, v}, nil
	})
}

// Cursors copies named cursors.
func (l *Loader) Cursors(src iter.Seq2[CursorRow, error]) (int64, error) {
	return copyRows(l, "keycard_cursors", []string{"name", "value"}, src, func(c CursorRow) ([]any, error) {
		return []any{c.Name, c.Value}, nil
	})
}

// Seen copies envelope dedupe keys.
func (l *Loader) Seen(src iter.Seq2[SeenRow, error]) (int64, error) {
	return copyRows(l, "keycard_seen", []string{"key", "at_ns", "exp_ns"}, src, func(s SeenRow) ([]any, error) {
		return []any{s.Key, s.AtNs, s.ExpNs}, nil
	})
}

// Static copies static connector memberships.
func (l *Loader) Static(src iter.Seq2[StaticRow, error]) (int64, error) {
	return copyRows(l, "keycard_static", []string{"connector", "grp", "user_id"}, src, func(s StaticRow) ([]any, error) {
		return []any{s.Connector, s.Group, s.UserID}, nil
	})
}

// Docs copies documents.
func (l *Loader) Docs(src iter.Seq2[DocRow, error]) (int64, error) {
	return copyRows(l, "keycard_docs", []string{"kind", "id", "body"}, src, func(d DocRow) ([]any, error) {
		return []any{d.Kind, d.ID, d.JSON}, nil
	})
}

// Sequences sets the request-number and op-id counters, so new requests
// and ops continue where the source stopped.
func (l *Loader) Sequences(requests, ops uint64) error {
	if requests > math.MaxInt64 || ops > math.MaxInt64 {
		return errors.New("pgstore: sequence out of range")
	}
	_, err := l.tx.Exec(l.ctx, `UPDATE keycard_counters SET n = CASE name WHEN 'requests' THEN $1::bigint WHEN 'outbox' THEN $2::bigint ELSE n END`,
		int64(requests), int64(ops))
	return err
}

// Counts counts what the load wrote so far (inside its transaction).
func (l *Loader) Counts() (store.Counts, error) {
	c, _, err := counts(l.ctx, l.tx)
	return c, err
}

// Verify checks the audit chain the load wrote, before it commits, with
// the same checks as DB.Verify (store.VerifyChain).
func (l *Loader) Verify() (store.VerifyResult, error) {
	return store.VerifyChain(loaderChain{l}, 1, nil)
}

type loaderChain struct{ l *Loader }

func (c loaderChain) Value(seq uint64) ([]byte, error) {
	var v []byte
	err := c.l.tx.QueryRow(c.l.ctx, "SELECT body FROM keycard_audit_events WHERE seq = $1", int64(seq)).Scan(&v)
	if isNoRows(err) {
		return nil, nil
	}
	return v, err
}

func (c loaderChain) Chunk(after uint64, n int, fn func(seq uint64, v []byte) error) (last bool, headSeq uint64, headHash [hashLen]byte, err error) {
	rows, err := c.l.tx.Query(c.l.ctx, "SELECT seq, body FROM keycard_audit_events WHERE seq > $1 ORDER BY seq LIMIT $2", int64(after), n)
	if err != nil {
		return false, 0, headHash, err
	}
	read := 0
	for rows.Next() {
		var seq int64
		var v []byte
		if err := rows.Scan(&seq, &v); err != nil {
			rows.Close()
			return false, 0, headHash, err
		}
		read++
		if err := fn(uint64(seq), v); err != nil {
			rows.Close()
			return false, 0, headHash, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || read == n {
		return false, 0, headHash, err
	}
	var s int64
	var h []byte
	if err := c.l.tx.QueryRow(c.l.ctx, "SELECT seq, hash FROM keycard_audit_head WHERE one").Scan(&s, &h); err != nil {
		return false, 0, headHash, err
	}
	copy(headHash[:], h)
	return true, uint64(s), headHash, nil
}
