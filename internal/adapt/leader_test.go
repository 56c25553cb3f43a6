package adapt_test

import (
	"context"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/internal/storetest"
	pgstore "keycard/store/postgres"
)

// TestLeadershipOnBothBackends: bbolt's sole replica always leads and never
// fences; the PostgreSQL lease fences through handlers.Tx.
func TestLeadershipOnBothBackends(t *testing.T) {
	var sole handlers.Leadership = handlers.SoleReplica{}
	if !sole.IsLeader() || sole.Fence(nil) != nil {
		t.Error("SoleReplica must lead and never fence")
	}
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	db, err := pgstore.Open(context.Background(), url, pgstore.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := fakeclock.New(t0)
	l := pgstore.NewLeader(db, "singleton", "r1", pgstore.LeaderOptions{Clock: clock})
	lead := adapt.Leader(l)
	s := adapt.Postgres(db)
	if err := s.Update(t0, lead.Fence); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("fence before taking the lease: %v", err)
	}
	l.Step()
	if !lead.IsLeader() {
		t.Fatal("not leader after the first step on a free lease")
	}
	if err := s.Update(t0, lead.Fence); err != nil {
		t.Errorf("fence while leading: %v", err)
	}
	clock.Advance(8 * time.Second) // ttl 10s - margin 2s, no renewal
	if lead.IsLeader() {
		t.Error("still leader past ttl - margin without a renewal")
	}
	if err := s.Update(clock.Now(), lead.Fence); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("fence after stepping down: %v", err)
	}
}
