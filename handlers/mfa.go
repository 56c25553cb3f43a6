package handlers

// Step-up MFA on approvals (policy key approval_mfa). An Approve on such a
// step sends an IdP challenge (an Okta Verify push) and records it on the
// step with the audit event mfa.challenged; the step is not decided yet.
// The scheduler polls the challenge: the request's MFAPollAt is one of its
// due times (access.Request.NextDue), so the poll is durable (a restart
// resumes it from the store), runs only where singleton work runs (the
// leader's scheduler, each commit fenced by the lease) and follows the
// injected clock. Success approves the step as the click would have, with
// the factor recorded; rejection or timeout clears the challenge, leaves the
// step undecided and is audited (mfa.failed).
//
// Why the scheduler and not the provisioning outbox: the outbox orders IdP
// group changes per (connector, group, user) and its ops carry grant
// semantics (adds that start clocks, removals that must never be dropped);
// a challenge is a read-only question about a pending request, and its
// state belongs on the request, where the transaction that decides the step
// can check it.

import (
	"context"
	"strings"
	"time"

	"keycard/access"
)

const (
	// MFAPollEvery is how often the scheduler asks the IdP about a push.
	MFAPollEvery = 5 * time.Second
	// MFAWindow is how long keycard waits for a push before counting it as
	// timed out even when the IdP cannot be asked (Okta's push itself
	// expires after five minutes).
	MFAWindow = 6 * time.Minute
	// mfaTimeout bounds one challenge call to the IdP.
	mfaTimeout = 20 * time.Second
)

// challenger returns the named connector's MFA capability.
func (s *Service) challenger(name string) (access.Challenger, bool) {
	d, ok := s.conns.Directory(name)
	if !ok {
		return nil, false
	}
	c, ok := d.(access.Challenger)
	return c, ok
}

// sendChallenge sends the MFA push for actor's Approve of r's current step
// through r's connector and returns the challenge to record.
func (s *Service) sendChallenge(ctx context.Context, r *access.Request, actor access.Person, comment string) (access.Challenge, error) {
	ch, ok := s.challenger(r.Connector)
	if !ok {
		// policy check refuses approval_mfa on such a connector; a request
		// made under an older policy still needs its MFA.
		return access.Challenge{}, access.Errorf(access.CodeInvalid,
			"Step %d of %s needs MFA, but connector %q cannot send an MFA challenge; ask an admin.", r.Current+1, r.ID, r.Connector)
	}
	userID := actor.IdPID
	if r.Connector != s.Policy().Directory || userID == "" {
		d, _ := s.conns.Directory(r.Connector)
		u, err := d.UserByEmail(ctx, actor.Email)
		if err != nil {
			return access.Challenge{}, err
		}
		userID = u.ID
	}
	cctx, cancel := context.WithTimeout(ctx, mfaTimeout)
	defer cancel()
	factor, ref, err := ch.StartChallenge(cctx, userID)
	if err != nil {
		return access.Challenge{}, err
	}
	// SentAt and Deadline are set when the click's transaction records it.
	return access.Challenge{Approver: actor, Factor: factor, Ref: ref, UserID: userID, Comment: comment}, nil
}

// beginChallenge records c (sent at this click) on r's current step, inside
// the click's transaction. A challenge already in flight refuses the click;
// so does a click whose push was not sent because the snapshot showed one
// that has since ended.
func (s *Service) beginChallenge(tx Tx, r *access.Request, actor access.Person, c *access.Challenge) error {
	now := tx.Now()
	if c == nil {
		if p := r.ChallengePending(now); p != nil {
			return r.BeginChallenge(access.Challenge{SentAt: now}, now) // the conflict naming the pending push
		}
		return access.Errorf(access.CodeConflict, "The MFA push for this step ended while keycard checked your click; click Approve again.")
	}
	c.SentAt, c.Deadline = now, now.Add(MFAWindow)
	if err := r.BeginChallenge(*c, now.Add(MFAPollEvery)); err != nil {
		return err
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	detail := map[string]any{"step": r.Current + 1, "rule": r.Step().Rule, "factor": c.Factor}
	if c.Delegation != "" {
		detail["for"], detail["delegation"] = c.OnBehalfOf.Email, c.Delegation
	}
	_, err := tx.Append(event(access.EvMFAChallenged, actor.Email, r, detail))
	return err
}

// pollChallenge is the scheduler's work for a request whose MFAPollAt is
// due: ask the IdP, and record the outcome or the next poll.
func (s *Service) pollChallenge(ctx context.Context, r *access.Request, now time.Time) error {
	st := r.Step()
	if st == nil || st.Challenge == nil {
		return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
			if r.MFAPollAt.IsZero() || (r.Step() != nil && r.Step().Challenge != nil) {
				return errStale
			}
			r.MFAPollAt = time.Time{}
			return tx.PutRequest(r)
		})
	}
	c := *st.Challenge
	res := access.ChallengeWaiting
	var pollErr error
	if ch, ok := s.challenger(r.Connector); ok {
		cctx, cancel := context.WithTimeout(ctx, mfaTimeout)
		res, pollErr = ch.PollChallenge(cctx, c.UserID, c.Ref)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
	} else {
		pollErr = access.Errorf(access.CodeInternal, "connector %q cannot poll an MFA challenge", r.Connector)
	}
	if pollErr != nil {
		s.log.Warn("mfa: polling the challenge failed", "request", r.ID, "err", pollErr)
		res = access.ChallengeWaiting
	}
	var why string // a void or unverified outcome's reason, for the audit event
	if res == access.ChallengeSuccess {
		// The approver's right is re-checked when the push is accepted, as
		// at the click: someone who left the approval group (or whose
		// principal, for a delegate, did), or a delegate whose own account
		// was suspended, in the push window decides nothing. An IdP that
		// cannot answer now leaves the push waiting, until the window ends.
		err := s.recheckChallenger(ctx, r, c)
		if ctx.Err() != nil {
			return nil // stopping: the next scheduler asks again
		}
		switch {
		case err == nil:
		case access.CodeOf(err) == access.CodeForbidden:
			why = access.MessageOf(err)
			s.log.Info("mfa: the push was accepted but its approver may no longer decide the step", "request", r.ID, "approver", c.Approver.Email, "why", why)
			res = access.ChallengeVoid
		case !now.Before(c.Deadline):
			why = access.MessageOf(err)
			s.log.Warn("mfa: the push was accepted but the approver's right could not be confirmed before the push window ended", "request", r.ID, "err", err)
			res = access.ChallengeUnverified
		default:
			s.log.Warn("mfa: could not re-check the approver after the push was accepted; polling again", "request", r.ID, "err", err)
			res = access.ChallengeWaiting
		}
	}
	if res == access.ChallengeWaiting && !now.Before(c.Deadline) {
		res = access.ChallengeTimeout
	}
	if res == access.ChallengeWaiting {
		return s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
			if r.State != access.StatePending || r.Step() == nil || r.Step().Challenge == nil || r.Step().Challenge.Ref != c.Ref {
				return errStale
			}
			r.MFAPollAt = tx.Now().Add(MFAPollEvery)
			return tx.PutRequest(r)
		})
	}
	var approvedIn time.Duration // request to approval, when this poll completed the chain
	err := s.scheduled(r.ID, func(tx Tx, r *access.Request) error {
		approvedIn = 0
		// The poll's outcome, as this attempt finds it: a retried attempt
		// (PostgreSQL serialization failure) starts again from the poll, not
		// from a void the rolled-back attempt found.
		res, why := res, why
		st := r.Step()
		rule := ""
		if st != nil {
			rule = st.Rule
		}
		idx := r.Current
		var dlg *access.Delegation
		if res == access.ChallengeSuccess && st != nil && st.Challenge != nil {
			// What the click was authorised under must still hold now.
			pc := st.Challenge
			if pc.Delegation != "" {
				var d access.Delegation
				ok, err := tx.Doc(DocDelegation, pc.Delegation, &d)
				if err != nil {
					return err
				}
				if ok && d.InForce(tx.Now()) {
					dlg = &d
				} else {
					res, why = access.ChallengeVoid, "the delegation "+pc.Delegation+" ended before the push was accepted"
				}
			}
			if pc.PolicyHash != "" {
				h, err := tx.Cursor("policy.hash")
				if err != nil {
					return err
				}
				if h != pc.PolicyHash {
					res, why = access.ChallengeVoid, "the policy in force changed before the push was accepted"
				}
			}
		}
		got, complete, err := r.FinishChallenge(c.Ref, res, tx.Now())
		if err != nil {
			return err // moved on: transition treats a conflict as done
		}
		if res == access.ChallengeSuccess {
			var as actingFor // a delegate's push: the delegation, still in force
			if dlg != nil {
				as = actingFor{principal: got.OnBehalfOf, delegation: dlg}
			}
			if err := s.stepApproved(tx, r, idx, got.Approver.Email, rule, got.Comment, got.Factor, complete, as); err != nil {
				return err
			}
			if r.State == access.StateProvisioning {
				approvedIn = r.DecidedAt.Sub(r.CreatedAt)
			}
			return nil
		}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		detail := map[string]any{"step": r.Current + 1, "rule": rule, "factor": got.Factor, "outcome": string(res)}
		if why != "" {
			detail["why"] = why
		}
		if got.Delegation != "" {
			detail["for"], detail["delegation"] = got.OnBehalfOf.Email, got.Delegation
		}
		_, err = tx.Append(event(access.EvMFAFailed, got.Approver.Email, r, detail))
		return err
	})
	if err == nil && approvedIn > 0 {
		s.metrics.Approval.Observe(approvedIn.Seconds())
	}
	return err
}

// recheckChallenger is the click's authorization again, when a push was
// accepted: the approver (for a delegate, the person they decide for) is
// still a candidate of the step at the IdP, and a delegate's own account is
// still active.
func (s *Service) recheckChallenger(ctx context.Context, r *access.Request, c access.Challenge) error {
	if c.Delegation == "" {
		return s.stillApprover(ctx, r, c.Approver)
	}
	dir, err := s.directory()
	if err != nil {
		return err
	}
	u, err := userOf(ctx, dir, c.Approver)
	if access.CodeOf(err) == access.CodeNotFound {
		return access.Errorf(access.CodeForbidden, "%s is no longer in the identity provider.", c.Approver.Label())
	}
	if err != nil {
		return err
	}
	if !u.Status.CanRequest() {
		return access.Errorf(access.CodeForbidden, "%s's identity-provider account is %s.", c.Approver.Label(), strings.ToLower(string(u.Status)))
	}
	return s.stillApprover(ctx, r, c.OnBehalfOf)
}
