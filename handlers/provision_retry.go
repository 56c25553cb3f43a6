package handlers

import (
	"fmt"
	"time"

	"keycard/access"
)

// Provisioning retries: a failed IdP call is retried with backoff
// (honouring the provider's rate-limit reset); an add gives up and the
// grant fails, a removal never gives up but alerts.

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
