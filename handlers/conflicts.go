package handlers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"keycard/access"
	"keycard/policy"
)

// Separation of duties (policy `conflicts:`, SOC 2 CC6.3): a request that
// would complete a conflicting set is refused at submission, or, with
// `conflicts_mode: approve`, gets a last step decided by the admins group.
// That step's rule carries the conflict ("group:keycard-admins" + sodMark +
// the conflict): the step rule is what the approval DM, the request's
// status line, the audit chain's request.submitted detail and the access
// export's approval_chain already show, so the admins see the conflict and
// the evidence records it without a new request field (the store's request
// codec encodes every field).

// sodMark separates the admins' group rule from the conflict in the rule of
// a conflicts_mode: approve step.
const sodMark = " — "

// duties is what the separation-of-duties check found for one request.
type duties struct {
	// text names the completed sets and how each other policy is held; ""
	// when the request completes none.
	text string
	// step is the extra admins step of conflicts_mode: approve.
	step *access.Step
}

// heldPolicies is how someone holds each policy: "grant G-1 (active)" or
// "standing membership of group g".
type heldPolicies map[string]string

func (h heldPolicies) has(p string) bool { _, ok := h[p]; return ok }

// separationOfDuties checks whether u obtaining p would complete one of the
// policy's conflicting sets. A policy counts as held when u has a keycard
// request for it that is pending or holds the membership (provisioning,
// active, deprovisioning) — so two requests in flight cannot together
// complete a set — or when u is a member of its group in the IdP (standing
// access). Break-glass requests that would complete a set are refused in
// either mode: they approve themselves, so no one would see the conflict.
func (s *Service) separationOfDuties(ctx context.Context, set *policy.Set, p *policy.Policy, u access.User, breakGlass bool, dir access.Directory) (duties, error) {
	if len(set.Conflicts) == 0 {
		return duties{}, nil
	}
	var related []string
	for _, c := range set.Conflicts {
		if c.Has(p.Name) {
			related = append(related, c.Policies...)
		}
	}
	if len(related) == 0 {
		return duties{}, nil
	}
	held, err := s.heldPolicies(ctx, set, u, related, p.Name)
	if err != nil {
		return duties{}, err
	}
	done := set.Completes(p.Name, held.has)
	if len(done) == 0 {
		return duties{}, nil
	}
	text := conflictText(p.Name, done, held)
	if set.ConflictsMode != policy.ConflictsApprove || breakGlass {
		return duties{}, access.Errorf(access.CodeConflictingDuties, "%s %s cannot be granted to you: %s", p.App, p.Role, text)
	}
	rule := policy.Rule{Kind: policy.RuleGroup, Group: set.Admins.Group}
	cands, err := set.ResolveRules(ctx, []policy.Rule{rule}, u, dir)
	if err != nil {
		if access.CodeOf(err) == access.CodeNoApprover {
			return duties{}, access.Wrap(access.CodeConflictingDuties, err, "%s %s needs the admins' approval (%s), but nobody in %s could give it.", p.App, p.Role, text, set.Admins.Group)
		}
		return duties{}, err
	}
	return duties{text: text, step: &access.Step{Rule: rule.String() + sodMark + text, Candidates: cands, MFA: p.ApprovalMFA}}, nil
}

// heldPolicies reads which of names (other than except) u holds: keycard's
// records first, then the IdP for the rest.
func (s *Service) heldPolicies(ctx context.Context, set *policy.Set, u access.User, names []string, except string) (heldPolicies, error) {
	held := heldPolicies{}
	want := map[string]bool{}
	for _, n := range names {
		if n != except {
			want[n] = true
		}
	}
	if err := s.store.View(func(tx Tx) error {
		mine, err := tx.RequestsOfUser(u.Email)
		if err != nil {
			return err
		}
		for _, m := range mine {
			if want[m.Policy] && (m.State == access.StatePending || m.State == access.StateScheduled || m.State.HoldsMembership()) && !held.has(m.Policy) {
				held[m.Policy] = fmt.Sprintf("keycard request %s (%s)", m.ID, m.State)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, n := range sortedSet(want) {
		if held.has(n) {
			continue
		}
		q, ok := set.Policy(n)
		if !ok {
			continue
		}
		prov, ok := s.conns.Provisioner(q.ConnectorName())
		if !ok {
			continue
		}
		member, err := prov.IsMember(ctx, q.Group, u.ID)
		if err != nil {
			return nil, access.Wrap(access.CodeOf(err), err, "Could not check your current access to %s; try again in a minute.", q.Group)
		}
		if member {
			held[n] = "standing membership of " + q.Group
		}
	}
	return held, nil
}

// conflictText names each completed set and how its other policies are held:
// "separation of duties: deploy-approver + prod-deployer (deploy-approver
// held through standing membership of deployers)".
func conflictText(asking string, done []policy.Conflict, held heldPolicies) string {
	parts := make([]string, 0, len(done))
	for _, c := range done {
		var how []string
		for _, n := range c.Policies {
			if n != asking {
				how = append(how, n+" held through "+held[n])
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", c, strings.Join(how, "; ")))
	}
	return sodPrefix + strings.Join(parts, ", nor ")
}

// sodPrefix starts every conflict text.
const sodPrefix = "separation of duties: nobody may hold "

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// conflictStepRules is who may decide r's current step when it is the
// admins' step that conflicts_mode: approve appended (always the last step,
// its rule carrying the conflict): the admins group in force now, re-read
// on every click like any group step.
func conflictStepRules(set *policy.Set, r *access.Request, rules []policy.Rule) []policy.Rule {
	st := r.Step()
	if st == nil || r.Current != len(r.Steps)-1 || set.Admins.Group == "" ||
		!strings.HasPrefix(st.Rule, "group:") || !strings.Contains(st.Rule, sodMark+sodPrefix) {
		return rules
	}
	return []policy.Rule{{Kind: policy.RuleGroup, Group: set.Admins.Group}}
}

// ConflictHolder is someone who holds every policy of a conflicting set
// anyway — through standing or unmanaged membership, or grants made before
// the set was declared. The holders export lists them in its manifest
// summary ("conflicts") and the admin access report in AdminReport.Conflicts:
// a column would change the holders CSV header, which auditors' tooling and
// the golden files pin.
type ConflictHolder struct {
	Email    string   `json:"user_email"`
	Name     string   `json:"user_name"`
	Conflict string   `json:"conflict"` // "payments-admin + payments-auditor"
	Through  []string `json:"through"`  // per policy: "payments-admin: standing membership of pay-admins"
}

// conflictHolders finds, among holder rows (every member of every policy
// group, and keycard grants), the people holding a whole conflicting set.
// Holding a group holds every policy mapped to it.
func conflictHolders(set *policy.Set, rows []HolderRow) []ConflictHolder {
	if set == nil || len(set.Conflicts) == 0 {
		return nil
	}
	type person struct {
		email, name string
		held        map[string]string // policy -> how
	}
	byKey := map[string]*person{}
	for _, r := range rows {
		k := strings.ToLower(r.Email)
		if k == "" {
			k = "id:" + r.ID
		}
		p := byKey[k]
		if p == nil {
			p = &person{email: r.Email, name: r.Name, held: map[string]string{}}
			byKey[k] = p
		}
		how := r.Source + " membership of " + r.Group
		if r.Grant != nil {
			how = "keycard grant " + r.Grant.ID
		}
		for _, pol := range r.Policies {
			if _, ok := p.held[pol]; !ok {
				p.held[pol] = how
			}
		}
	}
	var out []ConflictHolder
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		p := byKey[k]
		for _, c := range set.Held(func(pol string) bool { _, ok := p.held[pol]; return ok }) {
			h := ConflictHolder{Email: p.email, Name: p.name, Conflict: c.String()}
			for _, pol := range c.Policies {
				h.Through = append(h.Through, pol+": "+p.held[pol])
			}
			out = append(out, h)
		}
	}
	return out
}

// conflictsSummary adds the conflicting holders to a holders manifest's
// summary when the policy declares conflicts (an empty list then says none
// was found, which is itself evidence).
func conflictsSummary(set *policy.Set, rows []HolderRow, summary map[string]any) {
	if set == nil || len(set.Conflicts) == 0 || summary == nil {
		return
	}
	found := conflictHolders(set, rows)
	if found == nil {
		found = []ConflictHolder{}
	}
	summary["conflicts"] = found
}
