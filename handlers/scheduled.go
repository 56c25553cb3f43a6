package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"keycard/access"
)

// Scheduled access (SPEC: schedule_ahead). A request may ask to start
// later; it is approved as usual, then waits in access.StateScheduled with
// nothing queued at the IdP. Its start is in Request.NextDue, so the
// scheduler (Tick) finds it with the other due work; at the start keycard
// re-checks what an approval relies on and queues the add, and the grant's
// clock starts when the IdP confirms it (activate). Ended before its start,
// it is withdrawn: revoked at once, with no removal sent.

// startRetry is how long a due start waits after the identity provider
// could not be asked whether the person may still have it.
const startRetry = time.Minute

// startScheduled handles a scheduled grant whose start has come: the
// policy in force must still hold it and the person must still be active
// in the IdP and eligible. Then the add is queued (provisioning); a person
// no longer active is withdrawn (offboarded); a policy or an eligibility
// that no longer holds fails the grant, which alerts the security channel.
func (s *Service) startScheduled(ctx context.Context, r *access.Request) error {
	set := s.Policy()
	why := ""       // why the grant fails at its start
	inactive := ""  // why the person is taken as offboarded
	var cause error // the IdP could not be asked: try again later
	if o := orphaned(set, r); o != "" {
		why = access.FailedAtStart + orphanMessage(r, o)
	} else if dir, err := s.directory(); err != nil {
		cause = err
	} else {
		u, err := userOf(ctx, dir, r.Requester)
		p, _ := set.Policy(r.Policy)
		switch {
		case access.CodeOf(err) == access.CodeNotFound:
			inactive = "no longer in the identity provider"
		case err != nil:
			cause = err
		case !u.Status.CanRequest():
			inactive = "identity-provider account " + strings.ToLower(string(u.Status))
		case !set.Eligible(p, u):
			why = access.FailedAtStart + fmt.Sprintf("%s is no longer eligible for policy %s (allows: %s)", r.Requester.Email, p.Name, strings.Join(p.Eligible, ", "))
		}
	}
	if cause != nil {
		s.log.Warn("scheduled start: identity provider unavailable; trying again", "request", r.ID, "err", cause)
		return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
			if err := r.DelayStart(tx.Now().Add(startRetry)); err != nil {
				return err
			}
			return tx.PutRequest(r)
		})
	}
	return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
		now := tx.Now()
		if r.State != access.StateScheduled || r.StartAt.After(now) {
			return errStale
		}
		switch {
		case inactive != "":
			return withdraw(tx, r, access.ReasonOffboarded, access.Person{}, access.ActorScheduler, inactive)
		case why != "":
			if err := r.Fail(why, now); err != nil {
				return err
			}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			if _, err := tx.Append(event(access.EvGrantFailed, access.ActorScheduler, r, access.GrantFailed{Error: why})); err != nil {
				return err
			}
			_, err := tx.Append(event(access.EvAlert, access.ActorScheduler, r, access.Alert{Kind: "scheduled_start_refused",
				Message: fmt.Sprintf("%s's scheduled access %s was not granted: %s. Nothing was added.", r.Requester.Email, r.ID, why)}))
			return err
		}
		if err := r.Start(now); err != nil {
			return err
		}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		if _, err := tx.Append(event(access.EvGrantStarting, access.ActorScheduler, r, map[string]string{
			"start_at": r.StartAt.UTC().Format(time.RFC3339), "group": r.Group})); err != nil {
			return err
		}
		return tx.Enqueue(&access.Op{Kind: access.OpAdd, RequestID: r.ID, Connector: r.Connector, Group: r.Group,
			UserID: r.Requester.IdPID, Email: r.Requester.Email, NextAt: now})
	})
}

// withdraw ends a scheduled grant before its start (revoked by a person,
// or offboarded), in tx: nothing was added, so no removal is queued and
// none is ever sent. note says why, for the audit event.
func withdraw(tx Tx, r *access.Request, reason access.Reason, by access.Person, actor, note string) error {
	if err := r.Withdraw(reason, by, tx.Now()); err != nil {
		return errStale
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	detail := map[string]string{"reason": string(reason), "start_at": r.StartAt.UTC().Format(time.RFC3339),
		"removal": "none: the access had not started, nothing was added"}
	if by.Email != "" {
		detail["by"] = by.Email
	}
	if note != "" {
		detail["note"] = note
	}
	_, err := tx.Append(event(access.EvGrantRevoked, actor, r, detail))
	return err
}
