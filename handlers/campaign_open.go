package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"keycard/access"
	"keycard/policy"
)

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
	selected, polNames := selectPolicies(s.Policy().Policies, job, names)
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
		DueAt: now.Add(job.Due), OnTimeout: job.OnTimeout, ReviewerRule: job.Reviewer.String(), Channel: job.Channel, State: access.CampaignOpen}
	if slot.IsZero() {
		c.Slot = time.Time{}
	}
	items, holders := population(id, rows, selected, job.Reviewer.String())
	for i, h := range holders {
		it := &items[i]
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

// selectPolicies picks the policies a campaign reviews: those named, or
// when none is named those the certification job covers; by name, and
// their names in policy-file order.
func selectPolicies(all []*policy.Policy, job policy.CertificationJob, names []string) (map[string]*policy.Policy, []string) {
	selected := map[string]*policy.Policy{}
	var polNames []string
	for _, p := range all {
		want := job.Covers(p)
		if len(names) > 0 {
			want = slices.Contains(names, p.Name)
		}
		if want {
			selected[p.Name] = p
			polNames = append(polNames, p.Name)
		}
	}
	return selected, polNames
}

// population freezes a campaign's items from the holders at the snapshot:
// one item per holder row in a selected policy's group (a group several
// selected policies share is one item, its policies ;-joined), holders in
// row order. A keycard grant's requester is the holder. Reviewers are not
// assigned yet (that asks the IdP); holders[i] is items[i]'s row.
func population(campaign string, rows []HolderRow, selected map[string]*policy.Policy, reviewerRule string) (items []CampaignItem, holders []HolderRow) {
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
		it := CampaignItem{Campaign: campaign, Holder: access.Person{Email: h.Email, Name: h.Name, IdPID: h.ID}, App: pols[0].App, Role: pols[0].Role,
			Connector: h.Connector, Group: h.Group, Source: h.Source, ReviewerRule: reviewerRule}
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
		items = append(items, it)
		holders = append(holders, h)
	}
	return items, holders
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
