package handlers

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"keycard/access"
	"keycard/csvw"
)

// CampaignHeader is the campaign export's header.
var CampaignHeader = []string{"campaign_id", "snapshot_at", "population_sha256", "holder_email", "holder_name", "app", "role", "policy",
	"source", "grant_id", "reviewer_email", "reviewer_is_subject", "decision", "decided_at", "comment", "decision_latency_seconds",
	"remediated_at", "timeout_outcome"}

// campaignInclusion states the campaign export's inclusion rule in words.
const campaignInclusion = "every item of the campaign: each holder of the selected policies' groups when the population was frozen (snapshot_at), one row per holder and group"

func (s *Service) exportCampaign(_ context.Context, out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}}
	if p.Campaign == "" {
		return res, access.Errorf(access.CodeInvalid, "Name the campaign: --campaign ID.")
	}
	c, items, err := s.CampaignOf(p.Campaign)
	if err != nil {
		return res, err
	}
	w := csvw.NewWriter(out)
	if err := w.Write(CampaignHeader); err != nil {
		return res, err
	}
	_ = s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		for i := range items {
			it := &items[i]
			if it.Remediation != "" && it.RemediatedAt.IsZero() && it.RemediationErr == "" {
				if r, err := tx.Request(it.Remediation); err == nil && (r.State == access.StateRevoked || r.State == access.StateExpired) {
					it.RemediatedAt = r.DeprovisionedAt
				}
			}
		}
		return nil
	})
	for _, it := range items {
		reviewer := it.DecidedBy.Email
		if reviewer == "" {
			es := make([]string, len(it.Reviewers))
			for i, r := range it.Reviewers {
				es[i] = r.Email
			}
			reviewer = strings.Join(es, ";")
		}
		latency := ""
		if !it.DecidedAt.IsZero() {
			latency = strconv.FormatInt(int64(it.DecidedAt.Sub(c.OpenedAt)/time.Second), 10)
		}
		comment := it.Comment
		if it.RemediationErr != "" {
			comment = strings.TrimSpace(comment + " [revoke: " + it.RemediationErr + "]")
		}
		rec := []string{c.ID, ts(c.SnapshotAt), c.PopulationSHA256, it.Holder.Email, it.Holder.Name, it.App, it.Role, it.Policy,
			it.Source, it.GrantID, reviewer, strconv.FormatBool(it.ReviewerIsSubject), string(it.Decision), ts(it.DecidedAt), comment, latency,
			ts(it.RemediatedAt), string(it.TimeoutOutcome)}
		res.Rows++
		if it.Decision == "" {
			res.ByStatus["undecided"]++
		} else {
			res.ByStatus[string(it.Decision)]++
		}
		if err := w.Write(rec); err != nil {
			return res, err
		}
	}
	summary := map[string]any{"campaign": c.ID, "state": c.State, "opened_at": ts(c.OpenedAt), "due_at": ts(c.DueAt),
		"closed_at": ts(c.ClosedAt), "on_timeout": c.OnTimeout, "reviewer_rule": c.ReviewerRule, "policies": c.Policies,
		"snapshot_at": ts(c.SnapshotAt), "population_sha256": c.PopulationSHA256}
	for k, v := range campaignCounts(items) {
		summary["count_"+k] = v
	}
	res.Summary = summary
	return res, w.Flush()
}
