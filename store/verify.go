package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"keycard/access"

	bolt "go.etcd.io/bbolt"
)

// ErrChainBroken is wrapped by VerifyResult.Err when the audit chain does not
// verify.
var ErrChainBroken = errors.New("audit chain broken")

// VerifyResult is what DB.Verify found.
type VerifyResult struct {
	Count   uint64 // events verified
	First   uint64 // first verified seq (0 when none)
	Last    uint64 // last verified seq (0 when none)
	Head    string // the head hash stored in meta, hex (GenesisHash for an empty log)
	BadSeq  uint64 // the first event that failed; 0 when the chain holds
	Problem string // one sentence naming the event and what is wrong; "" when the chain holds
}

// OK reports whether the chain verified.
func (r VerifyResult) OK() bool { return r.Problem == "" }

// Err is nil when the chain verified and otherwise an error wrapping
// ErrChainBroken with the Problem sentence (for callers that must fail).
func (r VerifyResult) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrChainBroken, r.Problem)
}

// verifyChunk is how many events one read transaction checks. A long read
// transaction holds the pages it sees and blocks bbolt's remap when the file
// grows (go.etcd.io/bbolt doc: long read transactions), so Verify reads a
// multi-year log in many short transactions.
const verifyChunk = 1 << 14

// chainWalker carries the link from one event to the next.
type chainWalker struct {
	seq  uint64        // last verified seq (from-1 at the start)
	prev [hashLen]byte // its hash (all zero = GenesisHash)
	time int64         // its time, Unix nanoseconds
}

// check verifies one stored event (key seq, value v) against the previous
// one, without decoding it: re-hash the stored canonical bytes, compare with
// the stored hash, and follow the prev_hash field. It returns the failing seq
// and a sentence, or 0 and "".
func (w *chainWalker) check(seq uint64, v []byte) (uint64, string) {
	want := w.seq + 1
	if seq != want {
		return want, fmt.Sprintf("event %d is missing: the log goes from event %d to event %d", want, w.seq, seq)
	}
	if len(v) < 17+hashLen {
		return seq, fmt.Sprintf("event %d is unreadable: its stored value is %d bytes, too short for an event", seq, len(v))
	}
	canon, stored := v[:len(v)-hashLen], v[len(v)-hashLen:]
	if sum := sha256.Sum256(canon); !bytes.Equal(sum[:], stored) {
		return seq, fmt.Sprintf("event %d was altered: its content does not match its stored hash", seq)
	}
	if canon[0] != 1 {
		return seq, fmt.Sprintf("event %d is unreadable: unknown encoding version %d", seq, canon[0])
	}
	if got := binary.BigEndian.Uint64(canon[1:9]); got != seq {
		return seq, fmt.Sprintf("event %d is stored under seq %d but its content says seq %d", seq, seq, got)
	}
	prevHex, ok := lastCanonicalField(canon[17:])
	if !ok {
		return seq, fmt.Sprintf("event %d is unreadable: its fields are truncated or have trailing bytes", seq)
	}
	var prev [hashLen]byte
	if len(prevHex) != 2*hashLen {
		return seq, fmt.Sprintf("event %d does not link to event %d: its prev_hash is %d characters, not a SHA-256", seq, w.seq, len(prevHex))
	}
	if _, err := hex.Decode(prev[:], prevHex); err != nil || prev != w.prev {
		return seq, fmt.Sprintf("event %d does not link to event %d: its prev_hash %.12s… is not event %d's hash %.12s…",
			seq, w.seq, prevHex, w.seq, hex.EncodeToString(w.prev[:]))
	}
	t := int64(binary.BigEndian.Uint64(canon[9:17]))
	if t < w.time {
		return seq, fmt.Sprintf("event %d is dated before event %d: time must not go backwards in the log", seq, w.seq)
	}
	w.seq, w.prev, w.time = seq, [hashLen]byte(stored), t
	return 0, ""
}

// canonicalFields is the number of length-prefixed fields of
// access.Event.Canonical; prev_hash is the last.
const canonicalFields = 8

// lastCanonicalField skips the length-prefixed fields and returns the last
// one (prev_hash), checking there is nothing after it.
func lastCanonicalField(b []byte) ([]byte, bool) {
	var f []byte
	for i := 0; i < canonicalFields; i++ {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		f = b[k : k+int(n)]
		b = b[k+int(n):]
	}
	return f, len(b) == 0
}

// Verify walks the audit chain from seq from (0 or 1: the whole log; later:
// linked to the stored hash of event from-1) in ascending order. For each
// event it re-hashes the stored canonical bytes, compares them with the stored
// hash, checks the seq is the next one and that prev_hash is the previous
// event's hash; at the end it checks that the head kept in meta is the last
// event (a truncated log is caught there). The first break sets BadSeq and
// Problem and stops; the error is only for failures to read or from fn. fn
// (may be nil) sees each verified event, outside any transaction; ErrStop
// from fn ends the walk early without error.
//
// It reads in chunks of short read transactions and decodes nothing unless fn
// is set, so it checks well over a million events per second.
func (db *DB) Verify(from uint64, fn func(access.Event) error) (VerifyResult, error) {
	return VerifyChain(boltChain{db}, from, fn)
}

// boltChain is the bbolt log as VerifyChain reads it: each Chunk is one
// short read transaction.
type boltChain struct{ db *DB }

// Value copies the stored value out: the walk keeps it past the transaction.
func (c boltChain) Value(seq uint64) ([]byte, error) {
	var v []byte
	err := c.db.bolt.View(func(btx *bolt.Tx) error {
		v = append([]byte(nil), btx.Bucket(bEvents).Get(u64(seq))...)
		return nil
	})
	return v, err
}

func (c boltChain) Chunk(after uint64, n int, fn func(seq uint64, v []byte) error) (last bool, headSeq uint64, headHash [hashLen]byte, err error) {
	err = c.db.bolt.View(func(btx *bolt.Tx) error {
		cur := btx.Bucket(bEvents).Cursor()
		k, v := cur.Seek(u64(after + 1))
		for i := 0; k != nil && i < n; i++ {
			if err := fn(binary.BigEndian.Uint64(k), v); err != nil {
				return err
			}
			k, v = cur.Next()
		}
		if k != nil {
			return nil // more in the next chunk
		}
		h, err := (&Tx{tx: btx}).readHead()
		if err != nil {
			return err
		}
		last, headSeq, headHash = true, h.seq, h.hash
		return nil
	})
	return last, headSeq, headHash, err
}

// atHead checks that the head kept beside the log is the last event the walk
// verified (a truncated log is caught here) and returns batch without the
// events the head disowns.
func (res *VerifyResult) atHead(w *chainWalker, h head, batch []access.Event) []access.Event {
	switch {
	case h.seq > w.seq:
		res.BadSeq = w.seq + 1
		res.Problem = fmt.Sprintf("event %d is missing: the head says the log ends at event %d but it ends at event %d", w.seq+1, h.seq, w.seq)
	case h.seq < w.seq:
		res.BadSeq = h.seq + 1
		res.Problem = fmt.Sprintf("event %d is past the head: the head says the log ends at event %d but it goes on to event %d", h.seq+1, h.seq, w.seq)
	case h.seq > 0 && h.hash != w.prev:
		res.BadSeq = h.seq
		res.Problem = fmt.Sprintf("event %d does not match the head: the head's hash %.12s… is not the event's hash %.12s…",
			h.seq, hex.EncodeToString(h.hash[:]), hex.EncodeToString(w.prev[:]))
	}
	if res.Problem != "" {
		// The head disowns events this walk had linked: they are
		// not verified, and fn must not see them.
		batch = res.disown(batch)
	}
	return batch
}

// disown drops from the result, and from batch, the events from BadSeq on
// that the walk had counted as verified.
func (res *VerifyResult) disown(batch []access.Event) []access.Event {
	if res.Last >= res.BadSeq {
		res.Last = res.BadSeq - 1
		if res.Last < res.First {
			res.First, res.Last = 0, 0
		}
		res.Count = 0
		if res.First > 0 {
			res.Count = res.Last - res.First + 1
		}
		for len(batch) > 0 && batch[len(batch)-1].Seq >= res.BadSeq {
			batch = batch[:len(batch)-1]
		}
	}
	return batch
}
