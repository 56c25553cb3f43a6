package store

import (
	"fmt"
	"testing"
	"time"
)

func TestSeenPrunesExpiredKeys(t *testing.T) {
	db := openTest(t)
	const n = 100
	update(t, db, t0, func(tx *Tx) error {
		for i := 0; i < n; i++ {
			if _, err := tx.Seen(fmt.Sprint("k", i), time.Minute); err != nil {
				return err
			}
		}
		return nil
	})
	count := func() (int, int) {
		var a, b int
		_ = db.View(func(tx *Tx) error {
			a = tx.tx.Bucket(bSeen).Stats().KeyN
			b = tx.tx.Bucket(bIdxSeenExp).Stats().KeyN
			return nil
		})
		return a, b
	}
	if a, b := count(); a != n || b != n {
		t.Fatalf("recorded %d/%d", a, b)
	}
	// Each later call prunes a bounded number of expired keys.
	calls := 0
	for a, _ := count(); a > 1; a, _ = count() {
		update(t, db, t0.Add(time.Hour), func(tx *Tx) error { _, err := tx.Seen("fresh", time.Minute); return err })
		calls++
		if calls > n {
			t.Fatal("pruning makes no progress")
		}
	}
	if calls < n/seenPrunePerCall {
		t.Errorf("pruned %d keys in %d calls: more than %d per call", n, calls, seenPrunePerCall)
	}
	if a, b := count(); a != 1 || b != 1 {
		t.Errorf("after pruning %d/%d keys left, want only the fresh one", a, b)
	}
}
