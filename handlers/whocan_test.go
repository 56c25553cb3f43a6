package handlers_test

import (
	"bytes"
	"strings"
	"testing"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/fixture"
	"keycard/policy"
)

func TestWhoCanRules(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *env)
		opt    handlers.WhoCanOptions
		policy string
		want   []string // CSV records (WhoCanHeader order), ","-joined
	}{
		{name: "two steps, manager and group", opt: handlers.WhoCanOptions{User: "ann@example.com", Policy: "prod-db-admin"},
			want: []string{
				"ann@example.com,Ann Lee,prod-db-admin,true,engineers,1,manager,bob@example.com",
				"ann@example.com,Ann Lee,prod-db-admin,true,engineers,2,group:security-team,carol@example.com;dave@example.com",
			}},
		{name: "not eligible", opt: handlers.WhoCanOptions{User: "mallory@example.com", Policy: "prod-db-admin"},
			want: []string{"mallory@example.com,Mallory,prod-db-admin,false,,,,"}},
		{name: "auto approval", opt: handlers.WhoCanOptions{User: "mallory@example.com", Policy: "grafana-viewer"},
			want: []string{"mallory@example.com,Mallory,grafana-viewer,true,everyone,,auto,"}},
		{name: "self-approval excluded: the named approver asks", opt: handlers.WhoCanOptions{User: "ann@example.com", Policy: "lonely"},
			want: []string{"ann@example.com,Ann Lee,lonely,true,everyone,1,user:ann@example.com,"}},
		{name: "self-approval excluded: a group member asks", opt: handlers.WhoCanOptions{User: "carol@example.com", Policy: "prod-breakglass"},
			want: []string{"carol@example.com,Carol Sec,prod-breakglass,false,,,,"}},
		{name: "group member of an eligible profile", opt: handlers.WhoCanOptions{User: "carol@example.com", Policy: "lonely"},
			want: []string{"carol@example.com,Carol Sec,lonely,true,everyone,1,user:ann@example.com,ann@example.com"}},
		{name: "no manager: nobody approves step 1", opt: handlers.WhoCanOptions{User: "bob@example.com", Policy: "prod-breakglass"},
			want: []string{"bob@example.com,Bob Boss,prod-breakglass,true,engineers,1,group:security-team,carol@example.com;dave@example.com"}},
		{name: "an inactive account is not eligible", setup: func(e *env) { e.idp.setStatus("ann@example.com", access.StatusSuspended) },
			opt:  handlers.WhoCanOptions{User: "ann@example.com", Policy: "grafana-viewer"},
			want: []string{"ann@example.com,Ann Lee,grafana-viewer,false,,,,"}},
		{name: "an inactive approver is not listed", setup: func(e *env) { e.idp.setStatus("dave@example.com", access.StatusSuspended) },
			opt: handlers.WhoCanOptions{User: "bob@example.com", Policy: "prod-db-admin"},
			want: []string{"bob@example.com,Bob Boss,prod-db-admin,true,engineers,1,manager,",
				"bob@example.com,Bob Boss,prod-db-admin,true,engineers,2,group:security-team,carol@example.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			rows, err := handlers.WhoCan(t.Context(), e.set, e.idp, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				got = append(got, strings.Join(r.Record(), ","))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestWhoCanFilters(t *testing.T) {
	e := newEnv(t)
	if _, err := handlers.WhoCan(t.Context(), e.set, e.idp, handlers.WhoCanOptions{Policy: "nope"}); access.CodeOf(err) != access.CodeUnknownPolicy {
		t.Errorf("unknown policy: %v", err)
	}
	if _, err := handlers.WhoCan(t.Context(), e.set, e.idp, handlers.WhoCanOptions{User: "nobody@example.com"}); access.CodeOf(err) != access.CodeUnknownUser {
		t.Errorf("unknown user: %v", err)
	}
	rows, err := handlers.WhoCan(t.Context(), e.set, e.idp, handlers.WhoCanOptions{Policy: "grafana-viewer"})
	if err != nil {
		t.Fatal(err)
	}
	// The population: the groups' members (security-team, auditors,
	// keycard-admins) and the people rules name (ann).
	var who []string
	for _, r := range rows {
		who = append(who, r.UserEmail)
	}
	if got, want := strings.Join(who, " "), "ann@example.com carol@example.com dave@example.com erin@example.com frank@example.com"; got != want {
		t.Errorf("population %s, want %s", got, want)
	}
}

func TestWhoCanExport(t *testing.T) {
	e := newEnv(t)
	var out bytes.Buffer
	m, err := e.svc.Export(t.Context(), &out, handlers.ExportRequest{Kind: handlers.KindWhoCan, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "who-can.golden.csv", out.Bytes())
	if m.RowCount != strings.Count(out.String(), "\n")-1 || m.CountsColumn != "eligible" || m.Counts["true"]+m.Counts["false"] != m.RowCount {
		t.Errorf("manifest rows %d counts %v (%s)", m.RowCount, m.Counts, m.CountsColumn)
	}
	if m.InclusionRule == "" || m.Summary["population"] != 5 {
		t.Errorf("manifest inclusion %q summary %v", m.InclusionRule, m.Summary)
	}
}

func TestWhoCanDiff(t *testing.T) {
	e := newEnv(t)
	proposed, err := policy.Parse("new.yaml", fixture.RolesPolicy().
		Replace("      - user: ann@example.com\n", "      - user: frank@example.com\n").                                 // lonely: frank approves instead of ann
		Replace("    where: {department: [Engineering, SRE]}", "    where: {department: [Engineering, SRE, Security]}"). // security joins engineers
		Bytes())
	if err != nil {
		t.Fatal(err)
	}
	changes, err := handlers.WhoCanDiff(t.Context(), e.set, proposed, e.idp, handlers.WhoCanOptions{User: "carol@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := handlers.WriteWhoCanDiffCSV(&buf, changes); err != nil {
		t.Fatal(err)
	}
	// Ineligible and auto-approved rows share step 0, so eligibility
	// gained on an auto policy is one changed row.
	want := `change,user_email,user_name,policy,eligible,profile,step,rule,approvers
changed,carol@example.com,Carol Sec,lonely,true,everyone,1,user:frank@example.com,frank@example.com
removed,carol@example.com,Carol Sec,prod-breakglass,false,,,,
added,carol@example.com,Carol Sec,prod-breakglass,true,engineers,1,group:security-team,dave@example.com
removed,carol@example.com,Carol Sec,prod-db-admin,false,,,,
added,carol@example.com,Carol Sec,prod-db-admin,true,engineers,1,manager,
added,carol@example.com,Carol Sec,prod-db-admin,true,engineers,2,group:security-team,dave@example.com
changed,carol@example.com,Carol Sec,prod-db-admin-alt,true,engineers,,auto,
`
	if buf.String() != want {
		t.Errorf("diff:\n%s\nwant:\n%s", buf.String(), want)
	}
}
