package pgstore

import (
	"context"
	"sync"
	"time"

	"keycard/access"
)

// LeaderOptions tune NewLeader. The zero value is the production setting on
// the wall clock.
type LeaderOptions struct {
	// TTL is the lease's length; default 10s. A killed leader is replaced
	// within TTL + TTL/3 (the standby's poll period): 13.3s at the default,
	// inside SPEC "Beyond one machine"'s 15 seconds.
	TTL time.Duration
	// Margin is how long before the lease's expiry the leader steps down when
	// it could not renew; default TTL/5. It must exceed the replicas' clock
	// disagreement and the longest pause between a renewal and its effect.
	Margin time.Duration
	// Clock is the time source; default access.SystemClock.
	Clock access.Clock
	// After waits d on Clock (time.After by default; fakeclock.Clock.After
	// in tests). The loop holds exactly one pending After at a time.
	After func(d time.Duration) <-chan time.Time
	// OnChange, when set, is called from the loop (never with a lock held)
	// when this replica becomes leader (true, the new term's token) or
	// stops being leader (false, the token of the term that ended).
	OnChange func(leader bool, token uint64)
}

// Leader keeps a lease on behalf of one replica: Run renews it every TTL/3
// while this replica leads and tries to take it every TTL/3 while it stands
// by. IsLeader is computed from the clock, not only from the loop: a leader
// whose renewals fail (database unreachable, process paused) is standby from
// TTL - Margin after its last successful renewal, strictly before any other
// replica may take the lease at TTL. Work it commits must still pass Fence.
type Leader struct {
	db       *DB
	name     string
	holder   string
	ttl      time.Duration
	margin   time.Duration
	every    time.Duration
	clock    access.Clock
	after    func(time.Duration) <-chan time.Time
	onChange func(bool, uint64)

	mu        sync.Mutex
	token     uint64    // the current term's token; 0 when standby
	deadline  time.Time // when this replica stops leading unless it renews
	heard     time.Time // the last successful lease statement
	announced uint64    // the token OnChange last reported as leading (0: standby)
}

// NewLeader returns a Leader for lease name held as holder (a replica id:
// hostname and pid, or a random id; unique per process). Call Run to start.
func NewLeader(db *DB, name, holder string, opt LeaderOptions) *Leader {
	if opt.TTL <= 0 {
		opt.TTL = 10 * time.Second
	}
	if opt.Margin <= 0 || opt.Margin >= opt.TTL {
		opt.Margin = opt.TTL / 5
	}
	if opt.Clock == nil {
		opt.Clock = access.SystemClock{}
	}
	if opt.After == nil {
		opt.After = time.After
	}
	return &Leader{db: db, name: name, holder: holder, ttl: opt.TTL, margin: opt.Margin, every: opt.TTL / 3,
		clock: opt.Clock, after: opt.After, onChange: opt.OnChange}
}

// Name is the lease's name.
func (l *Leader) Name() string { return l.name }

// Holder is this replica's id.
func (l *Leader) Holder() string { return l.holder }

// IsLeader reports whether this replica leads now (by its own clock).
func (l *Leader) IsLeader() bool { return l.Token() != 0 }

// Token is the fencing token of the current term, 0 when standby.
func (l *Leader) Token() uint64 {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == 0 || !now.Before(l.deadline) {
		return 0
	}
	return l.token
}

// Deadline is when this replica's current term ends unless it renews (its
// step-down moment); the zero time when standby. Work that calls out (an
// IdP add or removal) bounds its call by it.
func (l *Leader) Deadline() time.Time {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == 0 || !now.Before(l.deadline) {
		return time.Time{}
	}
	return l.deadline
}

// Age is the time since this replica last read or renewed the lease
// successfully (as leader or standby); it grows while the database is
// unreachable. Zero before the first success.
func (l *Leader) Age() time.Duration {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.heard.IsZero() {
		return 0
	}
	return now.Sub(l.heard)
}

// Fence, inside the Update that commits singleton work, refuses the commit
// (CodeConflict) unless this replica still leads with the current token.
func (l *Leader) Fence(tx *Tx) error {
	tok := l.Token()
	if tok == 0 {
		return access.Errorf(access.CodeConflict, "This replica is not the %s leader.", l.name)
	}
	return tx.CheckFence(l.name, tok)
}

// Run renews or takes the lease until ctx ends. It does not release the
// lease (a killed process cannot either): call Resign on a clean shutdown.
func (l *Leader) Run(ctx context.Context) error {
	for {
		next := l.Step()
		select {
		case <-ctx.Done():
			return nil
		case <-l.after(next.Sub(l.clock.Now())):
		}
	}
}

// Step makes one attempt to take or renew the lease at the clock's now,
// reports a change of role, and returns when the next attempt is due: TTL/3
// later, sooner after an error, and never after the step-down deadline.
func (l *Leader) Step() time.Time {
	now := l.clock.Now()
	tok, held, err := l.db.Lease(l.name, l.holder, l.ttl, now)
	l.mu.Lock()
	switch {
	case err != nil:
		// Keep the term: it ends by itself at the deadline.
	case held:
		l.heard = now
		l.token, l.deadline = tok, now.Add(l.ttl-l.margin)
	default:
		l.heard = now
		l.token, l.deadline = 0, time.Time{}
	}
	if l.token != 0 && !now.Before(l.deadline) {
		l.token = 0
	}
	next := now.Add(l.every)
	if err != nil {
		next = now.Add(l.every / 3)
	}
	if l.token != 0 && l.deadline.Before(next) {
		next = l.deadline
	}
	l.mu.Unlock()
	l.announce()
	return next
}

// announce reports the change between the role last reported and now.
func (l *Leader) announce() {
	cur := l.Token()
	l.mu.Lock()
	prev := l.announced
	l.announced = cur
	l.mu.Unlock()
	if prev == cur || l.onChange == nil {
		return
	}
	if prev != 0 {
		l.onChange(false, prev)
	}
	if cur != 0 {
		l.onChange(true, cur)
	}
}

// Resign ends this replica's term and releases the lease, so a standby takes
// over at its next poll instead of after the TTL (a clean shutdown). Call it
// after Run has returned.
func (l *Leader) Resign() error {
	l.mu.Lock()
	tok := l.token
	l.token, l.deadline = 0, time.Time{}
	l.mu.Unlock()
	l.announce()
	if tok == 0 {
		return nil
	}
	return l.db.Release(l.name, l.holder, tok, l.clock.Now())
}
