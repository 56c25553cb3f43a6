package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"keycard/access"
)

// hashLen is the size of a raw SHA-256, stored after each event's canonical
// bytes.
const hashLen = sha256.Size

// head is the audit log's last event as kept in meta, so that Append and Open
// never scan the log.
type head struct {
	seq  uint64
	hash [hashLen]byte
	time int64 // Unix nanoseconds
}

func (tx *Tx) readHead() (head, error) {
	var h head
	v := tx.tx.Bucket(bMeta).Get(keyHead)
	if v == nil {
		return h, nil
	}
	if len(v) != 8+hashLen+8 {
		return h, fmt.Errorf("store: audit head: %d bytes, want %d", len(v), 8+hashLen+8)
	}
	h.seq = binary.BigEndian.Uint64(v)
	copy(h.hash[:], v[8:])
	h.time = int64(binary.BigEndian.Uint64(v[8+hashLen:]))
	return h, nil
}

func (h head) hexHash() string {
	if h.seq == 0 {
		return access.GenesisHash
	}
	return hex.EncodeToString(h.hash[:])
}

// Head returns the last event's seq, hash and time; (0, GenesisHash, zero
// time) for an empty log.
func (tx *Tx) Head() (seq uint64, hash string, at time.Time) {
	h, err := tx.readHead()
	if err != nil || h.seq == 0 {
		return 0, access.GenesisHash, time.Time{}
	}
	return h.seq, h.hexHash(), time.Unix(0, h.time).UTC()
}

// eventID is the first 32 hex characters of SHA-256 over (seq, time, type,
// request id): deterministic, so replaying the same append gives the same id.
func eventID(seq uint64, t time.Time, typ access.EventType, requestID string) string {
	b := make([]byte, 0, 32+len(typ)+len(requestID))
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(typ)))
	b = append(b, typ...)
	b = binary.AppendUvarint(b, uint64(len(requestID)))
	b = append(b, requestID...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Append adds e to the audit log and returns it sealed: Seq = head+1, Time =
// tx.Now() in UTC but never before the head's time (the log's time order
// equals its seq order even if the wall clock steps back), a deterministic ID,
// PrevHash = the head's hash (GenesisHash first) and Hash. The stored value
// is e.Canonical() followed by the 32 raw hash bytes: Verify re-hashes those
// bytes directly, with no decoding. Append it in the same transaction as the
// state change it records.
func (tx *Tx) Append(e access.Event) (access.Event, error) {
	if err := tx.writable(); err != nil {
		return access.Event{}, err
	}
	if e.Type == "" {
		return access.Event{}, access.Errorf(access.CodeInvalid, "store: audit event without a type")
	}
	h, err := tx.readHead()
	if err != nil {
		return access.Event{}, err
	}
	e.Seq = h.seq + 1
	e.Time = tx.now.UTC()
	if h.seq > 0 && e.Time.UnixNano() < h.time {
		e.Time = time.Unix(0, h.time).UTC()
	}
	e.ID = eventID(e.Seq, e.Time, e.Type, e.RequestID)
	e.PrevHash = h.hexHash()
	canon := e.Canonical()
	sum := sha256.Sum256(canon)
	e.Hash = hex.EncodeToString(sum[:])

	seqKey := u64(e.Seq)
	if err := tx.tx.Bucket(bEvents).Put(seqKey, append(canon, sum[:]...)); err != nil {
		return access.Event{}, fmt.Errorf("store: append event %d: %w", e.Seq, err)
	}
	if err := tx.tx.Bucket(bIdxEventTime).Put(append(timeKey(e.Time), seqKey...), nil); err != nil {
		return access.Event{}, fmt.Errorf("store: index event %d: %w", e.Seq, err)
	}
	hv := make([]byte, 0, 8+hashLen+8)
	hv = append(hv, seqKey...)
	hv = append(hv, sum[:]...)
	hv = binary.BigEndian.AppendUint64(hv, uint64(e.Time.UnixNano()))
	if err := tx.tx.Bucket(bMeta).Put(keyHead, hv); err != nil {
		return access.Event{}, fmt.Errorf("store: audit head: %w", err)
	}
	return e, nil
}

// decodeEvent parses a stored value (canonical bytes + raw hash). The
// strings are copies: safe after the transaction.
func decodeEvent(v []byte) (access.Event, error) {
	if len(v) < hashLen {
		return access.Event{}, fmt.Errorf("audit event: %d bytes", len(v))
	}
	e, err := access.ParseCanonical(v[:len(v)-hashLen])
	if err != nil {
		return e, err
	}
	e.Hash = hex.EncodeToString(v[len(v)-hashLen:])
	return e, nil
}

// Event reads the event with seq. CodeNotFound when absent.
func (tx *Tx) Event(seq uint64) (access.Event, error) {
	v := tx.tx.Bucket(bEvents).Get(u64(seq))
	if v == nil {
		return access.Event{}, access.Errorf(access.CodeNotFound, "Audit event %d was not found.", seq)
	}
	e, err := decodeEvent(v)
	if err != nil {
		return e, fmt.Errorf("store: event %d: %w", seq, err)
	}
	return e, nil
}

// Events calls fn with each event whose seq is greater than after, in
// ascending seq. fn returning ErrStop ends the walk without error. The events
// are not verified: use DB.Verify for that.
func (tx *Tx) Events(after uint64, fn func(access.Event) error) error {
	if after == ^uint64(0) {
		return nil
	}
	c := tx.tx.Bucket(bEvents).Cursor()
	for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
		e, err := decodeEvent(v)
		if err != nil {
			return fmt.Errorf("store: event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// EventsBetween calls fn with each event whose time is in [from, to), in
// ascending seq. It walks the chained events bucket itself, never the time
// index: the index is not covered by the hash chain, so deleting one of its
// keys hid an event from the events export while `audit verify` passed
// (issue 10). Append keeps time monotonic in seq, so the first event at or
// after from is found by binary search over seq (a month of a long log
// still does not walk years), and the walk then checks that every seq
// follows the previous one: a missing event is an error naming it, not a
// silently shorter export.
func (tx *Tx) EventsBetween(from, to time.Time, fn func(access.Event) error) error {
	events := tx.tx.Bucket(bEvents)
	c := events.Cursor()
	k, _ := c.Last()
	if k == nil {
		return nil
	}
	lo, err := FirstSeqFrom(binary.BigEndian.Uint64(k), from, func(seq uint64) ([]byte, error) {
		return events.Get(u64(seq)), nil
	})
	if err != nil {
		return err
	}
	want := lo
	for k, v := c.Seek(u64(lo)); k != nil; k, v = c.Next() {
		if seq := binary.BigEndian.Uint64(k); seq != want {
			return fmt.Errorf("store: audit event %d is missing (the walk went from %d to %d)", want, want-1, seq)
		}
		want++
		e, err := decodeEvent(v)
		if err != nil {
			return fmt.Errorf("store: event %d: %w", want-1, err)
		}
		if !e.Time.Before(to) {
			return nil
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// EventDetails calls fn with the seq, request id and detail of each event
// from seq 1 to upTo, in seq order, without decoding the rest: the access
// export reads every event's record attestation (handlers.chainedRecords),
// and building a full access.Event per event doubled its cost. The slices
// are views into the database, valid only during fn. A missing seq is an
// error. The events are not verified: use DB.Verify for that.
func (tx *Tx) EventDetails(upTo uint64, fn func(seq uint64, requestID, detail []byte) error) error {
	c := tx.tx.Bucket(bEvents).Cursor()
	want := uint64(1)
	for k, v := c.First(); k != nil && want <= upTo; k, v = c.Next() {
		seq := binary.BigEndian.Uint64(k)
		if seq != want {
			return fmt.Errorf("store: audit event %d is missing (the walk went from %d to %d)", want, want-1, seq)
		}
		want++
		reqID, detail, err := EventDetailFields(v)
		if err != nil {
			return fmt.Errorf("store: event %d: %w", seq, err)
		}
		if err := fn(seq, reqID, detail); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	if want <= upTo {
		return fmt.Errorf("store: audit event %d is missing (the log ends at %d)", want, want-1)
	}
	return nil
}

// eventTime reads an event's time from its stored canonical bytes (version
// byte, seq, then Unix nanoseconds) without decoding the rest.
func eventTime(v []byte) (time.Time, error) {
	if len(v) < 17+hashLen || v[0] != 1 {
		return time.Time{}, fmt.Errorf("audit event: unknown encoding (%d bytes)", len(v))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))).UTC(), nil
}
