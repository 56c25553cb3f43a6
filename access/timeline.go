package access

import "time"

// The timeline rules: when a request's lifecycle and its access began and
// ended, and how it stood at a past moment. The access export shows them
// (access_start, access_end, the inclusion rule) and a closed period's
// export must never change, so they are pure functions of the record.

// LifecycleEnd is when r's lifecycle ended (zero while it goes on).
func (r *Request) LifecycleEnd() time.Time {
	switch r.State {
	case StateExpired, StateRevoked:
		if r.NeverStarted() {
			return r.EndedAt // withdrawn before its scheduled start: nothing to remove
		}
		return r.DeprovisionedAt
	case StateDenied, StateCancelled, StateTimedOut:
		return r.DecidedAt
	case StateFailed:
		if !r.EndedAt.IsZero() {
			return r.EndedAt // when provisioning gave up
		}
		if !r.DecidedAt.IsZero() {
			return r.DecidedAt
		}
		return r.CreatedAt
	}
	return time.Time{}
}

// AccessStart is when this grant's time began: when the IdP confirmed it,
// or for an extension that continues an earlier grant, where that grant
// ended (its clock starts there, not at the confirmation).
//
// When keycard could not know when the add took effect (it crashed or timed
// out after sending it), the start is the first add attempt
// (Request.StartAssumed): the approval_chain cell then ends with
// "access start assumed: …"; otherwise the start was confirmed by the IdP.
func (r *Request) AccessStart() time.Time {
	base := r.ProvisionedAt
	if r.StartAssumed && !r.StartedAt.IsZero() {
		base = r.StartedAt
	}
	if base.IsZero() || r.EndsAt.IsZero() || r.Duration <= 0 {
		return base
	}
	if s := r.EndsAt.Add(-r.Duration); s.After(base) {
		return s
	}
	return base
}

// AccessEnd is when access ended or is scheduled to end: the scheduled end,
// or the moment it was ended early (revoked, offboarded).
func (r *Request) AccessEnd() time.Time {
	if !r.EndedAt.IsZero() && !r.EndsAt.IsZero() && r.EndedAt.Before(r.EndsAt) {
		return r.EndedAt
	}
	return r.EndsAt
}

// ChangedSince reports whether anything in r's lifecycle happened at or
// after t: a decision, an escalation, provisioning or an ending.
func (r *Request) ChangedSince(t time.Time) bool {
	for _, x := range []time.Time{r.DecidedAt, r.ProvisionedAt, r.EndedAt, r.DeprovisionedAt} {
		if !x.IsZero() && !x.Before(t) {
			return true
		}
	}
	for i := range r.Steps {
		if d := r.Steps[i].DecidedAt; !d.IsZero() && !d.Before(t) {
			return true
		}
		if e := r.Steps[i].EscalatedAt; !e.IsZero() && !e.Before(t) {
			return true
		}
	}
	return false
}

// AsOf returns r as it stood just before t: decisions, provisioning and
// endings at or after t are undone and the state is derived from what had
// happened by then. The scheduled end (EndsAt) never changes after
// activation, so it is kept.
func (r *Request) AsOf(t time.Time) Request {
	c := *r
	c.Steps = make([]Step, len(r.Steps))
	copy(c.Steps, r.Steps)
	before := func(x time.Time) bool { return !x.IsZero() && x.Before(t) }
	c.Current = len(c.Steps)
	for i := range c.Steps {
		st := &c.Steps[i]
		if st.Escalated && !st.EscalatedAt.IsZero() && !before(st.EscalatedAt) {
			// Escalated after t: the approvers it added were not asked yet.
			if n := len(st.Candidates) - st.Added; n >= 0 {
				st.Candidates = st.Candidates[:n:n]
			}
			st.Escalated, st.EscalatedAt, st.Added = false, time.Time{}, 0
		}
		if st.Decision != DecisionNone && !before(st.DecidedAt) {
			st.Decision, st.DecidedBy, st.DecidedAt, st.Comment, st.MFAFactor = DecisionNone, Person{}, time.Time{}, "", ""
			st.OnBehalfOf, st.Delegation = Person{}, ""
		}
		if st.Challenge != nil && !before(st.Challenge.SentAt) {
			st.Challenge = nil // sent after t
		}
		if st.Decision == DecisionNone && c.Current == len(c.Steps) {
			c.Current = i
		}
	}
	switch {
	case before(r.DeprovisionedAt):
		// Ended and confirmed before t: as stored.
	case before(r.EndedAt) && r.State == StateFailed:
	case before(r.EndedAt) && r.NeverStarted():
		// Withdrawn before its scheduled start, and nothing to remove: as stored.
	case before(r.EndedAt):
		c.State = StateDeprovisioning // ended, removal not yet confirmed
		c.DeprovisionedAt = time.Time{}
	case before(r.ProvisionedAt):
		c.State = StateActive
		c.EndedAt, c.DeprovisionedAt, c.EndReason, c.EndedBy = time.Time{}, time.Time{}, "", Person{}
	case before(r.DecidedAt):
		if r.State != StateDenied && r.State != StateCancelled && r.State != StateTimedOut {
			c.State = StateProvisioning
			// Approved for a later start: scheduled until the start came
			// (or, withdrawn before it, until it ended).
			if r.Scheduled() && (!before(r.StartAt) || r.NeverStarted()) {
				c.State = StateScheduled
			}
			c.ProvisionedAt, c.EndsAt = time.Time{}, time.Time{}
			c.EndedAt, c.DeprovisionedAt, c.EndReason, c.EndedBy = time.Time{}, time.Time{}, "", Person{}
		}
	default:
		c.State = StatePending
		c.DecidedAt, c.ProvisionedAt, c.EndsAt = time.Time{}, time.Time{}, time.Time{}
		c.EndedAt, c.DeprovisionedAt, c.EndReason, c.EndedBy = time.Time{}, time.Time{}, "", Person{}
	}
	return c
}
