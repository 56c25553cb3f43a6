package access

import (
	"fmt"
	"time"
)

// State is where a request is in its lifecycle. A request that is approved
// carries its grant: the same record moves on to provisioning, active and an
// end. SPEC "Lifecycle":
//
//	pending -> provisioning -> active -> deprovisioning -> expired | revoked
//	pending -> scheduled -> provisioning (a start in the future: scheduled access)
//	pending -> denied | cancelled | timed_out ; provisioning -> failed
//	scheduled -> revoked (withdrawn before its start: nothing to remove) | failed
type State string

// States.
const (
	StatePending        State = "pending"
	StateScheduled      State = "scheduled"      // approved for a later start (StartAt); nothing queued at the IdP yet
	StateProvisioning   State = "provisioning"   // approved; IdP add queued, not yet confirmed
	StateActive         State = "active"         // IdP confirmed the membership; the clock runs
	StateDeprovisioning State = "deprovisioning" // ended; IdP removal queued, not yet confirmed
	StateExpired        State = "expired"
	StateRevoked        State = "revoked"
	StateDenied         State = "denied"
	StateCancelled      State = "cancelled"
	StateTimedOut       State = "timed_out"
	StateFailed         State = "failed"
)

// Terminal reports whether no further transition can happen.
func (s State) Terminal() bool {
	switch s {
	case StateExpired, StateRevoked, StateDenied, StateCancelled, StateTimedOut, StateFailed:
		return true
	}
	return false
}

// HoldsMembership reports whether a request in this state has (or may have)
// its IdP membership: keycard must not remove the membership while any
// request on the same group is in such a state.
func (s State) HoldsMembership() bool {
	return s == StateProvisioning || s == StateActive || s == StateDeprovisioning
}

// ExportStatus is the status column of the access export. A grant is never
// shown as ended while the IdP may still hold the membership, and an approved
// request whose access is not yet confirmed is still pending — so is one
// approved for a scheduled start that has not come yet (SPEC: the status
// column knows no other word for it).
func (r *Request) ExportStatus() string {
	switch r.State {
	case StateProvisioning, StateScheduled:
		return string(StatePending)
	case StateDeprovisioning:
		return string(StateActive)
	}
	return string(r.State)
}

// KindReviewRemoval is Request.Kind for an access review's removal of a
// standing or unmanaged membership.
const KindReviewRemoval = "review_removal"

// Reason is why a grant ended.
type Reason string

// Revocation reasons (SPEC "Lifecycle").
const (
	ReasonExpired    Reason = "expired"
	ReasonRevoked    Reason = "revoked"
	ReasonOffboarded Reason = "offboarded"
)

// Decision is a step's outcome.
type Decision string

// Decisions.
const (
	DecisionNone     Decision = ""
	DecisionApproved Decision = "approved"
	DecisionDenied   Decision = "denied"
)

// Step is one approval step of a request's chain, resolved to concrete
// candidates at submission. Exactly one candidate decides it.
type Step struct {
	Rule       string   `json:"rule"`                // the policy rule as written: manager, group:x, user:y, users:a;b, auto, self
	Candidates []Person `json:"candidates"`          // who may decide (requester already removed)
	Escalated  bool     `json:"escalated,omitempty"` // escalate_to approvers were added
	// EscalatedAt is when they were added, and Added how many (they are the
	// last Added Candidates): an export of a period that ended before the
	// escalation shows the step as it was.
	EscalatedAt time.Time `json:"escalated_at,omitempty"`
	Added       int       `json:"added,omitempty"`
	Decision    Decision  `json:"decision,omitempty"`   // "" while undecided
	DecidedBy   Person    `json:"decided_by,omitempty"` // who decided
	DecidedAt   time.Time `json:"decided_at,omitempty"`
	Comment     string    `json:"comment,omitempty"` // deny reason or note
	Reminded    time.Time `json:"reminded,omitempty"`
	// MFA is set when the policy asks for approval_mfa on this step: an
	// Approve counts only after the approver passes an IdP challenge.
	MFA bool `json:"mfa,omitempty"`
	// Challenge is the MFA push in flight for this step (nil when none).
	Challenge *Challenge `json:"challenge,omitempty"`
	// MFAFactor names the factor that verified the approval ("okta:push"),
	// set with Decision approved on a step with MFA.
	MFAFactor string `json:"mfa_factor,omitempty"`
	// MFANote says how the last challenge of this step failed (rejected,
	// timed out), for the approval DM; cleared by the next challenge.
	MFANote string `json:"mfa_note,omitempty"`
	// OnBehalfOf is the candidate DecidedBy decided for, under delegation
	// Delegation (its id), when DecidedBy was not a candidate themselves but
	// OnBehalfOf's delegate (issue 15 item 2). Empty for a direct decision.
	OnBehalfOf Person `json:"on_behalf_of,omitzero"`
	Delegation string `json:"delegation,omitempty"`
}

// Challenge is a pending MFA push sent to an approver who clicked Approve.
type Challenge struct {
	Approver Person    `json:"approver"`
	Factor   string    `json:"factor"`  // e.g. "okta:push"
	Ref      string    `json:"ref"`     // the connector's handle to poll (opaque)
	UserID   string    `json:"user_id"` // the approver's id at the challenging connector
	SentAt   time.Time `json:"sent_at"`
	// Deadline is when keycard stops waiting even if the IdP cannot be
	// asked: the challenge then counts as timed out.
	Deadline time.Time `json:"deadline"`
	Comment  string    `json:"comment,omitempty"` // the approval note, applied on success
	// OnBehalfOf and Delegation: the approver is a delegate deciding for
	// OnBehalfOf under that delegation (checked at the click).
	OnBehalfOf Person `json:"on_behalf_of,omitzero"`
	Delegation string `json:"delegation,omitempty"`
	// PolicyHash is the policy version in force at the click: a push
	// accepted after the policy changed does not count.
	PolicyHash string `json:"policy_hash,omitempty"`
}

// IsCandidate reports whether p may decide this step.
func (s *Step) IsCandidate(p Person) bool {
	for _, c := range s.Candidates {
		if c.Same(p) {
			return true
		}
	}
	return false
}

// Request is one access request and, once approved, its grant.
type Request struct {
	ID            string        `json:"id"`
	Policy        string        `json:"policy"`
	PolicyVersion string        `json:"policy_version"` // SHA-256 of the policy file in force at submission
	App           string        `json:"app"`
	Role          string        `json:"role"`
	Connector     string        `json:"connector"`
	Group         string        `json:"group"`
	Privileged    bool          `json:"privileged,omitempty"`
	Requester     Person        `json:"requester"`
	Duration      time.Duration `json:"duration"`
	Justification string        `json:"justification,omitempty"`
	BreakGlass    bool          `json:"break_glass,omitempty"`
	Extends       string        `json:"extends,omitempty"`     // id of the grant this request extends
	ExtendedBy    string        `json:"extended_by,omitempty"` // id of the approved extension of this grant
	RootStart     time.Time     `json:"root_start,omitempty"`  // start of the first grant of an extension chain
	// StartAt is the start the requester asked for (scheduled access); zero
	// means as soon as it is approved. Approved before StartAt, the request
	// waits in StateScheduled and is provisioned at StartAt: the grant's
	// clock starts when the IdP confirms the add, at or after StartAt.
	StartAt time.Time `json:"start_at,omitempty"`
	// StartRetryAt is when the scheduler next tries a due start whose
	// re-check could not reach the identity provider (zero: at StartAt).
	StartRetryAt time.Time `json:"start_retry_at,omitempty"`

	Steps   []Step `json:"steps"`
	Current int    `json:"current"` // index of the step being decided

	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	// Deadlines while pending.
	ExpiresAt  time.Time `json:"expires_at,omitempty"`  // request_ttl: pending -> timed_out
	RemindAt   time.Time `json:"remind_at,omitempty"`   // next reminder of the current step
	EscalateAt time.Time `json:"escalate_at,omitempty"` // escalate_after
	// MFAPollAt is when the scheduler next asks the IdP about the current
	// step's MFA challenge (zero: none pending).
	MFAPollAt time.Time `json:"mfa_poll_at,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitempty"` // final approval or denial, cancel, timeout

	ProvisionedAt   time.Time `json:"provisioned_at,omitempty"`   // IdP confirmed the add: the clock starts
	EndsAt          time.Time `json:"ends_at,omitempty"`          // when the grant ends (or ended)
	WarnAt          time.Time `json:"warn_at,omitempty"`          // expiring-soon notice; zero once sent
	EndedAt         time.Time `json:"ended_at,omitempty"`         // when keycard decided it ends
	DeprovisionedAt time.Time `json:"deprovisioned_at,omitempty"` // IdP confirmed the removal (or none was needed)
	EndReason       Reason    `json:"end_reason,omitempty"`
	EndedBy         Person    `json:"ended_by,omitempty"`
	FailReason      string    `json:"fail_reason,omitempty"`
	AddEventID      string    `json:"idp_add_event_id,omitempty"`
	// StartAssumed marks a grant whose clock started at the first add
	// attempt (StartedAt) rather than at the IdP's confirmation: keycard
	// crashed or timed out after sending the add, so it cannot know when the
	// membership began, and it assumes the earliest moment.
	StartAssumed bool      `json:"start_assumed,omitempty"`
	StartedAt    time.Time `json:"started_at,omitempty"` // the assumed start (first add attempt) when StartAssumed
	// NotOwner marks a grant whose person was already a member of the group
	// (a standing membership, not keycard's) when the add was due: keycard
	// did not add it, so it never removes it at expiry or revocation.
	NotOwner      bool   `json:"not_owner,omitempty"`
	RemoveEventID string `json:"idp_remove_event_id,omitempty"`

	// Kind is "" for a request someone made. KindReviewRemoval marks the
	// record keycard writes to carry out an access review's Revoke of a
	// membership it did not grant: it is not a request, and exports say so.
	Kind string `json:"kind,omitempty"`

	// Rev increases on every write; the store refuses a write whose Rev is
	// not the stored Rev (compare-and-swap), then increments it.
	Rev uint64 `json:"rev"`
}

// Step returns the current step, or nil when there is none (auto approval or
// the chain is complete).
func (r *Request) Step() *Step {
	if r.Current < 0 || r.Current >= len(r.Steps) {
		return nil
	}
	return &r.Steps[r.Current]
}

// NextDue is the earliest time at which the request needs attention from the
// scheduler (timeout, reminder, escalation, a scheduled start,
// expiring-soon notice, expiry), or
// the zero time when nothing is scheduled. The store indexes requests by it,
// so "what is due" is an index read that costs O(due).
func (r *Request) NextDue() time.Time {
	var due time.Time
	min := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	switch r.State {
	case StatePending:
		min(r.ExpiresAt)
		min(r.RemindAt)
		min(r.EscalateAt)
		min(r.MFAPollAt)
	case StateScheduled:
		if !r.StartRetryAt.IsZero() {
			min(r.StartRetryAt)
		} else {
			min(r.StartAt)
		}
	case StateActive:
		min(r.WarnAt)
		min(r.EndsAt)
	}
	return due
}

// Approvers returns the people who approved a step, in chain order.
func (r *Request) Approvers() []Person {
	var out []Person
	for _, s := range r.Steps {
		if s.Decision == DecisionApproved {
			out = append(out, s.DecidedBy)
		}
	}
	return out
}

// FailedAtStart begins the FailReason of a scheduled grant the re-check at
// its start refused; the requester's notice quotes the rest.
const FailedAtStart = "at its scheduled start, "

// Scheduled reports whether r asked to start later than it was approved:
// scheduled access (whether or not the start has come yet).
func (r *Request) Scheduled() bool {
	return !r.StartAt.IsZero() && (r.DecidedAt.IsZero() || r.StartAt.After(r.DecidedAt))
}

// Holder returns the grant's holder (the requester).
func (r *Request) Holder() Person { return r.Requester }

// String is for logs.
func (r *Request) String() string {
	return fmt.Sprintf("request %s (%s for %s, %s)", r.ID, r.Policy, r.Requester.Email, r.State)
}
