package policy

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Summary describes s for people: per policy, who may ask, who approves, for
// how long, and how it is reviewed; then the connectors and review schedule.
// It is what `keycard policy check` prints.
func Summary(s *Set) string {
	var b strings.Builder
	hash := s.Hash
	if len(hash) > 12 {
		hash = hash[:12]
	}
	fmt.Fprintf(&b, "%s: version %d, sha256 %s, %d policies\n", s.Path, s.Version, hash, len(s.Policies))
	fmt.Fprintf(&b, "directory: %s\n", s.Directory)
	for _, name := range slices.Sorted(maps.Keys(s.Connectors)) {
		c := s.Connectors[name]
		fmt.Fprintf(&b, "connector %s (%s): may change groups %s", c.Name, c.Type, strings.Join(c.Scope, ", "))
		if c.Type == ConnectorStatic {
			fmt.Fprintf(&b, "; %d users, %d groups", len(c.Users), len(c.Groups))
		}
		b.WriteString("\n")
	}
	for _, p := range s.Policies {
		fmt.Fprintf(&b, "\npolicy %s: %s / %s (group %s via %s)", p.Name, p.App, p.Role, p.Group, p.Connector)
		if p.Privileged {
			b.WriteString(", privileged")
		}
		if p.BreakGlass {
			b.WriteString(", break-glass")
		}
		b.WriteString("\n")
		var who []string
		for _, e := range p.Eligible {
			who = append(who, e+" ("+describeWhere(s.profileWhere(e))+")")
		}
		fmt.Fprintf(&b, "  who may ask: %s\n", strings.Join(who, "; "))
		fmt.Fprintf(&b, "  approval: %s\n", describeApproval(p))
		just := "optional"
		if p.JustificationRequired {
			just = "required"
		}
		fmt.Fprintf(&b, "  duration: default %s, max %s; justification %s\n", FormatDuration(p.DefaultDuration), FormatDuration(p.MaxDuration), just)
		if !p.Auto {
			fmt.Fprintf(&b, "  pending: times out after %s, reminders every %s", FormatDuration(p.RequestTTL), FormatDuration(p.RemindAfter))
			if p.EscalateAfter > 0 {
				fmt.Fprintf(&b, ", escalates to %s after %s", describeRules(p.EscalateTo), FormatDuration(p.EscalateAfter))
			}
			b.WriteString("\n")
		}
		if p.ScheduleAhead > 0 {
			fmt.Fprintf(&b, "  start: now or scheduled up to %s ahead\n", FormatDuration(p.ScheduleAhead))
		} else {
			b.WriteString("  start: when approved (no scheduled start)\n")
		}
		if p.ExtendMaxTotal > 0 {
			fmt.Fprintf(&b, "  extensions: up to %s in total\n", FormatDuration(p.ExtendMaxTotal))
		} else {
			fmt.Fprintf(&b, "  extensions: each up to %s, no total limit\n", FormatDuration(p.MaxDuration))
		}
		var reviews []string
		if c := s.Reviews.Certification; c.Covers(p) {
			reviews = append(reviews, fmt.Sprintf("certified by %s on %q", c.Reviewer, c.Schedule))
		}
		if a := s.Reviews.AdminAccessReport; a != nil && p.Privileged {
			reviews = append(reviews, fmt.Sprintf("in the admin-access report on %q", a.Schedule))
		}
		if len(reviews) == 0 {
			reviews = append(reviews, "no periodic review")
		}
		fmt.Fprintf(&b, "  review: %s\n", strings.Join(reviews, "; "))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "auditors: %s; admins: %s; alerts: %s\n", orNone(s.Auditors.Group), orNone(s.Admins.Group), orDefault(s.Alerts.Channel, "DM each admin"))
	fmt.Fprintf(&b, "expiry warning %s before the end; offboarding checked every %s, SLA %s; policy change approval: %v\n",
		FormatDuration(s.ExpiryWarning), FormatDuration(s.OffboardingCheck), FormatDuration(s.OffboardingSLA), s.ChangeApproval)
	jobs := reviewFields(s.Reviews)
	if len(jobs) <= 1 {
		b.WriteString("reviews: none scheduled\n")
	}
	for _, kv := range jobs {
		if kv[0] != "reviews.timezone" || len(jobs) > 1 {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
	}
	return b.String()
}

func (s *Set) profileWhere(name string) map[string][]string {
	if p, ok := s.Profiles[name]; ok {
		return p.Where
	}
	return nil
}

func describeWhere(w map[string][]string) string {
	if len(w) == 0 {
		return "everyone"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, k+": "+strings.Join(w[k], "|"))
	}
	return strings.Join(parts, ", ")
}

func describeRules(rs []Rule) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.String()+mfaMark(r))
	}
	return strings.Join(parts, ", ")
}

// mfaMark notes a step with its own approval_mfa.
func mfaMark(r Rule) string {
	if r.MFA {
		return " (MFA)"
	}
	return ""
}

func describeApproval(p *Policy) string {
	if p.Auto {
		return "auto (no human step; audited)"
	}
	var parts []string
	for i, r := range p.Approval {
		parts = append(parts, fmt.Sprintf("%d. %s%s", i+1, r, mfaMark(r)))
	}
	s := strings.Join(parts, ", then ")
	if len(p.Approval) > 1 {
		s += " (a different person for each step)"
	}
	if p.ApprovalMFA {
		s += "; every Approve needs an MFA push (approval_mfa)"
	}
	return s
}

// Diff lists, for people and the `policy.changed` audit event, what changed
// from old to new: policies, connectors and profiles added, removed or
// changed field by field, and the review schedule. A nil old reads as an
// empty file.
func Diff(old, new *Set) []string {
	if old == nil {
		old = &Set{}
	}
	if new == nil {
		new = &Set{}
	}
	var out []string
	out = append(out, diffFields("", topFields(old), topFields(new))...)

	out = append(out, diffNamed("connector", connectorMap(old), connectorMap(new))...)
	out = append(out, diffNamed("profile", profileMap(old), profileMap(new))...)
	out = append(out, diffNamed("policy", policyMap(old), policyMap(new))...)
	if old.Policies != nil && new.Policies != nil && sameNames(old, new) && !sameOrder(old, new) {
		out = append(out, "policy order changed")
	}
	out = append(out, diffFields("", reviewFields(old.Reviews), reviewFields(new.Reviews))...)
	return out
}

type namedFields struct {
	order []string
	m     map[string][][2]string
}

func diffNamed(kind string, old, new namedFields) []string {
	var out []string
	for _, name := range old.order {
		if _, ok := new.m[name]; !ok {
			out = append(out, fmt.Sprintf("%s %s removed", kind, name))
		}
	}
	for _, name := range new.order {
		if _, ok := old.m[name]; !ok {
			out = append(out, fmt.Sprintf("%s %s added", kind, name))
			continue
		}
		out = append(out, diffFields(kind+" "+name+": ", old.m[name], new.m[name])...)
	}
	return out
}

func diffFields(prefix string, old, new [][2]string) []string {
	var out []string
	om := map[string]string{}
	for _, kv := range old {
		om[kv[0]] = kv[1]
	}
	nm := map[string]bool{}
	for _, kv := range new {
		nm[kv[0]] = true
		switch ov, ok := om[kv[0]]; {
		case !ok:
			out = append(out, fmt.Sprintf("%s%s set to %s", prefix, kv[0], kv[1]))
		case ov != kv[1]:
			out = append(out, fmt.Sprintf("%s%s %s -> %s", prefix, kv[0], ov, kv[1]))
		}
	}
	for _, kv := range old {
		if !nm[kv[0]] {
			out = append(out, fmt.Sprintf("%s%s removed (was %s)", prefix, kv[0], kv[1]))
		}
	}
	return out
}

func topFields(s *Set) [][2]string {
	f := [][2]string{
		{"directory", s.Directory},
		{"auditors.group", s.Auditors.Group},
		{"admins.group", s.Admins.Group},
		{"alerts.channel", s.Alerts.Channel},
		{"expiry_warning", FormatDuration(s.ExpiryWarning)},
		{"offboarding_sla", FormatDuration(s.OffboardingSLA)},
		{"offboarding_check", FormatDuration(s.OffboardingCheck)},
		{"change_approval", fmt.Sprint(s.ChangeApproval)},
	}
	return nonEmpty(f)
}

func connectorMap(s *Set) namedFields {
	nf := namedFields{m: map[string][][2]string{}}
	for _, name := range slices.Sorted(maps.Keys(s.Connectors)) {
		c := s.Connectors[name]
		f := [][2]string{
			{"type", c.Type},
			{"scope.groups", strings.Join(c.Scope, ", ")},
			{"manager_attribute", c.ManagerAttribute},
		}
		for _, u := range c.Users {
			attrs := make([]string, 0, len(u.Attributes))
			for _, k := range slices.Sorted(maps.Keys(u.Attributes)) {
				attrs = append(attrs, k+"="+u.Attributes[k])
			}
			f = append(f, [2]string{"user " + u.Email, fmt.Sprintf("%s, manager %s, %s, %s", u.Name, orNone(u.Manager), u.Status, strings.Join(attrs, " "))})
		}
		for _, g := range c.Groups {
			f = append(f, [2]string{"group " + g.Name + " members", orNone(strings.Join(g.Members, ", "))})
		}
		nf.order = append(nf.order, name)
		nf.m[name] = nonEmpty(f)
	}
	return nf
}

func profileMap(s *Set) namedFields {
	nf := namedFields{m: map[string][][2]string{}}
	for _, name := range slices.Sorted(maps.Keys(s.Profiles)) {
		nf.order = append(nf.order, name)
		nf.m[name] = [][2]string{{"where", describeWhere(s.Profiles[name].Where)}}
	}
	return nf
}

func policyMap(s *Set) namedFields {
	nf := namedFields{m: map[string][][2]string{}}
	for _, p := range s.Policies {
		just := "optional"
		if p.JustificationRequired {
			just = "required"
		}
		approval := describeRules(p.Approval)
		if p.Auto {
			approval = "auto"
		}
		f := [][2]string{
			{"app", p.App}, {"role", p.Role}, {"group", p.Group}, {"connector", p.Connector},
			{"privileged", fmt.Sprint(p.Privileged)},
			{"eligible", strings.Join(p.Eligible, ", ")},
			{"approval", approval},
			{"duration.default", FormatDuration(p.DefaultDuration)},
			{"duration.max", FormatDuration(p.MaxDuration)},
			{"justification", just},
			{"break_glass", fmt.Sprint(p.BreakGlass)},
			{"request_ttl", FormatDuration(p.RequestTTL)},
			{"remind_after", FormatDuration(p.RemindAfter)},
			{"escalate_after", durOrEmpty(p.EscalateAfter)},
			{"escalate_to", describeRules(p.EscalateTo)},
			{"extend.max_total", durOrEmpty(p.ExtendMaxTotal)},
			{"approval_mfa", map[bool]string{true: "true"}[p.ApprovalMFA]},
			{"schedule_ahead", FormatDuration(p.ScheduleAhead)},
		}
		nf.order = append(nf.order, p.Name)
		nf.m[p.Name] = nonEmpty(f)
	}
	return nf
}

func reviewFields(r Reviews) [][2]string {
	f := [][2]string{{"reviews.timezone", r.TimezoneName}}
	if j := r.AdminAccessReport; j != nil {
		f = append(f, [2]string{"reviews.admin_access_report", fmt.Sprintf("%q to %s", j.Schedule, j.Channel)})
	}
	if j := r.ContractorExpiry; j != nil {
		f = append(f, [2]string{"reviews.contractor_expiry", fmt.Sprintf("%q, access ending within %s, contractors %s",
			j.Schedule, FormatDuration(j.Within), describeWhere(j.Contractors))})
	}
	if j := r.CompliancePackage; j != nil {
		f = append(f, [2]string{"reviews.compliance_package", fmt.Sprintf("%q to %s", j.Schedule, j.Channel)})
	}
	if j := r.Certification; j != nil {
		var sel []string
		if j.Privileged {
			sel = append(sel, "privileged policies")
		}
		if len(j.Names) > 0 {
			sel = append(sel, strings.Join(j.Names, ", "))
		}
		f = append(f, [2]string{"reviews.certification", fmt.Sprintf("%q, %s, reviewer %s, due %s, on timeout %s, channel %s",
			j.Schedule, strings.Join(sel, " and "), j.Reviewer, FormatDuration(j.Due), j.OnTimeout, orNone(j.Channel))})
	}
	return nonEmpty(f)
}

func nonEmpty(f [][2]string) [][2]string {
	out := f[:0]
	for _, kv := range f {
		if kv[1] != "" {
			out = append(out, kv)
		}
	}
	return out
}

func sameNames(a, b *Set) bool {
	if len(a.Policies) != len(b.Policies) {
		return false
	}
	names := map[string]bool{}
	for _, p := range a.Policies {
		names[p.Name] = true
	}
	for _, p := range b.Policies {
		if !names[p.Name] {
			return false
		}
	}
	return true
}

func sameOrder(a, b *Set) bool {
	for i := range a.Policies {
		if a.Policies[i].Name != b.Policies[i].Name {
			return false
		}
	}
	return true
}

func durOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return FormatDuration(d)
}

func orNone(s string) string { return orDefault(s, "none") }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sortStrings(s []string) { sort.Strings(s) }

// joinAnd writes a, b and c.
func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
