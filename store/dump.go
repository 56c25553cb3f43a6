package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The Dump methods read everything the file holds, kind by kind, in key
// order, as stored (for `keycard migrate`, which copies a file into
// PostgreSQL byte for byte). Slices passed to fn are views into the file,
// valid only during fn. ErrStop from fn ends a walk without error.

// Counts is how many of each kind a store holds.
type Counts struct {
	Requests    int64
	Events      int64
	Ops         int64
	Pins        int64
	MessageRefs int64
	Cursors     int64
	Seen        int64
	Static      int64
	Docs        int64
}

// Kinds lists the counts by name, in a fixed order (for reports).
func (c Counts) Kinds() []KindCount {
	return []KindCount{
		{"requests", c.Requests}, {"events", c.Events}, {"ops", c.Ops}, {"pins", c.Pins},
		{"message_refs", c.MessageRefs}, {"cursors", c.Cursors}, {"seen", c.Seen},
		{"static", c.Static}, {"docs", c.Docs},
	}
}

// Total is the sum of all kinds.
func (c Counts) Total() int64 {
	var n int64
	for _, k := range c.Kinds() {
		n += k.N
	}
	return n
}

// KindCount is one kind's count.
type KindCount struct {
	Kind string
	N    int64
}

// Counts counts every kind (bucket statistics: no value is decoded).
func (tx *Tx) Counts() (Counts, error) {
	n := func(b []byte) int64 { return int64(tx.tx.Bucket(b).Stats().KeyN) }
	c := Counts{
		Requests: n(bRequests), Events: n(bEvents), Ops: n(bOutbox), Pins: n(bPins),
		MessageRefs: n(bMsgRefs), Cursors: n(bCursors), Seen: n(bSeen), Static: n(bStatic),
	}
	err := tx.DumpDocs(func(string, string, []byte) error { c.Docs++; return nil })
	return c, err
}

// Sequences are the last request number and the last outbox op id handed
// out (bucket sequences: deleted ops and rolled-back numbers included), so a
// copy continues numbering where the file stopped.
func (tx *Tx) Sequences() (requests, ops uint64) {
	return tx.tx.Bucket(bRequests).Sequence(), tx.tx.Bucket(bOutbox).Sequence()
}

func each(err error) error {
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// DumpRequests calls fn with every stored request value (EncodeRequest's
// bytes) in number order.
func (tx *Tx) DumpRequests(fn func(v []byte) error) error {
	return each(tx.tx.Bucket(bRequests).ForEach(func(_, v []byte) error { return fn(v) }))
}

// DumpEvents calls fn with every stored event value (canonical bytes + the
// raw hash) in seq order.
func (tx *Tx) DumpEvents(fn func(seq uint64, v []byte) error) error {
	return each(tx.tx.Bucket(bEvents).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("store: malformed event key %x", k)
		}
		return fn(binary.BigEndian.Uint64(k), v)
	}))
}

// DumpOps calls fn with every outbox op's id and JSON, in id order.
func (tx *Tx) DumpOps(fn func(id uint64, v []byte) error) error {
	return each(tx.tx.Bucket(bOutbox).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("store: malformed op key %x", k)
		}
		return fn(binary.BigEndian.Uint64(k), v)
	}))
}

// DumpPins calls fn with every identity pin's Slack id and JSON.
func (tx *Tx) DumpPins(fn func(slackID string, v []byte) error) error {
	return each(tx.tx.Bucket(bPins).ForEach(func(k, v []byte) error { return fn(string(k), v) }))
}

// DumpMessageRefs calls fn with every message ref's JSON.
func (tx *Tx) DumpMessageRefs(fn func(v []byte) error) error {
	return each(tx.tx.Bucket(bMsgRefs).ForEach(func(_, v []byte) error { return fn(v) }))
}

// DumpCursors calls fn with every named cursor.
func (tx *Tx) DumpCursors(fn func(name, value string) error) error {
	return each(tx.tx.Bucket(bCursors).ForEach(func(k, v []byte) error { return fn(string(k), string(v)) }))
}

// DumpSeen calls fn with every envelope dedupe key, its record time and its
// expiry, both as Unix nanoseconds.
func (tx *Tx) DumpSeen(fn func(key string, atNs, expNs int64) error) error {
	return each(tx.tx.Bucket(bSeen).ForEach(func(k, v []byte) error {
		if len(v) != 16 {
			return fmt.Errorf("store: malformed seen value for %q", k)
		}
		return fn(string(k), keyTime(v[:8]).UnixNano(), keyTime(v[8:]).UnixNano())
	}))
}

// DumpStatic calls fn with every static connector membership.
func (tx *Tx) DumpStatic(fn func(connector, group, userID string) error) error {
	return each(tx.tx.Bucket(bStatic).ForEach(func(k, _ []byte) error {
		i := indexOf(k, 0)
		j := -1
		if i >= 0 {
			j = indexOf(k[i+1:], 0)
		}
		if i < 0 || j < 0 {
			return fmt.Errorf("store: malformed static key %q", k)
		}
		return fn(string(k[:i]), string(k[i+1:i+1+j]), string(k[i+2+j:]))
	}))
}

func indexOf(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// DumpDocs calls fn with every document: kind, id and JSON, by kind then id.
func (tx *Tx) DumpDocs(fn func(kind, id string, v []byte) error) error {
	root := tx.tx.Bucket(bDocs)
	if root == nil {
		return nil
	}
	return each(root.ForEach(func(kind, v []byte) error {
		b := root.Bucket(kind)
		if v != nil || b == nil {
			return fmt.Errorf("store: docs holds a value %q outside a kind", kind)
		}
		return b.ForEach(func(id, v []byte) error { return fn(string(kind), string(id), v) })
	}))
}
