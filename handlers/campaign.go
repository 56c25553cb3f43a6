package handlers

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"keycard/access"
)

// Document kinds of access-review campaigns.
const (
	DocCampaign     = "campaign"      // id: campaign id
	DocCampaignItem = "campaign_item" // id: campaign id + "/" + 5-digit item number
)

// JobCampaignClose is the ledger name of a campaign's close (summary post).
const JobCampaignClose = "certification_close"

// reminderEvery is the campaign reminder cadence ("daily reminders").
const reminderEvery = 24 * time.Hour

// Campaign is one access-review campaign. Its population is frozen when it
// opens: SnapshotAt and PopulationSHA256 pin exactly who held what.
type Campaign struct {
	ID               string               `json:"id"`
	Policies         []string             `json:"policies"`
	OpenedAt         time.Time            `json:"opened_at"`
	OpenedBy         string               `json:"opened_by"` // admin email or "scheduler"
	Slot             time.Time            `json:"slot,omitzero"`
	SnapshotAt       time.Time            `json:"snapshot_at"`
	PopulationSHA256 string               `json:"population_sha256"`
	DueAt            time.Time            `json:"due_at"`
	OnTimeout        string               `json:"on_timeout"`
	ReviewerRule     string               `json:"reviewer_rule"`
	Channel          string               `json:"channel,omitempty"`
	Items            int                  `json:"items"`
	State            access.CampaignState `json:"state"`
	LastReminder     time.Time            `json:"last_reminder,omitzero"`
	ClosedAt         time.Time            `json:"closed_at,omitzero"`
	Counts           map[string]int       `json:"counts,omitempty"`
	SummaryPosted    bool                 `json:"summary_posted,omitempty"`
}

// CampaignItem is one holder of one group under review.
type CampaignItem struct {
	ID         string        `json:"id"`
	Campaign   string        `json:"campaign"`
	Holder     access.Person `json:"holder"`
	Policy     string        `json:"policy"` // ;-joined when several policies share the group
	App        string        `json:"app"`
	Role       string        `json:"role"`
	Connector  string        `json:"connector"`
	Group      string        `json:"group"`
	Privileged bool          `json:"privileged,omitempty"`
	Source     string        `json:"source"` // keycard | standing | unmanaged
	GrantID    string        `json:"grant_id,omitempty"`

	Reviewers         []access.Person `json:"reviewers"`
	ReviewerRule      string          `json:"reviewer_rule"`
	ReviewerIsSubject bool            `json:"reviewer_is_subject,omitempty"` // the rule named the holder: reassigned
	ReassignedTo      string          `json:"reassigned_to,omitempty"`       // manager | admins | nobody

	Decision       access.ReviewDecision `json:"decision,omitempty"`
	DecidedBy      access.Person         `json:"decided_by,omitzero"`
	DecidedAt      time.Time             `json:"decided_at,omitzero"`
	Comment        string                `json:"comment,omitempty"`
	TimeoutOutcome access.TimeoutOutcome `json:"timeout_outcome,omitempty"`
	Remediation    string                `json:"remediation,omitempty"` // the request whose removal carries out a revoke
	RemediationErr string                `json:"remediation_error,omitempty"`
	RemediatedAt   time.Time             `json:"remediated_at,omitzero"`
}

// Open reports whether the item still waits for a reviewer.
func (it *CampaignItem) Open() bool { return it.Decision == "" && it.TimeoutOutcome == "" }

// IsReviewer reports whether p may decide the item.
func (it *CampaignItem) IsReviewer(p access.Person) bool {
	for _, r := range it.Reviewers {
		if r.Same(p) {
			return true
		}
	}
	return false
}

func itemID(campaign string, n int) string { return fmt.Sprintf("%s/%05d", campaign, n) }

// CampaignItemOf reads one item.
func (s *Service) CampaignItemOf(id string) (CampaignItem, error) {
	var it CampaignItem
	err := s.store.View(func(tx Tx) error {
		ok, err := tx.Doc(DocCampaignItem, id, &it)
		if err == nil && !ok {
			err = access.Errorf(access.CodeNotFound, "There is no review item %s.", id)
		}
		return err
	})
	return it, err
}

// CampaignOf reads a campaign and its items, in item order.
func (s *Service) CampaignOf(id string) (Campaign, []CampaignItem, error) {
	var c Campaign
	var items []CampaignItem
	err := s.store.View(func(tx Tx) error {
		ok, err := tx.Doc(DocCampaign, id, &c)
		if err != nil {
			return err
		}
		if !ok {
			return access.Errorf(access.CodeNotFound, "There is no campaign %s.", id)
		}
		items, err = campaignItems(tx, id)
		return err
	})
	return c, items, err
}

func campaignItems(tx Tx, id string) ([]CampaignItem, error) {
	var items []CampaignItem
	err := tx.Docs(DocCampaignItem, id+"/", func(_ string, data []byte) error {
		var it CampaignItem
		if err := json.Unmarshal(data, &it); err != nil {
			return err
		}
		items = append(items, it)
		return nil
	})
	return items, err
}

// Campaigns lists every campaign, oldest first.
func (s *Service) Campaigns() ([]Campaign, error) {
	var out []Campaign
	err := s.store.View(func(tx Tx) error {
		return tx.Docs(DocCampaign, "", func(_ string, data []byte) error {
			var c Campaign
			if err := json.Unmarshal(data, &c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].OpenedAt.Before(out[j].OpenedAt) })
	return out, err
}
