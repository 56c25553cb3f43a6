package policy

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"keycard/access"
)

// baseYAML is a small valid file that the validation cases mutate.
const baseYAML = `version: 1
directory: okta
connectors:
  okta:
    type: okta
    scope:
      groups: ["app-*", "prod-*"]
  lab:
    type: static
    scope:
      groups: ["lab-*"]
    users:
      - {email: ann@example.com, name: Ann, manager: bob@example.com}
      - {email: bob@example.com, name: Bob}
    groups:
      - {name: lab-admins, members: [ann@example.com]}
profiles:
  engineers:
    where: {department: [Engineering, SRE]}
  everyone: {}
policies:
  - name: prod-db-admin
    app: Production Database
    role: Admin
    group: prod-db-admins
    privileged: true
    eligible: [engineers]
    approval:
      - manager
      - group: security-team
    duration: {default: 4h, max: 8h}
    justification: required
  - name: grafana-viewer
    app: Grafana
    role: Viewer
    group: app-grafana-viewers
    eligible: everyone
    approval: auto
    duration: {default: 30d, max: 90d}
    justification: optional
auditors: {group: auditors}
admins: {group: keycard-admins}
alerts: {channel: "#security-alerts"}
reviews:
  timezone: Europe/Berlin
  admin_access_report:
    schedule: "0 9 * * MON"
    channel: "#security-reviews"
  certification:
    schedule: "@every 1m"
    policies: {privileged: true}
    reviewer: manager
`

// lineOf is the 1-based line of the last occurrence of sub in doc.
func lineOf(t *testing.T, doc, sub string) int {
	t.Helper()
	i := strings.LastIndex(doc, sub)
	if i < 0 {
		t.Fatalf("%q not in the test document", sub)
	}
	return strings.Count(doc[:i], "\n") + 1
}

func mutate(t *testing.T, doc, from, to string) string {
	t.Helper()
	if !strings.Contains(doc, from) {
		t.Fatalf("%q not in the base document", from)
	}
	return strings.Replace(doc, from, to, 1)
}

func parseErrors(t *testing.T, doc string) *Errors {
	t.Helper()
	s, err := Parse("policy.yaml", []byte(doc))
	if err == nil {
		t.Fatalf("parsed without error: %+v", s)
	}
	var es *Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	return es
}

func TestParseBase(t *testing.T) {
	s, err := Parse("policy.yaml", []byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := s.Policy("prod-db-admin")
	if !ok {
		t.Fatal("prod-db-admin missing")
	}
	want := []Rule{{Kind: RuleManager}, {Kind: RuleGroup, Group: "security-team"}}
	if len(p.Approval) != 2 || p.Approval[0].String() != want[0].String() || p.Approval[1].String() != want[1].String() {
		t.Errorf("approval = %v", p.Approval)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"default", p.DefaultDuration, 4 * time.Hour},
		{"max", p.MaxDuration, 8 * time.Hour},
		{"connector defaults to directory", p.ConnectorName(), "okta"},
		{"request_ttl default", p.RequestTTL, 24 * time.Hour},
		{"remind_after default", p.RemindAfter, time.Hour},
		{"schedule_ahead default", p.ScheduleAhead, 14 * 24 * time.Hour},
		{"line", p.Line, lineOf(t, baseYAML, "- name: prod-db-admin")},
		{"justification", p.JustificationRequired, true},
		{"grafana auto", s.Policies[1].Auto, true},
		{"grafana eligible single string", strings.Join(s.Policies[1].Eligible, ","), "everyone"},
		{"grafana justification optional", s.Policies[1].JustificationRequired, false},
		{"expiry warning default", s.ExpiryWarning, 15 * time.Minute},
		{"offboarding sla default", s.OffboardingSLA, 24 * time.Hour},
		{"offboarding check default", s.OffboardingCheck, 5 * time.Minute},
		{"timezone", s.Reviews.Timezone.String(), "Europe/Berlin"},
		{"cert due default", s.Reviews.Certification.Due, 14 * 24 * time.Hour},
		{"cert on_timeout default", s.Reviews.Certification.OnTimeout, OnTimeoutKeepAndFlag},
		{"manager attribute default", s.Connectors["okta"].ManagerAttribute, "managerId"},
		{"static status default", s.Connectors["lab"].Users[0].Status, access.StatusActive},
		{"hash length", len(s.Hash), 64},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestParseApprovalMFA(t *testing.T) {
	cases := []struct {
		name     string
		from, to string
		want     []bool // MFA of policies[0]'s steps after Resolve-time stamping
		policy   bool
	}{
		{"off by default", "", "", []bool{false, false}, false},
		{"whole policy", "    privileged: true\n", "    privileged: true\n    approval_mfa: true\n", []bool{true, true}, true},
		{"one step", "- group: security-team", "- {group: security-team, approval_mfa: true}", []bool{false, true}, false},
		{"one step, key first", "- group: security-team", "- {approval_mfa: true, group: security-team}", []bool{false, true}, false},
		{"explicit false", "- group: security-team", "- {group: security-team, approval_mfa: false}", []bool{false, false}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := baseYAML
			if c.from != "" {
				doc = mutate(t, baseYAML, c.from, c.to)
			}
			s, err := Parse("policy.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			p := s.Policies[0]
			if p.ApprovalMFA != c.policy {
				t.Errorf("ApprovalMFA = %v, want %v", p.ApprovalMFA, c.policy)
			}
			for i, r := range p.Approval {
				if got := p.ApprovalMFA || r.MFA; got != c.want[i] {
					t.Errorf("step %d MFA = %v, want %v", i+1, got, c.want[i])
				}
			}
			if p.Approval[1].Kind != RuleGroup || p.Approval[1].Group != "security-team" {
				t.Errorf("step 2 = %+v, want group security-team", p.Approval[1])
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := []struct {
		name     string
		from, to string
		at       string // the error's line is the last line containing at
		field    string
		msg      string
	}{
		{"unknown top-level key", "auditors: {group: auditors}", "auditor: {group: auditors}", "auditor:", "auditor", "unknown key"},
		{"unknown policy key", "    privileged: true", "    privilegd: true", "privilegd", "policies[0].privilegd", "unknown key"},
		{"unknown nested key", "    duration: {default: 4h, max: 8h}", "    duration: {default: 4h, max: 8h, min: 1h}", "min: 1h", "policies[0].duration.min", "unknown key"},
		{"unknown connector key", "    type: okta\n", "    type: okta\n    manager_attr: x\n", "manager_attr", "connectors.okta.manager_attr", "unknown key"},
		{"duplicate yaml key", "    role: Admin\n", "    role: Admin\n    role: Owner\n", "role: Owner", "policies[0].role", "given twice"},
		{"missing version", "version: 1\n", "", "directory: okta", "version", "missing"},
		{"missing policies", "policies:\n", "policie:\n", "version: 1", "policies", "missing"},
		{"missing name", "  - name: prod-db-admin\n    app: Production Database", "  - app: Production Database", "- app: Production Database", "policies[0].name", "missing"},
		{"missing app", "    app: Production Database\n", "", "- name: prod-db-admin", "policies[0].app", "missing"},
		{"missing role", "    role: Admin\n", "", "- name: prod-db-admin", "policies[0].role", "missing"},
		{"missing group", "    group: prod-db-admins\n", "", "- name: prod-db-admin", "policies[0].group", "missing"},
		{"missing eligible", "    eligible: [engineers]\n", "", "- name: prod-db-admin", "policies[0].eligible", "missing"},
		{"missing approval", "    approval: auto\n", "", "- name: grafana-viewer", "policies[1].approval", "missing"},
		{"missing duration.max", "{default: 4h, max: 8h}", "{default: 4h}", "{default: 4h}", "policies[0].duration.max", "missing"},
		{"missing duration", "    duration: {default: 30d, max: 90d}\n", "", "- name: grafana-viewer", "policies[1].duration.max", "missing"},
		{"version 2", "version: 1", "version: 2", "version: 2", "version", "unsupported version"},
		{"unknown connector type", "type: okta", "type: onelogin", "type: onelogin", "connectors.okta.type", `unknown connector type "onelogin" (known: okta, entra, jumpcloud, static)`},
		{"manager attribute on entra", "    type: okta\n", "    type: entra\n    manager_attribute: managerId\n", "manager_attribute: managerId", "connectors.okta.manager_attribute", "entra uses the manager relationship"},
		{"users on jumpcloud", "    type: okta\n", "    type: jumpcloud\n    users: []\n", "users: []", "connectors.okta.users", "a jumpcloud connector reads them from JumpCloud"},
		{"unknown profile", "eligible: [engineers]", "eligible: [engineer]", "eligible: [engineer]", "policies[0].eligible", `unknown profile "engineer"`},
		{"unknown connector reference", "    group: prod-db-admins\n", "    group: prod-db-admins\n    connector: okta2\n", "connector: okta2", "policies[0].connector", `"okta2" is not a connector`},
		{"directory not a connector", "directory: okta", "directory: okt", "directory: okt", "directory", `"okt" is not a connector`},
		{"group outside scope", "group: prod-db-admins", "group: db-admins", "group: db-admins", "policies[0].group", "outside the scope"},
		{"group outside the named connector's scope", "    group: prod-db-admins\n", "    group: prod-db-admins\n    connector: lab\n", "group: prod-db-admins", "policies[0].group", `scope of connector "lab"`},
		{"default over max", "{default: 4h, max: 8h}", "{default: 4h, max: 2h}", "max: 2h", "policies[0].duration.max", "2h is shorter than default 4h"},
		{"bad duration unit", "max: 8h}", "max: 8y}", "max: 8y", "policies[0].duration.max", `unknown unit "y"`},
		{"duration without unit", "max: 8h}", "max: 8}", "max: 8}", "policies[0].duration.max", "has no unit"},
		{"bad top-level duration", "auditors: {group: auditors}", "expiry_warning: 1.5h\nauditors: {group: auditors}", "expiry_warning", "expiry_warning", "whole numbers"},
		{"bad cron", `"0 9 * * MON"`, `"0 25 * * MON"`, "0 25", "reviews.admin_access_report.schedule", "bad cron schedule"},
		{"bad time zone", "timezone: Europe/Berlin", "timezone: Mars/Olympus", "Mars/Olympus", "reviews.timezone", "unknown time zone"},
		{"duplicate policy name", "name: grafana-viewer", "name: prod-db-admin", "name: prod-db-admin", "policies[1].name", "already defined"},
		{"name shape", "name: grafana-viewer", "name: Grafana_Viewer", "Grafana_Viewer", "policies[1].name", "lower-case"},
		{"name trailing hyphen", "name: grafana-viewer", "name: grafana-", "name: grafana-\n", "policies[1].name", "lower-case"},
		{"name too long", "name: grafana-viewer", "name: " + long, long, "policies[1].name", "longer than 63"},
		{"reserved export kind", "name: grafana-viewer", "name: events", "name: events", "policies[1].name", "reserved (an export kind)"},
		{"reserved subcommand", "name: grafana-viewer", "name: list", "name: list", "policies[1].name", "reserved (an /access subcommand)"},
		{"empty approval chain", "approval: auto", "approval: []", "approval: []", "policies[1].approval", "empty approval chain"},
		{"approval scalar not auto", "approval: auto", "approval: manual", "approval: manual", "policies[1].approval", "expected a list of steps or auto"},
		{"unknown approval rule", "      - manager", "      - boss", "- boss", "policies[0].approval[0]", "unknown approval rule"},
		{"unknown approval rule form", "- group: security-team", "- team: security-team", "team: security-team", "policies[0].approval[1].team", "unknown key"},
		{"approval rule with two keys", "- group: security-team", "- {group: security-team, user: a@example.com}", "{group: security-team", "policies[0].approval[1]", "unknown approval rule form"},
		{"user rule not an email", "- group: security-team", "- user: carol", "user: carol", "policies[0].approval[1].user", "not an email"},
		{"empty users rule", "- group: security-team", "- users: []", "users: []", "policies[0].approval[1].users", "empty"},
		{"justification value", "justification: optional", "justification: maybe", "justification: maybe", "policies[1].justification", "write required or optional"},
		{"break glass over 4h", "    privileged: true\n", "    privileged: true\n    break_glass: true\n", "break_glass: true", "policies[0].break_glass", "at most 4h (it is 8h)"},
		{"break glass optional justification", "    approval: auto\n", "    approval: auto\n    break_glass: true\n", "justification: optional", "policies[1].justification", "always requires a justification"},
		{"static duplicate email", "{email: bob@example.com, name: Bob}", "{email: ANN@example.com, name: Bob}", "ANN@example.com", "connectors.lab.users[1].email", "already a user"},
		{"static manager not a user", "manager: bob@example.com", "manager: zed@example.com", "zed@example.com", "connectors.lab.users[0].manager", "not a user of this connector"},
		{"static member not a user", "members: [ann@example.com]", "members: [zed@example.com]", "zed@example.com", "connectors.lab.groups[0].members[0]", "not a user of this connector"},
		{"static status", "{email: bob@example.com, name: Bob}", "{email: bob@example.com, name: Bob, status: GONE}", "status: GONE", "connectors.lab.users[1].status", "unknown status"},
		{"static users on okta", "    type: okta\n", "    type: okta\n    users: []\n", "users: []", "connectors.okta.users", "only a static connector"},
		{"missing scope", "    scope:\n      groups: [\"lab-*\"]\n", "", "type: static", "connectors.lab.scope.groups", "may change nothing"},
		{"scope without groups", "    scope:\n      groups: [\"lab-*\"]\n", "    scope: {}\n", "scope: {}", "connectors.lab.scope.groups", "may change nothing"},
		{"empty scope", `groups: ["lab-*"]`, `groups: []`, "groups: []", "connectors.lab.scope.groups", "may change nothing"},
		{"bad scope glob", `groups: ["lab-*"]`, `groups: ["lab-["]`, `lab-[`, "connectors.lab.scope.groups", "bad group glob"},
		{"channel without #", `channel: "#security-alerts"`, `channel: security-alerts`, "channel: security-alerts", "alerts.channel", "not a Slack channel"},
		{"channel with spaces", `channel: "#security-reviews"`, `channel: "#security reviews"`, "#security reviews", "reviews.admin_access_report.channel", "not a Slack channel"},
		{"certification unknown policy", "policies: {privileged: true}", "policies: {names: [nope]}", "names: [nope]", "reviews.certification.policies.names", `unknown policy "nope"`},
		{"certification selects nothing", "policies: {privileged: true}", "policies: {privileged: false}", "privileged: false", "reviews.certification.policies", "selects no policy"},
		{"certification on_timeout", "    reviewer: manager\n", "    reviewer: manager\n    on_timeout: delete\n", "on_timeout: delete", "reviews.certification.on_timeout", "revoke, escalate or keep-and-flag"},
		{"certification reviewer", "reviewer: manager", "reviewer: boss", "reviewer: boss", "reviews.certification.reviewer", "unknown approval rule"},
		{"extend shorter than max", "    justification: required\n", "    justification: required\n    extend: {max_total: 4h}\n", "max_total: 4h", "policies[0].extend.max_total", "shorter than duration.max 8h"},
		{"escalate_after without escalate_to", "    justification: required\n", "    justification: required\n    escalate_after: 2h\n", "escalate_after: 2h", "policies[0].escalate_after", "escalate_to is missing"},
		{"escalate_to without escalate_after", "    justification: required\n", "    justification: required\n    escalate_to: [manager]\n", "escalate_to: [manager]", "policies[0].escalate_to", "escalate_after is missing"},
		{"schedule_ahead not a duration", "    justification: required\n", "    justification: required\n    schedule_ahead: soon\n", "schedule_ahead: soon", "policies[0].schedule_ahead", "expected a whole number"},
		{"schedule_ahead over a year", "    justification: required\n", "    justification: required\n    schedule_ahead: 400d\n", "schedule_ahead: 400d", "policies[0].schedule_ahead", "at most 365d"},
		{"escalate after ttl", "    justification: required\n", "    justification: required\n    escalate_after: 2d\n    escalate_to: [manager]\n", "escalate_after: 2d", "policies[0].escalate_after", "not shorter than request_ttl"},
		{"not a bool", "privileged: true", "privileged: yes", "privileged: yes", "policies[0].privileged", "expected true or false"},
		{"static directory names unknown approver group", "directory: okta\n", "directory: lab\n", "group: security-team", "policies[0].approval[1].group", `not a group of the static directory "lab"`},
		{"approval_mfa on a static connector", "    group: prod-db-admins\n", "    group: lab-admins\n    connector: lab\n    approval_mfa: true\n", "approval_mfa: true", "policies[0].approval_mfa", `connector "lab" (type static) cannot challenge an approver for MFA; only okta connectors can`},
		{"step approval_mfa on a static connector", "    group: prod-db-admins\n    privileged: true\n    eligible: [engineers]\n    approval:\n      - manager\n      - group: security-team\n", "    group: lab-admins\n    connector: lab\n    privileged: true\n    eligible: [engineers]\n    approval:\n      - manager\n      - {group: security-team, approval_mfa: true}\n", "{group: security-team, approval_mfa: true}", "policies[0].approval[1].approval_mfa", `connector "lab" (type static) cannot challenge`},
		{"approval_mfa not a bool", "    privileged: true\n", "    privileged: true\n    approval_mfa: push\n", "approval_mfa: push", "policies[0].approval_mfa", "expected true or false"},
		{"step approval_mfa not a bool", "- group: security-team", "- {group: security-team, approval_mfa: push}", "approval_mfa: push", "policies[0].approval[1].approval_mfa", "expected true or false"},
		{"approval_mfa with auto", "    approval: auto\n", "    approval: auto\n    approval_mfa: true\n", "approval_mfa: true", "policies[1].approval_mfa", "no approver to challenge"},
		{"approval_mfa on escalate_to", "    justification: required\n", "    justification: required\n    escalate_after: 2h\n    escalate_to: [{group: security-team, approval_mfa: true}]\n", "escalate_to: [", "policies[0].escalate_to[0]", "unknown approval rule form"},
		{"syntax error", "    role: Admin\n", "    role: [Admin\n", "", "", "YAML syntax"},
		{"second document", "reviews:\n", "---\nreviews:\n", "", "", "a second YAML document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := mutate(t, baseYAML, c.from, c.to)
			es := parseErrors(t, doc)
			prefix := "policy.yaml:"
			if c.at != "" {
				prefix += fmtInt(lineOf(t, doc, c.at)) + ": "
			}
			if c.field != "" {
				prefix += c.field + ": "
			}
			for _, e := range *es {
				if s := e.Error(); strings.HasPrefix(s, prefix) && strings.Contains(s, c.msg) {
					return
				}
			}
			t.Errorf("no error %q…%q in:\n%v", prefix, c.msg, es)
		})
	}
}

func fmtInt(n int) string { return strconv.Itoa(n) }

func TestParseReportsAllErrorsInLineOrder(t *testing.T) {
	doc := baseYAML
	for _, m := range [][2]string{
		{"version: 1", "version: 3"},
		{"type: okta", "type: onelogin"},
		{"{default: 4h, max: 8h}", "{default: 4h, max: 2h}"},
		{"name: grafana-viewer", "name: help"},
		{"timezone: Europe/Berlin", "timezone: Nowhere/City"},
	} {
		doc = mutate(t, doc, m[0], m[1])
	}
	es := parseErrors(t, doc)
	want := []string{"version", "connectors.okta.type", "policies[0].duration.max", "policies[1].name", "reviews.timezone"}
	var got []string
	last := 0
	for _, e := range *es {
		if e.Line < last {
			t.Errorf("errors not in line order: %v", es)
		}
		last = e.Line
		got = append(got, e.Field)
	}
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("missing error for %s in:\n%v", w, es)
		}
	}
	if n := strings.Count(es.Error(), "\n") + 1; n != len(*es) {
		t.Errorf("Error() has %d lines for %d errors", n, len(*es))
	}
}

func TestParseFiles(t *testing.T) {
	cases := []struct {
		name, path string
		policies   []string
	}{
		{"spec example", "testdata/example.yaml", []string{"prod-db-admin", "grafana-viewer"}},
		{"static demo", "../docs/examples/policy-static.yaml", []string{"prod-db-admin", "grafana-viewer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Load(c.path)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range c.policies {
				if _, ok := s.Policy(name); !ok {
					t.Errorf("policy %s missing", name)
				}
			}
			if Summary(s) == "" {
				t.Error("empty summary")
			}
		})
	}
	t.Run("docs reference example", func(t *testing.T) {
		md, err := os.ReadFile("../docs/policy.md")
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(md), "```yaml\n")
		if !ok {
			t.Fatal("docs/policy.md has no yaml block")
		}
		block, _, _ := strings.Cut(rest, "```")
		s, err := Parse("docs/policy.md", []byte(block))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Connectors) < 2 || s.Connectors["okta"] == nil {
			t.Errorf("the complete example should show an okta and a static connector: %v", slices.Sorted(maps.Keys(s.Connectors)))
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := Load("testdata/does-not-exist.yaml"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want a wrapped ErrNotExist", err)
		}
	})
}

func TestParseEmptyFile(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "[]", "just text"} {
		t.Run(doc, func(t *testing.T) {
			es := parseErrors(t, doc)
			if len(*es) == 0 || !strings.HasPrefix((*es)[0].Error(), "policy.yaml") {
				t.Errorf("errors = %v", es)
			}
		})
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Each level multiplies the previous by 9: 9^9 nodes if walked naively.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		prev := "*a" + fmtInt(i-1)
		b.WriteString("a" + fmtInt(i) + ": &a" + fmtInt(i) + " [" + strings.Repeat(prev+", ", 8) + prev + "]\n")
	}
	doc := strings.Replace(baseYAML, "version: 1\n", "version: 1\nchange_approval: false\n", 1) + "x: " + "*a9\n" + b.String()
	_ = parseErrors(t, doc) // must return, with errors, quickly
}

// Entra ID and JumpCloud connectors parse like Okta's (SPEC "Identity
// providers"), each as the directory.
func TestParseLiveConnectorTypes(t *testing.T) {
	for _, typ := range []string{ConnectorOkta, ConnectorEntra, ConnectorJumpCloud} {
		t.Run(typ, func(t *testing.T) {
			src := strings.Replace(baseYAML, "    type: okta\n", "    type: "+typ+"\n", 1)
			s, err := Parse("policy.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Connectors["okta"].Type; got != typ {
				t.Fatalf("type = %q, want %q", got, typ)
			}
		})
	}
}
