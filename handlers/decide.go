package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"keycard/access"
	"keycard/policy"
)

// DecideInput is an Approve or Deny click. RequestID and Step come from the
// button and are only pointers: who may decide is checked against the store.
type DecideInput struct {
	RequestID string
	Step      int // the step the button was for; a stale button is refused
	SlackID   string
	Email     string
	Approve   bool
	Comment   string
}

// Decide records one approver's decision on the current step. Exactly one of
// two concurrent decisions wins; the other gets CodeConflict naming who won.
// A click by anyone who may not decide is refused (CodeForbidden), audited,
// and changes nothing.
func (s *Service) Decide(ctx context.Context, in DecideInput) (access.Request, error) {
	u, err := s.identifyActor(ctx, in.SlackID, in.Email)
	if err != nil {
		return access.Request{}, err
	}
	comment := strings.TrimSpace(in.Comment)
	if len(comment) > MaxComment {
		return access.Request{}, access.Errorf(access.CodeInvalid, "The reason is %d characters long; the limit is %d.", len(comment), MaxComment)
	}
	actor := personOf(u, in.SlackID)
	// The right to decide is re-checked at the click, outside the store
	// transaction (no network call inside one): the policy in force must still
	// hold the request, and the step's rule, resolved against the IdP now,
	// must still name the clicker (a candidate at the moment they click, not
	// only at submission).
	var seen access.Request
	var polHash string // the policy version in the store at the check; the update refuses if it moved
	var seenAs actingFor
	var seenWhy error
	if err := s.store.View(func(tx Tx) error {
		var err error
		if polHash, err = tx.Cursor("policy.hash"); err != nil {
			return err
		}
		if seen, err = tx.Request(in.RequestID); err != nil {
			return err
		}
		dels, err := delegationsIndexed(tx)
		if err != nil {
			return err
		}
		seenAs, seenWhy = mayDecideAs(&seen, actor, in.Step, dels, s.clock.Now())
		return nil
	}); err != nil {
		return access.Request{}, err
	}
	var orphan string // why the policy in force no longer holds the request
	var recheck error // the IdP/policy re-check's refusal
	// checked: the snapshot let the clicker decide, so the re-checks ran.
	// A delegate's click is re-checked for the person they decide for: that
	// person must still be an approver of the step now.
	checked := seenWhy == nil
	if checked {
		if orphan = orphaned(s.Policy(), &seen); orphan == "" {
			if err := s.stillApprover(ctx, &seen, seenAs.principal); err != nil {
				if access.CodeOf(err) != access.CodeForbidden {
					return access.Request{}, err // never approve on an IdP error
				}
				if seenAs.delegation != nil {
					err = access.Errorf(access.CodeForbidden, "%s, for whom you would decide as their delegate, is no longer an approver of step %d (%s) as the identity provider and the policy in force stand now, so you cannot decide it.",
						seenAs.principal.Label(), seen.Current+1, seen.Step().Rule)
				}
				recheck = err
			}
		}
	}
	// approval_mfa: once the click is checked, the push goes out before the
	// transaction (no network call inside one), unless one is in flight
	// (the transaction then refuses the second click).
	var challenge *access.Challenge
	if st := seen.Step(); in.Approve && checked && orphan == "" && recheck == nil && st != nil && st.MFA &&
		seen.ChallengePending(s.clock.Now()) == nil {
		c, err := s.sendChallenge(ctx, &seen, actor, comment)
		if access.CodeOf(err) == access.CodeInvalid || access.CodeOf(err) == access.CodeNotFound {
			// No push can reach this approver (no Okta Verify factor): the
			// person acted and was refused, so it is audited.
			_ = s.audit(event(access.EvMFAFailed, actor.Email, &seen, map[string]any{
				"step": seen.Current + 1, "rule": st.Rule, "outcome": "not_sent", "why": access.MessageOf(err)}))
		}
		if err != nil {
			return access.Request{}, err
		}
		challenge = &c
	}
	var r access.Request
	var refusal error
	var ticket refusalTicket // the refusal's audit admission, decided once
	var as actingFor
	err = s.updateTicketed(&ticket, func(tx Tx) error {
		refusal = nil // a retried attempt (PostgreSQL serialization failure) decides afresh
		var err error
		r, err = tx.Request(in.RequestID)
		if err != nil {
			return err
		}
		// The delegation is read again here: it must be in force at the
		// click's commit, not only when the DM was sent or the snapshot read.
		dels, err := delegationsIndexed(tx)
		if err != nil {
			return err
		}
		var why error
		as, why = mayDecideAs(&r, actor, in.Step, dels, tx.Now())
		if errors.Is(why, errNotCandidate) {
			// A delegation that ended (off, replaced, expired and recorded)
			// while the DM was out: say so rather than "not an approver".
			d, err := lapsedDelegation(tx, &r, actor)
			if err != nil {
				return err
			}
			if d != nil {
				why = lapsedMessage(d)
			}
		}
		if why == nil && (r.Current != seen.Current || r.State != seen.State) {
			why = access.Errorf(access.CodeConflict, "This request moved on while keycard checked your click; look at it again.")
		}
		if why == nil && (!checked || !as.principal.Same(seenAs.principal) || (as.delegation == nil) != (seenAs.delegation == nil)) {
			// The snapshot refused the clicker, so the IdP re-check did not
			// run, but the request changed since (an escalation committed),
			// or the clicker now decides for someone else than was checked:
			// never approve without the re-check.
			why = access.Errorf(access.CodeConflict, "The request changed while keycard checked your click; try again.")
		}
		if why == nil && orphan != "" {
			refusal = access.Errorf(access.CodeConflict, "This request was cancelled: %s.", orphanMessage(&r, orphan))
			if err := s.appendRefusal(tx, &ticket, event(access.EvDecisionRefused, actor.Email, &r, map[string]string{"why": access.MessageOf(refusal)})); err != nil {
				return err
			}
			return cancelOrphan(tx, &r, orphan)
		}
		if why == nil {
			// A policy change committed while the click was checked: it was
			// checked against a policy that may no longer be in force.
			h, err := tx.Cursor("policy.hash")
			if err != nil {
				return err
			}
			if h != polHash {
				why = access.Errorf(access.CodeConflict, "The access policy changed while keycard checked your click; try again.")
			}
		}
		if why == nil {
			why = recheck
		}
		if why != nil {
			if access.CodeOf(why) == access.CodeForbidden {
				// Audit the refused click; nothing else changes.
				refusal = why
				return s.appendRefusal(tx, &ticket, event(access.EvDecisionRefused, actor.Email, &r, map[string]string{"why": access.MessageOf(why)}))
			}
			return why
		}
		now := tx.Now()
		rule := r.Step().Rule
		idx := r.Current
		if !in.Approve {
			if err := r.Deny(actor, comment, now); err != nil {
				return err
			}
			if err := recordDelegated(tx, &r, idx, as); err != nil {
				return err
			}
			if err := tx.PutRequest(&r); err != nil {
				return err
			}
			_, err := tx.Append(event(access.EvRequestDenied, actor.Email, &r, delegatedDetail(map[string]any{"step": r.Current + 1, "rule": rule, "reason": comment}, as)))
			return err
		}
		if r.Step().MFA {
			// approval_mfa: the click sends a push; the step is decided
			// when the scheduler sees the approver pass it.
			// A delegate's push goes to the delegate (the clicker); whom
			// they decide for rides on the challenge to its outcome.
			if as.delegation != nil && challenge != nil { // nil: a push already waits; beginChallenge refuses
				challenge.OnBehalfOf, challenge.Delegation = as.principal, as.delegation.ID
			}
			if challenge != nil {
				challenge.PolicyHash = polHash
			}
			return s.beginChallenge(tx, &r, actor, challenge)
		}
		complete, err := r.ApproveStep(actor, comment, now)
		if err != nil {
			return err
		}
		return s.stepApproved(tx, &r, idx, actor.Email, rule, comment, "", complete, as)
	})
	if err != nil {
		return access.Request{}, err
	}
	if refusal != nil {
		return r, refusal
	}
	if r.State == access.StateProvisioning || r.State == access.StateScheduled {
		s.metrics.Approval.Observe(r.DecidedAt.Sub(r.CreatedAt).Seconds())
	}
	return r, nil
}

// stepApproved stores r after ApproveStep (or a passed MFA challenge) and
// appends its event: step.approved with the next deadlines, or the request's
// approval when the chain is complete. factor is the MFA factor that
// verified the approval, "" without MFA; as is whom the approver decided
// step idx for (a delegation), recorded on the step and in the events.
func (s *Service) stepApproved(tx Tx, r *access.Request, idx int, actor, rule, comment, factor string, complete bool, as actingFor) error {
	if err := recordDelegated(tx, r, idx, as); err != nil {
		return err
	}
	now := tx.Now()
	if !complete {
		p, ok := s.Policy().Policy(r.Policy)
		if ok && p.RemindAfter > 0 {
			r.RemindAt = now.Add(p.RemindAfter)
		}
		if ok && p.EscalateAfter > 0 && len(p.EscalateTo) > 0 {
			r.EscalateAt = now.Add(p.EscalateAfter)
		}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		detail := map[string]any{"step": r.Current, "of": len(r.Steps), "rule": rule, "comment": comment}
		if factor != "" {
			detail["mfa"] = factor
		}
		_, err := tx.Append(event(access.EvStepApproved, actor, r, delegatedDetail(detail, as)))
		return err
	}
	how := fmt.Sprintf("step %d of %d", r.Current+1, len(r.Steps))
	if as.delegation != nil {
		how += fmt.Sprintf(" for %s (delegation %s from %s to %s)", as.principal.Email, as.delegation.ID, as.delegation.From.Email, as.delegation.To.Email)
	}
	if factor != "" {
		how += ", MFA-verified (" + factor + ")"
	}
	return approve(tx, r, actor, how)
}

// errNotCandidate marks mayDecide's refusal of someone who is not a
// candidate of the step (nor deciding for one).
var errNotCandidate = errors.New("not a candidate of the step")

// mayDecide says why actor may not decide r's current step now for
// principal (actor themselves, or the candidate whose delegate actor is),
// or nil.
func mayDecide(r *access.Request, actor, principal access.Person, step int) error {
	if r.State != access.StatePending {
		last := lastDecision(r)
		if last != "" {
			return access.Errorf(access.CodeConflict, "This request is already %s (%s).", r.ExportStatus(), last)
		}
		return access.Errorf(access.CodeConflict, "This request is already %s.", r.ExportStatus())
	}
	delegated := !principal.Same(actor)
	if actor.Same(r.Requester) {
		if delegated {
			return access.Errorf(access.CodeForbidden, "You cannot decide your own request, not even as %s's delegate.", principal.Label())
		}
		return access.Errorf(access.CodeForbidden, "You cannot decide your own request.")
	}
	if step >= 0 && step != r.Current {
		if step < r.Current && step < len(r.Steps) && r.Steps[step].Decision != access.DecisionNone {
			d := r.Steps[step]
			return access.Errorf(access.CodeConflict, "Step %d was already %s by %s.", step+1, d.Decision, d.DeciderLabel())
		}
		return access.Errorf(access.CodeConflict, "This button is out of date: the request is at step %d of %d.", r.Current+1, len(r.Steps))
	}
	st := r.Step()
	if st == nil {
		return access.Errorf(access.CodeConflict, "This request has no step waiting for a decision.")
	}
	if !st.IsCandidate(principal) {
		return access.Wrap(access.CodeForbidden, errNotCandidate, "You are not an approver of step %d (%s) of this request.", r.Current+1, st.Rule)
	}
	for i := 0; i < r.Current; i++ {
		prev := &r.Steps[i]
		if prev.DecidedBy.Same(actor) || (prev.OnBehalfOf.Email != "" && prev.OnBehalfOf.Same(actor)) {
			return access.Errorf(access.CodeForbidden, "You already approved step %d of this request; another person must decide step %d.", i+1, r.Current+1)
		}
		if delegated && (prev.DecidedBy.Same(principal) || (prev.OnBehalfOf.Email != "" && prev.OnBehalfOf.Same(principal))) {
			return access.Errorf(access.CodeForbidden, "%s already approved step %d of this request, so their delegate cannot decide step %d; another approver must.", principal.Label(), i+1, r.Current+1)
		}
	}
	return nil
}

// Why the policy in force no longer holds a pending request (the
// request.cancelled reason).
const (
	OrphanPolicyRemoved = "policy removed"
	OrphanOutOfScope    = "group out of scope"
	OrphanGroupChanged  = "policy group changed"
)

// orphaned says why set no longer holds r (one of the Orphan reasons), or "".
func orphaned(set *policy.Set, r *access.Request) string {
	p, ok := set.Policy(r.Policy)
	if !ok {
		return OrphanPolicyRemoved
	}
	if !set.Connectors[r.Connector].InScope(r.Group) {
		return OrphanOutOfScope
	}
	if p.Group != r.Group || p.ConnectorName() != r.Connector {
		return OrphanGroupChanged
	}
	return ""
}

func orphanMessage(r *access.Request, why string) string {
	switch why {
	case OrphanPolicyRemoved:
		return fmt.Sprintf("policy %s no longer exists in the policy in force", r.Policy)
	case OrphanOutOfScope:
		return fmt.Sprintf("group %s is no longer inside connector %s's scope", r.Group, r.Connector)
	}
	return fmt.Sprintf("policy %s no longer grants group %s", r.Policy, r.Group)
}

// cancelOrphan ends a pending request the policy in force no longer holds:
// cancelled, with the reason, in tx (the notifier updates its DMs).
func cancelOrphan(tx Tx, r *access.Request, why string) error {
	if err := r.Cancel(tx.Now()); err != nil {
		return err
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	_, err := tx.Append(event(access.EvRequestCancelled, access.ActorKeycard, r, map[string]string{"reason": why, "message": orphanMessage(r, why)}))
	return err
}

// cancelOrphans ends every pending request the policy in force no longer
// holds, right after a reload, so their approvers' DMs stop offering
// buttons. A failure is logged: Decide refuses such a request anyway.
func (s *Service) cancelOrphans() {
	set := s.Policy()
	var pending []access.Request
	if err := s.store.View(func(tx Tx) error {
		var err error
		pending, err = tx.InState(access.StatePending)
		return err
	}); err != nil {
		s.log.Warn("after a policy change: could not list pending requests", "err", err)
		return
	}
	for i := range pending {
		if orphaned(set, &pending[i]) == "" {
			continue
		}
		err := s.transition(pending[i].ID, func(tx Tx, r *access.Request) error {
			why := orphaned(set, r)
			if r.State != access.StatePending || why == "" {
				return errStale
			}
			return cancelOrphan(tx, r, why)
		})
		if err != nil {
			s.log.Warn("after a policy change: could not cancel a request its policy no longer holds", "request", pending[i].ID, "err", err)
		}
	}
}

// stillApprover re-resolves r's current step against the policy in force
// and the IdP now: a group step needs the clicker in the group now, a
// manager step the requester's manager now, a user step the policy in force
// still naming them; an escalated step also accepts whom escalate_to names
// now. A refusal has CodeForbidden; an IdP failure is returned with a
// retryable code and the person is asked to try again.
func (s *Service) stillApprover(ctx context.Context, r *access.Request, actor access.Person) error {
	set := s.Policy()
	p, ok := set.Policy(r.Policy)
	if !ok {
		return access.Errorf(access.CodeForbidden, "Policy %s no longer exists in the policy in force.", r.Policy)
	}
	st := r.Step()
	var rules []policy.Rule
	if r.Current < len(p.Approval) && !p.Auto {
		rules = append(rules, p.Approval[r.Current])
	}
	if st != nil && st.Escalated {
		rules = append(rules, p.EscalateTo...)
	}
	rules = conflictStepRules(set, r, rules) // conflicts.go: the admins' separation-of-duties step
	if len(rules) == 0 {
		return access.Errorf(access.CodeForbidden, "The policy in force has no step %d for %s, so nobody can approve it now.", r.Current+1, p.Name)
	}
	retry := func(err error) error {
		code := access.CodeUnavailable
		if access.CodeOf(err) == access.CodeRateLimited {
			code = access.CodeRateLimited
		}
		return access.Wrap(code, err, "Could not confirm with the identity provider that you may still approve this request; nothing was recorded. Try again in a minute.")
	}
	dir, err := s.directory()
	if err != nil {
		return retry(err)
	}
	requester, err := userOf(ctx, dir, r.Requester)
	if access.CodeOf(err) == access.CodeNotFound {
		return access.Errorf(access.CodeForbidden, "%s is no longer in the identity provider, so this request cannot be approved.", r.Requester.Label())
	}
	if err != nil {
		return retry(err)
	}
	for _, rule := range rules {
		people, err := set.ResolveRules(ctx, []policy.Rule{rule}, requester, dir)
		if access.CodeOf(err) == access.CodeNoApprover {
			continue
		}
		if err != nil {
			return retry(err)
		}
		for _, c := range people {
			if c.Same(actor) {
				return nil
			}
		}
	}
	switch first := rules[0]; first.Kind {
	case policy.RuleManager:
		return access.Errorf(access.CodeForbidden, "The identity provider no longer lists you as %s's manager, so you cannot decide step %d.", r.Requester.Label(), r.Current+1)
	case policy.RuleGroup:
		return access.Errorf(access.CodeForbidden, "You are no longer a member of %s, so you cannot decide step %d.", first.Group, r.Current+1)
	default:
		return access.Errorf(access.CodeForbidden, "The policy in force no longer names you as an approver of step %d (%s).", r.Current+1, first)
	}
}

// lastDecision describes who decided last, e.g. "approved by Carol".
func lastDecision(r *access.Request) string {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if d := r.Steps[i]; d.Decision != access.DecisionNone {
			return fmt.Sprintf("%s by %s", d.Decision, d.DeciderLabel())
		}
	}
	return ""
}

// Cancel withdraws a pending request; only its requester may. A request
// already approved for a scheduled start that has not come is withdrawn
// too: revoked by its requester (it was decided, so it is no longer merely
// cancelled), with nothing to remove.
func (s *Service) Cancel(ctx context.Context, id, slackID, email string) (access.Request, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return access.Request{}, err
	}
	var r access.Request
	err = s.update(func(tx Tx) error {
		var err error
		if r, err = tx.Request(id); err != nil {
			return err
		}
		if !r.Requester.Same(u.Person()) {
			return access.Errorf(access.CodeForbidden, "Only the requester can cancel %s.", id)
		}
		if r.State == access.StateScheduled {
			return withdraw(tx, &r, access.ReasonRevoked, personOf(u, slackID), u.Email, "cancelled by the requester before the scheduled start")
		}
		if err := r.Cancel(tx.Now()); err != nil {
			return err
		}
		if err := tx.PutRequest(&r); err != nil {
			return err
		}
		_, err = tx.Append(event(access.EvRequestCancelled, u.Email, &r, nil))
		return err
	})
	return r, err
}
