package access

import "time"

// The request's transitions (SPEC "Lifecycle"), one method each. A method
// refuses a transition its state does not allow with a *Error of
// CodeConflict (the request moved on: someone else decided, the scheduler
// got there first) or CodeInvalid (the call makes no sense for this
// request), and changes nothing then. Otherwise it does the transition's
// bookkeeping on r; the caller stores r and appends its audit event in the
// same transaction.
//
//	pending      -> pending (ApproveStep, not the last; Remind; Escalate) | provisioning (Approve)
//	             |  scheduled (Approve, StartAt still ahead)
//	             |  denied (Deny) | cancelled (Cancel) | timed_out (TimeOut)
//	scheduled    -> provisioning (Start, at StartAt) | revoked (Withdraw) | failed (Fail)
//	provisioning -> active (Activate) | failed (Fail) | deprovisioning (BeginEnding)
//	active       -> deprovisioning (BeginEnding); Extend hands it to an extension
//	deprovisioning -> expired | revoked (End, by EndReason)

// refuse is the conflict a transition from r's state reports.
func (r *Request) refuse() *Error {
	return Errorf(CodeConflict, "%s is already %s.", r.ID, r.ExportStatus())
}

// closePending ends r's wait for decisions: its state, when it was decided,
// and no deadline left (timeout, reminder, escalation).
func (r *Request) closePending(to State, now time.Time) error {
	if r.State != StatePending {
		return r.refuse()
	}
	r.State = to
	r.DecidedAt = now
	r.RemindAt, r.EscalateAt, r.ExpiresAt, r.MFAPollAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	for i := range r.Steps {
		r.Steps[i].Challenge = nil
	}
	return nil
}

// decideStep records by's decision on the current step.
func (r *Request) decideStep(d Decision, by Person, comment string, now time.Time) error {
	if r.State != StatePending {
		return r.refuse()
	}
	st := r.Step()
	if st == nil {
		return Errorf(CodeConflict, "This request has no step waiting for a decision.")
	}
	st.Decision, st.DecidedBy, st.DecidedAt, st.Comment = d, by, now, comment
	return nil
}

// ApproveStep approves the current step on by's behalf. It reports whether
// the chain is complete: then the caller approves the request (Approve);
// otherwise the next step is current and the request stays pending.
// Who may decide is the caller's check (the step's candidates, the policy
// and the IdP now).
func (r *Request) ApproveStep(by Person, comment string, now time.Time) (complete bool, err error) {
	if err := r.decideStep(DecisionApproved, by, comment, now); err != nil {
		return false, err
	}
	if r.Current+1 < len(r.Steps) {
		r.Current++
		return false, nil
	}
	return true, nil
}

// Deny denies the current step on by's behalf, which denies the request.
func (r *Request) Deny(by Person, comment string, now time.Time) error {
	if err := r.decideStep(DecisionDenied, by, comment, now); err != nil {
		return err
	}
	return r.closePending(StateDenied, now)
}

// Approve moves a pending request whose every step is approved (or that has
// none: auto approval) to provisioning: the IdP add is to be queued. A
// request whose StartAt is still ahead moves to scheduled instead: nothing
// is queued until Start.
func (r *Request) Approve(now time.Time) error {
	if r.State != StatePending {
		return r.refuse()
	}
	for i := range r.Steps {
		if r.Steps[i].Decision != DecisionApproved {
			return Errorf(CodeInvalid, "%s cannot be approved: step %d of %d is not approved.", r.ID, i+1, len(r.Steps))
		}
	}
	to := StateProvisioning
	if r.StartAt.After(now) {
		to = StateScheduled
	}
	if err := r.closePending(to, now); err != nil {
		return err
	}
	r.Current = len(r.Steps)
	return nil
}

// Start moves a scheduled request whose start has come to provisioning: the
// IdP add is to be queued now. Before StartAt it is refused (CodeConflict).
func (r *Request) Start(now time.Time) error {
	if r.State != StateScheduled {
		return r.refuse()
	}
	if r.StartAt.After(now) {
		return Errorf(CodeConflict, "%s is not due to start until %s.", r.ID, r.StartAt.UTC().Format(time.RFC3339))
	}
	r.State = StateProvisioning
	r.StartRetryAt = time.Time{}
	return nil
}

// DelayStart records that a due start could not be checked (the identity
// provider did not answer) and is to be tried again at next. StartAt, the
// start the requester asked for, never moves.
func (r *Request) DelayStart(next time.Time) error {
	if r.State != StateScheduled {
		return r.refuse()
	}
	r.StartRetryAt = next
	return nil
}

// Withdraw ends a scheduled grant before its start, for reason, by a person
// (or by keycard: by is zero). Nothing was ever added at the IdP, so
// nothing is removed: the grant is revoked at once, with no access_start,
// no access_end and no deprovisioned_at.
func (r *Request) Withdraw(reason Reason, by Person, now time.Time) error {
	if r.State != StateScheduled {
		return r.refuse()
	}
	r.State = StateRevoked
	r.EndReason = reason
	r.EndedBy = by
	r.EndedAt = now
	r.StartRetryAt = time.Time{}
	return nil
}

// NeverStarted reports whether r is a grant that ended before its access
// began: approved for a scheduled start and withdrawn (or failed) first.
func (r *Request) NeverStarted() bool {
	return r.ProvisionedAt.IsZero() && r.DeprovisionedAt.IsZero() && !r.EndedAt.IsZero() &&
		(r.State == StateRevoked || r.State == StateExpired)
}

// Cancel withdraws a pending request (its requester, offboarding, a policy
// that no longer holds it, the end of the grant it would extend).
func (r *Request) Cancel(now time.Time) error { return r.closePending(StateCancelled, now) }

// TimeOut ends a pending request nobody decided by its deadline
// (request_ttl). Before the deadline it is refused: the deadline moved.
func (r *Request) TimeOut(now time.Time) error {
	if r.State == StatePending && r.ExpiresAt.After(now) {
		return Errorf(CodeConflict, "%s is not due to time out until %s.", r.ID, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return r.closePending(StateTimedOut, now)
}

// Activate records that the IdP confirmed the membership at now (or, when
// assumedFrom is set and earlier, that keycard assumes it began at the first
// add attempt, whose outcome it could not know). It returns the moment the
// grant's clock starts from; the caller schedules its end from there.
func (r *Request) Activate(now time.Time, idpEventID string, assumedFrom time.Time) (start time.Time, err error) {
	if r.State != StateProvisioning {
		return time.Time{}, r.refuse()
	}
	r.State = StateActive
	r.ProvisionedAt = now
	r.AddEventID = idpEventID
	start = now
	if !assumedFrom.IsZero() && assumedFrom.Before(now) {
		start = assumedFrom
		r.StartAssumed = true
		r.StartedAt = assumedFrom
	}
	return start, nil
}

// Fail records that provisioning gave up at now (or, for a scheduled grant,
// that the re-check at its start refused it): nothing was granted.
func (r *Request) Fail(why string, now time.Time) error {
	if r.State != StateProvisioning && r.State != StateScheduled {
		return r.refuse()
	}
	r.State = StateFailed
	r.StartRetryAt = time.Time{}
	r.FailReason = why
	r.EndsAt = time.Time{}
	r.EndedAt = now // when provisioning gave up
	return nil
}

// BeginEnding ends an active (or still provisioning) grant at now for
// reason, by a person or by keycard (by is zero): the IdP removal is to be
// queued, and the grant holds its membership until it is confirmed (End).
// EndsAt stays the scheduled end: access_end is min(EndsAt, EndedAt), and a
// scheduled time that never changes keeps closed-period exports stable.
func (r *Request) BeginEnding(reason Reason, by Person, now time.Time) error {
	if r.State != StateActive && r.State != StateProvisioning {
		return r.refuse()
	}
	r.EndReason = reason
	r.EndedBy = by
	r.EndedAt = now
	r.WarnAt = time.Time{}
	r.State = StateDeprovisioning
	return nil
}

// End records that the IdP confirmed the removal (or that none was needed)
// at now: the grant is expired when time ended it, revoked otherwise.
func (r *Request) End(now time.Time, idpEventID string) error {
	if r.State != StateDeprovisioning {
		return r.refuse()
	}
	r.DeprovisionedAt = now
	r.RemoveEventID = idpEventID
	r.State = StateRevoked
	if r.EndReason == ReasonExpired {
		r.State = StateExpired
	}
	return nil
}

// Extend hands an active grant over to its approved extension ext (a
// request id): the extension continues where this grant ends and takes over
// the expiring-soon notice.
func (r *Request) Extend(ext string) error {
	if r.State != StateActive {
		return r.refuse()
	}
	if ext == "" || ext == r.ID {
		return Errorf(CodeInvalid, "%s cannot be extended by %q.", r.ID, ext)
	}
	r.ExtendedBy = ext
	r.WarnAt = time.Time{}
	return nil
}

// Remind records that the current step's approvers were reminded at now,
// and schedules the next reminder at next (zero: none). A reminder at or
// after the timeout is dropped: the timeout comes first.
func (r *Request) Remind(now, next time.Time) error {
	if r.State != StatePending {
		return r.refuse()
	}
	if r.RemindAt.IsZero() || r.RemindAt.After(now) {
		return Errorf(CodeConflict, "%s has no reminder due.", r.ID)
	}
	if !next.IsZero() && !r.ExpiresAt.IsZero() && !next.Before(r.ExpiresAt) {
		next = time.Time{}
	}
	r.RemindAt = next
	if st := r.Step(); st != nil {
		st.Reminded = now
	}
	return nil
}

// Escalate adds the escalation's approvers (escalate_to, resolved now) to
// the current step at now, leaving out the requester and those already
// asked, and returns the emails of those it added. The escalation is done
// even when it adds nobody.
func (r *Request) Escalate(extra []Person, now time.Time) (added []string, err error) {
	if r.State != StatePending {
		return nil, r.refuse()
	}
	if r.EscalateAt.IsZero() || r.EscalateAt.After(now) {
		return nil, Errorf(CodeConflict, "%s has no escalation due.", r.ID)
	}
	r.EscalateAt = time.Time{}
	added = []string{}
	st := r.Step()
	if st == nil {
		return added, nil
	}
	for _, c := range extra {
		if c.Same(r.Requester) || st.IsCandidate(c) {
			continue
		}
		st.Candidates = append(st.Candidates, c)
		added = append(added, c.Email)
	}
	st.Escalated = true
	st.EscalatedAt = now
	st.Added = len(added)
	return added, nil
}
