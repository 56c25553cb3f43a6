package handlers

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"keycard/access"
	"keycard/csvw"
	"keycard/policy"
)

// "Who can?" (issue 15 item 4; SPEC `keycard policy who-can`, `/export
// who-can`): for every person in the directory population and every policy,
// whether they may request it, under which profile, and who would approve
// each step today. It is the evidence an auditor asks for when testing that
// the access policy operates as designed (SOC 2 CC6.1/CC6.3), and with a
// proposed policy file, what a change would alter.

// KindWhoCan is the who-can export's kind.
const KindWhoCan = "who-can"

// WhoCanHeader is the who-can export's header.
var WhoCanHeader = []string{"user_email", "user_name", "policy", "eligible", "profile", "step", "rule", "approvers"}

// WhoCanDiffHeader is the header of the difference between two policies'
// who-can rows: a change column (added, removed, changed) before the rows.
var WhoCanDiffHeader = append([]string{"change"}, WhoCanHeader...)

// Who-can changes.
const (
	WhoCanAdded   = "added"
	WhoCanRemoved = "removed"
	WhoCanChanged = "changed"
)

// whoCanInclusion states the who-can population and rows in words.
const whoCanInclusion = "the directory population keycard can enumerate: for a static directory its users; for every directory the members of every policy's group, " +
	"of every approval, escalation and reviewer group, of the auditors and admins groups, and the people approval rules name; " +
	"one row per person and policy when not eligible (or auto-approved), else one row per approval step with the approvers resolved today, the requester excluded"

// WhoCanOptions filter the rows: one policy, one person (by email).
type WhoCanOptions struct {
	Policy string
	User   string
}

// WhoCanRow is one person's standing for one policy (one step of it).
// Step is 0 on the row of a person who is not eligible, or of an
// auto-approved policy (Rule "auto"). Approvers empty on an eligible step:
// nobody could approve it today, so a request would be refused.
type WhoCanRow struct {
	UserEmail, UserName, Policy string
	Eligible                    bool
	Profile                     string // the matching profiles, ";"-joined
	Step                        int    // 1-based
	Rule                        string
	Approvers                   []string // emails, sorted
}

// Record is the row's CSV cells (WhoCanHeader order).
func (r WhoCanRow) Record() []string {
	step := ""
	if r.Step > 0 {
		step = strconv.Itoa(r.Step)
	}
	return []string{r.UserEmail, r.UserName, r.Policy, strconv.FormatBool(r.Eligible), r.Profile, step, r.Rule, strings.Join(r.Approvers, ";")}
}

func (r WhoCanRow) key() string {
	return strings.ToLower(r.UserEmail) + "\x00" + r.Policy + "\x00" + strconv.Itoa(r.Step)
}

// WhoCan lists who may request what and who would approve, under set,
// reading people from dir (the set's directory connector).
func WhoCan(ctx context.Context, set *policy.Set, dir access.Directory, opt WhoCanOptions) ([]WhoCanRow, error) {
	dir = newMemoDirectory(dir)
	people, err := WhoCanPopulation(ctx, dir, opt.User, set)
	if err != nil {
		return nil, err
	}
	return whoCanRows(ctx, set, dir, people, opt)
}

// WhoCanChange is one row that differs between the running and a proposed
// policy: added and changed rows carry the proposed values, removed rows
// the running ones.
type WhoCanChange struct {
	Change string
	WhoCanRow
}

// WhoCanDiff is the rows that differ between the running policy and a
// proposed one, both evaluated against the same directory today, over the
// union of both policies' populations. Rows are keyed by person, policy and
// step.
func WhoCanDiff(ctx context.Context, running, proposed *policy.Set, dir access.Directory, opt WhoCanOptions) ([]WhoCanChange, error) {
	dir = newMemoDirectory(dir)
	people, err := WhoCanPopulation(ctx, dir, opt.User, running, proposed)
	if err != nil {
		return nil, err
	}
	before, err := whoCanRows(ctx, running, dir, people, WhoCanOptions{Policy: opt.Policy})
	if err != nil && !(opt.Policy != "" && access.CodeOf(err) == access.CodeUnknownPolicy) {
		return nil, err
	}
	after, err := whoCanRows(ctx, proposed, dir, people, WhoCanOptions{Policy: opt.Policy})
	if err != nil && !(opt.Policy != "" && access.CodeOf(err) == access.CodeUnknownPolicy) {
		return nil, err
	}
	return diffWhoCan(before, after), nil
}

// diffWhoCan compares two row lists by key.
func diffWhoCan(before, after []WhoCanRow) []WhoCanChange {
	old := make(map[string]WhoCanRow, len(before))
	for _, r := range before {
		old[r.key()] = r
	}
	seen := map[string]bool{}
	var out []WhoCanChange
	for _, r := range after {
		k := r.key()
		seen[k] = true
		o, ok := old[k]
		switch {
		case !ok:
			out = append(out, WhoCanChange{WhoCanAdded, r})
		case strings.Join(o.Record(), "\x00") != strings.Join(r.Record(), "\x00"):
			out = append(out, WhoCanChange{WhoCanChanged, r})
		}
	}
	for _, r := range before {
		if !seen[r.key()] {
			out = append(out, WhoCanChange{WhoCanRemoved, r})
		}
	}
	slices.SortStableFunc(out, func(a, b WhoCanChange) int {
		return cmp.Or(cmp.Compare(a.UserEmail, b.UserEmail), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Step, b.Step))
	})
	return out
}

// WriteWhoCanCSV writes rows under WhoCanHeader, formula cells neutralised.
func WriteWhoCanCSV(w io.Writer, rows []WhoCanRow) error {
	cw := csvw.NewWriter(w)
	if err := cw.Write(WhoCanHeader); err != nil {
		return err
	}
	for _, r := range rows {
		if err := cw.Write(r.Record()); err != nil {
			return err
		}
	}
	return cw.Flush()
}

// WriteWhoCanDiffCSV writes changes under WhoCanDiffHeader.
func WriteWhoCanDiffCSV(w io.Writer, changes []WhoCanChange) error {
	cw := csvw.NewWriter(w)
	if err := cw.Write(WhoCanDiffHeader); err != nil {
		return err
	}
	for _, c := range changes {
		if err := cw.Write(append([]string{c.Change}, c.Record()...)); err != nil {
			return err
		}
	}
	return cw.Flush()
}

// WhoCanPopulation is the people the who-can rows cover. access.Directory
// cannot list every user (IdPs page whole tenants; keycard only ever asks
// about groups and people), so the population is what keycard can
// enumerate: a static directory's users, and the members of every group
// the sets name (policy groups, approval, escalation and reviewer groups,
// auditors, admins), and the people rules name. With user set, just that
// person. Sorted by email; people the directory cannot find are left out.
func WhoCanPopulation(ctx context.Context, dir access.Directory, user string, sets ...*policy.Set) ([]access.User, error) {
	if user != "" {
		u, err := dir.UserByEmail(ctx, user)
		if err != nil {
			if access.CodeOf(err) == access.CodeNotFound {
				return nil, access.Wrap(access.CodeUnknownUser, err, "%s is not in the directory.", user)
			}
			return nil, err
		}
		return []access.User{u}, nil
	}
	byEmail := map[string]access.User{}
	var named []string
	var groups []string
	seenGroup := map[string]bool{}
	addGroup := func(g string) {
		if g != "" && !seenGroup[g] {
			seenGroup[g] = true
			groups = append(groups, g)
		}
	}
	addRules := func(rules []policy.Rule) {
		for _, r := range rules {
			switch r.Kind {
			case policy.RuleGroup:
				addGroup(r.Group)
			case policy.RuleUser, policy.RuleUsers:
				named = append(named, r.Users...)
			}
		}
	}
	for _, set := range sets {
		if c := set.Connectors[set.Directory]; c != nil && c.Type == policy.ConnectorStatic {
			for _, u := range c.Users {
				named = append(named, u.Email)
			}
		}
		for _, p := range set.Policies {
			if p.ConnectorName() == set.Directory {
				addGroup(p.Group)
			}
			addRules(p.Approval)
			addRules(p.EscalateTo)
		}
		if c := set.Reviews.Certification; c != nil {
			addRules([]policy.Rule{c.Reviewer})
		}
		addGroup(set.Auditors.Group)
		addGroup(set.Admins.Group)
	}
	for _, g := range groups {
		members, err := dir.GroupMembers(ctx, g)
		if access.CodeOf(err) == access.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("who-can: members of %s: %w", g, err)
		}
		for _, u := range members {
			if e := emailOf(u); e != "" {
				if _, ok := byEmail[e]; !ok {
					byEmail[e] = u
				}
			}
		}
	}
	for _, e := range named {
		if _, ok := byEmail[strings.ToLower(e)]; ok {
			continue
		}
		u, err := dir.UserByEmail(ctx, e)
		if access.CodeOf(err) == access.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("who-can: %s: %w", e, err)
		}
		byEmail[strings.ToLower(e)] = u
	}
	out := make([]access.User, 0, len(byEmail))
	for e, u := range byEmail {
		// Group listings may carry fewer profile attributes than a user
		// read (connector-dependent): eligibility needs them all.
		if u.Attributes == nil {
			full, err := dir.UserByEmail(ctx, e)
			if err != nil && access.CodeOf(err) != access.CodeNotFound {
				return nil, fmt.Errorf("who-can: %s: %w", e, err)
			}
			if err == nil {
				u = full
			}
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return emailOf(out[i]) < emailOf(out[j]) })
	return out, nil
}

func emailOf(u access.User) string {
	if u.Email != "" {
		return strings.ToLower(u.Email)
	}
	return strings.ToLower(u.Login)
}

// whoCanRows evaluates set for people: rows by person (email order), then
// policy (file order), then step.
func whoCanRows(ctx context.Context, set *policy.Set, dir access.Directory, people []access.User, opt WhoCanOptions) ([]WhoCanRow, error) {
	policies := set.Policies
	if opt.Policy != "" {
		p, ok := set.Policy(opt.Policy)
		if !ok {
			return nil, access.Errorf(access.CodeUnknownPolicy, "There is no policy named %q.", opt.Policy)
		}
		policies = []*policy.Policy{p}
	}
	var out []WhoCanRow
	for _, u := range people {
		for _, p := range policies {
			rows, err := whoCanPolicy(ctx, set, dir, p, u)
			if err != nil {
				return nil, err
			}
			out = append(out, rows...)
		}
	}
	return out, nil
}

// whoCanPolicy is u's rows for p: eligibility as Submit checks it (an
// account in use, a matching profile), and each step's approvers as
// Resolve finds them, the requester excluded.
func whoCanPolicy(ctx context.Context, set *policy.Set, dir access.Directory, p *policy.Policy, u access.User) ([]WhoCanRow, error) {
	base := WhoCanRow{UserEmail: emailOf(u), UserName: u.Name, Policy: p.Name}
	var profiles []string
	for _, name := range p.Eligible {
		if prof, ok := set.Profiles[name]; ok && set.Matches(prof.Where, u) {
			profiles = append(profiles, name)
		}
	}
	inUse := u.Status == "" || u.Status.CanRequest()
	if !inUse || len(profiles) == 0 {
		return []WhoCanRow{base}, nil
	}
	base.Eligible = true
	base.Profile = strings.Join(profiles, ";")
	if p.Auto {
		base.Rule = "auto"
		return []WhoCanRow{base}, nil
	}
	out := make([]WhoCanRow, 0, len(p.Approval))
	for i, rule := range p.Approval {
		row := base
		row.Step, row.Rule = i+1, rule.String()
		people, err := set.ResolveRules(ctx, []policy.Rule{rule}, u, dir)
		if err != nil && access.CodeOf(err) != access.CodeNoApprover {
			return nil, fmt.Errorf("who-can: %s, %s step %d: %w", u.Email, p.Name, i+1, err)
		}
		for _, a := range people {
			row.Approvers = append(row.Approvers, strings.ToLower(a.Email))
		}
		sort.Strings(row.Approvers)
		out = append(out, row)
	}
	return out, nil
}

// exportWhoCan is the who-can export through the export machinery (kind
// KindWhoCan; p.Policy filters). Counts tally the eligible column.
func (s *Service) exportWhoCan(ctx context.Context, out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}}
	dir, err := s.directory()
	if err != nil {
		return res, err
	}
	set := s.Policy()
	dir = newMemoDirectory(dir)
	people, err := WhoCanPopulation(ctx, dir, "", set)
	if err != nil {
		return res, err
	}
	rows, err := whoCanRows(ctx, set, dir, people, WhoCanOptions{Policy: p.Policy})
	if err != nil {
		return res, err
	}
	if err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		return nil
	}); err != nil {
		return res, err
	}
	if err := WriteWhoCanCSV(out, rows); err != nil {
		return res, err
	}
	res.Rows = len(rows)
	for _, r := range rows {
		res.ByStatus[strconv.FormatBool(r.Eligible)]++
	}
	res.Summary = map[string]any{"population": len(people), "policy_hash": set.Hash}
	return res, nil
}

// memoDirectory remembers group listings, managers and user reads for one
// who-can run: the rows ask about the same groups for every person, and an
// IdP's rate limits should see each group once.
type memoDirectory struct {
	access.Directory
	mu       sync.Mutex
	groups   map[string]memoResult[[]access.User]
	managers map[string]memoResult[access.User]
	users    map[string]memoResult[access.User]
}

type memoResult[T any] struct {
	v   T
	err error
}

func newMemoDirectory(d access.Directory) access.Directory {
	if _, ok := d.(*memoDirectory); ok {
		return d
	}
	return &memoDirectory{Directory: d, groups: map[string]memoResult[[]access.User]{},
		managers: map[string]memoResult[access.User]{}, users: map[string]memoResult[access.User]{}}
}

func (m *memoDirectory) GroupMembers(ctx context.Context, group string) ([]access.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.groups[group]; ok {
		return r.v, r.err
	}
	v, err := m.Directory.GroupMembers(ctx, group)
	if !transient(err) {
		m.groups[group] = memoResult[[]access.User]{v, err}
	}
	return v, err
}

func (m *memoDirectory) Manager(ctx context.Context, u access.User) (access.User, error) {
	key := u.ID + "\x00" + strings.ToLower(u.Email)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.managers[key]; ok {
		return r.v, r.err
	}
	v, err := m.Directory.Manager(ctx, u)
	if !transient(err) {
		m.managers[key] = memoResult[access.User]{v, err}
	}
	return v, err
}

func (m *memoDirectory) UserByEmail(ctx context.Context, email string) (access.User, error) {
	key := strings.ToLower(email)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.users[key]; ok {
		return r.v, r.err
	}
	v, err := m.Directory.UserByEmail(ctx, email)
	if !transient(err) {
		m.users[key] = memoResult[access.User]{v, err}
	}
	return v, err
}

// transient errors are not remembered: the caller fails and may retry.
func transient(err error) bool {
	switch access.CodeOf(err) {
	case access.CodeUnavailable, access.CodeRateLimited, access.CodeInternal:
		return err != nil
	}
	return false
}
