package bench

import (
	"testing"
	"time"

	"keycard/store"
)

// TestFixtureBuilders builds every fixture at the tiny scale and checks what
// the benchmarks rely on, so `go test ./internal/bench/` (no -bench) proves the
// builders in seconds.
func TestFixtureBuilders(t *testing.T) {
	saved := cur
	cur = scales["tiny"]
	t.Cleanup(func() { cur = saved })
	dir := t.TempDir()
	open := func(t *testing.T, name string, fill func(testing.TB, *store.DB)) *store.DB {
		t.Helper()
		db, err := store.Open(dir+"/"+name+".db", store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fill(t, db)
		return db
	}
	t.Run("world", func(t *testing.T) {
		db := open(t, "world", func(tb testing.TB, db *store.DB) {
			fillRequests(tb, db, cur.requests)
			fillEvents(tb, db, cur.events)
		})
		res, err := db.Verify(1, nil)
		if err != nil || !res.OK() || res.Count != uint64(cur.events) {
			t.Fatalf("verify: %+v %v", res, err)
		}
		var rows, active int
		err = db.View(func(tx *store.Tx) error {
			if due, err := tx.Due(fixtureNow, 0); err != nil || len(due) != 0 {
				t.Errorf("due at fixtureNow: %d %v", len(due), err)
			}
			act, err := tx.InState("active")
			active = len(act)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if active != cur.requests/10 {
			t.Errorf("active = %d, want %d", active, cur.requests/10)
		}
		n, err := exportAccess(db, policies(t), fixtureParams(), countingDiscard(&rows))
		if err != nil || n != cur.requests {
			t.Fatalf("export rows = %d, want %d: %v", n, cur.requests, err)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		db := open(t, "expiry", activeFixture(cur.expiryHigh, dueCount))
		err := db.View(func(tx *store.Tx) error {
			due, err := tx.Due(fixtureNow, 0)
			if err == nil && len(due) != dueCount {
				t.Errorf("due = %d, want %d", len(due), dueCount)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("policies", func(t *testing.T) {
		set := policies(t)
		if len(set.Policies) != cur.policies {
			t.Fatalf("policies = %d, want %d", len(set.Policies), cur.policies)
		}
	})
	t.Run("baseline rows", func(t *testing.T) {
		db := open(t, "rows", func(tb testing.TB, db *store.DB) { fillRequests(tb, db, 20) })
		rows, err := memoryRows(db, policies(t), 100)
		if err != nil || len(rows) != 20 || len(rows[0]) != 21 {
			t.Fatalf("rows = %d: %v", len(rows), err)
		}
		_ = time.Second
	})
}
