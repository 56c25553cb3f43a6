package access

import "testing"

// The campaign vocabulary is stored in campaign documents, audit details
// and the campaign CSV: its string values must never change.
func TestCampaignValuesAreFrozen(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{string(CampaignOpen), "open"},
		{string(CampaignClosed), "closed"},
		{string(ReviewKeep), "keep"},
		{string(ReviewRevoke), "revoke"},
		{string(ReviewFlag), "flag"},
		{string(TimeoutRevoked), "revoked"},
		{string(TimeoutEscalated), "escalated"},
		{string(TimeoutKeptAndFlagged), "kept_and_flagged"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("stored value %q, want %q", c.got, c.want)
		}
	}
}

func TestReviewDecisionValid(t *testing.T) {
	for d, want := range map[ReviewDecision]bool{ReviewKeep: true, ReviewRevoke: true, ReviewFlag: true, "": false, "approve": false, "Keep": false} {
		if got := d.Valid(); got != want {
			t.Errorf("ReviewDecision(%q).Valid() = %v, want %v", d, got, want)
		}
	}
}
