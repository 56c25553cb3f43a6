package policy

// Parsing of `policies` and their approval rules.

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

func (d *decoder) policy(s *Set, i int, n *yaml.Node) *Policy {
	field := fmt.Sprintf("policies[%d]", i)
	f, ok := d.mapping(n, field, "name", "app", "role", "group", "connector", "privileged", "eligible",
		"approval", "duration", "justification", "break_glass", "request_ttl", "remind_after",
		"escalate_after", "escalate_to", "extend", "approval_mfa",
		"schedule_ahead")
	if !ok {
		return nil
	}
	p := &Policy{Line: n.Line, JustificationRequired: true}
	var nn *yaml.Node
	p.Name, nn = d.str(f, field, "name")
	if p.Name != "" {
		d.name(nn, field+".name", "policy", p.Name)
		if why, ok := reservedNames[p.Name]; ok {
			d.errf(nn, field+".name", "%q is reserved (%s); pick another name", p.Name, why)
		}
	}
	p.App, _ = d.str(f, field, "app")
	p.Role, _ = d.str(f, field, "role")
	var gn *yaml.Node
	p.Group, gn = d.str(f, field, "group")

	p.Connector = s.Directory
	if n := f.get("connector"); n != nil {
		p.Connector = d.optStr(f, field, "connector", s.Directory)
		if _, ok := s.Connectors[p.Connector]; !ok {
			d.errf(n, field+".connector", "%q is not a connector (connectors: %s)", p.Connector, strings.Join(slices.Sorted(maps.Keys(s.Connectors)), ", "))
		}
	}
	if c, ok := s.Connectors[p.Connector]; ok && p.Group != "" && len(c.Scope) > 0 && !c.InScope(p.Group) {
		d.errf(gn, field+".group", "group %q is outside the scope of connector %q (%s): keycard would refuse to change it",
			p.Group, c.Name, strings.Join(c.Scope, ", "))
	}
	p.Privileged = d.boolean(f, field, "privileged")

	if en := f.get("eligible"); en == nil {
		d.missing(f, field, "eligible")
	} else {
		p.Eligible = d.strList(en, field+".eligible")
		if en.Kind == yaml.SequenceNode && len(en.Content) == 0 {
			d.errf(en, field+".eligible", "empty: nobody could request this; name a profile (e.g. everyone: {})")
		}
		for _, name := range p.Eligible {
			if _, ok := s.Profiles[name]; !ok {
				d.errf(en, field+".eligible", "unknown profile %q (profiles: %s)", name, strings.Join(slices.Sorted(maps.Keys(s.Profiles)), ", "))
			}
		}
	}

	if an := f.get("approval"); an == nil {
		d.missing(f, field, "approval")
	} else if an.Kind == yaml.ScalarNode && an.Value == "auto" {
		p.Auto = true
	} else if an.Kind == yaml.SequenceNode {
		if len(an.Content) == 0 {
			d.errf(an, field+".approval", "an empty approval chain; list the steps, or write approval: auto for no human step")
		}
		p.Approval = d.rules(an, field+".approval", true)
	} else {
		d.errf(an, field+".approval", "expected a list of steps or auto, got %s", kindName(an))
	}

	p.ApprovalMFA = d.boolean(f, field, "approval_mfa")
	if mn := f.get("approval_mfa"); mn != nil && p.ApprovalMFA && p.Auto {
		d.errf(mn, field+".approval_mfa", "approval: auto has no approver to challenge; drop approval_mfa")
	}
	for i, r := range p.Approval {
		if p.ApprovalMFA || r.MFA {
			n, at := f.get("approval_mfa"), field+".approval_mfa"
			if n == nil {
				n, at = f.get("approval").Content[i], fmt.Sprintf("%s.approval[%d].approval_mfa", field, i)
			}
			d.challenger(s, n, at, p.Connector)
			break
		}
	}

	if dn := f.get("duration"); dn == nil {
		d.errf(f.node, field+".duration.max", "missing (required): every grant has an end")
	} else if df, ok := d.mapping(dn, field+".duration", "default", "max"); ok {
		if df.get("max") == nil {
			d.errf(dn, field+".duration.max", "missing (required): every grant has an end")
		}
		p.MaxDuration = d.duration(df, field+".duration", "max", 0)
		p.DefaultDuration = d.duration(df, field+".duration", "default", p.MaxDuration)
		if p.MaxDuration > 0 && p.DefaultDuration > p.MaxDuration {
			d.errf(df.get("max"), field+".duration.max", "%s is shorter than default %s",
				FormatDuration(p.MaxDuration), FormatDuration(p.DefaultDuration))
		}
	}

	if jn := f.get("justification"); jn != nil {
		switch v, _ := d.scalar(jn, field+".justification"); v {
		case "required":
			p.JustificationRequired = true
		case "optional":
			p.JustificationRequired = false
		case "":
		default:
			d.errf(jn, field+".justification", "%q: write required or optional", v)
		}
	}
	p.BreakGlass = d.boolean(f, field, "break_glass")
	if p.BreakGlass {
		bn := f.get("break_glass")
		if p.MaxDuration > MaxBreakGlass {
			d.errf(bn, field+".break_glass", "a break-glass policy needs a short duration.max, at most %s (it is %s)",
				FormatDuration(MaxBreakGlass), FormatDuration(p.MaxDuration))
		}
		if !p.JustificationRequired {
			d.errf(f.get("justification"), field+".justification", "a break-glass policy always requires a justification")
		}
	}
	p.RequestTTL = d.duration(f, field, "request_ttl", DefaultRequestTTL)
	p.RemindAfter = d.duration(f, field, "remind_after", DefaultRemindAfter)
	p.EscalateAfter = d.duration(f, field, "escalate_after", 0)
	p.ScheduleAhead = d.duration(f, field, "schedule_ahead", DefaultScheduleAhead)
	if n := f.get("schedule_ahead"); n != nil && p.ScheduleAhead > MaxScheduleAhead {
		d.errf(n, field+".schedule_ahead", "%s is too far ahead: at most %s (an approval should not wait that long for its access)",
			FormatDuration(p.ScheduleAhead), FormatDuration(MaxScheduleAhead))
	}
	if en := f.get("escalate_to"); en != nil {
		if en.Kind != yaml.SequenceNode || len(en.Content) == 0 {
			d.errf(en, field+".escalate_to", "expected a non-empty list of approver rules, got %s", kindName(en))
		} else {
			p.EscalateTo = d.rules(en, field+".escalate_to", false)
		}
	}
	switch {
	case p.EscalateAfter > 0 && f.get("escalate_to") == nil:
		d.errf(f.get("escalate_after"), field+".escalate_after", "set, but escalate_to is missing: who should be added?")
	case p.EscalateAfter == 0 && f.get("escalate_to") != nil:
		d.errf(f.get("escalate_to"), field+".escalate_to", "set, but escalate_after is missing: when should they be added?")
	case p.EscalateAfter > 0 && p.EscalateAfter >= p.RequestTTL:
		d.errf(f.get("escalate_after"), field+".escalate_after", "%s is not shorter than request_ttl %s: the request would time out first",
			FormatDuration(p.EscalateAfter), FormatDuration(p.RequestTTL))
	}
	if p.Auto && (f.get("escalate_to") != nil || f.get("escalate_after") != nil) {
		d.errf(f.get("approval"), field+".approval", "auto approval has no step to escalate; drop escalate_after/escalate_to")
	}
	if xn := f.get("extend"); xn != nil {
		if xf, ok := d.mapping(xn, field+".extend", "max_total"); ok {
			if xf.get("max_total") == nil {
				d.missing(xf, field+".extend", "max_total")
			}
			p.ExtendMaxTotal = d.duration(xf, field+".extend", "max_total", 0)
			if p.ExtendMaxTotal > 0 && p.ExtendMaxTotal < p.MaxDuration {
				d.errf(xf.get("max_total"), field+".extend.max_total", "%s is shorter than duration.max %s",
					FormatDuration(p.ExtendMaxTotal), FormatDuration(p.MaxDuration))
			}
		}
	}
	return p
}

// rules reads a list of approver rules; steps (the approval chain) may carry
// approval_mfa.
func (d *decoder) rules(n *yaml.Node, field string, steps bool) []Rule {
	var out []Rule
	for i, item := range d.items(n, field) {
		read := d.rule
		if steps {
			read = d.step
		}
		if r, ok := read(item, fmt.Sprintf("%s[%d]", field, i)); ok {
			out = append(out, r)
		}
	}
	return out
}

const ruleForms = "manager, group: NAME, user: EMAIL, users: [EMAIL, ...]"

// challenger refuses approval_mfa on a policy whose connector cannot send an
// MFA challenge: only Okta's Factors API can push to the approver's phone
// (connectors opt in with access.Challenger; the okta type is the one that does).
func (d *decoder) challenger(s *Set, n *yaml.Node, at, connector string) {
	c, ok := s.Connectors[connector]
	if !ok || c.Type == "okta" {
		return
	}
	d.errf(n, at, "connector %q (type %s) cannot challenge an approver for MFA; only okta connectors can (Okta Verify push)", connector, c.Type)
}

// stepMFA splits `approval_mfa: true` off a step written as a two-key mapping
// (`- {group: security-team, approval_mfa: true}`), leaving the rule's own key.
func (d *decoder) stepMFA(n *yaml.Node, field string) (*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 4 {
		return n, false
	}
	for i := 0; i < 4; i += 2 {
		if n.Content[i].Value != "approval_mfa" {
			continue
		}
		v := n.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
			d.errf(v, field+".approval_mfa", "expected true or false, got %s", kindName(v))
			return n, false
		}
		rest := *n
		rest.Content = append(append([]*yaml.Node{}, n.Content[:i]...), n.Content[i+2:]...)
		return &rest, v.Value == "true"
	}
	return n, false
}

// step reads one approval step: `manager`, `group: g`, `user: e`, `users: [a, b]`,
// a mapping form optionally with `approval_mfa: true` (`- {manager: {}, ...}` is not a form;
// write `- {group: g, approval_mfa: true}`).
func (d *decoder) step(n *yaml.Node, field string) (Rule, bool) {
	n, mfa := d.stepMFA(n, field)
	r, ok := d.rule(n, field)
	r.MFA = mfa
	return r, ok
}

// rule reads one approver rule without approval_mfa (escalate_to, reviewers).
func (d *decoder) rule(n *yaml.Node, field string) (Rule, bool) {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "manager" {
			return Rule{Kind: RuleManager}, true
		}
		if n.Value == "auto" {
			d.errf(n, field, "auto is not a step; write approval: auto instead of a list")
			return Rule{}, false
		}
		d.errf(n, field, "unknown approval rule %s (forms: %s)", kindName(n), ruleForms)
		return Rule{}, false
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		d.errf(n, field, "unknown approval rule form: %s with %d keys (forms: %s)", kindName(n), len(n.Content)/2, ruleForms)
		return Rule{}, false
	}
	f, ok := d.mapping(n, field, "group", "user", "users")
	if !ok {
		return Rule{}, false
	}
	switch {
	case f.get("group") != nil:
		g, gn := d.str(f, field, "group")
		if g == "" {
			return Rule{}, false
		}
		d.staticGroup(gn, field+".group", g)
		return Rule{Kind: RuleGroup, Group: g}, true
	case f.get("user") != nil:
		e, en := d.str(f, field, "user")
		if e == "" {
			return Rule{}, false
		}
		d.email(en, field+".user", e)
		d.staticUser(en, field+".user", e)
		return Rule{Kind: RuleUser, Users: []string{e}}, true
	case f.get("users") != nil:
		un := f.get("users")
		es := d.strList(un, field+".users")
		if len(es) == 0 {
			d.errf(un, field+".users", "empty: list who may approve")
			return Rule{}, false
		}
		for _, e := range es {
			d.email(un, field+".users", e)
			d.staticUser(un, field+".users", e)
		}
		return Rule{Kind: RuleUsers, Users: es}, true
	}
	return Rule{}, false
}

// policies reads the `policies` list; a name defined twice is an error at
// its second definition.
func (d *decoder) policies(s *Set, n *yaml.Node) {
	items := d.items(n, "policies")
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.errf(n, "policies", "no policy: nobody could request anything")
	}
	seen := map[string]int{}
	for i, item := range items {
		p := d.policy(s, i, item)
		if p == nil {
			continue
		}
		if p.Name != "" {
			if first, dup := seen[p.Name]; dup {
				d.errf(item, fmt.Sprintf("policies[%d].name", i), "policy %q is already defined at line %d", p.Name, first)
			} else {
				seen[p.Name] = p.Line
			}
		}
		s.Policies = append(s.Policies, p)
	}
}
