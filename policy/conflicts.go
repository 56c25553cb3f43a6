package policy

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Separation of duties (SPEC "Policy file": `conflicts:`; SOC 2 CC6.3's
// segregation-of-duties test): sets of policies nobody may hold at once.

// Conflicts modes: what a request that would complete a conflicting set gets.
const (
	// ConflictsRefuse refuses the request at submission, naming the conflict.
	ConflictsRefuse = "refuse"
	// ConflictsApprove adds a last approval step for the admins group, whose
	// members see the conflict before they decide.
	ConflictsApprove = "approve"
)

// Conflict is one set of policies nobody may hold at the same time.
type Conflict struct {
	Policies []string // ≥2 distinct policy names, file order
	Line     int
}

// String names the set: "deploy-approver + prod-deployer".
func (c Conflict) String() string { return strings.Join(c.Policies, " + ") }

// Has reports whether the set includes policy name.
func (c Conflict) Has(name string) bool {
	for _, p := range c.Policies {
		if p == name {
			return true
		}
	}
	return false
}

// Completes lists the conflicting sets that obtaining policy name would
// complete for someone who already holds each policy for which held is true:
// sets including name whose every other policy is held.
func (s *Set) Completes(name string, held func(policy string) bool) []Conflict {
	var out []Conflict
	for _, c := range s.Conflicts {
		if !c.Has(name) {
			continue
		}
		all := true
		for _, p := range c.Policies {
			if p != name && !held(p) {
				all = false
				break
			}
		}
		if all {
			out = append(out, c)
		}
	}
	return out
}

// Held lists the conflicting sets whose every policy is held: someone
// holding one of these violates separation of duties (through standing
// access, or grants made before the set was declared).
func (s *Set) Held(held func(policy string) bool) []Conflict {
	var out []Conflict
	for _, c := range s.Conflicts {
		all := len(c.Policies) > 0
		for _, p := range c.Policies {
			if !held(p) {
				all = false
				break
			}
		}
		if all {
			out = append(out, c)
		}
	}
	return out
}

// ConflictPolicies is every policy named by some conflicting set, file order
// of the sets, without duplicates.
func (s *Set) ConflictPolicies() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range s.Conflicts {
		for _, p := range c.Policies {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// conflicts decodes `conflicts:` and `conflicts_mode:`; it runs after the
// policies so each name can be checked.
func (d *decoder) conflicts(s *Set, top fields) {
	s.ConflictsMode = d.optStr(top, "", "conflicts_mode", ConflictsRefuse)
	if s.ConflictsMode != ConflictsRefuse && s.ConflictsMode != ConflictsApprove {
		d.errf(top.get("conflicts_mode"), "conflicts_mode", "unknown mode %q (known: %s, %s)", s.ConflictsMode, ConflictsRefuse, ConflictsApprove)
	}
	n := top.get("conflicts")
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "conflicts", "expected a list of policy sets such as [[payments-admin, payments-auditor]], got %s", kindName(n))
		return
	}
	for i, item := range d.items(n, "conflicts") {
		field := fmt.Sprintf("conflicts[%d]", i)
		if item.Kind != yaml.SequenceNode {
			d.errf(item, field, "expected a list of at least two policy names, got %s", kindName(item))
			continue
		}
		c := Conflict{Line: item.Line}
		seen := map[string]bool{}
		ok := true
		var names []string
		for j, pn := range d.items(item, field) {
			pf := fmt.Sprintf("%s[%d]", field, j)
			name, isScalar := d.scalar(pn, pf)
			if !isScalar {
				ok = false
				continue
			}
			name = strings.TrimSpace(name)
			names = append(names, name)
			if seen[name] {
				d.errf(pn, pf, "policy %q is listed twice in the same set", name)
				ok = false
				continue
			}
			seen[name] = true
			if _, known := s.Policy(name); !known {
				d.errf(pn, pf, "unknown policy %q (policies: %s)", name, strings.Join(policyNames(s), ", "))
				ok = false
			}
			c.Policies = append(c.Policies, name)
		}
		if len(names) < 2 {
			d.errf(item, field, "a conflicting set needs at least two policies, got %d", len(names))
			ok = false
		}
		if ok {
			s.Conflicts = append(s.Conflicts, c)
		}
	}
	if s.ConflictsMode == ConflictsApprove && len(s.Conflicts) > 0 && s.Admins.Group == "" {
		d.errf(top.get("conflicts_mode"), "conflicts_mode", "approve sends the conflict to the admins group, but the file has no admins")
	}
}

func policyNames(s *Set) []string {
	out := make([]string, len(s.Policies))
	for i, p := range s.Policies {
		out[i] = p.Name
	}
	return out
}
