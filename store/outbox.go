package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"keycard/access"
)

// Enqueue adds op to the provisioning outbox in this transaction, so the IdP
// change is recorded atomically with the state change that needs it and
// survives a crash until the worker deletes it. It assigns op.ID (increasing)
// and CreatedAt = tx.Now() when zero.
func (tx *Tx) Enqueue(op *access.Op) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if op == nil {
		return ErrNilOp
	}
	id, err := tx.tx.Bucket(bOutbox).NextSequence()
	if err != nil {
		return fmt.Errorf("store: outbox sequence: %w", err)
	}
	tx.undo.Add(StampOp(op, id, tx.now))
	if err := tx.putOp(*op); err != nil {
		return err
	}
	return tx.addOutboxDepth(1)
}

func (tx *Tx) putOp(op access.Op) error {
	v, err := EncodeOp(op)
	if err != nil {
		return err
	}
	if err := tx.tx.Bucket(bOutbox).Put(u64(op.ID), v); err != nil {
		return fmt.Errorf("store: put op %d: %w", op.ID, err)
	}
	return nil
}

// addOutboxDepth keeps the outbox size in meta, so OutboxStats (scraped by
// /metrics) costs O(1) instead of a bucket walk.
func (tx *Tx) addOutboxDepth(d int64) error {
	meta := tx.tx.Bucket(bMeta)
	var n int64
	if v := meta.Get(keyOutboxDepth); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += d
	if n < 0 {
		n = 0
	}
	return meta.Put(keyOutboxDepth, u64(uint64(n)))
}

// Op reads one outbox item. CodeNotFound when absent (done or cancelled).
func (tx *Tx) Op(id uint64) (access.Op, error) {
	v := tx.tx.Bucket(bOutbox).Get(u64(id))
	if v == nil {
		return access.Op{}, OpNotFound(id)
	}
	return DecodeOp(id, v)
}

// PutOp rewrites an existing outbox item (attempts, next try, last error).
// CodeNotFound when it is no longer there: the op was finished or cancelled
// meanwhile, and the worker must not resurrect it.
func (tx *Tx) PutOp(op access.Op) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if tx.tx.Bucket(bOutbox).Get(u64(op.ID)) == nil {
		return OpNotFound(op.ID)
	}
	return tx.putOp(op)
}

// DeleteOp removes an outbox item; deleting an absent one is not an error
// (the worker and a cancellation may both finish it).
func (tx *Tx) DeleteOp(id uint64) error {
	if err := tx.writable(); err != nil {
		return err
	}
	b := tx.tx.Bucket(bOutbox)
	k := u64(id)
	if b.Get(k) == nil {
		return nil
	}
	if err := b.Delete(k); err != nil {
		return fmt.Errorf("store: delete op %d: %w", id, err)
	}
	return tx.addOutboxDepth(-1)
}

// Ops calls fn with every outbox item in ascending id (creation order).
// ErrStop from fn ends the walk without error.
func (tx *Tx) Ops(fn func(access.Op) error) error {
	c := tx.tx.Bucket(bOutbox).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		op, err := DecodeOp(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return err
		}
		if err := fn(op); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// OutboxStats returns the number of queued ops and the CreatedAt of the
// oldest (lowest id), for metrics and /readyz: a growing depth or an old head
// means the IdP is not taking changes. O(1): a counter and the first key.
func (tx *Tx) OutboxStats() (depth int, oldest time.Time, err error) {
	if v := tx.tx.Bucket(bMeta).Get(keyOutboxDepth); len(v) == 8 {
		depth = int(binary.BigEndian.Uint64(v))
	}
	k, v := tx.tx.Bucket(bOutbox).Cursor().First()
	if k == nil {
		return depth, time.Time{}, nil
	}
	op, err := DecodeOp(binary.BigEndian.Uint64(k), v)
	if err != nil {
		return depth, time.Time{}, err
	}
	return depth, op.CreatedAt, nil
}
