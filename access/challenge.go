package access

import "context"

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
)
