package policy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func connectorsOnly(t *testing.T) *Set {
	t.Helper()
	data, err := os.ReadFile("../docs/examples/policy-static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Only the head of the file: import works before any policy exists.
	head := string(data[:strings.Index(string(data), "\nprofiles:")])
	s, err := ParseConnectors("policy.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImportWritesAPolicyThatParses(t *testing.T) {
	src := connectorsOnly(t)
	groups := []ImportGroup{
		{Name: "prod-db-admins", Members: []string{"dave@example.com", "carol@example.com"}},
		{Name: "app-grafana-viewers"},
		{Name: "security-team", Members: []string{"carol@example.com"}}, // outside the scope: left out
	}
	out, err := Import(src, "lab", groups)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Parse("imported.yaml", out)
	if err != nil {
		t.Fatalf("imported policy does not parse: %v\n%s", err, out)
	}
	if len(set.Policies) != 2 {
		t.Fatalf("%d policies, want 2 (security-team is outside the scope)", len(set.Policies))
	}
	p, ok := set.Policy("prod-db-admins")
	if !ok || !p.Privileged || !p.JustificationRequired || p.Approval[0].Kind != RuleManager || p.MaxDuration.Hours() != 8 {
		t.Fatalf("prod-db-admins = %+v, want the safe defaults", p)
	}
	golden := filepath.Join("testdata", "import-static.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(out) {
		t.Fatalf("import differs from %s (run go test ./policy -update and review):\n%s", golden, out)
	}
}

func TestImportPolicyNames(t *testing.T) {
	cases := []struct{ group, want string }{
		{"app-grafana-admins", "app-grafana-admins"},
		{"App Grafana Admins", "app-grafana-admins-2"},
		{"events", "events-role"},
		{"--", "group"},
		{"Ops/On-Call (EU)", "ops-on-call-eu"},
		{strings.Repeat("x", 80), strings.Repeat("x", 59)},
	}
	used := map[string]bool{}
	for _, c := range cases {
		if got := policyName(c.group, used); got != c.want {
			t.Errorf("policyName(%q) = %q, want %q", c.group, got, c.want)
		}
	}
}

func TestImportRefuses(t *testing.T) {
	src := connectorsOnly(t)
	if _, err := Import(src, "okta", nil); err == nil || !strings.Contains(err.Error(), `"okta" is not a connector`) {
		t.Errorf("unknown connector: %v", err)
	}
	if _, err := Import(src, "lab", []ImportGroup{{Name: "security-team"}}); err == nil || !strings.Contains(err.Error(), "no group inside its scope") {
		t.Errorf("nothing in scope: %v", err)
	}
}
