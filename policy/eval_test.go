package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"keycard/access"
)

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"4h", 4 * time.Hour, ""},
		{"30d", 30 * 24 * time.Hour, ""},
		{"1w2d", 9 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"45s", 45 * time.Second, ""},
		{"1h30m15s", time.Hour + 30*time.Minute + 15*time.Second, ""},
		{" 2h ", 2 * time.Hour, ""},
		{"", 0, "empty"},
		{"0h", 0, "longer than zero"},
		{"-1h", 0, "negative"},
		{"4", 0, "no unit"},
		{"1.5h", 0, "whole numbers"},
		{"4y", 0, "unknown unit"},
		{"4ms", 0, "whole number"},
		{"1h1d", 0, "largest first"},
		{"1h2h", 0, "largest first"},
		{"h", 0, "whole number"},
		{"99999999999999999999w", 0, "too long"},
		{"9999999w", 0, "too long"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseDuration(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error with %q", c.in, got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	cases := []struct {
		in   time.Duration
		want string
	}{
		{4 * time.Hour, "4h"},
		{30 * 24 * time.Hour, "30d"},
		{90 * 24 * time.Hour, "90d"},
		{9 * 24 * time.Hour, "1w2d"},
		{14 * 24 * time.Hour, "2w"},
		{90 * time.Minute, "1h30m"},
		{36 * time.Hour, "1d12h"},
		{61 * time.Second, "1m1s"},
		{0, "0s"},
		{-2 * time.Hour, "-2h"},
		{1500 * time.Millisecond, "1s500ms"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			if got := FormatDuration(c.in); got != c.want {
				t.Fatalf("FormatDuration(%v) = %q, want %q", c.in, got, c.want)
			}
			if c.in > 0 && c.in%time.Second == 0 {
				back, err := ParseDuration(c.want)
				if err != nil || back != c.in {
					t.Fatalf("round trip %q = %v, %v", c.want, back, err)
				}
			}
		})
	}
}

func TestCheckStart(t *testing.T) {
	now := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	p := &Policy{Name: "prod-db-admin", App: "Production Database", Role: "Admin", ScheduleAhead: 14 * 24 * time.Hour}
	none := &Policy{Name: "grafana", App: "Grafana", Role: "Viewer"}
	cases := []struct {
		name  string
		p     *Policy
		start time.Time
		code  access.Code
		says  string
	}{
		{"start now", p, time.Time{}, "", ""},
		{"in 2 days", p, now.Add(48 * time.Hour), "", ""},
		{"exactly schedule_ahead", p, now.Add(14 * 24 * time.Hour), "", ""},
		{"beyond schedule_ahead", p, now.Add(15 * 24 * time.Hour), access.CodeBadStart, "at most 2w ahead (policy prod-db-admin, schedule_ahead)"},
		{"a minute ago: the form took time", p, now.Add(-time.Minute), "", ""},
		{"in the past", p, now.Add(-time.Hour), access.CodeBadStart, "in the past"},
		{"schedule_ahead 0s: start now only", none, now.Add(time.Hour), access.CodeBadStart, "schedule_ahead 0s"},
		{"schedule_ahead 0s, start now", none, time.Time{}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.CheckStart(c.start, now)
			if got := access.CodeOf(err); got != c.code {
				t.Fatalf("code = %q, want %q (%v)", got, c.code, err)
			}
			if c.says != "" && !strings.Contains(access.MessageOf(err), c.says) {
				t.Errorf("message %q does not say %q", access.MessageOf(err), c.says)
			}
		})
	}
}

func TestCheckDuration(t *testing.T) {
	p := &Policy{App: "Production Database", Role: "Admin", DefaultDuration: 4 * time.Hour, MaxDuration: 8 * time.Hour}
	cases := []struct {
		name string
		d    time.Duration
		code access.Code
	}{
		{"within", 4 * time.Hour, ""},
		{"exactly max", 8 * time.Hour, ""},
		{"over max", 9 * time.Hour, access.CodeOverMax},
		{"zero", 0, access.CodeBadDuration},
		{"negative", -time.Hour, access.CodeBadDuration},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.CheckDuration(c.d)
			if got := access.CodeOf(err); got != c.code {
				t.Fatalf("code = %q, want %q (%v)", got, c.code, err)
			}
			if c.code == access.CodeOverMax && !strings.Contains(access.MessageOf(err), "at most 8h") {
				t.Errorf("message %q does not say the max", access.MessageOf(err))
			}
		})
	}
}

func TestInScope(t *testing.T) {
	c := &Connector{Scope: []string{"app-*", "prod-db-admins"}}
	cases := []struct {
		group string
		want  bool
	}{
		{"app-grafana", true}, {"prod-db-admins", true}, {"prod-db", false}, {"", false}, {"App-grafana", false},
	}
	for _, tc := range cases {
		t.Run(tc.group, func(t *testing.T) {
			if got := c.InScope(tc.group); got != tc.want {
				t.Fatalf("InScope(%q) = %v", tc.group, got)
			}
		})
	}
	if (&Connector{}).InScope("anything") {
		t.Error("a connector without scope may change nothing")
	}
}

const evalYAML = `version: 1
directory: lab
connectors:
  lab:
    type: static
    scope: {groups: ["*"]}
profiles:
  engineers:
    where: {department: [Engineering, SRE]}
  contractors:
    where: {userType: Contractor}
  berlin-eng:
    where: {department: Engineering, city: Berlin}
  everyone: {}
policies:
  - {name: zeta-admin, app: Zeta, role: Admin, group: g1, eligible: [engineers], approval: auto, duration: {max: 1h}}
  - {name: alpha-viewer, app: alpha, role: Viewer, group: g2, eligible: [everyone], approval: auto, duration: {max: 1h}}
  - {name: alpha-admin, app: Alpha, role: Admin, group: g3, eligible: [berlin-eng, contractors], approval: auto, duration: {max: 1h}}
`

func TestEligibility(t *testing.T) {
	s, err := Parse("policy.yaml", []byte(evalYAML))
	if err != nil {
		t.Fatal(err)
	}
	user := func(attrs map[string]string) access.User {
		return access.User{Email: "u@example.com", Status: access.StatusActive, Attributes: attrs}
	}
	cases := []struct {
		name  string
		u     access.User
		names []string // Requestable, in order
	}{
		{"list value", user(map[string]string{"department": "SRE"}), []string{"alpha-viewer", "zeta-admin"}},
		{"case-insensitive key and value", user(map[string]string{"Department": "engineering"}), []string{"alpha-viewer", "zeta-admin"}},
		{"every key must match", user(map[string]string{"department": "Engineering", "city": "berlin"}), []string{"alpha-admin", "alpha-viewer", "zeta-admin"}},
		{"single string value", user(map[string]string{"userType": "Contractor"}), []string{"alpha-admin", "alpha-viewer"}},
		{"everyone only", user(map[string]string{"department": "Sales"}), []string{"alpha-viewer"}},
		{"no attributes", user(nil), []string{"alpha-viewer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, p := range s.Requestable(c.u) {
				got = append(got, p.Name)
			}
			if strings.Join(got, ",") != strings.Join(c.names, ",") {
				t.Fatalf("Requestable = %v, want %v", got, c.names)
			}
		})
	}
	t.Run("empty where matches", func(t *testing.T) {
		if !s.Matches(nil, access.User{}) {
			t.Fatal("empty where must match everyone")
		}
	})
	t.Run("unknown profile never matches", func(t *testing.T) {
		if s.Eligible(&Policy{Eligible: []string{"ghosts"}}, user(nil)) {
			t.Fatal("eligible through an unknown profile")
		}
	})
}

// fakeDir is a tiny in-memory access.Directory.
type fakeDir struct {
	users    map[string]access.User // by lower-case email
	managers map[string]string      // email -> manager email
	groups   map[string][]string    // group -> emails
	fail     error                  // returned by every call when set
}

func (f *fakeDir) UserByEmail(_ context.Context, email string) (access.User, error) {
	if f.fail != nil {
		return access.User{}, f.fail
	}
	u, ok := f.users[strings.ToLower(email)]
	if !ok {
		return access.User{}, access.Errorf(access.CodeNotFound, "no user %s", email)
	}
	return u, nil
}

func (f *fakeDir) UserByID(ctx context.Context, id string) (access.User, error) {
	for _, u := range f.users {
		if u.ID == id {
			return u, nil
		}
	}
	return access.User{}, access.Errorf(access.CodeNotFound, "no user %s", id)
}

func (f *fakeDir) Manager(ctx context.Context, u access.User) (access.User, error) {
	if f.fail != nil {
		return access.User{}, f.fail
	}
	m, ok := f.managers[u.Email]
	if !ok {
		return access.User{}, access.Errorf(access.CodeNotFound, "%s has no manager", u.Email)
	}
	return f.UserByEmail(ctx, m)
}

func (f *fakeDir) GroupMembers(ctx context.Context, group string) ([]access.User, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	emails, ok := f.groups[group]
	if !ok {
		return nil, access.Errorf(access.CodeNotFound, "no group %s", group)
	}
	var out []access.User
	for _, e := range emails {
		out = append(out, f.users[e])
	}
	return out, nil
}

func newFakeDir() *fakeDir {
	f := &fakeDir{users: map[string]access.User{}, managers: map[string]string{
		"ann@x.com": "bob@x.com", "bob@x.com": "carol@x.com", "erin@x.com": "ann@x.com",
	}, groups: map[string][]string{
		"security-team": {"carol@x.com", "dave@x.com", "ann@x.com"},
		"solo":          {"carol@x.com"},
		"with-inactive": {"ann@x.com", "sam@x.com", "pat@x.com"},
		"bob-only":      {"bob@x.com"},
	}}
	for _, u := range []struct {
		id, email, name string
		st              access.UserStatus
	}{
		{"00u1", "ann@x.com", "Ann", access.StatusActive},
		{"00u2", "bob@x.com", "Bob", access.StatusActive},
		{"00u3", "carol@x.com", "Carol", access.StatusActive},
		{"00u4", "dave@x.com", "Dave", access.StatusLockedOut},
		{"00u5", "sam@x.com", "Sam", access.StatusSuspended},
		{"00u6", "pat@x.com", "Pat", access.StatusStaged},
		{"00u7", "erin@x.com", "Erin", access.StatusActive},
	} {
		f.users[u.email] = access.User{ID: u.id, Login: u.email, Email: u.email, Name: u.name, Status: u.st}
	}
	return f
}

func TestResolve(t *testing.T) {
	dir := newFakeDir()
	ann := dir.users["ann@x.com"]
	erin := dir.users["erin@x.com"]
	bob := dir.users["bob@x.com"]
	grp := func(g string) Rule { return Rule{Kind: RuleGroup, Group: g} }
	mgr := Rule{Kind: RuleManager}
	cases := []struct {
		name      string
		rules     []Rule
		auto      bool
		requester access.User
		want      []string // per step: candidate emails joined by ","
		code      access.Code
		msg       string
	}{
		{"auto has no steps", nil, true, ann, nil, "", ""},
		{"manager then group minus requester", []Rule{mgr, grp("security-team")}, false, ann,
			[]string{"bob@x.com", "carol@x.com,dave@x.com"}, "", ""},
		{"named users", []Rule{{Kind: RuleUser, Users: []string{"Carol@x.com"}}, {Kind: RuleUsers, Users: []string{"bob@x.com", "dave@x.com"}}}, false, ann,
			[]string{"carol@x.com", "bob@x.com,dave@x.com"}, "", ""},
		{"inactive group members skipped", []Rule{grp("with-inactive")}, false, bob, []string{"ann@x.com"}, "", ""},
		{"only the requester in the group", []Rule{grp("with-inactive")}, false, ann, nil, access.CodeNoApprover,
			"Step 1 (group:with-inactive) has nobody who could approve besides you."},
		{"no manager", []Rule{grp("solo"), mgr}, false, dir.users["dave@x.com"], nil, access.CodeNoApprover, "Step 2 (manager)"},
		{"requester's own user rule", []Rule{{Kind: RuleUser, Users: []string{"ann@x.com"}}}, false, ann, nil, access.CodeNoApprover, "Step 1 (user:ann@x.com)"},
		{"unknown named user", []Rule{{Kind: RuleUsers, Users: []string{"bob@x.com", "ghost@x.com"}}}, false, ann, nil, access.CodeNoApprover, "ghost@x.com"},
		{"unknown group", []Rule{grp("ghosts")}, false, ann, nil, access.CodeNoApprover, "ghosts"},
		{"distinct approvers: manager is the only group member", []Rule{mgr, grp("bob-only")}, false, ann, nil, access.CodeNoApprover,
			"Steps 1 (manager) and 2 (group:bob-only) need different approvers, but only Bob could approve them besides you."},
		{"distinct approvers need reassignment", []Rule{grp("security-team"), {Kind: RuleUser, Users: []string{"carol@x.com"}}}, false, erin,
			[]string{"carol@x.com,dave@x.com,ann@x.com", "carol@x.com"}, "", ""},
		{"three steps two people", []Rule{{Kind: RuleUsers, Users: []string{"bob@x.com", "carol@x.com"}}, {Kind: RuleUser, Users: []string{"bob@x.com"}}, {Kind: RuleUser, Users: []string{"carol@x.com"}}}, false, ann, nil,
			access.CodeNoApprover, "only Bob and Carol"},
	}
	s := &Set{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &Policy{Name: "p", Auto: c.auto, Approval: c.rules}
			steps, err := s.Resolve(context.Background(), p, c.requester, dir)
			if got := access.CodeOf(err); got != c.code {
				t.Fatalf("code = %q, want %q (%v)", got, c.code, err)
			}
			if c.code != "" {
				if !strings.Contains(access.MessageOf(err), c.msg) {
					t.Fatalf("message %q, want it to contain %q", access.MessageOf(err), c.msg)
				}
				return
			}
			if len(steps) != len(c.want) {
				t.Fatalf("%d steps, want %d: %+v", len(steps), len(c.want), steps)
			}
			for i, st := range steps {
				var emails []string
				for _, p := range st.Candidates {
					emails = append(emails, p.Email)
					if p.IdPID == "" || p.Name == "" {
						t.Errorf("candidate %+v lacks id or name", p)
					}
				}
				if got := strings.Join(emails, ","); got != c.want[i] {
					t.Errorf("step %d candidates = %s, want %s", i+1, got, c.want[i])
				}
				if st.Rule != c.rules[i].String() {
					t.Errorf("step %d rule = %q", i+1, st.Rule)
				}
			}
		})
	}
	t.Run("transient directory error is returned wrapped", func(t *testing.T) {
		down := newFakeDir()
		down.fail = access.Errorf(access.CodeUnavailable, "okta is down")
		_, err := s.Resolve(context.Background(), &Policy{Approval: []Rule{mgr}}, ann, down)
		if access.CodeOf(err) != access.CodeUnavailable || !errors.Is(err, down.fail) {
			t.Fatalf("err = %v (code %q)", err, access.CodeOf(err))
		}
	})
}

func TestResolveRules(t *testing.T) {
	dir := newFakeDir()
	s := &Set{}
	cases := []struct {
		name      string
		rules     []Rule
		requester string
		want      string
		code      access.Code
	}{
		{"union without duplicates or requester", []Rule{{Kind: RuleManager}, {Kind: RuleGroup, Group: "security-team"}, {Kind: RuleUser, Users: []string{"carol@x.com"}}}, "ann@x.com", "bob@x.com,carol@x.com,dave@x.com", ""},
		{"missing manager and unknown user skipped", []Rule{{Kind: RuleManager}, {Kind: RuleUser, Users: []string{"ghost@x.com"}}, {Kind: RuleGroup, Group: "solo"}}, "carol@x.com", "", access.CodeNoApprover},
		{"reviewer manager", []Rule{{Kind: RuleManager}}, "erin@x.com", "ann@x.com", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ResolveRules(context.Background(), c.rules, dir.users[c.requester], dir)
			if access.CodeOf(err) != c.code {
				t.Fatalf("err = %v, want code %q", err, c.code)
			}
			var emails []string
			for _, p := range got {
				emails = append(emails, p.Email)
			}
			if strings.Join(emails, ",") != c.want {
				t.Fatalf("got %v, want %s", emails, c.want)
			}
		})
	}
}

func TestRuleString(t *testing.T) {
	cases := []struct {
		r    Rule
		want string
	}{
		{Rule{Kind: RuleManager}, "manager"},
		{Rule{Kind: RuleGroup, Group: "security-team"}, "group:security-team"},
		{Rule{Kind: RuleUser, Users: []string{"carol@example.com"}}, "user:carol@example.com"},
		{Rule{Kind: RuleUsers, Users: []string{"a@x", "b@x"}}, "users:a@x;b@x"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			if got := c.r.String(); got != c.want {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	old, err := Parse("policy.yaml", []byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		changes [][2]string
		want    []string
	}{
		{"no change", nil, nil},
		{"duration and approval", [][2]string{{"max: 8h}", "max: 12h}"}, {"      - manager\n", ""}},
			[]string{"policy prod-db-admin: duration.max 8h -> 12h", "policy prod-db-admin: approval manager, group:security-team -> group:security-team"}},
		{"approval_mfa on", [][2]string{{"    privileged: true\n", "    privileged: true\n    approval_mfa: true\n"}},
			[]string{"policy prod-db-admin: approval_mfa set to true"}},
		{"approval_mfa on one step", [][2]string{{"- group: security-team", "- {group: security-team, approval_mfa: true}"}},
			[]string{"policy prod-db-admin: approval manager, group:security-team -> manager, group:security-team (MFA)"}},
		{"policy renamed", [][2]string{{"name: grafana-viewer", "name: grafana-reader"}},
			[]string{"policy grafana-viewer removed", "policy grafana-reader added"}},
		{"connector scope", [][2]string{{`groups: ["app-*", "prod-*"]`, `groups: ["app-*"]`}, {"group: prod-db-admins", "group: app-db-admins"}},
			[]string{"connector okta: scope.groups app-*, prod-* -> app-*", "policy prod-db-admin: group prod-db-admins -> app-db-admins"}},
		{"profile", [][2]string{{"[Engineering, SRE]", "[Engineering]"}},
			[]string{"profile engineers: where department: Engineering|SRE -> department: Engineering"}},
		{"top level and reviews", [][2]string{{"admins: {group: keycard-admins}", "admins: {group: sec-admins}\nchange_approval: true"}, {"@every 1m", "@daily"}},
			[]string{"admins.group keycard-admins -> sec-admins", "change_approval false -> true", `reviews.certification "@every 1m"`}},
		{"optional key added", [][2]string{{"    justification: required\n", "    justification: required\n    extend: {max_total: 2d}\n"}},
			[]string{"policy prod-db-admin: extend.max_total set to 2d"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := baseYAML
			for _, m := range c.changes {
				doc = mutate(t, doc, m[0], m[1])
			}
			nw, err := Parse("policy.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			got := Diff(old, nw)
			if len(c.want) == 0 && len(got) != 0 {
				t.Fatalf("Diff = %q, want nothing", got)
			}
			all := strings.Join(got, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("Diff lacks %q:\n%s", w, all)
				}
			}
		})
	}
	t.Run("from nothing", func(t *testing.T) {
		got := strings.Join(Diff(nil, old), "\n")
		if !strings.Contains(got, "policy prod-db-admin added") || !strings.Contains(got, "connector okta added") {
			t.Fatalf("Diff(nil, s) = %s", got)
		}
	})
}
