package pgstore

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"keycard/access"
	"keycard/store"

	"github.com/jackc/pgx/v5"
)

// Enqueue adds op to the outbox in this transaction: ID from a transactional
// counter (increasing, no gaps, as bbolt's bucket sequence), CreatedAt = Now
// when zero.
func (tx *Tx) Enqueue(op *access.Op) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if op == nil {
		return store.ErrNilOp
	}
	var id int64
	if _, err := tx.one("UPDATE keycard_counters SET n = n + 1 WHERE name = 'outbox' RETURNING n", nil, &id); err != nil {
		return fmt.Errorf("store: outbox sequence: %w", err)
	}
	tx.undo.Add(store.StampOp(op, uint64(id), tx.now))
	v, err := store.EncodeOp(*op)
	if err != nil {
		return err
	}
	tx.later("INSERT INTO keycard_outbox (id, body) VALUES ($1, $2)", id, v)
	return nil
}

// Op reads one outbox item. CodeNotFound when absent.
func (tx *Tx) Op(id uint64) (access.Op, error) {
	if id > math.MaxInt64 {
		return access.Op{}, store.OpNotFound(id)
	}
	var v []byte
	ok, err := tx.one("SELECT body FROM keycard_outbox WHERE id = $1", []any{int64(id)}, &v)
	if err != nil {
		return access.Op{}, fmt.Errorf("store: op %d: %w", id, err)
	}
	if !ok {
		return access.Op{}, store.OpNotFound(id)
	}
	return store.DecodeOp(id, v)
}

// PutOp rewrites an existing outbox item; CodeNotFound when it is gone (the
// worker must not resurrect a finished or cancelled op).
func (tx *Tx) PutOp(op access.Op) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if op.ID > math.MaxInt64 {
		return store.OpNotFound(op.ID)
	}
	v, err := store.EncodeOp(op)
	if err != nil {
		return err
	}
	tag, err := tx.exec("UPDATE keycard_outbox SET body = $2 WHERE id = $1", int64(op.ID), v)
	if err != nil {
		return fmt.Errorf("store: put op %d: %w", op.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return store.OpNotFound(op.ID)
	}
	return nil
}

// DeleteOp removes an outbox item; an absent one is not an error.
func (tx *Tx) DeleteOp(id uint64) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if id > math.MaxInt64 {
		return nil
	}
	if _, err := tx.exec("DELETE FROM keycard_outbox WHERE id = $1", int64(id)); err != nil {
		return fmt.Errorf("store: delete op %d: %w", id, err)
	}
	return nil
}

// Ops calls fn with every outbox item in ascending id, a page at a time.
func (tx *Tx) Ops(fn func(access.Op) error) error {
	var cur int64
	for {
		var page []access.Op
		err := tx.each("SELECT id, body FROM keycard_outbox WHERE id > $1 ORDER BY id LIMIT $2", []any{cur, chunk}, func(rows pgx.Rows) error {
			var v []byte
			if err := rows.Scan(&cur, &v); err != nil {
				return err
			}
			op, err := store.DecodeOp(uint64(cur), v)
			if err != nil {
				return err
			}
			page = append(page, op)
			return nil
		})
		if err != nil {
			return err
		}
		for _, op := range page {
			if err := fn(op); err != nil {
				return stopped(err)
			}
		}
		if len(page) < chunk {
			return nil
		}
	}
}

// OutboxStats returns the number of queued ops and the CreatedAt of the
// oldest. The outbox holds only unfinished operations, so the count reads a
// small table.
func (tx *Tx) OutboxStats() (depth int, oldest time.Time, err error) {
	var n int64
	var v []byte
	if _, err := tx.one("SELECT count(*), (SELECT body FROM keycard_outbox ORDER BY id LIMIT 1) FROM keycard_outbox", nil, &n, &v); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: outbox: %w", err)
	}
	if v == nil {
		return int(n), time.Time{}, nil
	}
	var op access.Op
	if err := json.Unmarshal(v, &op); err != nil {
		return int(n), time.Time{}, fmt.Errorf("store: oldest op: %w", err)
	}
	return int(n), op.CreatedAt, nil
}

// Pin reads the identity pin of a Slack user; false when none.
func (tx *Tx) Pin(slackID string) (access.Pin, bool, error) {
	var v []byte
	ok, err := tx.one("SELECT body FROM keycard_pins WHERE slack_id = $1", []any{slackID}, &v)
	if err != nil || !ok {
		return access.Pin{}, false, err
	}
	p, err := store.DecodePin(slackID, v)
	return p, err == nil, err
}

// PutPin stores (overwrites) the pairing of a Slack user and an IdP user.
func (tx *Tx) PutPin(p access.Pin) error {
	if err := tx.writable(); err != nil {
		return err
	}
	v, err := store.EncodePin(p, tx.now)
	if err != nil {
		return err
	}
	_, err = tx.exec(`INSERT INTO keycard_pins (slack_id, body) VALUES ($1, $2)
		ON CONFLICT (slack_id) DO UPDATE SET body = excluded.body`, p.SlackID, v)
	return err
}

// PutMessageRef records (or replaces) where a message about a request was
// posted, one per request, kind, step and Slack user.
func (tx *Tx) PutMessageRef(ref access.MessageRef) error {
	if err := tx.writable(); err != nil {
		return err
	}
	v, err := store.EncodeMessageRef(ref)
	if err != nil {
		return err
	}
	_, err = tx.exec(`INSERT INTO keycard_message_refs (request_id, kind, step, slack_user, body)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (request_id, kind, step, slack_user) DO UPDATE SET body = excluded.body`,
		ref.RequestID, ref.Kind, int64(ref.Step), ref.SlackUser, v)
	return err
}

// MessageRefs returns every message ref of a request, ordered by kind, step
// and Slack user.
func (tx *Tx) MessageRefs(requestID string) ([]access.MessageRef, error) {
	return collect(tx, `SELECT body FROM keycard_message_refs WHERE request_id = $1 ORDER BY kind, step, slack_user`,
		[]any{requestID}, func(rows pgx.Rows) (access.MessageRef, error) {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				return access.MessageRef{}, err
			}
			return store.DecodeMessageRef(requestID, v)
		})
}

// Cursor reads a named position; "" when unset.
func (tx *Tx) Cursor(name string) (string, error) {
	var v string
	_, err := tx.one("SELECT value FROM keycard_cursors WHERE name = $1", []any{name}, &v)
	return v, err
}

// SetCursor stores a named position; "" deletes it.
func (tx *Tx) SetCursor(name, value string) error {
	if err := tx.writable(); err != nil {
		return err
	}
	var err error
	if value == "" {
		_, err = tx.exec("DELETE FROM keycard_cursors WHERE name = $1", name)
	} else {
		_, err = tx.exec(`INSERT INTO keycard_cursors (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	}
	return err
}

// seenPrunePerCall bounds the expired dedupe keys one Seen call deletes.
const seenPrunePerCall = 16

// Seen records key at Now and reports whether it was already recorded within
// ttl before (same rules as the bbolt store: a duplicate keeps its first
// record time; a record from the future counts as seen). The table is shared
// by every replica, so a redelivery to another replica is a duplicate too;
// two replicas recording the same key at once conflict and one is retried.
func (tx *Tx) Seen(key string, ttl time.Duration) (bool, error) {
	if err := tx.writable(); err != nil {
		return false, err
	}
	now := ns(tx.now)
	if _, err := tx.exec(`DELETE FROM keycard_seen WHERE key IN
		(SELECT key FROM keycard_seen WHERE exp_ns <= $1 ORDER BY exp_ns, key LIMIT $2)`, now, seenPrunePerCall); err != nil {
		return false, fmt.Errorf("store: seen: %w", err)
	}
	var at int64
	ok, err := tx.one("SELECT at_ns FROM keycard_seen WHERE key = $1", []any{key}, &at)
	if err != nil {
		return false, fmt.Errorf("store: seen %s: %w", key, err)
	}
	if ok && tx.now.Sub(nsTime(at)) < ttl {
		return true, nil
	}
	if _, err := tx.exec(`INSERT INTO keycard_seen (key, at_ns, exp_ns) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET at_ns = excluded.at_ns, exp_ns = excluded.exp_ns`,
		key, now, ns(tx.now.Add(ttl))); err != nil {
		return false, fmt.Errorf("store: seen %s: %w", key, err)
	}
	return false, nil
}

// StaticMembers lists the user ids in a static connector's group, sorted.
func (tx *Tx) StaticMembers(connector, group string) ([]string, error) {
	return collect(tx, `SELECT user_id FROM keycard_static WHERE connector = $1 AND grp = $2 ORDER BY user_id`,
		[]any{connector, group}, func(rows pgx.Rows) (string, error) {
			var u string
			err := rows.Scan(&u)
			return u, err
		})
}

// SetStaticMember adds or removes a user id in a static connector's group;
// both idempotent.
func (tx *Tx) SetStaticMember(connector, group, userID string, member bool) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if userID == "" {
		return access.Errorf(access.CodeInvalid, "store: static member without a user id")
	}
	var err error
	if member {
		_, err = tx.exec(`INSERT INTO keycard_static (connector, grp, user_id) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, connector, group, userID)
	} else {
		_, err = tx.exec(`DELETE FROM keycard_static WHERE connector = $1 AND grp = $2 AND user_id = $3`, connector, group, userID)
	}
	return err
}

// PutDoc stores v (JSON) as document id of kind.
func (tx *Tx) PutDoc(kind, id string, v any) error {
	if err := tx.writable(); err != nil {
		return err
	}
	data, err := store.EncodeDoc(kind, id, v)
	if err != nil {
		return err
	}
	_, err = tx.exec(`INSERT INTO keycard_docs (kind, id, body) VALUES ($1, $2, $3)
		ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`, kind, id, data)
	return err
}

// Doc reads document id of kind into v; false when absent.
func (tx *Tx) Doc(kind, id string, v any) (bool, error) {
	var data []byte
	ok, err := tx.one("SELECT body FROM keycard_docs WHERE kind = $1 AND id = $2", []any{kind, id}, &data)
	if err != nil || !ok {
		return false, err
	}
	if err := store.DecodeDoc(kind, id, data, v); err != nil {
		return false, err
	}
	return true, nil
}

// Docs calls fn with each document of kind whose id starts with prefix, in
// id order, a page at a time.
func (tx *Tx) Docs(kind, prefix string, fn func(id string, data []byte) error) error {
	type doc struct {
		id   string
		data []byte
	}
	// Keyset pages over the (kind, id) primary key: id >= cursor is one
	// index range; the cursor row itself is skipped after the first page.
	cur, first := prefix, true
	for {
		var page []doc
		read, done := 0, false
		err := tx.each(`SELECT id, body FROM keycard_docs WHERE kind = $1 AND id >= $2 ORDER BY id LIMIT $3`,
			[]any{kind, cur, chunk}, func(rows pgx.Rows) error {
				read++
				var d doc
				if err := rows.Scan(&d.id, &d.data); err != nil {
					return err
				}
				switch {
				case done || (!first && d.id == cur):
				case !strings.HasPrefix(d.id, prefix):
					done = true
				default:
					page = append(page, d)
				}
				return nil
			})
		if err != nil {
			return err
		}
		for _, d := range page {
			if err := fn(d.id, d.data); err != nil {
				return stopped(err)
			}
		}
		if done || read < chunk || len(page) == 0 {
			return nil
		}
		cur, first = page[len(page)-1].id, false
	}
}

// DeleteDoc removes a document (absent is fine).
func (tx *Tx) DeleteDoc(kind, id string) error {
	if err := tx.writable(); err != nil {
		return err
	}
	_, err := tx.exec("DELETE FROM keycard_docs WHERE kind = $1 AND id = $2", kind, id)
	return err
}
