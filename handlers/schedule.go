package handlers

import (
	"context"
	"time"

	"keycard/access"
)

// dueBatch bounds one sweep's reads; a sweep loops until nothing is due.
const dueBatch = 256

// escalateRetry is how long an escalation waits after the IdP failed to
// resolve the escalate_to approvers.
const escalateRetry = time.Minute

// Tick handles everything due at the clock's now — pending requests timing
// out, reminders, escalations, scheduled starts, expiring-soon notices and
// expiries — and
// returns when the next thing is due (zero: nothing scheduled). At start it
// catches up on everything that fell due while keycard was down. Cost is
// O(due): the store indexes requests by their next due time.
func (s *Service) Tick(ctx context.Context) (time.Time, error) {
	nextDelegation, err := s.expireDelegations() // delegate.go
	if err != nil {
		return time.Time{}, err
	}
	for ctx.Err() == nil {
		now := s.clock.Now()
		var due []access.Request
		if err := s.store.View(func(tx Tx) error {
			var err error
			due, err = tx.Due(now, dueBatch)
			return err
		}); err != nil {
			return time.Time{}, err
		}
		for i := range due {
			if err := s.handleDue(ctx, &due[i], now); err != nil {
				return time.Time{}, err
			}
		}
		if len(due) < dueBatch {
			break
		}
	}
	next := nextDelegation
	err = s.store.View(func(tx Tx) error {
		t, ok := tx.NextDue()
		if ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
		return nil
	})
	return next, err
}

func (s *Service) handleDue(ctx context.Context, r *access.Request, now time.Time) error {
	switch r.State {
	case access.StatePending:
		switch {
		case !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now):
			return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
				if err := r.TimeOut(tx.Now()); err != nil {
					return err // moved on, or the deadline moved: transition treats a conflict as done
				}
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				_, err := tx.Append(event(access.EvRequestTimedOut, access.ActorScheduler, r, map[string]any{"step": r.Current + 1}))
				return err
			})
		case !r.MFAPollAt.IsZero() && !r.MFAPollAt.After(now):
			return s.pollChallenge(ctx, r, now)
		case !r.EscalateAt.IsZero() && !r.EscalateAt.After(now):
			return s.escalate(ctx, r)
		case !r.RemindAt.IsZero() && !r.RemindAt.After(now):
			return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
				var next time.Time
				if p, ok := s.Policy().Policy(r.Policy); ok && p.RemindAfter > 0 {
					next = tx.Now().Add(p.RemindAfter)
				}
				if err := r.Remind(tx.Now(), next); err != nil {
					return err // moved on, or not due: transition treats a conflict as done
				}
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				_, err := tx.Append(event(access.EvRequestReminded, access.ActorScheduler, r, map[string]any{"step": r.Current + 1}))
				return err
			})
		}
	case access.StateScheduled:
		return s.startScheduled(ctx, r) // scheduled.go
	case access.StateActive:
		switch {
		case !r.EndsAt.IsZero() && !r.EndsAt.After(now):
			return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
				if r.State != access.StateActive || r.EndsAt.After(tx.Now()) {
					return errStale
				}
				return endGrant(tx, r, access.ReasonExpired, access.Person{}, access.ActorScheduler)
			})
		case !r.WarnAt.IsZero() && !r.WarnAt.After(now):
			return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
				if r.State != access.StateActive || r.WarnAt.IsZero() || r.WarnAt.After(tx.Now()) {
					return errStale
				}
				r.WarnAt = zeroTime
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				_, err := tx.Append(event(access.EvGrantExpiring, access.ActorScheduler, r, map[string]string{"ends_at": r.EndsAt.UTC().Format(time.RFC3339)}))
				return err
			})
		}
	}
	return nil
}

// transition loads a request, applies fn and commits, treating errStale
// (someone else moved it first) as done.
func (s *Service) transition(id string, fn func(Tx, *access.Request) error) error {
	err := s.update(func(tx Tx) error {
		r, err := tx.Request(id)
		if err != nil {
			return err
		}
		return fn(tx, &r)
	})
	if err == errStale || access.CodeOf(err) == access.CodeConflict {
		return nil
	}
	return err
}

// scheduled is transition for the scheduler: fenced by the lease, and a
// fence refusal is returned (not treated as done like a request that moved
// on), so a deposed leader's sweep stops instead of spinning on work it may
// no longer commit.
func (s *Service) scheduled(id string, fn func(Tx, *access.Request) error) error {
	var deposed error
	err := s.transition(id, func(tx Tx, r *access.Request) error {
		deposed = nil
		if err := s.lead.Fence(tx); err != nil {
			if access.CodeOf(err) == access.CodeConflict {
				deposed = err
			}
			return err
		}
		return fn(tx, r)
	})
	if deposed != nil {
		return deposed
	}
	return err
}

// escalate adds the policy's escalate_to approvers to the stalled step.
func (s *Service) escalate(ctx context.Context, r *access.Request) error {
	set := s.Policy()
	p, ok := set.Policy(r.Policy)
	var extra []access.Person
	if ok && len(p.EscalateTo) > 0 {
		dir, err := s.directory()
		if err != nil {
			return err
		}
		requester, err := dir.UserByID(ctx, r.Requester.IdPID)
		if err != nil {
			requester = access.User{ID: r.Requester.IdPID, Email: r.Requester.Email}
		}
		extra, err = set.ResolveRules(ctx, p.EscalateTo, requester, dir)
		if err != nil && !access.Retryable(err) {
			extra = nil
		} else if err != nil {
			// The IdP is failing: try again in a minute, not at every sweep
			// (the request would stay due and the loop would spin on it).
			return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
				if r.State != access.StatePending || r.EscalateAt.IsZero() {
					return errStale
				}
				r.EscalateAt = tx.Now().Add(escalateRetry)
				return tx.PutRequest(r)
			})
		}
	}
	return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
		added, err := r.Escalate(extra, tx.Now())
		if err != nil {
			return err // moved on, or not due: transition treats a conflict as done
		}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		_, err = tx.Append(event(access.EvRequestEscalated, access.ActorScheduler, r, map[string]any{"step": r.Current + 1, "added": added}))
		return err
	})
}
