package storetest

import (
	"errors"
	"testing"
	"time"

	"keycard/access"
)

// The ported transaction tests: a failed Update rolls back state and
// event together, Batch retries keep compare-and-swap, and a read-only
// transaction refuses writes.

func testUpdateRollsBackStateAndEvent(t *testing.T, open Opener) {
	db := open(t)
	r := &access.Request{Policy: "p", State: access.StatePending, Requester: access.Person{Email: "ann@x"}}
	update(t, db, t0, func(tx Tx) error { return tx.PutRequest(r) })

	// A transition (state change + its event + its op) that fails half way
	// must leave no trace, and the caller's value must be retryable as is.
	r.State = access.StateProvisioning
	err := db.Update(t0.Add(time.Minute), func(tx Tx) error {
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		if _, err := tx.Append(access.Event{Type: access.EvRequestApproved, RequestID: r.ID}); err != nil {
			return err
		}
		if err := tx.Enqueue(&access.Op{Kind: access.OpAdd, RequestID: r.ID}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if r.Rev != 1 {
		t.Errorf("caller's Rev = %d after rollback, want 1 restored", r.Rev)
	}
	update(t, db, t0, func(tx Tx) error {
		got, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if got.State != access.StatePending || got.Rev != 1 {
			t.Errorf("stored = %s rev %d, want pending rev 1", got.State, got.Rev)
		}
		if seq, _, _ := tx.Head(); seq != 0 {
			t.Errorf("head seq = %d, want 0", seq)
		}
		if depth, _, _ := tx.OutboxStats(); depth != 0 {
			t.Errorf("outbox depth = %d", depth)
		}
		if hs, _ := tx.Holders("", ""); len(hs) != 0 {
			t.Errorf("holders index kept %d entries", len(hs))
		}
		// The restored value goes through on retry.
		return tx.PutRequest(r)
	})
	if r.Rev != 2 {
		t.Errorf("retry rev = %d", r.Rev)
	}

	// Creation rolled back: the id is cleared again.
	n := &access.Request{Policy: "p", State: access.StatePending}
	_ = db.Update(t0, func(tx Tx) error {
		if err := tx.PutRequest(n); err != nil {
			return err
		}
		return errBoom
	})
	if n.ID != "" || n.Rev != 0 || !n.CreatedAt.IsZero() {
		t.Errorf("rolled back create left %q rev %d created %v", n.ID, n.Rev, n.CreatedAt)
	}
}

func testBatchRetriesKeepCAS(t *testing.T, open Opener) {
	db := open(t)
	const n = 16
	reqs := make([]*access.Request, n)
	update(t, db, t0, func(tx Tx) error {
		for i := range reqs {
			reqs[i] = &access.Request{Policy: "p", State: access.StatePending}
			if err := tx.PutRequest(reqs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	// Half the callers fail: bbolt then re-runs the rest of the batch, and
	// the store must undo the Rev it bumped in the discarded run.
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		r := reqs[i]
		go func() {
			errs <- db.Batch(t0, func(tx Tx) error {
				r.State = access.StateProvisioning
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				_, err := tx.Append(access.Event{Type: access.EvRequestApproved, RequestID: r.ID})
				return err
			})
		}()
		go func() {
			errs <- db.Batch(t0, func(tx Tx) error { return errBoom })
		}()
	}
	var ok, boom int
	for i := 0; i < 2*n; i++ {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, errBoom):
			boom++
		default:
			t.Errorf("batch: %v", err)
		}
	}
	if ok != n || boom != n {
		t.Fatalf("ok %d boom %d, want %d each", ok, boom, n)
	}
	for _, r := range reqs {
		if r.Rev != 2 {
			t.Errorf("%s rev = %d, want 2", r.ID, r.Rev)
		}
	}
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != n {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

func testReadOnlyTxRefusesWrites(t *testing.T, open Opener) {
	db := open(t)
	err := db.View(func(tx Tx) error {
		return tx.PutRequest(&access.Request{Policy: "p"})
	})
	if err == nil {
		t.Fatal("PutRequest in View succeeded")
	}
}
