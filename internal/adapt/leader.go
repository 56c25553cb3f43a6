package adapt

import (
	"time"

	"keycard/access"
	"keycard/handlers"
	pgstore "keycard/store/postgres"
)

// Leader returns a PostgreSQL lease as handlers.Leadership.
func Leader(l *pgstore.Leader) handlers.Leadership { return pgLeader{l} }

type pgLeader struct{ l *pgstore.Leader }

func (p pgLeader) IsLeader() bool     { return p.l.IsLeader() }
func (p pgLeader) Age() time.Duration { return p.l.Age() }

// Term is the lease term's step-down moment; none when standby.
func (p pgLeader) Term() (time.Time, bool) {
	end := p.l.Deadline()
	return end, !end.IsZero()
}

// Fence checks the lease inside tx, which must be a PostgreSQL transaction
// (a wrapper such as the service's attesting one is unwrapped: Unwrap()
// handlers.Tx): fencing another store's transaction would prove nothing, so
// it is refused.
func (p pgLeader) Fence(tx handlers.Tx) error {
	for {
		w, ok := tx.(interface{ Unwrap() handlers.Tx })
		if !ok {
			break
		}
		tx = w.Unwrap()
	}
	ptx, ok := tx.(*pgstore.Tx)
	if !ok {
		return access.Errorf(access.CodeInternal, "leadership: cannot fence a %T with the PostgreSQL lease", tx)
	}
	return p.l.Fence(ptx)
}
