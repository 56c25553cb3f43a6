package pgstore

import (
	"context"
	"os"
	"testing"
	"time"

	"keycard/internal/storetest"
)

// TestWriteSessionsCannotIdleHoldingLocks: a write transaction bounds how
// long its session may sit idle in the transaction, so a replica that died
// mid-write (power, a silent network) releases the lease and audit-head
// locks in seconds, not after TCP keepalive's hours. A read-only snapshot
// (an export may stream for long) is not bounded.
func TestWriteSessionsCannotIdleHoldingLocks(t *testing.T) {
	if os.Getenv("KEYCARD_TEST_DATABASE_URL") == "" {
		storetest.PostgresURL(t) // skips with the one line
	}
	db, err := Open(context.Background(), storetest.FreshDatabase(t, storetest.PostgresURL(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	show := func(tx *Tx) string {
		var v string
		if _, err := tx.one("show idle_in_transaction_session_timeout", nil, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	var inWrite, inView string
	if err := db.Update(time.Unix(0, 0), func(tx *Tx) error { inWrite = show(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *Tx) error { inView = show(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if inWrite != "5s" || inView != "0" {
		t.Fatalf("idle_in_transaction_session_timeout: %q in a write, %q in a view; want 5s and 0", inWrite, inView)
	}
}
