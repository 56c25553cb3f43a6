package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"keycard/access"
	"keycard/policy"
)

// tickCampaigns sends daily reminders, applies on_timeout at the due date,
// closes campaigns whose items are all decided, records confirmed
// removals, and posts each closed campaign's summary once. It returns when
// a campaign next needs attention.
func (s *Service) tickCampaigns(ctx context.Context, pub Publisher) (time.Time, error) {
	cs, err := s.Campaigns()
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, c := range cs {
		if err := s.trackRemediation(c.ID); err != nil {
			return next, err
		}
		if c.State == access.CampaignOpen {
			t, err := s.tickCampaign(c.ID)
			if err != nil {
				return next, err
			}
			earliest(t)
			if c, _, err = s.CampaignOf(c.ID); err != nil {
				return next, err
			}
		}
		if c.State == access.CampaignClosed && !c.SummaryPosted {
			if err := s.postSummary(ctx, pub, c); err != nil {
				s.log.Error("campaign summary", "campaign", c.ID, "err", err)
				earliest(s.clock.Now().Add(reviewIdle))
			}
		}
	}
	return next, nil
}

// trackRemediation records, once per item, when the IdP confirmed a
// Revoke's removal (campaign.item.remediated).
func (s *Service) trackRemediation(id string) error {
	// Read first: old campaigns have nothing left to track, and a write
	// transaction (an fsync) per campaign per tick, for ever, adds up.
	pending := false
	if err := s.store.View(func(tx Tx) error {
		items, err := campaignItems(tx, id)
		for _, it := range items {
			if it.Remediation != "" && it.RemediatedAt.IsZero() && it.RemediationErr == "" {
				pending = true
			}
		}
		return err
	}); err != nil || !pending {
		return err
	}
	return s.updateLead(func(tx Tx) error {
		items, err := campaignItems(tx, id)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.Remediation == "" || !it.RemediatedAt.IsZero() || it.RemediationErr != "" {
				continue
			}
			r, err := tx.Request(it.Remediation)
			if err != nil {
				return err
			}
			if r.State != access.StateRevoked && r.State != access.StateExpired {
				continue
			}
			it.RemediatedAt = r.DeprovisionedAt
			if err := tx.PutDoc(DocCampaignItem, it.ID, it); err != nil {
				return err
			}
			if _, err := tx.Append(access.Event{Type: access.EvCampaignItemRemediated, Actor: access.ActorKeycard, Subject: it.Holder.Email,
				Policy: it.Policy, RequestID: it.Remediation, Detail: encodeDetail(map[string]string{"campaign": id, "item": it.ID,
					"remediated_at": ts(it.RemediatedAt), "removal": it.Remediation})}); err != nil {
				return err
			}
		}
		return nil
	})
}

// tickCampaign handles one open campaign at now.
func (s *Service) tickCampaign(id string) (time.Time, error) {
	var next time.Time
	err := s.updateLead(func(tx Tx) error {
		next = time.Time{} // a retried attempt (PostgreSQL serialization failure) decides afresh
		var c Campaign
		if _, err := tx.Doc(DocCampaign, id, &c); err != nil {
			return err
		}
		if c.State != access.CampaignOpen {
			return nil
		}
		items, err := campaignItems(tx, id)
		if err != nil {
			return err
		}
		now := tx.Now()
		var open []int
		for i := range items {
			if items[i].Open() {
				open = append(open, i)
			}
		}
		switch {
		case len(open) == 0:
			return s.closeCampaign(tx, &c, items, "every item was reviewed")
		case !now.Before(c.DueAt):
			var unreviewed []string
			for _, i := range open {
				it := &items[i]
				unreviewed = append(unreviewed, it.Holder.Email+" in "+it.Group)
				switch c.OnTimeout {
				case policy.OnTimeoutRevoke:
					it.TimeoutOutcome = access.TimeoutRevoked
					if err := s.remediate(tx, it, access.Person{}, access.ActorScheduler); err != nil {
						return err
					}
				case policy.OnTimeoutEscalate:
					it.TimeoutOutcome = access.TimeoutEscalated
				default:
					it.TimeoutOutcome = access.TimeoutKeptAndFlagged
				}
				if err := tx.PutDoc(DocCampaignItem, it.ID, it); err != nil {
					return err
				}
				if _, err := tx.Append(access.Event{Type: access.EvCampaignItemTimedOut, Actor: access.ActorScheduler, Subject: it.Holder.Email,
					Policy: it.Policy, RequestID: it.GrantID, Detail: encodeDetail(map[string]string{"campaign": id, "item": it.ID,
						"outcome": string(it.TimeoutOutcome), "on_timeout": c.OnTimeout})}); err != nil {
					return err
				}
			}
			if _, err := tx.Append(access.Event{Type: access.EvAlert, Actor: access.ActorScheduler, Subject: access.ActorScheduler,
				Detail: encodeDetail(map[string]any{"kind": "review_unanswered", "campaign": id, "on_timeout": c.OnTimeout, "items": unreviewed,
					"message": fmt.Sprintf("Campaign %s reached its due date with %d unreviewed items (on_timeout: %s): %s", id, len(open), c.OnTimeout, strings.Join(unreviewed, ", "))})}); err != nil {
				return err
			}
			return s.closeCampaign(tx, &c, items, "due date reached")
		}
		remindAt := c.LastReminder
		if remindAt.IsZero() {
			remindAt = c.OpenedAt
		}
		remindAt = remindAt.Add(reminderEvery)
		if !now.Before(remindAt) && remindAt.Before(c.DueAt) {
			waiting := map[string]int{}
			for _, i := range open {
				for _, r := range items[i].Reviewers {
					waiting[strings.ToLower(r.Email)]++
				}
			}
			c.LastReminder = now
			if err := tx.PutDoc(DocCampaign, id, c); err != nil {
				return err
			}
			if _, err := tx.Append(access.Event{Type: access.EvCampaignReminded, Actor: access.ActorScheduler, Subject: access.ActorScheduler,
				Detail: encodeDetail(map[string]any{"campaign": id, "waiting": waiting, "due_at": ts(c.DueAt)})}); err != nil {
				return err
			}
			remindAt = now.Add(reminderEvery)
		}
		next = c.DueAt
		if remindAt.Before(next) {
			next = remindAt
		}
		return nil
	})
	return next, err
}

// campaignCounts tallies a campaign's items for its summary and manifest.
func campaignCounts(items []CampaignItem) map[string]int {
	n := map[string]int{"items": len(items)}
	for _, it := range items {
		switch {
		case it.Decision != "":
			n[string(it.Decision)]++
		case it.TimeoutOutcome != "":
			n["timeout_"+string(it.TimeoutOutcome)]++
		default:
			n["unreviewed"]++
		}
		n["source_"+it.Source]++
		if it.ReviewerIsSubject {
			n["reviewer_is_subject"]++
		}
		if it.ReassignedTo != "" {
			n["reassigned"]++
		}
		if it.RemediationErr != "" {
			n["revoke_not_carried_out"]++
		}
	}
	return n
}

func (s *Service) closeCampaign(tx Tx, c *Campaign, items []CampaignItem, why string) error {
	c.State, c.ClosedAt, c.Counts = access.CampaignClosed, tx.Now(), campaignCounts(items)
	if err := tx.PutDoc(DocCampaign, c.ID, c); err != nil {
		return err
	}
	_, err := tx.Append(access.Event{Type: access.EvCampaignClosed, Actor: access.ActorScheduler, Subject: access.ActorScheduler,
		Detail: encodeDetail(map[string]any{"campaign": c.ID, "why": why, "counts": c.Counts, "population_sha256": c.PopulationSHA256})})
	return err
}

// CampaignSummary is the completion summary a closed campaign posts.
type CampaignSummary struct {
	Campaign   Campaign
	Unreviewed []CampaignItem // items closed by on_timeout
	Revoked    []CampaignItem
	Flagged    []CampaignItem
}

// postSummary posts the completion summary with the campaign CSV and its
// manifest, under a ledger entry.
func (s *Service) postSummary(ctx context.Context, pub Publisher, c Campaign) error {
	_, items, err := s.CampaignOf(c.ID)
	if err != nil {
		return err
	}
	sum := CampaignSummary{Campaign: c}
	for _, it := range items {
		switch {
		case it.TimeoutOutcome != "":
			sum.Unreviewed = append(sum.Unreviewed, it)
		case it.Decision == access.ReviewRevoke:
			sum.Revoked = append(sum.Revoked, it)
		case it.Decision == access.ReviewFlag:
			sum.Flagged = append(sum.Flagged, it)
		}
	}
	start := s.clock.Now().UTC()
	run := JobRun{Job: JobCampaignClose, Slot: c.DueAt.UTC(), PeriodFrom: c.OpenedAt, PeriodTo: c.ClosedAt, Started: start, Outcome: RunRunning, Detail: c.ID}
	if err := s.RecordJobRun(run); err != nil {
		return err
	}
	files, _, err := s.exportFiles(ctx, ExportRequest{Kind: KindCampaign, Params: ExportParams{Campaign: c.ID}, By: access.ActorScheduler,
		Invocation: "campaign " + c.ID + " closed"})
	if err == nil {
		run.Artefact, err = s.publish(ctx, pub, Report{Key: "campaign/" + c.ID, Job: JobCampaignClose, Channel: c.Channel, Slot: c.DueAt, Campaign: &sum, Files: files})
	}
	run.Finished, run.Outcome = s.clock.Now().UTC(), RunOK
	if err != nil {
		run.Outcome, run.Detail = RunFailed, c.ID+": "+err.Error()
	}
	if rerr := s.RecordJobRun(run); rerr != nil {
		return rerr
	}
	if err != nil {
		return err
	}
	return s.updateLead(func(tx Tx) error {
		var cur Campaign
		if _, err := tx.Doc(DocCampaign, c.ID, &cur); err != nil {
			return err
		}
		cur.SummaryPosted = true
		return tx.PutDoc(DocCampaign, c.ID, cur)
	})
}
