package access

import (
	"context"
	"time"
)

// Challenger is a connector that can ask a person to pass an MFA challenge
// at the identity provider (step-up MFA on approvals, policy key
// approval_mfa). Connectors opt in by implementing it; only Okta does (an
// Okta Verify push through the Factors API).
type Challenger interface {
	// StartChallenge sends a challenge to the user with IdP id userID. It
	// returns the factor used ("okta:push") and an opaque reference that
	// PollChallenge takes. A user with no factor that can be pushed is
	// CodeInvalid, with a message saying so.
	StartChallenge(ctx context.Context, userID string) (factor, ref string, err error)
	// PollChallenge reports where the challenge ref stands.
	PollChallenge(ctx context.Context, userID, ref string) (ChallengeResult, error)
}

// ChallengeResult is the state of an MFA challenge.
type ChallengeResult string

// Challenge states (Okta's factorResult WAITING, SUCCESS, REJECTED, TIMEOUT).
const (
	ChallengeWaiting  ChallengeResult = "waiting"
	ChallengeSuccess  ChallengeResult = "success"
	ChallengeRejected ChallengeResult = "rejected"
	ChallengeTimeout  ChallengeResult = "timeout"
	// ChallengeVoid: the push was accepted, but what was checked at the
	// click no longer holds (the approver's right, the delegation, the
	// policy).
	ChallengeVoid ChallengeResult = "void"
	// ChallengeUnverified: the push was accepted, but the identity provider
	// could not confirm the approver's right again before the push window
	// ended, so the acceptance does not count.
	ChallengeUnverified ChallengeResult = "unverified"
)

// MFA challenge transitions of the current step (approval_mfa). An approver's
// Approve on a step with MFA does not decide it: BeginChallenge records the
// push in flight; FinishChallenge approves the step on success, or clears
// the challenge (the step stays undecided, the approver may try again).

// ChallengePending reports whether the current step has an MFA push in
// flight at now (one whose deadline has passed no longer counts).
func (r *Request) ChallengePending(now time.Time) *Challenge {
	st := r.Step()
	if r.State != StatePending || st == nil || st.Challenge == nil || !now.Before(st.Challenge.Deadline) {
		return nil
	}
	return st.Challenge
}

// BeginChallenge records that c was sent for the current step, to be polled
// at pollAt. It refuses a step without MFA and a second challenge while one
// is in flight (CodeConflict naming whose phone it went to).
func (r *Request) BeginChallenge(c Challenge, pollAt time.Time) error {
	if r.State != StatePending {
		return r.refuse()
	}
	st := r.Step()
	if st == nil {
		return Errorf(CodeConflict, "This request has no step waiting for a decision.")
	}
	if !st.MFA {
		return Errorf(CodeInvalid, "Step %d of %s does not ask for MFA.", r.Current+1, r.ID)
	}
	if p := r.ChallengePending(c.SentAt); p != nil {
		return Errorf(CodeConflict, "An MFA push to %s for step %d is already waiting; approve it on the phone, or wait until it times out (%s).",
			p.Approver.Label(), r.Current+1, p.Deadline.UTC().Format("15:04 UTC"))
	}
	st.Challenge = &c
	st.MFANote = ""
	r.MFAPollAt = pollAt
	return nil
}

// FinishChallenge applies the outcome of the current step's challenge ref.
// On ChallengeSuccess the step is approved by the challenged approver and
// records the factor; complete reports, as ApproveStep does, that the chain
// is done. On rejection or timeout the challenge is cleared and the step
// stays undecided. A ref that is not the pending challenge's is a conflict
// (the request moved on, or another challenge replaced it).
func (r *Request) FinishChallenge(ref string, res ChallengeResult, now time.Time) (c Challenge, complete bool, err error) {
	st := r.Step()
	if r.State != StatePending || st == nil || st.Challenge == nil || st.Challenge.Ref != ref {
		return Challenge{}, false, Errorf(CodeConflict, "The MFA challenge %s is no longer pending.", ref)
	}
	c = *st.Challenge
	switch res {
	case ChallengeSuccess:
		st.Challenge, st.MFANote = nil, ""
		r.MFAPollAt = time.Time{}
		complete, err = r.ApproveStep(c.Approver, c.Comment, now)
		if err != nil {
			return c, false, err
		}
		st.MFAFactor = c.Factor // st is still the step just approved
		return c, complete, nil
	case ChallengeRejected, ChallengeTimeout, ChallengeVoid, ChallengeUnverified:
		st.Challenge = nil
		r.MFAPollAt = time.Time{}
		verb := "was rejected on the phone"
		switch res {
		case ChallengeTimeout:
			verb = "timed out unanswered"
		case ChallengeVoid:
			verb = "was accepted, but the approver's right, the delegation or the policy it was sent under ended meanwhile; approve again"
		case ChallengeUnverified:
			verb = "was accepted, but keycard could not confirm the approver's right with the identity provider before the push window ended; approve again"
		}
		st.MFANote = "The MFA push to " + c.Approver.Label() + " " + verb + "."
		return c, false, nil
	}
	return c, false, Errorf(CodeInvalid, "%q is not an outcome of an MFA challenge.", res)
}
