package pgstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"keycard/access"
	"keycard/store"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

const hashLen = sha256.Size

// Head returns the last event's seq, hash and time; (0, GenesisHash, zero
// time) for an empty log.
func (tx *Tx) Head() (seq uint64, hash string, at time.Time) {
	var s, n int64
	var h []byte
	ok, err := tx.one("SELECT seq, hash, at_ns FROM keycard_audit_head WHERE one", nil, &s, &h, &n)
	if err != nil || !ok || s == 0 {
		return 0, access.GenesisHash, time.Time{}
	}
	return uint64(s), hex.EncodeToString(h), nsTime(n)
}

// Append seals e exactly as the bbolt store does (Seq = head+1, Time = Now
// but never before the head's, the same deterministic ID, PrevHash, Hash over
// e.Canonical()) and stores it. It first locks the head row (SELECT … FOR
// UPDATE): appends from every replica are serialised there, so the chain
// cannot fork; a concurrent appender fails with 40001 and Update retries it.
func (tx *Tx) Append(e access.Event) (access.Event, error) {
	if err := tx.writable(); err != nil {
		return access.Event{}, err
	}
	if e.Type == "" {
		return access.Event{}, access.Errorf(access.CodeInvalid, "store: audit event without a type")
	}
	var hseq, htime int64
	var hhash []byte
	if _, err := tx.one("SELECT seq, hash, at_ns FROM keycard_audit_head WHERE one FOR UPDATE", nil, &hseq, &hhash, &htime); err != nil {
		return access.Event{}, fmt.Errorf("store: audit head: %w", err)
	}
	e.Seq = uint64(hseq) + 1
	e.Time = tx.now.UTC()
	if hseq > 0 && e.Time.UnixNano() < htime {
		e.Time = nsTime(htime)
	}
	e.ID = store.EventID(e.Seq, e.Time, e.Type, e.RequestID)
	e.PrevHash = access.GenesisHash
	if hseq > 0 {
		e.PrevHash = hex.EncodeToString(hhash)
	}
	canon := e.Canonical()
	sum := sha256.Sum256(canon)
	e.Hash = hex.EncodeToString(sum[:])
	at := e.Time.UnixNano()
	// The event and the head move in one statement, sent with the next
	// statement or the COMMIT: the head row is locked by this transaction,
	// so nothing can come between.
	tx.later(`WITH ev AS (INSERT INTO keycard_audit_events (seq, at_ns, body) VALUES ($1, $2, $3))
		UPDATE keycard_audit_head SET seq = $1, hash = $4, at_ns = $2 WHERE one`,
		int64(e.Seq), at, append(canon, sum[:]...), sum[:])
	return e, nil
}

// Event reads the event with seq. CodeNotFound when absent.
func (tx *Tx) Event(seq uint64) (access.Event, error) {
	if seq > math.MaxInt64 {
		return access.Event{}, access.Errorf(access.CodeNotFound, "Audit event %d was not found.", seq)
	}
	var v []byte
	ok, err := tx.one("SELECT body FROM keycard_audit_events WHERE seq = $1", []any{int64(seq)}, &v)
	if err != nil {
		return access.Event{}, fmt.Errorf("store: event %d: %w", seq, err)
	}
	if !ok {
		return access.Event{}, access.Errorf(access.CodeNotFound, "Audit event %d was not found.", seq)
	}
	e, err := store.DecodeEvent(v)
	if err != nil {
		return e, fmt.Errorf("store: event %d: %w", seq, err)
	}
	return e, nil
}

type eventRow struct {
	seq  int64
	at   int64
	body []byte
}

func (tx *Tx) eventPage(sql string, args ...any) ([]eventRow, error) {
	return collect(tx, sql, args, func(rows pgx.Rows) (eventRow, error) {
		var r eventRow
		err := rows.Scan(&r.seq, &r.at, &r.body)
		return r, err
	})
}

func emit(page []eventRow, fn func(access.Event) error) (bool, error) {
	for _, r := range page {
		e, err := store.DecodeEvent(r.body)
		if err != nil {
			return true, fmt.Errorf("store: event %d: %w", r.seq, err)
		}
		if err := fn(e); err != nil {
			return true, stopped(err)
		}
	}
	return false, nil
}

// Events calls fn with each event whose seq is greater than after, in
// ascending seq, a page at a time. ErrStop from fn ends the walk.
func (tx *Tx) Events(after uint64, fn func(access.Event) error) error {
	if after >= math.MaxInt64 {
		return nil
	}
	cur := int64(after)
	for {
		page, err := tx.eventPage("SELECT seq, at_ns, body FROM keycard_audit_events WHERE seq > $1 ORDER BY seq LIMIT $2", cur, chunk)
		if err != nil {
			return err
		}
		if end, err := emit(page, fn); end || err != nil {
			return err
		}
		if len(page) < chunk {
			return nil
		}
		cur = page[len(page)-1].seq
	}
}

// EventsBetween calls fn with each event whose time is in [from, to), in
// ascending seq. Like the bbolt store it walks the chain itself: it finds the
// first event at or after from, then reads seq by seq until an event at or
// after to, and a missing seq is an error, so no row removed from the table
// can silently drop out of an events export (issue 10).
//
// Both ends are judged by the time inside each event's chained bytes, never
// by the at_ns column, which the hash chain does not cover: moving one
// event's at_ns past the period made a six-event period export two while
// verify passed. Append keeps time monotonic in seq, so the start is a
// binary search by seq over the bodies (as the bbolt store's), a few
// dozen point reads even for a long log; Verify holds at_ns to the body.
func (tx *Tx) EventsBetween(from, to time.Time, fn func(access.Event) error) error {
	var last *int64
	if _, err := tx.one("SELECT max(seq) FROM keycard_audit_events", nil, &last); err != nil {
		return err
	}
	if last == nil {
		return nil
	}
	first, err := store.FirstSeqFrom(uint64(*last), from, func(seq uint64) ([]byte, error) {
		var v []byte
		_, err := tx.one("SELECT body FROM keycard_audit_events WHERE seq = $1", []any{int64(seq)}, &v)
		return v, err
	})
	if err != nil {
		return err
	}
	want := int64(first)
	for {
		page, err := tx.eventPage("SELECT seq, at_ns, body FROM keycard_audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2", want, chunk)
		if err != nil {
			return err
		}
		for _, r := range page {
			if r.seq != want {
				return fmt.Errorf("store: audit event %d is missing (the walk went from %d to %d)", want, want-1, r.seq)
			}
			want++
			e, err := store.DecodeEvent(r.body)
			if err != nil {
				return fmt.Errorf("store: event %d: %w", r.seq, err)
			}
			if !e.Time.Before(to) {
				return nil
			}
			if err := fn(e); err != nil {
				return stopped(err)
			}
		}
		if len(page) < chunk {
			return nil
		}
	}
}

// EventDetails calls fn with the seq, request id and detail of each event
// from seq 1 to upTo, in seq order, without decoding the rest (see the
// bbolt store's). A missing seq is an error.
func (tx *Tx) EventDetails(upTo uint64, fn func(seq uint64, requestID, detail []byte) error) error {
	want := int64(1)
	var page rawPage
	for want <= int64(upTo) {
		page.reset()
		err := tx.each("SELECT seq, body FROM keycard_audit_events WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3",
			[]any{want, int64(upTo), chunk}, func(rows pgx.Rows) error {
				var seq int64
				var body pgtype.DriverBytes
				if err := rows.Scan(&seq, &body); err != nil {
					return err
				}
				page.add(seq, body)
				return nil
			})
		if err != nil {
			return err
		}
		if page.len() == 0 {
			break
		}
		for i := range page.len() {
			seq, body := page.row(i)
			if seq != want {
				return fmt.Errorf("store: audit event %d is missing (the walk went from %d to %d)", want, want-1, seq)
			}
			want++
			reqID, detail, err := store.EventDetailFields(body)
			if err != nil {
				return fmt.Errorf("store: event %d: %w", seq, err)
			}
			if err := fn(uint64(seq), reqID, detail); err != nil {
				return stopped(err)
			}
		}
	}
	if want <= int64(upTo) {
		return fmt.Errorf("store: audit event %d is missing (the log ends at %d)", want, want-1)
	}
	return nil
}

// Verify checks the audit chain exactly as the bbolt store's DB.Verify does
// (store.VerifyChain: same checks, same sentences), reading pages in short
// read-only snapshots.
func (db *DB) Verify(from uint64, fn func(access.Event) error) (store.VerifyResult, error) {
	return store.VerifyChain(chainReader{db}, from, fn)
}

type chainReader struct{ db *DB }

func (c chainReader) Value(seq uint64) ([]byte, error) {
	var v []byte
	err := c.db.View(func(tx *Tx) error {
		_, err := tx.one("SELECT body FROM keycard_audit_events WHERE seq = $1", []any{int64(seq)}, &v)
		return err
	})
	return v, err
}

func (c chainReader) Chunk(after uint64, n int, fn func(seq uint64, v []byte) error) (last bool, headSeq uint64, headHash [hashLen]byte, err error) {
	last, headSeq, headHash, _, err = c.TimedChunk(after, n, func(seq uint64, v []byte, _ int64) error { return fn(seq, v) })
	return last, headSeq, headHash, err
}

// TimedChunk is Chunk with each row's at_ns and the head's: VerifyChain
// holds them to the time in the chained bytes (store.TimedChainReader).
func (c chainReader) TimedChunk(after uint64, n int, fn func(seq uint64, v []byte, at int64) error) (last bool, headSeq uint64, headHash [hashLen]byte, headAt int64, err error) {
	err = c.db.View(func(tx *Tx) error {
		page, err := tx.eventPage("SELECT seq, at_ns, body FROM keycard_audit_events WHERE seq > $1 ORDER BY seq LIMIT $2", int64(after), n)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(uint64(r.seq), r.body, r.at); err != nil {
				return err
			}
		}
		if len(page) == n {
			return nil
		}
		last = true
		var s int64
		var h []byte
		if _, err := tx.one("SELECT seq, hash, at_ns FROM keycard_audit_head WHERE one", nil, &s, &h, &headAt); err != nil {
			return err
		}
		headSeq = uint64(s)
		copy(headHash[:], h)
		return nil
	})
	return last, headSeq, headHash, headAt, err
}
