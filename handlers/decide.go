package handlers

import (
	"context"
	"fmt"
	"strings"

	"keycard/access"
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
	var r access.Request
	var refusal error
	err = s.update(func(tx Tx) error {
		var err error
		r, err = tx.Request(in.RequestID)
		if err != nil {
			return err
		}
		if why := mayDecide(&r, actor, in.Step); why != nil {
			if access.CodeOf(why) == access.CodeForbidden {
				// Audit the refused click; nothing else changes.
				refusal = why
				_, err := tx.Append(event(access.EvDecisionRefused, actor.Email, &r, map[string]string{"why": access.MessageOf(why)}))
				return err
			}
			return why
		}
		now := tx.Now()
		st := r.Step()
		st.DecidedBy, st.DecidedAt, st.Comment = actor, now, comment
		if !in.Approve {
			st.Decision = access.DecisionDenied
			r.State = access.StateDenied
			r.DecidedAt = now
			r.RemindAt, r.EscalateAt, r.ExpiresAt = zeroTime, zeroTime, zeroTime
			if err := tx.PutRequest(&r); err != nil {
				return err
			}
			_, err := tx.Append(event(access.EvRequestDenied, actor.Email, &r, map[string]any{"step": r.Current + 1, "rule": st.Rule, "reason": comment}))
			return err
		}
		st.Decision = access.DecisionApproved
		if r.Current+1 < len(r.Steps) {
			r.Current++
			p, ok := s.Policy().Policy(r.Policy)
			if ok && p.RemindAfter > 0 {
				r.RemindAt = now.Add(p.RemindAfter)
			}
			if ok && p.EscalateAfter > 0 && len(p.EscalateTo) > 0 {
				r.EscalateAt = now.Add(p.EscalateAfter)
			}
			if err := tx.PutRequest(&r); err != nil {
				return err
			}
			_, err := tx.Append(event(access.EvStepApproved, actor.Email, &r, map[string]any{"step": r.Current, "of": len(r.Steps), "rule": st.Rule, "comment": comment}))
			return err
		}
		return approve(tx, &r, actor.Email, fmt.Sprintf("step %d of %d", r.Current+1, len(r.Steps)))
	})
	if err != nil {
		return access.Request{}, err
	}
	if refusal != nil {
		return r, refusal
	}
	if r.State == access.StateProvisioning {
		s.metrics.Approval.Observe(r.DecidedAt.Sub(r.CreatedAt))
	}
	return r, nil
}

// mayDecide says why actor may not decide r's current step now, or nil.
func mayDecide(r *access.Request, actor access.Person, step int) error {
	if r.State != access.StatePending {
		last := lastDecision(r)
		if last != "" {
			return access.Errorf(access.CodeConflict, "This request is already %s (%s).", r.ExportStatus(), last)
		}
		return access.Errorf(access.CodeConflict, "This request is already %s.", r.ExportStatus())
	}
	if actor.Same(r.Requester) {
		return access.Errorf(access.CodeForbidden, "You cannot decide your own request.")
	}
	if step >= 0 && step != r.Current {
		if step < r.Current && step < len(r.Steps) && r.Steps[step].Decision != access.DecisionNone {
			d := r.Steps[step]
			return access.Errorf(access.CodeConflict, "Step %d was already %s by %s.", step+1, d.Decision, d.DecidedBy.Label())
		}
		return access.Errorf(access.CodeConflict, "This button is out of date: the request is at step %d of %d.", r.Current+1, len(r.Steps))
	}
	st := r.Step()
	if st == nil {
		return access.Errorf(access.CodeConflict, "This request has no step waiting for a decision.")
	}
	if !st.IsCandidate(actor) {
		return access.Errorf(access.CodeForbidden, "You are not an approver of step %d (%s) of this request.", r.Current+1, st.Rule)
	}
	for i := 0; i < r.Current; i++ {
		if r.Steps[i].DecidedBy.Same(actor) {
			return access.Errorf(access.CodeForbidden, "You already approved step %d of this request; another person must decide step %d.", i+1, r.Current+1)
		}
	}
	return nil
}

// lastDecision describes who decided last, e.g. "approved by Carol".
func lastDecision(r *access.Request) string {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if d := r.Steps[i]; d.Decision != access.DecisionNone {
			return fmt.Sprintf("%s by %s", d.Decision, d.DecidedBy.Label())
		}
	}
	return ""
}

// Cancel withdraws a pending request; only its requester may.
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
		if r.State != access.StatePending {
			return access.Errorf(access.CodeConflict, "%s is already %s.", id, r.ExportStatus())
		}
		r.State = access.StateCancelled
		r.DecidedAt = tx.Now()
		r.RemindAt, r.EscalateAt, r.ExpiresAt = zeroTime, zeroTime, zeroTime
		if err := tx.PutRequest(&r); err != nil {
			return err
		}
		_, err = tx.Append(event(access.EvRequestCancelled, u.Email, &r, nil))
		return err
	})
	return r, err
}
