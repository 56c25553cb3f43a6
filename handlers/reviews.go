package handlers

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"keycard/access"
	"keycard/policy"
)

// AdminReport is the admin access report: privileged grants in force,
// grouped by app and role, and the privileged access keycard did not grant.
type AdminReport struct {
	At        time.Time
	Groups    []GrantGroup
	Unmanaged []HolderRow // standing and unmanaged members of privileged groups
	Sync      PolicySync
	Rows      int // rows of the attached CSV
	// Conflicts are people holding a whole separation-of-duties set (conflicts.go).
	Conflicts []ConflictHolder
}

// GrantGroup is the active grants of one app role.
type GrantGroup struct {
	App, Role string
	Grants    []access.Request
}

// PolicySync compares the policies with the IdP's groups.
type PolicySync struct {
	// Uncovered are groups inside a connector's scope that no policy maps to:
	// access that exists but that keycard neither grants nor reviews.
	Uncovered []ConnectorGroup
	// Missing are policies whose group the IdP does not have: requests for
	// them would fail at provisioning.
	Missing []ConnectorGroup
	// Unchecked names connectors that cannot list their groups.
	Unchecked []string
}

// ConnectorGroup is a group of one connector (with the policy, for Missing).
type ConnectorGroup struct {
	Connector, Group, Policy string
}

// Empty reports whether the policies and the IdP agree.
func (p PolicySync) Empty() bool { return len(p.Uncovered) == 0 && len(p.Missing) == 0 }

// GroupLister is the optional power of a directory to list its groups'
// names (connectors/okta and connectors/static have it).
type GroupLister interface {
	Groups(ctx context.Context) ([]string, error)
}

// CheckAgainstIdP compares every connector's groups with the policies:
// groups inside the scope that no policy covers, and policies whose group
// is missing in the IdP. It reads only the IdPs, never the store, so the
// command line calls it without a Service.
func CheckAgainstIdP(ctx context.Context, set *policy.Set, conns Connectors) (PolicySync, error) {
	listed := map[string][]string{}
	var out PolicySync
	for _, name := range slices.Sorted(maps.Keys(set.Connectors)) {
		dir, ok := conns.Directory(name)
		gl, can := dir.(GroupLister)
		if !ok || !can {
			out.Unchecked = append(out.Unchecked, name)
			continue
		}
		groups, err := gl.Groups(ctx)
		if err != nil {
			return out, fmt.Errorf("list groups of connector %s: %w", name, err)
		}
		listed[name] = groups
	}
	sync := ComparePolicyGroups(set, listed)
	sync.Unchecked = out.Unchecked
	return sync, nil
}

// ComparePolicyGroups is CheckAgainstIdP's rule over group lists already
// read (connector name -> its groups); connectors absent from groups are
// not judged.
func ComparePolicyGroups(set *policy.Set, groups map[string][]string) PolicySync {
	var out PolicySync
	covered := map[ConnectorGroup]bool{}
	for _, p := range set.Policies {
		covered[ConnectorGroup{Connector: p.ConnectorName(), Group: p.Group}] = true
	}
	for _, name := range slices.Sorted(maps.Keys(set.Connectors)) {
		gs, ok := groups[name]
		if !ok {
			continue
		}
		c := set.Connectors[name]
		have := map[string]bool{}
		for _, g := range gs {
			have[g] = true
			if c.InScope(g) && !covered[ConnectorGroup{Connector: name, Group: g}] {
				out.Uncovered = append(out.Uncovered, ConnectorGroup{Connector: name, Group: g})
			}
		}
		for _, p := range set.Policies {
			if p.ConnectorName() == name && !have[p.Group] {
				out.Missing = append(out.Missing, ConnectorGroup{Connector: name, Group: p.Group, Policy: p.Name})
			}
		}
	}
	return out
}

// privilegedGroups is the set of groups some privileged policy maps to.
func (s *Service) privilegedGroups() map[groupKey]bool {
	out := map[groupKey]bool{}
	for _, p := range s.Policy().Policies {
		if p.Privileged {
			out[groupKey{p.ConnectorName(), p.Group}] = true
		}
	}
	return out
}

// BuildAdminReport gathers the admin access report at now.
func (s *Service) BuildAdminReport(ctx context.Context) (AdminReport, error) {
	rep := AdminReport{At: s.clock.Now().UTC()}
	active, err := s.Active(true)
	if err != nil {
		return rep, err
	}
	for _, r := range active {
		if r.State == access.StateProvisioning {
			continue // not yet confirmed by the IdP: not access yet
		}
		if n := len(rep.Groups); n == 0 || rep.Groups[n-1].App != r.App || rep.Groups[n-1].Role != r.Role {
			rep.Groups = append(rep.Groups, GrantGroup{App: r.App, Role: r.Role})
		}
		g := &rep.Groups[len(rep.Groups)-1]
		g.Grants = append(g.Grants, r)
	}
	rows, _, err := s.Holders(ctx, rep.At)
	if err != nil {
		return rep, err
	}
	rep.Conflicts = conflictHolders(s.Policy(), rows) // conflicts.go
	priv := s.privilegedGroups()
	for _, h := range rows {
		if priv[groupKey{h.Connector, h.Group}] && h.Source != SourceKeycard {
			rep.Unmanaged = append(rep.Unmanaged, h)
		}
	}
	if rep.Sync, err = CheckAgainstIdP(ctx, s.Policy(), s.conns); err != nil {
		return rep, err
	}
	return rep, nil
}

// exportFiles runs one export into memory: the CSV and its manifest.json.
func (s *Service) exportFiles(ctx context.Context, req ExportRequest) ([]ReportFile, Manifest, error) {
	var buf bytes.Buffer
	m, err := s.Export(ctx, &buf, req)
	if err != nil {
		return nil, m, err
	}
	name := m.CSV.Name
	return []ReportFile{{Name: name, Content: buf.Bytes()},
		{Name: strings.TrimSuffix(name, ".csv") + ".manifest.json", Content: m.Encode()}}, m, nil
}

func slotInvocation(job string, slot time.Time) string {
	return "scheduled " + job + " for " + slot.UTC().Format(time.RFC3339)
}

func (s *Service) runAdminReport(ctx context.Context, pub Publisher, slot time.Time) (JobRun, error) {
	run := JobRun{PeriodFrom: slot.UTC(), PeriodTo: slot.UTC()}
	rep, err := s.BuildAdminReport(ctx)
	if err != nil {
		return run, err
	}
	p := ExportParams{AsOf: rep.At}
	files, m, err := s.exportFiles(ctx, ExportRequest{Kind: KindPrivileged, Params: p, By: access.ActorScheduler,
		Invocation: slotInvocation(JobAdminReport, slot), FileName: "keycard-privileged-access-" + slot.In(s.location()).Format("2006-01-02") + ".csv"})
	if err != nil {
		return run, err
	}
	rep.Rows = m.RowCount
	if files, err = s.withChart(files, &m, "Privileged access", rep.At.Add(-7*24*time.Hour), rep.At, true); err != nil {
		return run, err
	}
	r := Report{Key: JobRun{Job: JobAdminReport, Slot: slot}.ID(), Job: JobAdminReport, Channel: s.Policy().Reviews.AdminAccessReport.Channel,
		Slot: slot, Admin: &rep, Files: files}
	sum, err := s.publish(ctx, pub, r)
	run.Artefact = sum
	run.Detail = fmt.Sprintf("%d privileged grants, %d members keycard did not grant, %d CSV rows", countGrants(rep.Groups), len(rep.Unmanaged), rep.Rows)
	return run, err
}

func countGrants(gs []GrantGroup) int {
	n := 0
	for _, g := range gs {
		n += len(g.Grants)
	}
	return n
}

// ComplianceReport is the monthly compliance package's message.
type ComplianceReport struct {
	From, To     time.Time // the previous calendar month, in the policy's time zone
	AccessRows   int
	EventRows    int
	HeadSeq      uint64
	HeadHash     string
	PolicyHash   string // SHA-256 of the policy file in force
	ChainChecked bool
	ChainProblem string
}

// PreviousMonth is the calendar month before the one t falls in, in loc:
// [first day of that month, first day of t's month).
func PreviousMonth(t time.Time, loc *time.Location) (from, to time.Time) {
	lt := t.In(loc)
	to = time.Date(lt.Year(), lt.Month(), 1, 0, 0, 0, 0, loc)
	from = to.AddDate(0, -1, 0)
	return from, to
}

func (s *Service) runCompliance(ctx context.Context, pub Publisher, slot time.Time) (JobRun, error) {
	from, to := PreviousMonth(slot, s.location())
	run := JobRun{PeriodFrom: from.UTC(), PeriodTo: to.UTC()}
	p := ExportParams{From: from, To: to}
	month := from.Format("2006-01")
	inv := slotInvocation(JobCompliance, slot)
	accessFiles, am, err := s.exportFiles(ctx, ExportRequest{Kind: KindAccess, Params: p, By: access.ActorScheduler, Invocation: inv,
		FileName: "keycard-access-" + month + ".csv"})
	if err != nil {
		return run, err
	}
	eventFiles, em, err := s.exportFiles(ctx, ExportRequest{Kind: KindEvents, Params: p, By: access.ActorScheduler, Invocation: inv,
		FileName: "keycard-events-" + month + ".csv"})
	if err != nil {
		return run, err
	}
	if accessFiles, err = s.withChart(accessFiles, &am, "Access", from, to, false); err != nil {
		return run, err
	}
	rep := ComplianceReport{From: from, To: to, AccessRows: am.RowCount, EventRows: em.RowCount,
		HeadSeq: em.Audit.HeadSeq, HeadHash: em.Audit.HeadHash, PolicyHash: em.Source.PolicyHash,
		ChainChecked: em.Audit.ChainVerified, ChainProblem: em.Audit.VerifyProblem}
	r := Report{Key: JobRun{Job: JobCompliance, Slot: slot}.ID(), Job: JobCompliance, Channel: s.Policy().Reviews.CompliancePackage.Channel,
		Slot: slot, Compliance: &rep, Files: append(accessFiles, eventFiles...)}
	sum, err := s.publish(ctx, pub, r)
	run.Artefact = sum
	run.Detail = fmt.Sprintf("%s: %d access rows, %d events, chain head %d %s", month, rep.AccessRows, rep.EventRows, rep.HeadSeq, rep.HeadHash)
	return run, err
}
