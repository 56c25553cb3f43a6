package access

// CampaignState is where an access-review campaign is. The values are
// stored in campaign documents and exported: never change them.
type CampaignState string

// Campaign states: open until every item is decided or the due date.
const (
	CampaignOpen   CampaignState = "open"
	CampaignClosed CampaignState = "closed"
)

// ReviewDecision is a reviewer's Keep, Revoke or Flag on one campaign item
// ("" while undecided). The values are stored, audited and exported.
type ReviewDecision string

// Review decisions.
const (
	ReviewKeep   ReviewDecision = "keep"
	ReviewRevoke ReviewDecision = "revoke"
	ReviewFlag   ReviewDecision = "flag"
)

// Valid reports whether d is one of the three decisions.
func (d ReviewDecision) Valid() bool {
	switch d {
	case ReviewKeep, ReviewRevoke, ReviewFlag:
		return true
	}
	return false
}

// TimeoutOutcome is what happened to an item nobody reviewed by the due
// date, by the campaign's on_timeout ("" while it was not timed out).
type TimeoutOutcome string

// Timeout outcomes.
const (
	TimeoutRevoked        TimeoutOutcome = "revoked"
	TimeoutEscalated      TimeoutOutcome = "escalated"
	TimeoutKeptAndFlagged TimeoutOutcome = "kept_and_flagged"
)
