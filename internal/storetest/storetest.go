package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/store"
)

// Tx is the transaction every test writes through.
type Tx = handlers.Tx

// ErrStop is the store's end-of-walk sentinel, shared by both backends.
var ErrStop = store.ErrStop

// DB is one store under test: the port, plus the few methods main uses
// beside it.
type DB struct {
	handlers.Store
	// Verify is the backend's audit-chain check (store.DB.Verify or
	// pgstore.DB.Verify).
	VerifyFn func(from uint64, fn func(access.Event) error) (store.VerifyResult, error)
	// Static reads and writes static connector memberships.
	Static interface {
		StaticMembers(connector, group string) ([]string, error)
		SetStaticMember(now time.Time, connector, group, userID string, member bool) error
	}
	// Replica opens another handle on the same data, as a second keycard
	// process would (another pool on the same PostgreSQL database); nil
	// when the backend allows one process only (bbolt's file lock).
	Replica func(t *testing.T) handlers.Store
}

// Verify checks the audit chain.
func (db *DB) Verify(from uint64, fn func(access.Event) error) (store.VerifyResult, error) {
	return db.VerifyFn(from, fn)
}

// StaticMembers is the static connector port's read.
func (db *DB) StaticMembers(connector, group string) ([]string, error) {
	return db.Static.StaticMembers(connector, group)
}

// SetStaticMember is the static connector port's write.
func (db *DB) SetStaticMember(now time.Time, connector, group, userID string, member bool) error {
	return db.Static.SetStaticMember(now, connector, group, userID, member)
}

// Opener opens an empty store for one test; it registers its own cleanup.
type Opener func(t *testing.T) *DB

// t0 is the tests' fixed "now".
var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

var errBoom = errors.New("boom")

func update(t testing.TB, db *DB, now time.Time, fn func(Tx) error) {
	t.Helper()
	if err := db.Update(now, fn); err != nil {
		t.Fatal(err)
	}
}

// Run runs the whole suite against the stores open makes.
func Run(t *testing.T, open Opener) {
	for _, p := range ported {
		t.Run(p.name, func(t *testing.T) { p.run(t, open) })
	}
	t.Run("RollbackRestoresOutboxIDs", func(t *testing.T) { testRollbackRestoresOutboxIDs(t, open) })
	t.Run("ConcurrentAppendsMakeOneChain", func(t *testing.T) { testConcurrentAppends(t, open) })
	t.Run("ConcurrentCASHasOneWinner", func(t *testing.T) { testConcurrentCAS(t, open) })
	t.Run("SeenAcrossHandles", func(t *testing.T) { testSeenAcrossHandles(t, open) })
}

// testRollbackRestoresOutboxIDs: a failed transaction leaves no op, no event
// and no gap in the ids the store hands out.
func testRollbackRestoresOutboxIDs(t *testing.T, open Opener) {
	db := open(t)
	op := &access.Op{Kind: access.OpAdd, RequestID: "REQ-1001"}
	err := db.Update(t0, func(tx Tx) error {
		if err := tx.Enqueue(op); err != nil {
			return err
		}
		if _, err := tx.Append(access.Event{Type: access.EvAlert}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) || op.ID != 0 || !op.CreatedAt.IsZero() {
		t.Fatalf("Update = %v; op after rollback %+v", err, op)
	}
	var r access.Request
	update(t, db, t0, func(tx Tx) error {
		if err := tx.Enqueue(op); err != nil {
			return err
		}
		r = access.Request{Policy: "p", State: access.StatePending}
		return tx.PutRequest(&r)
	})
	if op.ID != 1 || r.ID != "REQ-1001" {
		t.Errorf("after a rollback: op id %d, request %s; want 1 and REQ-1001", op.ID, r.ID)
	}
	_ = db.View(func(tx Tx) error {
		if seq, _, _ := tx.Head(); seq != 0 {
			t.Errorf("head = %d after rolled-back append", seq)
		}
		return nil
	})
}

// handles returns the store and, when the backend has replicas, a second
// handle on the same data; else the same store twice.
func handles(t *testing.T, db *DB) [2]handlers.Store {
	if db.Replica == nil {
		return [2]handlers.Store{db.Store, db.Store}
	}
	return [2]handlers.Store{db.Store, db.Replica(t)}
}

// testConcurrentAppends: writers on two handles (two replicas on
// PostgreSQL) each record a state change with its event and op; afterwards
// the chain is one unforked chain that verifies, with every event once.
func testConcurrentAppends(t *testing.T, open Opener) {
	db := open(t)
	hs := handles(t, db)
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := hs[w%2]
			for i := 0; i < each; i++ {
				r := &access.Request{Policy: fmt.Sprint("p", w), State: access.StatePending}
				errs <- s.Update(t0.Add(time.Duration(i)*time.Millisecond), func(tx Tx) error {
					if err := tx.PutRequest(r); err != nil {
						return err
					}
					if _, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, RequestID: r.ID, Detail: fmt.Sprint(w, "/", i)}); err != nil {
						return err
					}
					return tx.Enqueue(&access.Op{Kind: access.OpAdd, RequestID: r.ID})
				})
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent update: %v", err)
		}
	}
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != writers*each {
		t.Fatalf("verify: %+v %v", res, err)
	}
	seen := map[string]bool{}
	_ = db.View(func(tx Tx) error {
		return tx.Events(0, func(e access.Event) error {
			if seen[e.Detail] {
				t.Errorf("event %q twice", e.Detail)
			}
			seen[e.Detail] = true
			return nil
		})
	})
	_ = db.View(func(tx Tx) error {
		depth, _, err := tx.OutboxStats()
		if err != nil || depth != writers*each {
			t.Errorf("outbox depth %d %v, want %d", depth, err, writers*each)
		}
		var last uint64
		return tx.Ops(func(op access.Op) error {
			if op.ID != last+1 {
				t.Errorf("op ids jump from %d to %d", last, op.ID)
			}
			last = op.ID
			return nil
		})
	})
	if len(seen) != writers*each {
		t.Errorf("%d distinct events, want %d", len(seen), writers*each)
	}
}

// testConcurrentCAS: two handles decide the same request at once; exactly
// one wins, the other gets CodeConflict, and only the winner's event exists.
func testConcurrentCAS(t *testing.T, open Opener) {
	db := open(t)
	hs := handles(t, db)
	var id string
	update(t, db, t0, func(tx Tx) error {
		r := &access.Request{Policy: "p", State: access.StatePending}
		err := tx.PutRequest(r)
		id = r.ID
		return err
	})
	const n = 6
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results <- hs[i%2].Update(t0, func(tx Tx) error {
				r, err := tx.Request(id)
				if err != nil {
					return err
				}
				if r.Rev != 1 {
					return access.Errorf(access.CodeConflict, "already decided")
				}
				r.State = access.StateProvisioning
				r.Justification = fmt.Sprint("decided by ", i)
				if err := tx.PutRequest(&r); err != nil {
					return err
				}
				_, err = tx.Append(access.Event{Type: access.EvRequestApproved, RequestID: id})
				return err
			})
		}(i)
	}
	wg.Wait()
	close(results)
	var won, lost int
	for err := range results {
		switch {
		case err == nil:
			won++
		case access.CodeOf(err) == access.CodeConflict:
			lost++
		default:
			t.Errorf("update: %v", err)
		}
	}
	if won != 1 || lost != n-1 {
		t.Errorf("won %d lost %d, want 1 and %d", won, lost, n-1)
	}
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != 1 {
		t.Errorf("verify: %+v %v", res, err)
	}
}

// testSeenAcrossHandles: an envelope recorded through one handle is a
// duplicate through the other (a redelivery to another replica), until its
// ttl has passed on the store's clock.
func testSeenAcrossHandles(t *testing.T, open Opener) {
	db := open(t)
	hs := handles(t, db)
	seen := func(s handlers.Store, at time.Time) bool {
		t.Helper()
		var dup bool
		if err := s.Update(at, func(tx Tx) error {
			var err error
			dup, err = tx.Seen("env-1", time.Minute)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return dup
	}
	if seen(hs[0], t0) {
		t.Fatal("first delivery is a duplicate")
	}
	if !seen(hs[1], t0.Add(30*time.Second)) {
		t.Error("redelivery to the other handle within the ttl is not a duplicate")
	}
	if seen(hs[1], t0.Add(61*time.Second)) {
		t.Error("delivery after the ttl is a duplicate")
	}
}
