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
