package access

import "time"

// Delegation is one person's out-of-office hand-over (issue 15 item 2):
// while it is in force, approval requests meant for From also go to To, who
// may decide in From's place. It starts when it is created and ends at
// Until, or earlier when From turns it off or replaces it.
type Delegation struct {
	ID        string    `json:"id"` // DLG-<n>
	From      Person    `json:"from"`
	To        Person    `json:"to"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"` // also its start
	Until     time.Time `json:"until"`      // planned end (exclusive)
	// EndedAt is set when the delegation ended: before Until by "off" or a
	// replacement, at Until once the scheduler recorded the expiry.
	EndedAt   time.Time `json:"ended_at,omitzero"`
	EndReason string    `json:"end_reason,omitempty"` // one of the DelegationEnd* reasons
	EndedBy   string    `json:"ended_by,omitempty"`   // email, or ActorScheduler
	// Decisions are the requests decided under this delegation, in order
	// ("REQ-7 step 1"), so the export shows what the delegate did with it.
	Decisions []string `json:"decisions,omitempty"`
}

// Why a delegation ended.
const (
	DelegationEndOff      = "off"      // the delegator ran /access delegate off
	DelegationEndReplaced = "replaced" // the delegator created a new delegation
	DelegationEndExpired  = "expired"  // its end date passed
	// DelegationEndOffboarded: the delegator or the delegate was offboarded
	// (suspended or deactivated at the IdP).
	DelegationEndOffboarded = "offboarded"
)

// InForce reports whether d lets To act for From at now: it has not been
// ended and now is before Until. Authorization evaluates this at the click,
// never trusting whether the scheduler has recorded the expiry yet.
func (d *Delegation) InForce(now time.Time) bool {
	return d.EndedAt.IsZero() && !now.Before(d.CreatedAt) && now.Before(d.Until)
}

// End is when d stopped (or stops) being in force: EndedAt when recorded,
// else Until.
func (d *Delegation) End() time.Time {
	if !d.EndedAt.IsZero() {
		return d.EndedAt
	}
	return d.Until
}

// Status is "in_force" or "ended" at now (the delegations export's status).
func (d *Delegation) Status(now time.Time) string {
	if d.InForce(now) {
		return "in_force"
	}
	return "ended"
}

// DelegationDetail is the detail of delegation.created and
// delegation.ended: the delegation as it stood, so the audit chain alone
// says who could decide for whom, and when.
type DelegationDetail struct {
	Delegation string    `json:"delegation"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Until      time.Time `json:"until"`
	Reason     string    `json:"reason,omitempty"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	EndReason  string    `json:"end_reason,omitempty"`
}

// DetailOf is d's audit detail.
func (d Delegation) DetailOf() DelegationDetail {
	return DelegationDetail{Delegation: d.ID, From: d.From.Email, To: d.To.Email, Until: d.Until.UTC(), Reason: d.Reason,
		EndedAt: d.EndedAt.UTC(), EndReason: d.EndReason}
}

// DeciderLabel names who decided s: "Dave" or, under a delegation,
// "Dave for Bob".
func (s *Step) DeciderLabel() string {
	if s.OnBehalfOf.Email != "" {
		return s.DecidedBy.Label() + " for " + s.OnBehalfOf.Label()
	}
	return s.DecidedBy.Label()
}
