package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConflicts(t *testing.T) {
	const extra = "conflicts:\n  - [prod-db-admin, grafana-viewer]\n"
	cases := []struct {
		name  string
		add   string
		mode  string
		sets  []string
		field string // error field; "" = valid
		msg   string
		line  int
	}{
		{name: "absent", add: "", mode: ConflictsRefuse},
		{name: "pair", add: extra, mode: ConflictsRefuse, sets: []string{"prod-db-admin + grafana-viewer"}},
		{name: "approve mode", add: extra + "conflicts_mode: approve\n", mode: ConflictsApprove, sets: []string{"prod-db-admin + grafana-viewer"}},
		{name: "a policy in several sets", add: "conflicts: [[prod-db-admin, grafana-viewer], [grafana-viewer, prod-db-admin]]\n", mode: ConflictsRefuse,
			sets: []string{"prod-db-admin + grafana-viewer", "grafana-viewer + prod-db-admin"}},
		{name: "unknown policy", add: "conflicts:\n  - [prod-db-admin,\n     payments-admin]\n", field: "conflicts[0][1]", msg: `unknown policy "payments-admin"`, line: 3},
		{name: "single policy", add: "conflicts: [[prod-db-admin]]\n", field: "conflicts[0]", msg: "at least two policies"},
		{name: "twice in a set", add: "conflicts: [[prod-db-admin, prod-db-admin]]\n", field: "conflicts[0][1]", msg: "listed twice"},
		{name: "not a list of sets", add: "conflicts: [prod-db-admin, grafana-viewer]\n", field: "conflicts[0]", msg: "at least two policy names"},
		{name: "bad mode", add: "conflicts_mode: warn\n", field: "conflicts_mode", msg: `unknown mode "warn"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := baseYAML + tc.add
			s, err := Parse("p.yaml", []byte(data))
			if tc.field != "" {
				var errs *Errors
				if !errors.As(err, &errs) {
					t.Fatalf("Parse: %v, want field errors", err)
				}
				for _, fe := range *errs {
					if fe.Field == tc.field && strings.Contains(fe.Msg, tc.msg) {
						if tc.line != 0 && fe.Line != strings.Count(baseYAML, "\n")+tc.line {
							t.Errorf("line %d, want %d", fe.Line, strings.Count(baseYAML, "\n")+tc.line)
						}
						return
					}
				}
				t.Fatalf("errors %v, want %s: %s", err, tc.field, tc.msg)
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.ConflictsMode != tc.mode {
				t.Errorf("mode %q, want %q", s.ConflictsMode, tc.mode)
			}
			var got []string
			for _, c := range s.Conflicts {
				got = append(got, c.String())
			}
			if strings.Join(got, "|") != strings.Join(tc.sets, "|") {
				t.Errorf("sets %q, want %q", got, tc.sets)
			}
		})
	}
}

func TestConflictRules(t *testing.T) {
	s := &Set{Conflicts: []Conflict{
		{Policies: []string{"deploy-approver", "prod-deployer"}},
		{Policies: []string{"payments-admin", "payments-auditor", "payments-ops"}},
	}}
	heldOf := func(ps ...string) func(string) bool {
		return func(p string) bool {
			for _, q := range ps {
				if q == p {
					return true
				}
			}
			return false
		}
	}
	cases := []struct {
		name      string
		asking    string
		held      []string
		completes string
		holds     string
	}{
		{"nothing held", "prod-deployer", nil, "", ""},
		{"completes a pair", "prod-deployer", []string{"deploy-approver"}, "deploy-approver + prod-deployer", ""},
		{"already holds the pair", "other", []string{"deploy-approver", "prod-deployer"}, "", "deploy-approver + prod-deployer"},
		{"half of a triple", "payments-ops", []string{"payments-admin"}, "", ""},
		{"completes a triple", "payments-ops", []string{"payments-admin", "payments-auditor"}, "payments-admin + payments-auditor + payments-ops", ""},
		{"unrelated policy", "grafana", []string{"deploy-approver"}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got, held []string
			for _, c := range s.Completes(tc.asking, heldOf(tc.held...)) {
				got = append(got, c.String())
			}
			for _, c := range s.Held(heldOf(tc.held...)) {
				held = append(held, c.String())
			}
			if strings.Join(got, "|") != tc.completes {
				t.Errorf("Completes = %q, want %q", got, tc.completes)
			}
			if strings.Join(held, "|") != tc.holds {
				t.Errorf("Held = %q, want %q", held, tc.holds)
			}
		})
	}
}
