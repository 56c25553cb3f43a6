package handlers

import (
	"context"
	"fmt"
	"time"

	"keycard/access"
)

// The provisioning outbox worker: it runs each due op against the IdP
// outside any transaction, in queue order per membership, and hands the
// answer to provision_confirm.go or provision_retry.go.

var zeroTime time.Time

// opTimeout bounds one IdP call made by the worker.
const opTimeout = 30 * time.Second

// RunOutbox executes due provisioning operations until none is due, and
// returns when the next one will be (zero when the outbox is empty). Ops on
// the same (connector, group, user) run strictly in the order they were
// queued, so an add and a later remove can never swap.
func (s *Service) RunOutbox(ctx context.Context) (next time.Time, err error) {
	for ctx.Err() == nil {
		if _, leading := s.termLeft(opTimeout); !leading {
			return time.Time{}, nil // a standby, or a term that ended: the leader's worker does it
		}
		now := s.clock.Now()
		var due []access.Op
		next = time.Time{}
		err := s.store.View(func(tx Tx) error {
			blocked := map[string]bool{}
			return tx.Ops(func(op access.Op) error {
				key := op.Connector + "\x00" + op.Group + "\x00" + op.UserID
				if blocked[key] {
					return nil
				}
				blocked[key] = true
				if op.NextAt.After(now) {
					if next.IsZero() || op.NextAt.Before(next) {
						next = op.NextAt
					}
					return nil
				}
				due = append(due, op)
				return nil
			})
		})
		if err != nil {
			return time.Time{}, err
		}
		if len(due) == 0 {
			return next, nil
		}
		for _, op := range due {
			if _, leading := s.termLeft(opTimeout); ctx.Err() != nil || !leading {
				break // a term that ended mid-batch leaves the rest to the new leader
			}
			if err := s.execute(ctx, op); err != nil {
				return time.Time{}, err
			}
		}
	}
	return next, ctx.Err()
}

// execute runs one op against the IdP and records the outcome. It returns
// an error only when the store fails; IdP failures are recorded and retried.
func (s *Service) execute(ctx context.Context, op access.Op) error {
	// Skip work the state no longer needs (a revoked-before-active grant, or
	// a removal that another grant's membership now overrides).
	var r access.Request
	skip := false
	if err := s.store.View(func(tx Tx) error {
		var err error
		r, err = tx.Request(op.RequestID)
		if err != nil {
			return err
		}
		if op.Kind == access.OpRemove {
			others, err := otherHolders(tx, &r)
			if err != nil {
				return err
			}
			skip = len(others) > 0
		}
		return nil
	}); err != nil {
		return err
	}
	if op.Kind == access.OpAdd && r.State != access.StateProvisioning {
		// Revoked (or failed) before the add ran: the queued removal, ordered
		// after this add, is all that is needed (it is idempotent).
		return s.dropAdd(op)
	}
	if skip {
		return s.confirmed(op, access.Change{}, "membership kept: another keycard grant still holds it", false)
	}
	if op.Kind == access.OpRemove && r.NotOwner {
		return s.confirmed(op, access.Change{}, "membership kept: a standing membership keycard did not add", false)
	}
	prov, ok := s.conns.Provisioner(op.Connector)
	if !ok {
		return s.failed(op, access.Errorf(access.CodeInternal, "connector %q is not configured", op.Connector))
	}
	limit, leading := s.termLeft(opTimeout)
	if !leading {
		return nil // the term ended: the op stays queued for the new leader
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var ch access.Change
	var err error
	firstSend := false
	switch op.Kind {
	case access.OpAdd:
		if op.AddSent() {
			// An earlier add was sent and its outcome is unknown (a crash, a
			// timed-out answer, or a connector's in-call retry that ended in
			// a 429 after an attempt that may have applied): the clock
			// already runs from then, and the membership may be keycard's,
			// so it is never taken for standing. A grant whose whole
			// duration has passed is ended, not granted afresh.
			if done, err := s.expireUnconfirmed(op); done || err != nil {
				return err
			}
		} else {
			standing, err := s.standing(cctx, prov, op)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.metrics.IdPErrors.Add(1)
				return s.failed(op, err)
			}
			if standing {
				return s.keepStanding(op)
			}
			// Record the attempt durably before the call: if keycard dies
			// or the answer is lost, recovery starts the clock here.
			if op, err = s.markAttempt(op); err != nil {
				if access.CodeOf(err) == access.CodeNotFound {
					return nil // finished or cancelled meanwhile
				}
				return err
			}
			firstSend = true
		}
		ch, err = prov.AddMember(cctx, op.Group, op.UserID)
	case access.OpRemove:
		ch, err = prov.RemoveMember(cctx, op.Group, op.UserID)
		if access.CodeOf(err) == access.CodeNotFound {
			// The user (or group) no longer exists in the IdP: nothing holds the membership.
			ch, err = access.Change{}, nil
		}
	default:
		err = fmt.Errorf("unknown op kind %q", op.Kind)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // shutting down: the op stays queued and resumes at start
		}
		s.metrics.IdPErrors.Add(1)
		return s.failed(op, err)
	}
	s.metrics.IdPAnswered(s.clock.Now())
	return s.confirmed(op, ch, "", op.Kind == access.OpAdd && !firstSend)
}

// dropAdd deletes the add of a grant that ended before the add completed.
// When the add was sent, the grant's queued removal (ordered after it)
// undoes whatever applied. When it never was, keycard added nothing: the
// grant's removal is finished without touching the IdP, so a membership the
// person holds otherwise (standing) is left alone.
func (s *Service) dropAdd(op access.Op) error {
	return s.updateLead(func(tx Tx) error {
		cur, err := tx.Op(op.ID)
		if access.CodeOf(err) == access.CodeNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.DeleteOp(cur.ID); err != nil || cur.AddSent() {
			return err
		}
		var removals []uint64
		if err := tx.Ops(func(o access.Op) error {
			if o.Kind == access.OpRemove && o.RequestID == cur.RequestID {
				removals = append(removals, o.ID)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, id := range removals {
			if err := tx.DeleteOp(id); err != nil {
				return err
			}
		}
		if len(removals) == 0 {
			return nil
		}
		r, err := tx.Request(cur.RequestID)
		if err != nil {
			return err
		}
		return s.removalDone(tx, &r, access.Change{}, "nothing removed: keycard never sent the add")
	})
}

// markAttempt commits op.FirstAttemptAt = now and op.Sent before the add is
// sent.
func (s *Service) markAttempt(op access.Op) (access.Op, error) {
	var out access.Op
	err := s.updateLead(func(tx Tx) error {
		cur, err := tx.Op(op.ID)
		if err != nil {
			return err
		}
		cur.FirstAttemptAt, cur.Sent = tx.Now(), true
		out = cur
		return tx.PutOp(cur)
	})
	return out, err
}

// standing reports whether op's person is already a member of the group
// through a membership keycard did not add: the IdP says member, no other
// active (or ending) grant of the same person on the group owns it, and no
// removal of it is queued (a failed grant's add may have applied). Ops on
// one membership run in queue order, so any other op still queued comes
// after this add. SPEC: keycard never removes access it did not grant.
func (s *Service) standing(ctx context.Context, prov access.Provisioner, op access.Op) (bool, error) {
	member, err := prov.IsMember(ctx, op.Group, op.UserID)
	if err != nil || !member {
		return false, err
	}
	standing := true
	err = s.store.View(func(tx Tx) error {
		r, err := tx.Request(op.RequestID)
		if err != nil {
			return err
		}
		hs, err := tx.Holders(r.Connector, r.Group)
		if err != nil {
			return err
		}
		for _, h := range hs {
			if h.ID == r.ID || !h.Requester.Same(r.Requester) || (h.State != access.StateActive && h.State != access.StateDeprovisioning) {
				continue
			}
			// A sibling grant that itself found the membership standing
			// passes that on; any other sibling's membership is keycard's.
			if !h.NotOwner {
				standing = false
			}
		}
		return tx.Ops(func(o access.Op) error {
			if o.Kind == access.OpRemove && o.Connector == op.Connector && o.Group == op.Group && o.UserID == op.UserID {
				standing = false
			}
			return nil
		})
	})
	return standing, err
}

// keepStanding activates op's grant over a standing membership without
// sending the add: the grant runs its time (the clock starts now, the IdP
// already confirms membership) but does not own the membership, so its end
// removes nothing.
func (s *Service) keepStanding(op access.Op) error {
	return s.finishOp(op, func(tx Tx, r *access.Request, took *observation) error {
		if r.State != access.StateProvisioning {
			return nil
		}
		r.NotOwner = true
		return s.activate(tx, r, tx.Now(), access.Change{}, time.Time{}, took)
	})
}

// expireUnconfirmed handles an add sent before whose outcome is unknown,
// when the grant's whole duration, counted from that first attempt, has
// already passed: the grant becomes active from the attempt and ends at
// once (expired), and its removal is queued instead of a new add. It
// reports whether it did so.
func (s *Service) expireUnconfirmed(op access.Op) (bool, error) {
	done := false
	var took observation
	err := s.updateLead(func(tx Tx) error {
		done, took = false, observation{} // a retried attempt (PostgreSQL serialization failure) decides afresh
		r, err := tx.Request(op.RequestID)
		if err != nil {
			return err
		}
		if r.State != access.StateProvisioning || op.FirstAttemptAt.Add(r.Duration).After(tx.Now()) {
			return nil
		}
		if r.Extends != "" {
			if old, err := tx.Request(r.Extends); err == nil && old.State == access.StateActive {
				return nil // the extension continues an active grant: activate as usual
			}
		}
		done = true
		if err := tx.DeleteOp(op.ID); err != nil {
			return err
		}
		if err := s.activate(tx, &r, tx.Now(), access.Change{}, op.FirstAttemptAt, &took); err != nil {
			return err
		}
		return endGrant(tx, &r, access.ReasonExpired, access.Person{}, access.ActorKeycard)
	})
	took.record(s.metrics.Provision, err)
	return done, err
}

// otherHolders lists r's holder's other requests that hold (or are about to
// hold) the same group membership.
func otherHolders(tx Tx, r *access.Request) ([]access.Request, error) {
	hs, err := tx.Holders(r.Connector, r.Group)
	if err != nil {
		return nil, err
	}
	var out []access.Request
	for _, h := range hs {
		// Only an active grant keeps the membership: one still provisioning may
		// yet fail, and its add is ordered after this removal anyway (per-key
		// op order), so removing now can never leave a membership nobody holds.
		// A NotOwner grant rides on a standing membership keycard does not
		// own: it keeps nothing of keycard's (a review may remove the
		// standing membership under it).
		if h.ID != r.ID && h.Requester.Same(r.Requester) && h.State == access.StateActive && !h.NotOwner {
			out = append(out, h)
		}
	}
	return out, nil
}
