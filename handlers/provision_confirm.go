package handlers

import (
	"time"

	"keycard/access"
)

// The outbox worker's confirmations: an add the IdP confirmed makes the
// grant active and starts its clock; a removal it confirmed ends the
// deprovisioning grant. Failures and their retries are in provision_retry.go.

// confirmed applies an IdP-confirmed op to its request. assumed says the
// confirmation answers a retry of an add sent before (op.FirstAttemptAt)
// whose outcome keycard could not know: the clock starts at that attempt.
func (s *Service) confirmed(op access.Op, ch access.Change, note string, assumed bool) error {
	return s.finishOp(op, func(tx Tx, r *access.Request, took *observation) error {
		switch op.Kind {
		case access.OpAdd:
			if r.State != access.StateProvisioning {
				return nil // revoked while the add was in flight: the queued remove follows
			}
			var from time.Time
			if assumed {
				from = op.FirstAttemptAt
			}
			return s.activate(tx, r, tx.Now(), ch, from, took)
		case access.OpRemove:
			return s.removalDone(tx, r, ch, note)
		}
		return nil
	})
}

// finishOp applies a finished op's outcome in one fenced transaction: the
// op leaves the outbox (takeOp) and fn updates its request. The provisioning
// time fn measures is recorded once the transaction commits (an attempt the
// store runs again starts afresh).
func (s *Service) finishOp(op access.Op, fn func(tx Tx, r *access.Request, took *observation) error) error {
	var took observation
	err := s.updateLead(func(tx Tx) error {
		took = observation{}
		r, err := takeOp(tx, op)
		if err != nil {
			return err
		}
		return fn(tx, &r, &took)
	})
	took.record(s.metrics.Provision, err)
	return err
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
// know when the add took effect (SPEC "Lifecycle"). The provisioning time
// goes to took, for the caller to record once the transaction commits.
func (s *Service) activate(tx Tx, r *access.Request, now time.Time, ch access.Change, assumedFrom time.Time, took *observation) error {
	start, err := r.Activate(now, ch.IdPEventID, assumedFrom)
	if err != nil {
		return err
	}
	from := r.DecidedAt
	if r.StartAt.After(from) {
		from = r.StartAt // scheduled access: provisioning waited for the start by design
	}
	took.observe(now.Sub(from).Seconds())
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
