package policy

import (
	"context"
	"fmt"
	"strings"

	"keycard/access"
)

// Resolve turns p's approval chain into concrete steps for requester: each
// step lists the people who may decide it, without the requester (nobody
// approves their own request). It refuses with CodeNoApprover when a step has
// no candidate or when the steps cannot be given distinct approvers (SPEC:
// "the same person cannot satisfy two steps of one chain"), so a request that
// could never be approved is refused at submission. Auto approval has no step.
// Directory failures other than not-found are returned wrapped, with the
// directory's code (transient: retry).
func (s *Set) Resolve(ctx context.Context, p *Policy, requester access.User, dir access.Directory) ([]access.Step, error) {
	if p.Auto {
		return nil, nil
	}
	steps := make([]access.Step, 0, len(p.Approval))
	for i, r := range p.Approval {
		cands, err := candidates(ctx, r, requester, dir)
		if err != nil {
			return nil, stepError(i, r, err)
		}
		if len(cands) == 0 {
			return nil, access.Errorf(access.CodeNoApprover, "Step %d (%s) has nobody who could approve besides you.", i+1, r)
		}
		steps = append(steps, access.Step{Rule: r.String(), Candidates: cands, MFA: p.ApprovalMFA || r.MFA})
	}
	if err := distinctApprovers(steps); err != nil {
		return nil, err
	}
	return steps, nil
}

func stepError(i int, r Rule, err error) error {
	if access.CodeOf(err) == access.CodeNoApprover {
		return err
	}
	return fmt.Errorf("resolve step %d (%s): %w", i+1, r, err)
}

// ResolveRules lists everyone any of rules names (for escalate_to and
// campaign reviewers), without requester and without duplicates. People who
// cannot be found are skipped; when nobody is left it returns CodeNoApprover
// so the caller can fall back (to the admins, for instance). Transient
// directory errors are returned wrapped.
func (s *Set) ResolveRules(ctx context.Context, rules []Rule, requester access.User, dir access.Directory) ([]access.Person, error) {
	var out []access.Person
	seen := map[string]bool{}
	for _, r := range rules {
		cands, err := candidates(ctx, r, requester, dir)
		if err != nil && access.CodeOf(err) != access.CodeNoApprover {
			return nil, fmt.Errorf("resolve %s: %w", r, err)
		}
		for _, c := range cands {
			if k := personKey(c); !seen[k] {
				seen[k] = true
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		names := make([]string, len(rules))
		for i, r := range rules {
			names[i] = r.String()
		}
		return nil, access.Errorf(access.CodeNoApprover, "Nobody besides %s matches %s.", requester.Email, strings.Join(names, ", "))
	}
	return out, nil
}

// candidates resolves one rule. Unknown named users are refused with
// CodeNoApprover naming the email (the policy names someone the directory
// does not know); a missing manager yields no candidate.
func candidates(ctx context.Context, r Rule, requester access.User, dir access.Directory) ([]access.Person, error) {
	var users []access.User
	switch r.Kind {
	case RuleManager:
		m, err := dir.Manager(ctx, requester)
		switch {
		case access.CodeOf(err) == access.CodeNotFound:
		case err != nil:
			return nil, err
		default:
			users = append(users, m)
		}
	case RuleGroup:
		members, err := dir.GroupMembers(ctx, r.Group)
		if err != nil {
			if access.CodeOf(err) == access.CodeNotFound {
				return nil, access.Wrap(access.CodeNoApprover, err, "The approver group %s does not exist in the directory.", r.Group)
			}
			return nil, err
		}
		users = members
	case RuleUser, RuleUsers:
		for _, e := range r.Users {
			u, err := dir.UserByEmail(ctx, e)
			if access.CodeOf(err) == access.CodeNotFound {
				return nil, access.Wrap(access.CodeNoApprover, err, "The approver %s named by the policy is not in the directory.", e)
			}
			if err != nil {
				return nil, err
			}
			users = append(users, u)
		}
	default:
		return nil, access.Errorf(access.CodeInternal, "unknown approval rule %q", r.Kind)
	}
	me := requester.Person()
	var out []access.Person
	seen := map[string]bool{}
	for _, u := range users {
		// Only people whose account is in use can decide. An empty status
		// (a directory that does not report one) counts as in use.
		if u.Status != "" && !u.Status.CanRequest() {
			continue
		}
		p := u.Person()
		if p.Email == "" {
			p.Email = u.Login
		}
		if p.Same(me) || seen[personKey(p)] {
			continue
		}
		seen[personKey(p)] = true
		out = append(out, p)
	}
	return out, nil
}

func personKey(p access.Person) string {
	if p.IdPID != "" {
		return "id:" + p.IdPID
	}
	return "email:" + strings.ToLower(p.Email)
}

// distinctApprovers checks that every step can be given its own approver: a
// maximum bipartite matching of steps to candidates (Kuhn's augmenting
// paths; chains are a handful of steps, so this is tiny). When a step cannot
// be matched, the steps the failed search visited share too few people
// between them (Hall's condition), and the refusal names them.
func distinctApprovers(steps []access.Step) error {
	owner := map[string]int{} // person key -> step index
	names := map[string]string{}
	var visited []bool
	var try func(i int) bool
	try = func(i int) bool {
		for _, c := range steps[i].Candidates {
			k := personKey(c)
			names[k] = c.Label()
			prev, taken := owner[k]
			if !taken {
				owner[k] = i
				return true
			}
			if visited[prev] {
				continue
			}
			visited[prev] = true
			if try(prev) {
				owner[k] = i
				return true
			}
		}
		return false
	}
	for i := range steps {
		visited = make([]bool, len(steps))
		visited[i] = true
		if try(i) {
			continue
		}
		var stuck []string
		people := map[string]bool{}
		for j, v := range visited {
			if !v {
				continue
			}
			stuck = append(stuck, fmt.Sprintf("%d (%s)", j+1, steps[j].Rule))
			for _, c := range steps[j].Candidates {
				people[names[personKey(c)]] = true
			}
		}
		var who []string
		for n := range people {
			who = append(who, n)
		}
		sortStrings(who)
		return access.Errorf(access.CodeNoApprover,
			"Steps %s need different approvers, but only %s could approve them besides you.",
			joinAnd(stuck), joinAnd(who))
	}
	return nil
}
