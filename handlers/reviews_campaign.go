package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"keycard/access"
	"keycard/csvw"
	"keycard/policy"
)

// Document kinds of access-review campaigns.
const (
	DocCampaign     = "campaign"      // id: campaign id
	DocCampaignItem = "campaign_item" // id: campaign id + "/" + 5-digit item number
)

// Campaign states and decisions.
const (
	CampaignOpen   = "open"
	CampaignClosed = "closed"

	DecisionKeep   = "keep"
	DecisionRevoke = "revoke"
	DecisionFlag   = "flag"
)

// Timeout outcomes recorded on an item nobody reviewed by the due date.
const (
	TimeoutRevoked        = "revoked"
	TimeoutEscalated      = "escalated"
	TimeoutKeptAndFlagged = "kept_and_flagged"
)

// JobCampaignClose is the ledger name of a campaign's close (summary post).
const JobCampaignClose = "certification_close"

// reminderEvery is the campaign reminder cadence ("daily reminders").
const reminderEvery = 24 * time.Hour

// Campaign is one access-review campaign. Its population is frozen when it
// opens: SnapshotAt and PopulationSHA256 pin exactly who held what.
type Campaign struct {
	ID               string         `json:"id"`
	Policies         []string       `json:"policies"`
	OpenedAt         time.Time      `json:"opened_at"`
	OpenedBy         string         `json:"opened_by"` // admin email or "scheduler"
	Slot             time.Time      `json:"slot,omitzero"`
	SnapshotAt       time.Time      `json:"snapshot_at"`
	PopulationSHA256 string         `json:"population_sha256"`
	DueAt            time.Time      `json:"due_at"`
	OnTimeout        string         `json:"on_timeout"`
	ReviewerRule     string         `json:"reviewer_rule"`
	Channel          string         `json:"channel,omitempty"`
	Items            int            `json:"items"`
	State            string         `json:"state"`
	LastReminder     time.Time      `json:"last_reminder,omitzero"`
	ClosedAt         time.Time      `json:"closed_at,omitzero"`
	Counts           map[string]int `json:"counts,omitempty"`
	SummaryPosted    bool           `json:"summary_posted,omitempty"`
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

	Decision       string        `json:"decision,omitempty"`
	DecidedBy      access.Person `json:"decided_by,omitzero"`
	DecidedAt      time.Time     `json:"decided_at,omitzero"`
	Comment        string        `json:"comment,omitempty"`
	TimeoutOutcome string        `json:"timeout_outcome,omitempty"`
	Remediation    string        `json:"remediation,omitempty"` // the request whose removal carries out a revoke
	RemediationErr string        `json:"remediation_error,omitempty"`
	RemediatedAt   time.Time     `json:"remediated_at,omitzero"`
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

// certification is the campaign settings in force; an on-demand campaign
// without a configured one reviews privileged policies, by managers, due
// in the default 14 days, keeping and flagging what nobody reviewed.
func (s *Service) certification() policy.CertificationJob {
	if c := s.Policy().Reviews.Certification; c != nil {
		return *c
	}
	return policy.CertificationJob{Privileged: true, Reviewer: policy.Rule{Kind: policy.RuleManager},
		Due: policy.DefaultCertificationDue, OnTimeout: policy.OnTimeoutKeepAndFlag}
}

func (s *Service) runCertification(ctx context.Context, _ Publisher, slot time.Time) (JobRun, error) {
	c, err := s.OpenCampaign(ctx, access.ActorScheduler, nil, slot)
	run := JobRun{PeriodFrom: slot.UTC(), PeriodTo: c.DueAt.UTC(), Artefact: c.PopulationSHA256}
	if err == nil {
		run.Detail = fmt.Sprintf("campaign %s opened: %d items, due %s", c.ID, c.Items, ts(c.DueAt))
	}
	return run, err
}

// StartCampaign is an admin's `/access review start [policy…]`: the
// clicking user is checked against the admins group here, not trusted from
// Slack; a refusal is audited.
func (s *Service) StartCampaign(ctx context.Context, slackID, email string, names []string) (Campaign, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return Campaign{}, err
	}
	admin, err := s.IsAdmin(ctx, u)
	if err != nil {
		return Campaign{}, access.Wrap(access.CodeOf(err), err, "Could not check whether you are a keycard admin; try again in a minute.")
	}
	if !admin {
		_ = s.audit(access.Event{Type: access.EvDecisionRefused, Actor: u.Email, Subject: u.Email,
			Detail: encodeDetail(map[string]string{"why": "review start by someone who is not a keycard admin"})})
		return Campaign{}, access.Errorf(access.CodeForbidden, "Only keycard admins can start an access review.")
	}
	for _, n := range names {
		if _, ok := s.Policy().Policy(n); !ok {
			return Campaign{}, access.Errorf(access.CodeUnknownPolicy, "There is no policy named %q.", n)
		}
	}
	return s.OpenCampaign(ctx, u.Email, names, time.Time{})
}

// OpenCampaign freezes the population of the selected policies' groups
// (names, or the certification job's selection when empty) — keycard
// grants and standing IdP members — and assigns each holder to a reviewer.
// A scheduled campaign (non-zero slot) is opened once per slot: a second
// call returns the first campaign.
func (s *Service) OpenCampaign(ctx context.Context, by string, names []string, slot time.Time) (Campaign, error) {
	job := s.certification()
	set := s.Policy()
	selected := map[string]*policy.Policy{}
	var polNames []string
	for _, p := range set.Policies {
		want := job.Covers(p)
		if len(names) > 0 {
			want = false
			for _, n := range names {
				want = want || n == p.Name
			}
		}
		if want {
			selected[p.Name] = p
			polNames = append(polNames, p.Name)
		}
	}
	if len(selected) == 0 {
		return Campaign{}, access.Errorf(access.CodeInvalid, "The campaign selects no policy.")
	}
	now := s.clock.Now().UTC()
	id := "CAMP-" + now.Format("20060102-150405")
	if !slot.IsZero() {
		id = "CAMP-" + slot.UTC().Format("20060102-1504")
		if c, _, err := s.CampaignOf(id); err == nil {
			return c, nil
		}
	}
	rows, _, err := s.Holders(ctx, now)
	if err != nil {
		return Campaign{}, err
	}
	dir, err := s.directory()
	if err != nil {
		return Campaign{}, err
	}
	c := Campaign{ID: id, Policies: polNames, OpenedAt: now, OpenedBy: by, Slot: slot.UTC(), SnapshotAt: now,
		DueAt: now.Add(job.Due), OnTimeout: job.OnTimeout, ReviewerRule: job.Reviewer.String(), Channel: job.Channel, State: CampaignOpen}
	if slot.IsZero() {
		c.Slot = time.Time{}
	}
	var items []CampaignItem
	for _, h := range rows {
		var pols []*policy.Policy
		for _, n := range h.Policies {
			if p, ok := selected[n]; ok {
				pols = append(pols, p)
			}
		}
		if len(pols) == 0 {
			continue
		}
		it := CampaignItem{Campaign: id, Holder: access.Person{Email: h.Email, Name: h.Name, IdPID: h.ID}, App: pols[0].App, Role: pols[0].Role,
			Connector: h.Connector, Group: h.Group, Source: h.Source, ReviewerRule: job.Reviewer.String()}
		var pn []string
		for _, p := range pols {
			pn = append(pn, p.Name)
			it.Privileged = it.Privileged || p.Privileged
		}
		it.Policy = strings.Join(pn, ";")
		if h.Grant != nil {
			it.GrantID = h.Grant.ID
			it.Holder = h.Grant.Requester
		}
		holder, err := dir.UserByID(ctx, h.ID)
		if err != nil {
			holder, err = dir.UserByEmail(ctx, h.Email)
		}
		if err != nil && access.CodeOf(err) != access.CodeNotFound {
			return Campaign{}, err
		}
		if err != nil {
			holder = access.User{ID: h.ID, Email: h.Email, Name: h.Name}
		}
		if it.Reviewers, it.ReviewerIsSubject, it.ReassignedTo, err = s.reviewersFor(ctx, job.Reviewer, holder, dir); err != nil {
			return Campaign{}, err
		}
		items = append(items, it)
	}
	c.Items = len(items)
	c.PopulationSHA256 = populationHash(c, items)
	err = s.update(func(tx Tx) error {
		if ok, err := tx.Doc(DocCampaign, id, &Campaign{}); err != nil {
			return err
		} else if ok {
			return access.Errorf(access.CodeConflict, "Campaign %s already exists; try again in a second.", id)
		}
		if err := tx.PutDoc(DocCampaign, id, c); err != nil {
			return err
		}
		if _, err := tx.Append(access.Event{Type: access.EvCampaignOpened, Actor: by, Subject: by,
			Detail: encodeDetail(map[string]any{"campaign": id, "policies": polNames, "snapshot_at": ts(c.SnapshotAt),
				"population_sha256": c.PopulationSHA256, "items": c.Items, "due_at": ts(c.DueAt), "on_timeout": c.OnTimeout, "reviewer": c.ReviewerRule})}); err != nil {
			return err
		}
		for i := range items {
			it := &items[i]
			it.ID = itemID(id, i+1)
			if err := tx.PutDoc(DocCampaignItem, it.ID, it); err != nil {
				return err
			}
			reviewers := make([]string, len(it.Reviewers))
			for k, r := range it.Reviewers {
				reviewers[k] = r.Email
			}
			detail := map[string]any{"campaign": id, "item": it.ID, "source": it.Source, "group": it.Group, "reviewers": reviewers}
			if it.ReviewerIsSubject {
				detail["reviewer_is_subject"] = true
			}
			if it.ReassignedTo != "" {
				detail["reassigned_to"] = it.ReassignedTo
				detail["reassigned_from"] = it.ReviewerRule
			}
			if _, err := tx.Append(access.Event{Type: access.EvCampaignItemAssigned, Actor: access.ActorKeycard, Subject: it.Holder.Email,
				Policy: it.Policy, RequestID: it.GrantID, Detail: encodeDetail(detail)}); err != nil {
				return err
			}
		}
		return nil
	})
	return c, err
}

// populationHash is the SHA-256 of the frozen population: one line per item
// (policy, connector, group, holder, IdP id, source, grant), sorted.
func populationHash(c Campaign, items []CampaignItem) string {
	lines := make([]string, 0, len(items))
	for _, it := range items {
		lines = append(lines, strings.Join([]string{it.Policy, it.Connector, it.Group, strings.ToLower(it.Holder.Email), it.Holder.IdPID, it.Source, it.GrantID}, "\t"))
	}
	sort.Strings(lines)
	h := sha256.New()
	fmt.Fprintf(h, "snapshot_at\t%s\n", c.SnapshotAt.UTC().Format(time.RFC3339Nano))
	for _, l := range lines {
		h.Write([]byte(l + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// reviewersFor resolves the reviewer rule for one holder. A reviewer never
// reviews their own access: the holder is removed, and when nobody is left
// the item goes to the holder's manager, else to the admins (never the
// holder), recorded as a reassignment.
func (s *Service) reviewersFor(ctx context.Context, rule policy.Rule, holder access.User, dir access.Directory) ([]access.Person, bool, string, error) {
	var raw []access.User
	switch rule.Kind {
	case policy.RuleManager:
		if m, err := dir.Manager(ctx, holder); err == nil {
			raw = append(raw, m)
		} else if access.CodeOf(err) != access.CodeNotFound {
			return nil, false, "", err
		}
	case policy.RuleGroup:
		ms, err := dir.GroupMembers(ctx, rule.Group)
		if err != nil && access.CodeOf(err) != access.CodeNotFound {
			return nil, false, "", err
		}
		raw = ms
	case policy.RuleUser, policy.RuleUsers:
		for _, e := range rule.Users {
			u, err := dir.UserByEmail(ctx, e)
			if err == nil {
				raw = append(raw, u)
			} else if access.CodeOf(err) != access.CodeNotFound {
				return nil, false, "", err
			}
		}
	}
	hp := holder.Person()
	isSubject := false
	var out []access.Person
	for _, u := range raw {
		if u.Person().Same(hp) {
			isSubject = true
			continue
		}
		if u.Status != "" && !u.Status.CanRequest() {
			continue
		}
		out = append(out, u.Person())
	}
	if len(out) > 0 {
		return out, isSubject, "", nil
	}
	if rule.Kind != policy.RuleManager {
		if m, err := dir.Manager(ctx, holder); err == nil && !m.Person().Same(hp) {
			return []access.Person{m.Person()}, isSubject, "manager", nil
		}
	}
	if g := s.Policy().Admins.Group; g != "" {
		admins, err := dir.GroupMembers(ctx, g)
		if err != nil && access.CodeOf(err) != access.CodeNotFound {
			return nil, false, "", err
		}
		for _, a := range admins {
			if !a.Person().Same(hp) && a.Status.CanRequest() {
				out = append(out, a.Person())
			}
		}
	}
	if len(out) > 0 {
		return out, isSubject, "admins", nil
	}
	return nil, isSubject, "nobody", nil
}

// ReviewInput is a reviewer's Keep / Revoke / Flag on one item. ItemID
// comes from the button and is only a pointer.
type ReviewInput struct {
	ItemID   string
	SlackID  string
	Email    string
	Decision string // keep | revoke | flag
	Comment  string
}

// ErrCommentRequired is the code-carrying refusal of a Keep on privileged
// access without a comment.
var ErrCommentRequired = access.Errorf(access.CodeInvalid, "Keeping privileged access needs a comment saying why it is still needed.")

// Review records one reviewer's decision on one item. Only a reviewer of
// the item may decide, never the holder; one decision wins (CAS in the
// store); Keep of privileged access needs a comment; Revoke removes the
// access through the provisioning outbox; Flag raises a follow-up in the
// security channel.
func (s *Service) Review(ctx context.Context, in ReviewInput) (CampaignItem, error) {
	comment := strings.TrimSpace(in.Comment)
	if len(comment) > MaxComment {
		return CampaignItem{}, access.Errorf(access.CodeInvalid, "The comment is %d characters long; the limit is %d.", len(comment), MaxComment)
	}
	switch in.Decision {
	case DecisionKeep, DecisionRevoke, DecisionFlag:
	default:
		return CampaignItem{}, access.Errorf(access.CodeInvalid, "Unknown review decision %q.", in.Decision)
	}
	u, err := s.identifyActor(ctx, in.SlackID, in.Email)
	if err != nil {
		return CampaignItem{}, err
	}
	actor := personOf(u, in.SlackID)
	// Re-check the reviewer at the click, outside the transaction: the
	// item's reviewer rule, resolved against the IdP now (the holder's
	// manager now, the group's members now), must still name the clicker.
	var recheck error
	if seen, err := s.CampaignItemOf(in.ItemID); err == nil && seen.Open() && seen.IsReviewer(actor) && !actor.Same(seen.Holder) {
		if err := s.stillReviewer(ctx, &seen, actor); err != nil {
			if access.CodeOf(err) != access.CodeForbidden {
				return CampaignItem{}, err
			}
			recheck = err
		}
	}
	var it CampaignItem
	var refusal error
	err = s.update(func(tx Tx) error {
		ok, err := tx.Doc(DocCampaignItem, in.ItemID, &it)
		if err != nil {
			return err
		}
		if !ok {
			return access.Errorf(access.CodeNotFound, "There is no review item %s.", in.ItemID)
		}
		var c Campaign
		if _, err := tx.Doc(DocCampaign, it.Campaign, &c); err != nil {
			return err
		}
		why := mayReview(&it, &c, actor)
		if why == nil {
			why = recheck
		}
		if why == nil && in.Decision == DecisionKeep && it.Privileged && comment == "" {
			return ErrCommentRequired
		}
		if why != nil {
			if access.CodeOf(why) != access.CodeForbidden {
				return why
			}
			refusal = why
			_, err := tx.Append(access.Event{Type: access.EvDecisionRefused, Actor: actor.Email, Subject: it.Holder.Email, Policy: it.Policy,
				RequestID: it.GrantID, Detail: encodeDetail(map[string]string{"why": access.MessageOf(why), "campaign": it.Campaign, "item": it.ID})})
			return err
		}
		now := tx.Now()
		it.Decision, it.DecidedBy, it.DecidedAt, it.Comment = in.Decision, actor, now, comment
		if _, err := tx.Append(access.Event{Type: access.EvCampaignItemDecided, Actor: actor.Email, Subject: it.Holder.Email, Policy: it.Policy,
			RequestID: it.GrantID, Detail: encodeDetail(map[string]any{"campaign": it.Campaign, "item": it.ID, "decision": in.Decision,
				"comment": comment, "source": it.Source, "group": it.Group, "latency_seconds": int64(now.Sub(c.OpenedAt) / time.Second)})}); err != nil {
			return err
		}
		switch in.Decision {
		case DecisionRevoke:
			if err := s.remediate(tx, &it, actor, actor.Email); err != nil {
				return err
			}
		case DecisionFlag:
			if _, err := tx.Append(access.Event{Type: access.EvAlert, Actor: actor.Email, Subject: it.Holder.Email, Policy: it.Policy, RequestID: it.GrantID,
				Detail: encodeDetail(map[string]string{"kind": "review_flag", "campaign": it.Campaign, "item": it.ID,
					"message": fmt.Sprintf("%s flagged %s's access to %s (%s) in campaign %s for follow-up: %s", actor.Email, it.Holder.Email, it.Group, it.Source, it.Campaign, orDash(comment))})}); err != nil {
				return err
			}
		}
		return tx.PutDoc(DocCampaignItem, it.ID, it)
	})
	if err != nil {
		return it, err
	}
	if refusal != nil {
		return it, refusal
	}
	return it, nil
}

// stillReviewer re-resolves the item's reviewer rule for its holder now.
// A refusal has CodeForbidden; an IdP failure asks the person to try again.
func (s *Service) stillReviewer(ctx context.Context, it *CampaignItem, actor access.Person) error {
	rule, ok := policy.RuleOf(it.ReviewerRule)
	if !ok {
		return access.Errorf(access.CodeForbidden, "The reviewer rule %q of this item cannot be checked now.", it.ReviewerRule)
	}
	retry := func(err error) error {
		return access.Wrap(access.CodeUnavailable, err, "Could not confirm with the identity provider that you are still a reviewer of this item; nothing was recorded. Try again in a minute.")
	}
	dir, err := s.directory()
	if err != nil {
		return retry(err)
	}
	var holder access.User
	if it.Holder.IdPID != "" {
		holder, err = dir.UserByID(ctx, it.Holder.IdPID)
	} else {
		holder, err = dir.UserByEmail(ctx, it.Holder.Email)
	}
	if access.CodeOf(err) == access.CodeNotFound {
		holder, err = access.User{ID: it.Holder.IdPID, Email: it.Holder.Email, Name: it.Holder.Name}, nil
	}
	if err != nil {
		return retry(err)
	}
	people, _, _, err := s.reviewersFor(ctx, rule, holder, dir)
	if err != nil {
		return retry(err)
	}
	for _, p := range people {
		if p.Same(actor) {
			return nil
		}
	}
	if rule.Kind == policy.RuleManager {
		return access.Errorf(access.CodeForbidden, "The identity provider no longer lists you as %s's manager, so you cannot review this access.", it.Holder.Label())
	}
	return access.Errorf(access.CodeForbidden, "The reviewer rule %s no longer names you, so you cannot review this access.", it.ReviewerRule)
}

func orDash(s string) string {
	if s == "" {
		return "(no comment)"
	}
	return s
}

func mayReview(it *CampaignItem, c *Campaign, actor access.Person) error {
	switch {
	case it.Decision != "":
		return access.Errorf(access.CodeConflict, "This item was already reviewed: %s by %s.", it.Decision, it.DecidedBy.Label())
	case it.TimeoutOutcome != "":
		return access.Errorf(access.CodeConflict, "The review closed before a decision; the outcome was %s.", strings.ReplaceAll(it.TimeoutOutcome, "_", " "))
	case c.State != CampaignOpen:
		return access.Errorf(access.CodeConflict, "Campaign %s is closed.", c.ID)
	case actor.Same(it.Holder):
		return access.Errorf(access.CodeForbidden, "You cannot review your own access.")
	case !it.IsReviewer(actor):
		return access.Errorf(access.CodeForbidden, "You are not a reviewer of this item.")
	}
	return nil
}

// remediate carries out a Revoke in tx: a keycard grant ends through the
// usual path (reason revoked, ended by the reviewer); a standing or
// unmanaged membership gets a removal record and an outbox op, only when
// the group is inside the connector's scope — otherwise nothing is
// changed, the item says why, and the security channel is alerted.
func (s *Service) remediate(tx Tx, it *CampaignItem, by access.Person, actor string) error {
	if it.Source == SourceKeycard && it.GrantID != "" {
		r, err := tx.Request(it.GrantID)
		if err != nil {
			return err
		}
		ended, err := endAccess(tx, &r, access.ReasonRevoked, by, actor)
		switch {
		case errors.Is(err, errStale):
			it.Remediation = r.ID
			it.RemediationErr = "the grant had already ended (" + r.ExportStatus() + ") and nothing else of theirs held the group"
			if !r.DeprovisionedAt.IsZero() {
				it.RemediatedAt = r.DeprovisionedAt
			}
			return nil
		case err != nil:
			return err
		}
		// Track the removal that actually takes the membership away: when the
		// reviewed grant had already ended, that is a sibling's (its extension).
		it.Remediation = ended[len(ended)-1]
		return nil
	}
	set := s.Policy()
	conn := set.Connectors[it.Connector]
	if !conn.InScope(it.Group) {
		it.RemediationErr = fmt.Sprintf("not removed: %s is outside connector %s's scope, so keycard may not change it", it.Group, it.Connector)
		_, err := tx.Append(access.Event{Type: access.EvAlert, Actor: access.ActorKeycard, Subject: it.Holder.Email, Policy: it.Policy,
			Detail: encodeDetail(map[string]string{"kind": "review_revoke_out_of_scope", "campaign": it.Campaign, "item": it.ID,
				"message": fmt.Sprintf("Campaign %s: revoke of %s's %s membership of %s cannot be carried out by keycard (outside the connector's scope); remove it by hand.", it.Campaign, it.Holder.Email, it.Source, it.Group)})})
		return err
	}
	now := tx.Now()
	pol := strings.Split(it.Policy, ";")[0]
	r := access.Request{Policy: pol, PolicyVersion: set.Hash, App: it.App, Role: it.Role, Connector: it.Connector, Group: it.Group,
		Privileged: it.Privileged, Requester: it.Holder, State: access.StateDeprovisioning, CreatedAt: now, DecidedAt: now,
		Justification: fmt.Sprintf("Access review %s: remove %s membership (item %s)", it.Campaign, it.Source, it.ID),
		EndReason:     access.ReasonRevoked, EndedBy: by, EndedAt: now, EndsAt: now, Kind: access.KindReviewRemoval}
	if err := tx.PutRequest(&r); err != nil {
		return err
	}
	detail := map[string]string{"reason": string(access.ReasonRevoked), "campaign": it.Campaign, "item": it.ID, "source": it.Source}
	if by.Email != "" {
		detail["by"] = by.Email
	}
	if _, err := tx.Append(event(access.EvGrantEnding, actor, &r, detail)); err != nil {
		return err
	}
	it.Remediation = r.ID
	return tx.Enqueue(&access.Op{Kind: access.OpRemove, RequestID: r.ID, Connector: r.Connector, Group: r.Group,
		UserID: r.Requester.IdPID, Email: r.Requester.Email, NextAt: now})
}

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
		if c.State == CampaignOpen {
			t, err := s.tickCampaign(c.ID)
			if err != nil {
				return next, err
			}
			earliest(t)
			if c, _, err = s.CampaignOf(c.ID); err != nil {
				return next, err
			}
		}
		if c.State == CampaignClosed && !c.SummaryPosted {
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
	return s.update(func(tx Tx) error {
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
	err := s.update(func(tx Tx) error {
		var c Campaign
		if _, err := tx.Doc(DocCampaign, id, &c); err != nil {
			return err
		}
		if c.State != CampaignOpen {
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
					it.TimeoutOutcome = TimeoutRevoked
					if err := s.remediate(tx, it, access.Person{}, access.ActorScheduler); err != nil {
						return err
					}
				case policy.OnTimeoutEscalate:
					it.TimeoutOutcome = TimeoutEscalated
				default:
					it.TimeoutOutcome = TimeoutKeptAndFlagged
				}
				if err := tx.PutDoc(DocCampaignItem, it.ID, it); err != nil {
					return err
				}
				if _, err := tx.Append(access.Event{Type: access.EvCampaignItemTimedOut, Actor: access.ActorScheduler, Subject: it.Holder.Email,
					Policy: it.Policy, RequestID: it.GrantID, Detail: encodeDetail(map[string]string{"campaign": id, "item": it.ID,
						"outcome": it.TimeoutOutcome, "on_timeout": c.OnTimeout})}); err != nil {
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
			n[it.Decision]++
		case it.TimeoutOutcome != "":
			n["timeout_"+it.TimeoutOutcome]++
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
	c.State, c.ClosedAt, c.Counts = CampaignClosed, tx.Now(), campaignCounts(items)
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
		case it.Decision == DecisionRevoke:
			sum.Revoked = append(sum.Revoked, it)
		case it.Decision == DecisionFlag:
			sum.Flagged = append(sum.Flagged, it)
		}
	}
	start := s.clock.Now().UTC()
	run := JobRun{Job: JobCampaignClose, Slot: c.DueAt.UTC(), PeriodFrom: c.OpenedAt, PeriodTo: c.ClosedAt, Started: start, Outcome: RunRunning, Detail: c.ID}
	if err := s.RecordJobRun(run); err != nil {
		return err
	}
	files, _, err := s.exportFiles(ExportRequest{Kind: KindCampaign, Params: ExportParams{Campaign: c.ID}, By: access.ActorScheduler,
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
	return s.update(func(tx Tx) error {
		var cur Campaign
		if _, err := tx.Doc(DocCampaign, c.ID, &cur); err != nil {
			return err
		}
		cur.SummaryPosted = true
		return tx.PutDoc(DocCampaign, c.ID, cur)
	})
}

// CampaignHeader is the campaign export's header.
var CampaignHeader = []string{"campaign_id", "snapshot_at", "population_sha256", "holder_email", "holder_name", "app", "role", "policy",
	"source", "grant_id", "reviewer_email", "reviewer_is_subject", "decision", "decided_at", "comment", "decision_latency_seconds",
	"remediated_at", "timeout_outcome"}

func (s *Service) exportCampaign(out io.Writer, p ExportParams) (ExportResult, []string, error) {
	res := ExportResult{ByStatus: map[string]int{}, CountsColumn: "decision",
		Inclusion: "every item of the campaign: each holder of the selected policies' groups when the population was frozen (snapshot_at), one row per holder and group"}
	if p.Campaign == "" {
		return res, nil, access.Errorf(access.CodeInvalid, "Name the campaign: --campaign ID.")
	}
	c, items, err := s.CampaignOf(p.Campaign)
	if err != nil {
		return res, nil, err
	}
	w := csvw.NewWriter(out)
	if err := w.Write(CampaignHeader); err != nil {
		return res, nil, err
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
			it.Source, it.GrantID, reviewer, strconv.FormatBool(it.ReviewerIsSubject), it.Decision, ts(it.DecidedAt), comment, latency,
			ts(it.RemediatedAt), it.TimeoutOutcome}
		res.Rows++
		if it.Decision == "" {
			res.ByStatus["undecided"]++
		} else {
			res.ByStatus[it.Decision]++
		}
		if err := w.Write(rec); err != nil {
			return res, nil, err
		}
	}
	summary := map[string]any{"campaign": c.ID, "state": c.State, "opened_at": ts(c.OpenedAt), "due_at": ts(c.DueAt),
		"closed_at": ts(c.ClosedAt), "on_timeout": c.OnTimeout, "reviewer_rule": c.ReviewerRule, "policies": c.Policies,
		"snapshot_at": ts(c.SnapshotAt), "population_sha256": c.PopulationSHA256}
	for k, v := range campaignCounts(items) {
		summary["count_"+k] = v
	}
	res.Summary = summary
	return res, CampaignHeader, w.Flush()
}
