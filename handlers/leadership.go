package handlers

import "time"

// Leadership says whether this replica runs the singleton work (scheduled
// reviews, expiry, the notifier, leaver polling, backups: SPEC "Beyond one
// machine"). With PostgreSQL it is a lease (pgstore.Leader through
// internal/adapt); with bbolt only one process can open the file, so it is
// SoleReplica.
type Leadership interface {
	// IsLeader reports whether this replica leads now; check it before
	// starting a round of singleton work.
	IsLeader() bool
	// Fence, called inside the transaction that commits singleton work,
	// fails with access.CodeConflict when this replica's term has ended, so
	// a deposed leader's late write is refused.
	Fence(tx Tx) error
	// Age is how long ago the lease was last confirmed (for /metrics).
	Age() time.Duration
	// Term is this replica's current term: leading false when it has none;
	// else end, its step-down moment unless renewed, or the zero time when
	// the term has no end (a sole replica).
	Term() (end time.Time, leading bool)
}

// SoleReplica is the Leadership of a store that one process holds alone
// (bbolt's file lock): always the leader, nothing to fence.
type SoleReplica struct{}

// IsLeader is always true.
func (SoleReplica) IsLeader() bool { return true }

// Fence never refuses.
func (SoleReplica) Fence(Tx) error { return nil }

// Age is always zero.
func (SoleReplica) Age() time.Duration { return 0 }

// Term never ends.
func (SoleReplica) Term() (time.Time, bool) { return time.Time{}, true }

// Leadership is this replica's role (SoleReplica with bbolt).
func (s *Service) Leadership() Leadership { return s.lead }

// IsLeader reports whether this replica runs the singleton work now.
func (s *Service) IsLeader() bool { return s.lead.IsLeader() }

// termLeft bounds an IdP call of singleton work by what is surely left of
// this replica's term: at most limit, and never past the term's step-down
// moment (the PostgreSQL lease's), so a deposed leader's connector cannot go
// on retrying an add or a removal after another replica took over. false
// when the term has already ended.
func (s *Service) termLeft(limit time.Duration) (time.Duration, bool) {
	end, leading := s.lead.Term()
	if !leading {
		return 0, false
	}
	if end.IsZero() {
		return limit, true
	}
	left := end.Sub(s.clock.Now())
	if left <= 0 {
		return 0, false
	}
	return min(limit, left), true
}

// LeadershipChanged is called when this replica becomes leader or stops
// being one. On becoming leader every loop is woken at once, so work that
// fell due while no one led (a killed leader's term) is caught up now
// rather than at the loops' next timer.
func (s *Service) LeadershipChanged(leading bool) {
	if leading {
		s.nudge()
	}
}

// fenced wraps a transaction body of singleton work: the lease is checked
// first, in the same transaction, so a replica whose term ended commits
// nothing (access.CodeConflict) even when it was paused past its lease.
func (s *Service) fenced(fn func(Tx) error) func(Tx) error { return fence(s.lead, fn) }

func fence(lead Leadership, fn func(Tx) error) func(Tx) error {
	return func(tx Tx) error {
		if err := lead.Fence(tx); err != nil {
			return err
		}
		return fn(tx)
	}
}

// FencedStore fences every write through st with lead, for singleton work
// that keeps its own transactions (the audit stream's cursor).
func FencedStore(st Store, lead Leadership) Store { return fencedStore{st, lead} }

type fencedStore struct {
	Store
	lead Leadership
}

func (f fencedStore) Update(now time.Time, fn func(Tx) error) error {
	return f.Store.Update(now, fence(f.lead, fn))
}

func (f fencedStore) Batch(now time.Time, fn func(Tx) error) error {
	return f.Store.Batch(now, fence(f.lead, fn))
}

// updateLead is update for singleton work (fenced).
func (s *Service) updateLead(fn func(Tx) error) error { return s.update(s.fenced(fn)) }

// Unwrap gives the store's own transaction (the PostgreSQL lease fences
// through it).
func (tx *attestingTx) Unwrap() Tx { return tx.Tx }
