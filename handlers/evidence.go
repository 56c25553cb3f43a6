package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"keycard/access"
	"keycard/csvw"
)

// Document kinds kept in the store for evidence.
const (
	DocPolicyVersion = "policy_version" // id: 20-digit audit seq of the load
	DocJobRun        = "job_run"        // id: job + "/" + scheduled slot (RFC 3339)
	DocBaseline      = "baseline"       // id: connector + "/" + group
)

// PolicyVersion is one policy file version and when it was in force.
type PolicyVersion struct {
	Hash     string    `json:"hash"`
	Path     string    `json:"path"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to,omitzero"` // zero while in force
	LoadedBy string    `json:"loaded_by"`   // "keycard" at start, "SIGHUP", an admin's email
	Changes  []string  `json:"changes"`
	EventSeq uint64    `json:"event_seq"` // the policy.loaded / policy.changed event
	// Text is the file's content, so the version in force can be re-read if
	// the file on disk is an unapproved change. Not exported to CSV.
	Text string `json:"text,omitempty"`
}

// JobRun is one run (or missed run) of a scheduled job: the job ledger.
type JobRun struct {
	Job        string    `json:"job"`
	Slot       time.Time `json:"slot"` // the scheduled time this run is for
	PeriodFrom time.Time `json:"period_from,omitzero"`
	PeriodTo   time.Time `json:"period_to,omitzero"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	Outcome    string    `json:"outcome"` // running, ok, failed, missed
	Artefact   string    `json:"artefact_sha256,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
}

// ID is the run's document id.
func (j JobRun) ID() string { return j.Job + "/" + j.Slot.UTC().Format(time.RFC3339) }

// Baseline is a group's membership when keycard first looked at it: members
// then are standing access; members who appear later without a keycard
// grant are unmanaged (added outside keycard).
type Baseline struct {
	Connector string    `json:"connector"`
	Group     string    `json:"group"`
	TakenAt   time.Time `json:"taken_at"`
	Members   []string  `json:"members"` // IdP user ids
}

// lastPolicyVersion reads the policy version recorded last (the zero
// value when none is).
func lastPolicyVersion(tx Tx) (PolicyVersion, error) {
	var last PolicyVersion
	err := tx.Docs(DocPolicyVersion, "", func(_ string, data []byte) error {
		last = PolicyVersion{}
		return json.Unmarshal(data, &last)
	})
	return last, err
}

// recordPolicyVersion closes the previous version and opens this one, in the
// transaction that audits the load.
func recordPolicyVersion(tx Tx, v PolicyVersion) error {
	var prev PolicyVersion
	var prevID string
	if err := tx.Docs(DocPolicyVersion, "", func(id string, data []byte) error {
		prevID, prev = id, PolicyVersion{} // decode each into a fresh value: omitted fields must not leak from the last
		return json.Unmarshal(data, &prev)
	}); err != nil {
		return err
	}
	if prevID != "" && prev.To.IsZero() {
		prev.To = v.From
		if err := tx.PutDoc(DocPolicyVersion, prevID, prev); err != nil {
			return err
		}
	}
	return tx.PutDoc(DocPolicyVersion, fmt.Sprintf("%020d", v.EventSeq), v)
}

// RecordJobRun stores a job-ledger entry (the scheduler calls it when a run
// starts, ends, or is found missed).
func (s *Service) RecordJobRun(j JobRun) error {
	return s.store.Update(s.clock.Now(), s.fenced(func(tx Tx) error { return tx.PutDoc(DocJobRun, j.ID(), j) }))
}

// JobRuns lists a job's ledger in slot order ("" = every job).
func (s *Service) JobRuns(job string) ([]JobRun, error) {
	var out []JobRun
	prefix := ""
	if job != "" {
		prefix = job + "/"
	}
	err := s.store.View(func(tx Tx) error {
		return tx.Docs(DocJobRun, prefix, func(_ string, data []byte) error {
			var j JobRun
			if err := json.Unmarshal(data, &j); err != nil {
				return err
			}
			out = append(out, j)
			return nil
		})
	})
	sort.SliceStable(out, func(i, k int) bool {
		if !out[i].Slot.Equal(out[k].Slot) {
			return out[i].Slot.Before(out[k].Slot)
		}
		return out[i].Job < out[k].Job
	})
	return out, err
}

// PoliciesHeader is the policy-versions export's header.
var PoliciesHeader = []string{"policy_hash", "in_force_from", "in_force_to", "loaded_by", "path", "changes", "event_seq"}

// policiesInclusion states the policies export's inclusion rule in words.
const policiesInclusion = "every policy version that was in force at any time in [from, to), in load order (all versions when no period is given)"

func (s *Service) exportPolicies(_ context.Context, out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}}
	w := csvw.NewWriter(out)
	if err := w.Write(PoliciesHeader); err != nil {
		return res, err
	}
	err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		return tx.Docs(DocPolicyVersion, "", func(_ string, data []byte) error {
			var v PolicyVersion
			if err := json.Unmarshal(data, &v); err != nil {
				return err
			}
			if !p.To.IsZero() && !v.From.Before(p.To) {
				return nil
			}
			if !p.From.IsZero() && !v.To.IsZero() && v.To.Before(p.From) {
				return nil
			}
			to := ts(v.To)
			if to == "" {
				res.ByStatus[""]++
			} else {
				res.ByStatus[to]++
			}
			res.Rows++
			return w.Write([]string{v.Hash, ts(v.From), to, v.LoadedBy, v.Path, strings.Join(v.Changes, "; "), fmt.Sprint(v.EventSeq)})
		})
	})
	if err != nil {
		return res, err
	}
	return res, w.Flush()
}

// JobsHeader is the job-ledger export's header.
var JobsHeader = []string{"job", "scheduled_for", "period_from", "period_to", "started_at", "finished_at", "outcome", "artefact_sha256", "detail"}

// jobsInclusion states the jobs export's inclusion rule in words.
const jobsInclusion = "every scheduled run (and missed run) whose scheduled time is in [from, to), in scheduled order"

func (s *Service) exportJobs(_ context.Context, out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}}
	runs, err := s.JobRuns("")
	if err != nil {
		return res, err
	}
	w := csvw.NewWriter(out)
	if err := w.Write(JobsHeader); err != nil {
		return res, err
	}
	_ = s.store.View(func(tx Tx) error { res.HeadSeq, res.HeadHash, _ = tx.Head(); return nil })
	for _, j := range runs {
		if (!p.From.IsZero() && j.Slot.Before(p.From)) || (!p.To.IsZero() && !j.Slot.Before(p.To)) {
			continue
		}
		res.Rows++
		res.ByStatus[j.Outcome]++
		if err := w.Write([]string{j.Job, ts(j.Slot), ts(j.PeriodFrom), ts(j.PeriodTo), ts(j.Started), ts(j.Finished), j.Outcome, j.Artefact, j.Detail}); err != nil {
			return res, err
		}
	}
	return res, w.Flush()
}

// HoldersHeader is the holders snapshot's header.
var HoldersHeader = []string{"as_of", "connector", "group", "policies", "user_email", "user_name", "idp_user_id", "source", "grant_id", "grant_start", "grant_end", "in_idp"}

// Holder sources.
const (
	SourceKeycard   = "keycard"
	SourceStanding  = "standing"
	SourceUnmanaged = "unmanaged"
)

// groupKey is one IdP group some policy maps to.
type groupKey struct{ connector, group string }

// policyGroups lists each policy group once, with the policies on it.
func (s *Service) policyGroups() ([]groupKey, map[groupKey][]string) {
	set := s.Policy()
	byGroup := map[groupKey][]string{}
	var keys []groupKey
	if set == nil {
		return nil, byGroup
	}
	for _, p := range set.Policies {
		k := groupKey{p.ConnectorName(), p.Group}
		if _, ok := byGroup[k]; !ok {
			keys = append(keys, k)
		}
		byGroup[k] = append(byGroup[k], p.Name)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].connector != keys[j].connector {
			return keys[i].connector < keys[j].connector
		}
		return keys[i].group < keys[j].group
	})
	return keys, byGroup
}

// TakeBaselines records, for each policy group that has none yet, who is in
// it now: the standing members keycard found when it started managing the
// group. Later members without a keycard grant are unmanaged.
func (s *Service) TakeBaselines(ctx context.Context) error {
	keys, _ := s.policyGroups()
	for _, k := range keys {
		var b Baseline
		var have bool
		if err := s.store.View(func(tx Tx) error {
			var err error
			have, err = tx.Doc(DocBaseline, k.connector+"/"+k.group, &b)
			return err
		}); err != nil {
			return err
		}
		if have {
			continue
		}
		dir, ok := s.conns.Directory(k.connector)
		if !ok {
			continue
		}
		members, err := dir.GroupMembers(ctx, k.group)
		if err != nil {
			return fmt.Errorf("baseline of %s/%s: %w", k.connector, k.group, err)
		}
		// A member who holds the group through a keycard grant right now is
		// not standing access: leave them out, or they would be called
		// standing for good once their grant ended and they stayed.
		held := map[string]bool{}
		if err := s.store.View(func(tx Tx) error {
			hs, err := heldAt(tx, k, s.clock.Now(), s.clock.Now())
			for _, h := range hs {
				held[h.Requester.IdPID] = true
			}
			return err
		}); err != nil {
			return err
		}
		b = Baseline{Connector: k.connector, Group: k.group, TakenAt: s.clock.Now().UTC()}
		for _, m := range members {
			if !held[m.ID] {
				b.Members = append(b.Members, m.ID)
			}
		}
		sort.Strings(b.Members)
		if err := s.updateLead(func(tx Tx) error {
			if ok, err := tx.Doc(DocBaseline, k.connector+"/"+k.group, &Baseline{}); err != nil || ok {
				return err
			}
			return tx.PutDoc(DocBaseline, k.connector+"/"+k.group, b)
		}); err != nil {
			return err
		}
	}
	return nil
}

// HoldersAt is what the holders snapshot and the admin report need: for each
// policy group, the keycard grants holding it at `at` and its IdP members
// now, each classified.
type HolderRow struct {
	Connector, Group string
	Policies         []string
	Email, Name, ID  string
	Source           string
	Grant            *access.Request // the keycard grant holding it (keycard source, or standing under a NotOwner grant)
	InIdP            bool
}

// Holders classifies every member of every policy group: keycard (a grant
// holds it at `at`), standing (in the group's baseline, or held by a grant
// that found the person already a member: Grant is set) or unmanaged
// (added outside keycard). Keycard grants the IdP does not show are listed with
// InIdP false. The IdP part is read now, whatever `at` is.
func (s *Service) Holders(ctx context.Context, at time.Time) ([]HolderRow, map[string]any, error) {
	if err := s.TakeBaselines(ctx); err != nil {
		return nil, nil, err
	}
	keys, byGroup := s.policyGroups()
	now := s.clock.Now()
	var rows []HolderRow
	idpMembers, grants, excluded := 0, 0, 0
	for _, k := range keys {
		dir, ok := s.conns.Directory(k.connector)
		if !ok {
			return nil, nil, access.Errorf(access.CodeInternal, "connector %q is not configured", k.connector)
		}
		members, err := dir.GroupMembers(ctx, k.group)
		if err != nil {
			return nil, nil, err
		}
		idpMembers += len(members)
		var base Baseline
		var held, heldNow []access.Request
		if err := s.store.View(func(tx Tx) error {
			if _, err := tx.Doc(DocBaseline, k.connector+"/"+k.group, &base); err != nil {
				return err
			}
			var err error
			if held, err = heldAt(tx, k, at, now); err != nil {
				return err
			}
			heldNow, err = heldAt(tx, k, now, now)
			return err
		}); err != nil {
			return nil, nil, err
		}
		// A member granted by keycard after `at` was not in the population then.
		laterGrant := map[string]bool{}
		for _, g := range heldNow {
			laterGrant[g.Requester.IdPID] = true
		}
		grants += len(held)
		byUser := map[string]*access.Request{}
		for i := range held {
			byUser[held[i].Requester.IdPID] = &held[i]
		}
		inBase := map[string]bool{}
		for _, id := range base.Members {
			inBase[id] = true
		}
		seen := map[string]bool{}
		for _, m := range members {
			seen[m.ID] = true
			if byUser[m.ID] == nil && laterGrant[m.ID] {
				excluded++
				continue
			}
			row := HolderRow{Connector: k.connector, Group: k.group, Policies: byGroup[k], Email: m.Email, Name: m.Name, ID: m.ID, InIdP: true}
			switch {
			case byUser[m.ID] != nil:
				row.Source, row.Grant = holderSource(byUser[m.ID]), byUser[m.ID]
			case inBase[m.ID]:
				row.Source = SourceStanding
			default:
				row.Source = SourceUnmanaged
			}
			rows = append(rows, row)
		}
		for _, g := range held {
			if !seen[g.Requester.IdPID] {
				gg := g
				rows = append(rows, HolderRow{Connector: k.connector, Group: k.group, Policies: byGroup[k], Email: g.Requester.Email,
					Name: g.Requester.Name, ID: g.Requester.IdPID, Source: holderSource(&gg), Grant: &gg})
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b HolderRow) int {
		return cmp.Or(cmp.Compare(a.Connector, b.Connector), cmp.Compare(a.Group, b.Group),
			cmp.Compare(strings.ToLower(a.Email), strings.ToLower(b.Email)))
	})
	notInIdP := 0
	for _, r := range rows {
		if !r.InIdP {
			notInIdP++
		}
	}
	summary := map[string]any{"idp_members": idpMembers, "keycard_grants": grants, "keycard_not_in_idp": notInIdP,
		"idp_read_at": s.clock.Now().UTC().Format(time.RFC3339), "groups": len(keys), "granted_after_as_of": excluded}
	return rows, summary, nil
}

// holderSource classifies a member that keycard grant g holds. A grant
// that found the person already a member (NotOwner) rides on a standing
// membership keycard did not add and will not remove: the membership is
// standing, so reviews see it as such and a review Revoke removes it.
func holderSource(g *access.Request) string {
	if g.NotOwner {
		return SourceStanding
	}
	return SourceKeycard
}

// heldAt lists the grants on group k whose access covered `at` (the current
// holders when `at` is now or later).
func heldAt(tx Tx, k groupKey, at, now time.Time) ([]access.Request, error) {
	if !at.Before(now) {
		hs, err := tx.Holders(k.connector, k.group)
		if err != nil {
			return nil, err
		}
		var out []access.Request
		for _, h := range hs {
			if h.State == access.StateActive || h.State == access.StateDeprovisioning {
				out = append(out, h)
			}
		}
		return dedupeHolder(out), nil
	}
	var out []access.Request
	err := tx.ForEachRequest(at.Add(time.Nanosecond), func(r *access.Request) error {
		if r.Connector != k.connector || r.Group != k.group || r.ProvisionedAt.IsZero() || r.ProvisionedAt.After(at) {
			return nil
		}
		if !r.DeprovisionedAt.IsZero() && !r.DeprovisionedAt.After(at) {
			return nil
		}
		out = append(out, *r)
		return nil
	})
	return dedupeHolder(out), err
}

// dedupeHolder keeps one grant per person (the one ending last).
func dedupeHolder(rs []access.Request) []access.Request {
	best := map[string]int{}
	var out []access.Request
	for _, r := range rs {
		if i, ok := best[r.Requester.IdPID]; ok {
			if r.EndsAt.After(out[i].EndsAt) {
				out[i] = r
			}
			continue
		}
		best[r.Requester.IdPID] = len(out)
		out = append(out, r)
	}
	return out
}

// holdersInclusion and privilegedInclusion state the holders and the
// admin access report's inclusion rules in words.
const (
	holdersInclusion    = "every member of every policy's IdP group: keycard grants in force at as_of (from keycard's records), and the IdP's members read at generation time, classified keycard / standing (in the group when keycard first read it) / unmanaged (added outside keycard since)"
	privilegedInclusion = "every member of every privileged policy's IdP group, read from the IdP at generation, and every keycard grant in force on it, classified keycard / standing / unmanaged"
)

func (s *Service) exportHolders(ctx context.Context, out io.Writer, p ExportParams) (ExportResult, error) {
	return s.holdersReport(ctx, out, p, false)
}

// exportPrivileged is the admin access report's CSV: the holders of the
// privileged policies' groups only.
func (s *Service) exportPrivileged(ctx context.Context, out io.Writer, p ExportParams) (ExportResult, error) {
	return s.holdersReport(ctx, out, p, true)
}

// holdersReport reads the holders at p.AsOf (now when zero), under a bound
// on the IdP reads, and writes those of every policy group, or of the
// privileged ones only.
func (s *Service) holdersReport(ctx context.Context, out io.Writer, p ExportParams, privileged bool) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}}
	at := p.AsOf
	if at.IsZero() {
		at = s.clock.Now()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rows, summary, err := s.Holders(ctx, at)
	if err != nil {
		return res, err
	}
	var keep func(HolderRow) bool
	if privileged {
		priv := s.privilegedGroups()
		keep = func(r HolderRow) bool { return priv[groupKey{r.Connector, r.Group}] }
	} else if at.Before(s.clock.Now()) {
		summary["note"] = "as_of is in the past: keycard grants are as of as_of, IdP membership is as of idp_read_at"
	}
	conflictsSummary(s.Policy(), rows, summary) // conflicts.go
	res.Summary = summary
	err = s.writeHolders(out, rows, at, keep, &res)
	return res, err
}

// writeHolders writes the holders CSV for the rows keep accepts (all when
// nil), tallying sources into res and stamping the chain head.
func (s *Service) writeHolders(out io.Writer, rows []HolderRow, at time.Time, keep func(HolderRow) bool, res *ExportResult) error {
	w := csvw.NewWriter(out)
	if err := w.Write(HoldersHeader); err != nil {
		return err
	}
	_ = s.store.View(func(tx Tx) error { res.HeadSeq, res.HeadHash, _ = tx.Head(); return nil })
	for _, r := range rows {
		if keep != nil && !keep(r) {
			continue
		}
		rec := []string{ts(at), r.Connector, r.Group, strings.Join(r.Policies, ";"), r.Email, r.Name, r.ID, r.Source, "", "", "", "yes"}
		if r.Grant != nil {
			rec[8], rec[9], rec[10] = r.Grant.ID, ts(r.Grant.ProvisionedAt), ts(r.Grant.EndsAt)
		}
		if !r.InIdP {
			rec[11] = "no"
		}
		res.Rows++
		res.ByStatus[r.Source]++
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	return w.Flush()
}
