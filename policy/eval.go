package policy

import (
	"sort"
	"strings"
	"time"

	"keycard/access"
)

// Policy returns the policy called name.
func (s *Set) Policy(name string) (*Policy, bool) {
	for _, p := range s.Policies {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Eligible reports whether u may request p: any of p's profiles matches u's
// live directory attributes.
func (s *Set) Eligible(p *Policy, u access.User) bool {
	for _, name := range p.Eligible {
		if prof, ok := s.Profiles[name]; ok && s.Matches(prof.Where, u) {
			return true
		}
	}
	return false
}

// Matches reports whether u satisfies a where-condition: every attribute
// equals one of its listed values. Keys and values compare
// case-insensitively, because directories are inconsistent about case
// ("Engineering" vs "engineering") and a policy should not silently miss
// people over it. An empty condition matches everyone.
func (s *Set) Matches(where map[string][]string, u access.User) bool {
	for key, vals := range where {
		got, ok := u.Attr(key)
		if !ok {
			return false
		}
		found := false
		for _, v := range vals {
			if strings.EqualFold(strings.TrimSpace(got), v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Requestable lists the policies u may request, ordered by app, then role
// (case-insensitive), then name: the order of the request modal's options.
func (s *Set) Requestable(u access.User) []*Policy {
	var out []*Policy
	for _, p := range s.Policies {
		if s.Eligible(p, u) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if x, y := strings.ToLower(a.App), strings.ToLower(b.App); x != y {
			return x < y
		}
		if x, y := strings.ToLower(a.Role), strings.ToLower(b.Role); x != y {
			return x < y
		}
		return a.Name < b.Name
	})
	return out
}

// CheckStart checks a requested start (scheduled access) at now: zero is
// "as soon as approved"; otherwise it may be at most StartTolerance in the
// past and at most schedule_ahead ahead. The message names the bound.
func (p *Policy) CheckStart(start, now time.Time) error {
	switch {
	case start.IsZero():
		return nil
	case start.Before(now.Add(-StartTolerance)):
		return access.Errorf(access.CodeBadStart, "The start you picked (%s) is in the past; pick a later time or start now.",
			start.UTC().Format("2006-01-02 15:04 MST"))
	case start.Sub(now) > p.ScheduleAhead && p.ScheduleAhead == 0:
		return access.Errorf(access.CodeBadStart, "%s %s cannot be scheduled ahead (policy %s has schedule_ahead 0s); start now instead.",
			p.App, p.Role, p.Name)
	case start.Sub(now) > p.ScheduleAhead:
		return access.Errorf(access.CodeBadStart, "%s %s can start at most %s ahead (policy %s, schedule_ahead); you picked %s, %s from now.",
			p.App, p.Role, FormatDuration(p.ScheduleAhead), p.Name, start.UTC().Format("2006-01-02 15:04 MST"), FormatDuration(start.Sub(now).Round(time.Minute)))
	}
	return nil
}

// CheckDuration refuses a requested duration that is not positive
// (CodeBadDuration) or longer than the policy's max (CodeOverMax).
func (p *Policy) CheckDuration(d time.Duration) error {
	switch {
	case d <= 0:
		return access.Errorf(access.CodeBadDuration, "Pick a duration longer than zero (for example %s).", FormatDuration(p.DefaultDuration))
	case p.MaxDuration > 0 && d > p.MaxDuration:
		return access.Errorf(access.CodeOverMax, "%s %s can be granted for at most %s; you asked for %s.",
			p.App, p.Role, FormatDuration(p.MaxDuration), FormatDuration(d))
	}
	return nil
}
