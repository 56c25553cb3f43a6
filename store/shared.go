package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"keycard/access"
)

// The encodings below are shared with the PostgreSQL store (store/postgres)
// so that both backends keep the same bytes: the same event ids and hashes
// for the same events (one `keycard audit verify`, one events export), and a
// request or event copied from one to the other byte for byte.

// EncodeRequest is the binary form of a request (codec.go).
func EncodeRequest(r *access.Request) ([]byte, error) { return encodeRequest(r) }

// DecodeRequest parses EncodeRequest's bytes; the result shares nothing with v.
func DecodeRequest(v []byte) (access.Request, error) { return decodeRequest(v) }

// EventID is the deterministic id Append gives an event.
func EventID(seq uint64, t time.Time, typ access.EventType, requestID string) string {
	return eventID(seq, t, typ, requestID)
}

// DecodeEvent parses a stored event value: e.Canonical() followed by the 32
// raw bytes of its SHA-256.
func DecodeEvent(v []byte) (access.Event, error) { return decodeEvent(v) }

// ChainReader is an audit log as VerifyChain reads it: stored values
// (canonical bytes + the 32 raw hash bytes, as Append writes them) by seq.
type ChainReader interface {
	// Value is the stored value of event seq; nil when absent.
	Value(seq uint64) ([]byte, error)
	// Chunk calls fn with up to n events after seq in ascending seq. When
	// fewer than n were left (the end of the log) it returns last = true
	// with the head (seq, raw hash) read in the same snapshot as the events.
	Chunk(after uint64, n int, fn func(seq uint64, v []byte) error) (last bool, headSeq uint64, headHash [hashLen]byte, err error)
}

// TimedChainReader is a ChainReader whose store also keeps each event's time
// beside its chained bytes (PostgreSQL's at_ns column, and the head's), for
// finding a period's events. The hash chain does not cover that copy: an
// UPDATE of at_ns moved events out of an events export while verify passed
// (issue 10). So VerifyChain holds each side time to the time in the
// event's own chained bytes, and the head's to the last event's.
type TimedChainReader interface {
	ChainReader
	// TimedChunk is Chunk with each event's side time and the head's,
	// Unix nanoseconds.
	TimedChunk(after uint64, n int, fn func(seq uint64, v []byte, at int64) error) (last bool, headSeq uint64, headHash [hashLen]byte, headAt int64, err error)
}

// EventTime reads a stored event's time from its canonical bytes without
// decoding the rest (the PostgreSQL store finds a period's start with it).
func EventTime(v []byte) (time.Time, error) { return eventTime(v) }

// VerifyChain is DB.Verify over another store's log: the same checks, the
// same sentences, the same result. When r is a TimedChainReader it also
// checks every stored side time against the event's chained time.
func VerifyChain(r ChainReader, from uint64, fn func(access.Event) error) (VerifyResult, error) {
	if from == 0 {
		from = 1
	}
	var res VerifyResult
	w := chainWalker{seq: from - 1, time: math.MinInt64}
	if from > 1 {
		v, err := r.Value(from - 1)
		if err != nil {
			return res, err
		}
		if len(v) < 17+hashLen {
			res.BadSeq = from - 1
			res.Problem = fmt.Sprintf("event %d, the one before the start of the check, is missing or unreadable", from-1)
			return res, nil
		}
		copy(w.prev[:], v[len(v)-hashLen:])
		w.time = int64(binary.BigEndian.Uint64(v[9:17]))
	}
	chunk := timedChunk(r)
	var batch []access.Event
	for done := false; !done; {
		batch = batch[:0]
		last, hseq, hhash, hat, err := chunk(w.seq, verifyChunk, func(seq uint64, v []byte, at int64, timed bool) error {
			if done {
				return nil
			}
			if bad, problem := w.check(seq, v); problem != "" {
				res.BadSeq, res.Problem, done = bad, problem, true
				return nil
			}
			if timed && at != w.time {
				res.BadSeq, res.Problem, done = seq, sideTimeProblem(seq, "its stored time", at, w.time), true
				return nil
			}
			if fn != nil {
				e, err := decodeEvent(v)
				if err != nil {
					return fmt.Errorf("store: event %d: %w", seq, err)
				}
				batch = append(batch, e)
			}
			if res.First == 0 {
				res.First = seq
			}
			res.Last = seq
			res.Count++
			return nil
		})
		if err != nil {
			return res, err
		}
		if !done && last {
			done = true
			h := head{seq: hseq, hash: hhash}
			res.Head = h.hexHash()
			batch = res.atHead(&w, h, batch)
			if _, timed := r.(TimedChainReader); timed && res.Problem == "" && hseq > 0 && hat != w.time {
				res.BadSeq, res.Problem = hseq, sideTimeProblem(hseq, "the head's stored time", hat, w.time)
				batch = res.disown(batch)
			}
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				if errors.Is(err, ErrStop) {
					return res, nil
				}
				return res, err
			}
		}
	}
	return res, nil
}

// chunkFunc is a Chunk that may carry side times (timed).
type chunkFunc func(after uint64, n int, fn func(seq uint64, v []byte, at int64, timed bool) error) (bool, uint64, [hashLen]byte, int64, error)

func timedChunk(r ChainReader) chunkFunc {
	if t, ok := r.(TimedChainReader); ok {
		return func(after uint64, n int, fn func(uint64, []byte, int64, bool) error) (bool, uint64, [hashLen]byte, int64, error) {
			return t.TimedChunk(after, n, func(seq uint64, v []byte, at int64) error { return fn(seq, v, at, true) })
		}
	}
	return func(after uint64, n int, fn func(uint64, []byte, int64, bool) error) (bool, uint64, [hashLen]byte, int64, error) {
		last, hs, hh, err := r.Chunk(after, n, func(seq uint64, v []byte) error { return fn(seq, v, 0, false) })
		return last, hs, hh, 0, err
	}
}

func sideTimeProblem(seq uint64, what string, side, chained int64) string {
	return fmt.Sprintf("event %d was re-dated: %s %s is not the time in its chained content %s",
		seq, what, time.Unix(0, side).UTC().Format(time.RFC3339Nano), time.Unix(0, chained).UTC().Format(time.RFC3339Nano))
}

// EventDetailFields reads the request id and detail of a stored event value
// without decoding the rest (the access export's record attestations read
// every event). The slices are views into v.
func EventDetailFields(v []byte) (requestID, detail []byte, err error) {
	if len(v) < 17+hashLen || v[0] != 1 {
		return nil, nil, fmt.Errorf("unknown encoding (%d bytes)", len(v))
	}
	b := v[17 : len(v)-hashLen]
	for i := 0; i < 7; i++ { // ID, Type, Actor, Subject, Policy, RequestID, Detail
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, nil, fmt.Errorf("field %d truncated", i)
		}
		switch i {
		case 5:
			requestID = b[k : k+int(n)]
		case 6:
			detail = b[k : k+int(n)]
		}
		b = b[k+int(n):]
	}
	return requestID, detail, nil
}

// RequestDecoder decodes a walk's requests one after another into one
// reused access.Request whose strings and slices are carved from chunks
// that are never written again (codec.go's requestArena), as the bbolt
// store's own walk does: a few allocations per hundred rows instead of
// several per row. A value copy of a decoded request stays valid after the
// next Decode. The zero value is ready.
type RequestDecoder struct {
	arena requestArena
	r     access.Request
}

// Decode parses EncodeRequest's bytes into the decoder's request, which is
// overwritten by the next call; the result shares nothing with v.
func (d *RequestDecoder) Decode(v []byte) (*access.Request, error) {
	err := decodeRequestInto(&d.r, v, &d.arena)
	return &d.r, err
}

// The rules and JSON values below are the ones both backends apply to the
// records they keep beside requests and events, so a pin, message ref,
// outbox op or document is checked, stamped and encoded the same way in
// bbolt and in PostgreSQL (and a migration copies the same bytes).

// EncodePin checks p, stamps PinnedAt with now when zero, and encodes it.
func EncodePin(p access.Pin, now time.Time) ([]byte, error) {
	if p.SlackID == "" {
		return nil, access.Errorf(access.CodeInvalid, "store: pin without a Slack user id")
	}
	if p.PinnedAt.IsZero() {
		p.PinnedAt = now
	}
	v, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("store: encode pin: %w", err)
	}
	return v, nil
}

// DecodePin parses the stored pin of slackID.
func DecodePin(slackID string, v []byte) (access.Pin, error) {
	var p access.Pin
	if err := json.Unmarshal(v, &p); err != nil {
		return p, fmt.Errorf("store: pin %s: %w", slackID, err)
	}
	return p, nil
}

// EncodeMessageRef checks ref and encodes it.
func EncodeMessageRef(ref access.MessageRef) ([]byte, error) {
	if ref.RequestID == "" {
		return nil, access.Errorf(access.CodeInvalid, "store: message ref without a request id")
	}
	v, err := json.Marshal(ref)
	if err != nil {
		return nil, fmt.Errorf("store: encode message ref: %w", err)
	}
	return v, nil
}

// DecodeMessageRef parses a stored message ref of requestID.
func DecodeMessageRef(requestID string, v []byte) (access.MessageRef, error) {
	var ref access.MessageRef
	if err := json.Unmarshal(v, &ref); err != nil {
		return ref, fmt.Errorf("store: message ref of %s: %w", requestID, err)
	}
	return ref, nil
}

// ErrNilOp refuses Enqueue(nil).
var ErrNilOp = access.Errorf(access.CodeInvalid, "store: nil op")

// StampOp gives a new outbox op its id and, when zero, CreatedAt = now. It
// returns the function that puts both fields back, for the transaction's
// undo log (a retried or rolled-back transaction must not leave them set).
func StampOp(op *access.Op, id uint64, now time.Time) (undo func()) {
	origID, origCreated := op.ID, op.CreatedAt
	op.ID = id
	if op.CreatedAt.IsZero() {
		op.CreatedAt = now
	}
	return func() { op.ID, op.CreatedAt = origID, origCreated }
}

// EncodeOp encodes an outbox op.
func EncodeOp(op access.Op) ([]byte, error) {
	v, err := json.Marshal(op)
	if err != nil {
		return nil, fmt.Errorf("store: encode op %d: %w", op.ID, err)
	}
	return v, nil
}

// DecodeOp parses the stored outbox op id.
func DecodeOp(id uint64, v []byte) (access.Op, error) {
	var op access.Op
	if err := json.Unmarshal(v, &op); err != nil {
		return op, fmt.Errorf("store: op %d: %w", id, err)
	}
	return op, nil
}

// OpNotFound is the error for an outbox op that is not there (finished or
// cancelled).
func OpNotFound(id uint64) error {
	return access.Errorf(access.CodeNotFound, "Provisioning operation %d was not found.", id)
}

// EncodeDoc checks a document's kind and id and encodes v.
func EncodeDoc(kind, id string, v any) ([]byte, error) {
	if kind == "" || id == "" {
		return nil, access.Errorf(access.CodeInvalid, "store: document kind and id must not be empty")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode %s %s: %w", kind, id, err)
	}
	return data, nil
}

// DecodeDoc parses stored document id of kind into v.
func DecodeDoc(kind, id string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("store: decode %s %s: %w", kind, id, err)
	}
	return nil
}

// WaitingEmails are the distinct lower-cased candidate emails of a pending
// request's current step: the people the request waits on (WaitingOn).
func WaitingEmails(r *access.Request) []string {
	if r.State != access.StatePending {
		return nil
	}
	s := r.Step()
	if s == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range s.Candidates {
		email := lowerEmail(c.Email)
		if email == "" || seen[email] {
			continue
		}
		seen[email] = true
		out = append(out, email)
	}
	return out
}

// FirstSeqFrom is the first seq in [1, last+1) whose event is not dated
// before from (last+1 when none is). Append keeps time monotonic in seq, so
// it is a binary search over the chained bodies, whatever side index a
// backend keeps: value returns event seq's stored bytes, nil when absent
// (a gap in the log, an error naming the seq).
func FirstSeqFrom(last uint64, from time.Time, value func(seq uint64) ([]byte, error)) (uint64, error) {
	lo, hi := uint64(1), last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		v, err := value(mid)
		if err != nil {
			return 0, err
		}
		if v == nil {
			return 0, fmt.Errorf("store: audit event %d is missing (the log has a gap)", mid)
		}
		at, err := eventTime(v)
		if err != nil {
			return 0, fmt.Errorf("store: event %d: %w", mid, err)
		}
		if at.Before(from) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// Read runs read in its own read transaction of a backend (either DB.View)
// and returns what it read.
func Read[Tx, T any](view func(func(Tx) error) error, read func(Tx) (T, error)) (T, error) {
	var out T
	err := view(func(tx Tx) error {
		var err error
		out, err = read(tx)
		return err
	})
	return out, err
}
