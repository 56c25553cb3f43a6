package access

import "time"

// OpKind is a provisioning operation.
type OpKind string

// Operation kinds.
const (
	OpAdd    OpKind = "add"
	OpRemove OpKind = "remove"
)

// Op is an IdP change written to the provisioning outbox in the same
// transaction as the state change that needs it, and executed afterwards by
// the provisioning worker. Ops survive crashes: the worker resumes them at
// start.
type Op struct {
	ID        uint64    `json:"id"` // assigned by the store, increasing
	Kind      OpKind    `json:"kind"`
	RequestID string    `json:"request_id"`
	Connector string    `json:"connector"`
	Group     string    `json:"group"`
	UserID    string    `json:"user_id"` // IdP user id
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_at"` // not before
	LastError string    `json:"last_error,omitempty"`
	Alerted   bool      `json:"alerted,omitempty"` // deprovisioning_stuck raised
	// RateAlerted: deprovisioning_rate_limited raised (the IdP's wait was
	// capped). Separate from Alerted so that alert never silences the
	// stuck one.
	RateAlerted bool `json:"rate_alerted,omitempty"`
	// FirstAttemptAt is when keycard first sent this add to the IdP whose
	// effect it cannot rule out, committed before the call. After a crash or
	// a timed-out answer the grant's clock starts here (SPEC "Lifecycle":
	// access never outlives its grant). Zero until the first send, then
	// kept: no connector error says that nothing reached the IdP (JumpCloud
	// and Entra retry inside one call, so a 429 may end a call whose earlier
	// attempt applied), so the conservative start is the first attempt.
	FirstAttemptAt time.Time `json:"first_attempt_at,omitempty"`
	// Sent records, durably and before the call, that this add was sent to
	// the IdP at least once, so it may have applied. From then on keycard
	// never takes the membership for a standing one (it may be its own), and
	// a failed grant queues the compensating removal; an add never sent
	// removes nothing (the membership, if any, is not keycard's).
	Sent bool `json:"sent,omitempty"`
}

// AddSent reports whether op, an add, may have reached the IdP. An op
// stored before Sent existed has only FirstAttemptAt to say so.
func (op *Op) AddSent() bool { return op.Sent || !op.FirstAttemptAt.IsZero() }

// Pin is the stored pairing of a Slack user and an IdP user (identity
// pinning): once made, a different IdP id for the same Slack user is refused.
type Pin struct {
	SlackID  string    `json:"slack_id"`
	IdPID    string    `json:"idp_id"`
	Email    string    `json:"email"`
	PinnedAt time.Time `json:"pinned_at"`
}

// MessageRef locates a Slack message keycard posted about a request, so it
// can be updated later (buttons removed, outcome shown).
type MessageRef struct {
	RequestID string `json:"request_id"`
	Kind      string `json:"kind"` // "approval", "requester", "alert", ...
	Step      int    `json:"step"`
	SlackUser string `json:"slack_user,omitempty"`
	Channel   string `json:"channel"`
	TS        string `json:"ts"`
}
