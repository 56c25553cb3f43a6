package handlers

import (
	"context"
	"fmt"
	"time"

	"keycard/access"
)

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
	return s.updateLead(func(tx Tx) error {
		r, err := takeOp(tx, op)
		if err != nil {
			return err
		}
		if r.State != access.StateProvisioning {
			return nil
		}
		r.NotOwner = true
		return s.activate(tx, &r, tx.Now(), access.Change{}, time.Time{})
	})
}

// expireUnconfirmed handles an add sent before whose outcome is unknown,
// when the grant's whole duration, counted from that first attempt, has
// already passed: the grant becomes active from the attempt and ends at
// once (expired), and its removal is queued instead of a new add. It
// reports whether it did so.
func (s *Service) expireUnconfirmed(op access.Op) (bool, error) {
	done := false
	err := s.updateLead(func(tx Tx) error {
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
		if err := s.activate(tx, &r, tx.Now(), access.Change{}, op.FirstAttemptAt); err != nil {
			return err
		}
		return endGrant(tx, &r, access.ReasonExpired, access.Person{}, access.ActorKeycard)
	})
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

// confirmed applies an IdP-confirmed op to its request. assumed says the
// confirmation answers a retry of an add sent before (op.FirstAttemptAt)
// whose outcome keycard could not know: the clock starts at that attempt.
func (s *Service) confirmed(op access.Op, ch access.Change, note string, assumed bool) error {
	return s.updateLead(func(tx Tx) error {
		r, err := takeOp(tx, op)
		if err != nil {
			return err
		}
		now := tx.Now()
		switch op.Kind {
		case access.OpAdd:
			if r.State != access.StateProvisioning {
				return nil // revoked while the add was in flight: the queued remove follows
			}
			var from time.Time
			if assumed {
				from = op.FirstAttemptAt
			}
			return s.activate(tx, &r, now, ch, from)
		case access.OpRemove:
			return s.removalDone(tx, &r, ch, note)
		}
		return nil
	})
}

// takeOp removes a finished op from the outbox in tx and reads its request,
// for the op's outcome to be applied in the same transaction.
func takeOp(tx Tx, op access.Op) (access.Request, error) {
	if err := tx.DeleteOp(op.ID); err != nil {
		return access.Request{}, err
	}
	return tx.Request(op.RequestID)
}

// removalDone ends a deprovisioning grant in tx once its removal is done
// (or needs no IdP change: note says why).
func (s *Service) removalDone(tx Tx, r *access.Request, ch access.Change, note string) error {
	if r.State != access.StateDeprovisioning {
		return nil
	}
	now := tx.Now()
	if err := r.End(now, ch.IdPEventID); err != nil {
		return err
	}
	t := access.EvGrantExpired
	if r.State == access.StateRevoked {
		t = access.EvGrantRevoked
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	detail := map[string]string{"reason": string(r.EndReason), "group": r.Group}
	if ch.IdPEventID != "" {
		detail["idp_event_id"] = ch.IdPEventID
	}
	if note != "" {
		detail["note"] = note
	}
	if _, err := tx.Append(event(t, access.ActorKeycard, r, detail)); err != nil {
		return err
	}
	if r.EndReason == access.ReasonOffboarded {
		return s.offboardConfirmed(tx, r, now)
	}
	return nil
}

// activate starts the grant's clock at the IdP's confirmation (now), or at
// assumedFrom when it is set: the first add attempt, when keycard cannot
// know when the add took effect (SPEC "Lifecycle").
func (s *Service) activate(tx Tx, r *access.Request, now time.Time, ch access.Change, assumedFrom time.Time) error {
	start, err := r.Activate(now, ch.IdPEventID, assumedFrom)
	if err != nil {
		return err
	}
	from := r.DecidedAt
	if r.StartAt.After(from) {
		from = r.StartAt // scheduled access: provisioning waited for the start by design
	}
	s.metrics.Provision.Observe(now.Sub(from).Seconds())
	if r.Extends != "" {
		old, err := tx.Request(r.Extends)
		if err != nil {
			return err
		}
		if old.State == access.StateActive && old.EndsAt.After(start) {
			start = old.EndsAt // the extension continues where the old grant ends
		}
		if old.Extend(r.ID) == nil { // active: the extension takes over the expiring-soon notice
			if err := tx.PutRequest(&old); err != nil {
				return err
			}
			if _, err := tx.Append(event(access.EvGrantExtended, r.Requester.Email, &old, map[string]string{"by": r.ID})); err != nil {
				return err
			}
		}
	}
	r.EndsAt = start.Add(r.Duration)
	if p, ok := s.Policy().Policy(r.Policy); ok && p.ExtendMaxTotal > 0 && !r.RootStart.IsZero() {
		if limit := r.RootStart.Add(p.ExtendMaxTotal); r.EndsAt.After(limit) {
			r.EndsAt = limit
		}
	}
	if r.RootStart.IsZero() {
		r.RootStart = start
	}
	if w := s.Policy().ExpiryWarning; w > 0 && r.EndsAt.Sub(now) > w {
		r.WarnAt = r.EndsAt.Add(-w)
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	detail := map[string]string{"group": r.Group, "ends_at": r.EndsAt.UTC().Format(time.RFC3339)}
	if r.StartAssumed {
		detail["start"] = "assumed: the first add attempt at " + r.StartedAt.UTC().Format(time.RFC3339Nano) + " (its outcome was not known)"
	}
	if r.NotOwner {
		detail["membership"] = "standing: already a member before the add; keycard will not remove it"
	}
	if ch.IdPEventID != "" {
		detail["idp_event_id"] = ch.IdPEventID
	}
	_, err = tx.Append(event(access.EvGrantActive, access.ActorKeycard, r, detail))
	return err
}

// failed records a failed attempt: retry later with backoff, honouring the
// IdP's rate-limit reset; adds give up after MaxAddAttempts (or at once on a
// permanent error), removes never give up but alert. The clock start of a
// sent add (op.FirstAttemptAt) is kept whatever the error: no connector
// error says nothing reached the IdP, and a connector that retries inside
// one call may end in a 429 after an attempt that applied.
func (s *Service) failed(op access.Op, cause error) error {
	s.log.Warn("provisioning attempt failed", "op", op.ID, "kind", op.Kind, "request", op.RequestID, "group", op.Group, "attempt", op.Attempts+1, "err", cause)
	return s.updateLead(func(tx Tx) error {
		cur, err := tx.Op(op.ID)
		if err != nil {
			return err
		}
		r, err := tx.Request(op.RequestID)
		if err != nil {
			return err
		}
		now := tx.Now()
		cur.Attempts++
		cur.LastError = access.MessageOf(cause) + ": " + cause.Error()
		permanent := !access.Retryable(cause)
		if op.Kind == access.OpAdd && (permanent || cur.Attempts >= s.opt.MaxAddAttempts) {
			if err := tx.DeleteOp(cur.ID); err != nil {
				return err
			}
			if r.State != access.StateProvisioning {
				return nil
			}
			if err := r.Fail(cause.Error(), now); err != nil {
				return err
			}
			if err := tx.PutRequest(&r); err != nil {
				return err
			}
			// An add that was sent may have happened in the IdP even though
			// it failed: queue an (idempotent) removal so a failed grant never
			// leaves a membership behind. The worker skips it if another grant
			// holds. An add never sent (the pre-add membership check failed)
			// added nothing: a membership the person has is not keycard's,
			// and is left alone.
			if cur.AddSent() {
				if err := tx.Enqueue(&access.Op{Kind: access.OpRemove, RequestID: r.ID, Connector: r.Connector, Group: r.Group,
					UserID: r.Requester.IdPID, Email: r.Requester.Email, NextAt: now}); err != nil {
					return err
				}
			}
			if _, err := tx.Append(event(access.EvGrantFailed, access.ActorKeycard, &r, access.GrantFailed{Attempts: cur.Attempts, Error: cause.Error()})); err != nil {
				return err
			}
			_, err := tx.Append(event(access.EvAlert, access.ActorKeycard, &r, access.Alert{Kind: "provisioning_failed",
				Message: fmt.Sprintf("Could not add %s to %s after %d attempts: %v", r.Requester.Email, r.Group, cur.Attempts, cause)}))
			return err
		}
		wait := s.backoff(cur.Attempts)
		if at := access.RetryAtOf(cause); at.After(now.Add(wait)) {
			wait = at.Sub(now)
		}
		// A removal must not be postponed without bound by a bad rate-limit
		// reset (X-Rate-Limit-Reset, Retry-After far in the future): wait at
		// most MaxRemoveWait, and tell the security channel.
		capped := false
		if op.Kind == access.OpRemove && wait > s.opt.MaxRemoveWait {
			wait = s.opt.MaxRemoveWait
			capped = !cur.RateAlerted // one alert per removal
			cur.RateAlerted = true
		}
		cur.NextAt = now.Add(wait)
		if err := tx.PutOp(cur); err != nil {
			return err
		}
		if _, err := tx.Append(event(access.EvProvisionRetrying, access.ActorKeycard, &r, map[string]any{"op": string(op.Kind),
			"attempt": cur.Attempts, "error": cause.Error(), "next_at": cur.NextAt.UTC().Format(time.RFC3339Nano)})); err != nil {
			return err
		}
		if capped {
			_, err := tx.Append(event(access.EvProvisionAlert, access.ActorKeycard, &r, access.Alert{Kind: "deprovisioning_rate_limited",
				Message: fmt.Sprintf("The IdP asked keycard to wait until %s before removing %s from %s; keycard retries at %s instead.",
					access.RetryAtOf(cause).UTC().Format(time.RFC3339), r.Requester.Email, r.Group, cur.NextAt.UTC().Format(time.RFC3339))}))
			if err != nil {
				return err
			}
		}
		if op.Kind == access.OpRemove && cur.Attempts >= s.opt.AlertRemoveAfter && !cur.Alerted {
			cur.Alerted = true
			if err := tx.PutOp(cur); err != nil {
				return err
			}
			_, err := tx.Append(event(access.EvProvisionAlert, access.ActorKeycard, &r, access.Alert{Kind: "deprovisioning_stuck",
				Message: fmt.Sprintf("Removing %s from %s has failed %d times (%v); keycard keeps trying.", r.Requester.Email, r.Group, cur.Attempts, cause)}))
			return err
		}
		return nil
	})
}

// backoff is exponential from BackoffBase, capped at BackoffMax, plus jitter.
func (s *Service) backoff(attempt int) time.Duration {
	d := s.opt.BackoffBase
	for i := 1; i < attempt && d < s.opt.BackoffMax; i++ {
		d *= 2
	}
	if d > s.opt.BackoffMax {
		d = s.opt.BackoffMax
	}
	return s.jitter(d)
}

// endGrant ends an active or provisioning grant in tx and queues its
// removal; the worker skips the removal while another active grant of the
// same person holds the group. When a person ends access (revoked,
// offboarded) rather than time, endAccess also ends every other grant of the
// holder on that group — extensions included — and cancels pending
// extensions, so the membership really goes.
func endGrant(tx Tx, r *access.Request, reason access.Reason, by access.Person, actor string) error {
	if r.State == access.StateScheduled {
		return withdraw(tx, r, reason, by, actor, "") // scheduled.go: before its start, nothing to remove
	}
	now := tx.Now()
	wasProvisioning := r.State == access.StateProvisioning
	if r.BeginEnding(reason, by, now) != nil {
		return errStale
	}
	others, err := otherHolders(tx, r)
	if err != nil {
		return err
	}
	detail := map[string]string{"reason": string(reason)}
	if by.Email != "" {
		detail["by"] = by.Email
	}
	if len(others) > 0 && !wasProvisioning {
		detail["membership_kept_by"] = others[0].ID
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	if _, err := tx.Append(event(access.EvGrantEnding, actor, r, detail)); err != nil {
		return err
	}
	// Always queue the removal: the worker re-checks other holders when it
	// runs, and an add still in flight is ordered before it.
	return tx.Enqueue(&access.Op{Kind: access.OpRemove, RequestID: r.ID, Connector: r.Connector, Group: r.Group,
		UserID: r.Requester.IdPID, Email: r.Requester.Email, NextAt: now})
}

// endAccess ends r because a person (or offboarding) took the access away:
// r, and every other grant of the holder on the same group, end with the
// same reason, and pending extensions of them are cancelled. Otherwise the
// membership would survive through a sibling grant (say r's extension, after
// r itself expired) while keycard reported it removed. It returns the ids of
// the grants it ended; errStale when there was nothing left to end.
func endAccess(tx Tx, r *access.Request, reason access.Reason, by access.Person, actor string) ([]string, error) {
	var ended []string
	switch err := endGrant(tx, r, reason, by, actor); {
	case err == nil:
		ended = append(ended, r.ID)
	case err != errStale:
		return nil, err
	}
	mine, err := tx.RequestsOfUser(r.Requester.Email)
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	for i := range mine {
		m := &mine[i]
		if m.ID == r.ID || m.Connector != r.Connector || m.Group != r.Group || !m.Requester.Same(r.Requester) {
			continue
		}
		switch {
		case m.State == access.StateActive || m.State == access.StateProvisioning || m.State == access.StateScheduled:
			switch err := endGrant(tx, m, reason, by, actor); {
			case err == nil:
				ended = append(ended, m.ID)
			case err != errStale:
				return nil, err
			}
		case m.State == access.StatePending && m.Extends != "":
			if err := m.Cancel(now); err != nil {
				return nil, err
			}
			if err := tx.PutRequest(m); err != nil {
				return nil, err
			}
			if _, err := tx.Append(event(access.EvRequestCancelled, actor, m, map[string]string{"reason": "the grant it extends was " + string(reason), "grant": r.ID})); err != nil {
				return nil, err
			}
		}
	}
	if len(ended) == 0 {
		return nil, errStale
	}
	return ended, nil
}
