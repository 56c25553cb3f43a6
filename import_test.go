package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keycard/internal/buildinfo"
	"keycard/internal/fixture"
	"keycard/internal/oktafake"
	"keycard/internal/server"
	"keycard/internal/storetest"
	"keycard/policy"
	"keycard/store"
)

// `keycard policy import` reads the groups inside a live connector's scope
// through its real client and writes a policy that `policy check` accepts
// as it is (issue 12 item 5).
func TestPolicyImportFromOkta(t *testing.T) {
	clearEnv(t)
	fake := oktafake.New(oktafake.Options{Token: "t0k3n"})
	defer fake.Close()
	user := func(login string) string {
		return fake.AddUser(map[string]any{"login": login, "email": login, "firstName": login[:3], "lastName": "X"}, "ACTIVE")
	}
	ann, bob := user("ann@example.com"), user("bob@example.com")
	admins := fake.AddGroup("prod-db-admins", "OKTA_GROUP")
	fake.AddGroup("app-grafana-viewers", "OKTA_GROUP")
	fake.AddGroup("security-team", "OKTA_GROUP") // outside the scope
	for _, id := range []string{ann, bob} {
		if err := fake.AddMember(admins, id); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "connectors.yaml")
	head := fixture.Directory("okta", "okta", fixture.Org{}) // connectors only: import writes the policies
	if err := os.WriteFile(src, head.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OKTA_CLIENT_ORGURL", fake.URL)
	t.Setenv("OKTA_CLIENT_TOKEN", "t0k3n")
	out := filepath.Join(dir, "policy.yaml")

	code, stdout, stderr := runCLI(t, "policy", "import", "--connector", "okta", "--policy", src, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	set, err := policy.Load(out)
	if err != nil {
		t.Fatalf("the imported policy does not load: %v", err)
	}
	var names []string
	for _, p := range set.Policies {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "app-grafana-viewers,prod-db-admins" {
		t.Fatalf("policies %s, want one per group inside the scope", got)
	}
	data, _ := os.ReadFile(out)
	for _, want := range []string{"#   ann@example.com", "#   bob@example.com", "standing access today: nobody"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("imported policy lacks %q:\n%s", want, data)
		}
	}
	if code, _, _ := runCLI(t, "policy", "check", out); code != 0 {
		t.Fatalf("policy check of the import: exit %d", code)
	}
	// A second import never overwrites the file.
	if code, _, stderr := runCLI(t, "policy", "import", "--connector", "okta", "--policy", src, "--out", out); code == 0 || !strings.Contains(stderr, "exists") {
		t.Fatalf("second import over the same file: exit %d, %s", code, stderr)
	}
}

// `keycard version` and every manifest carry the build's version (issue 14
// item 3): the same string an auditor can tie to code.
func TestVersionIsTheBuildInfo(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != 0 || strings.TrimSpace(stdout) != buildinfo.Get().String() {
		t.Fatalf("keycard version: exit %d, %q, want %q", code, stdout, buildinfo.Get().String())
	}
	set, err := policy.Load("docs/examples/policy-static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := server.Instance(set, server.Config{}).Version, buildinfo.Get().Short(); got != want {
		t.Fatalf("manifest keycard_version %q, want %q", got, want)
	}
}

// `keycard migrate --to URL` copies a bbolt file into an empty PostgreSQL
// database, verified on both sides, and refuses a database that is not
// empty (issue 13 item 3).
func TestMigrateCommand(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	clearEnv(t)
	path := seedDB(t)
	code, stdout, stderr := runCLI(t, "migrate", "--to", url, "--db", path)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	for _, want := range []string{"requests", "audit chain verified on both sides: 3 events"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, stdout)
		}
	}
	code, _, stderr = runCLI(t, "migrate", "--to", url, "--db", path)
	if code == 0 || !strings.Contains(stderr, "not empty") {
		t.Fatalf("second migrate into the same database: exit %d, %s", code, stderr)
	}
}

// `keycard policy who-can` prints who may request each policy and who would
// approve each step today; with --policy-file, what a proposed policy
// changes (issue 15 item 4).
func TestPolicyWhoCanCommand(t *testing.T) {
	clearEnv(t)
	t.Setenv("KEYCARD_POLICY", "docs/examples/policy-static.yaml")
	db := filepath.Join(t.TempDir(), "absent.db")
	code, stdout, stderr := runCLI(t, "policy", "who-can", "--user", "ann@example.com", "--db", db)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "ann@example.com,Ann Lee,prod-db-admin,true,engineers,1,manager,bob@example.com\n") {
		t.Fatalf("who-can:\n%s", stdout)
	}
	data, err := os.ReadFile("docs/examples/policy-static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(t.TempDir(), "next.yaml")
	if err := os.WriteFile(next, []byte(strings.Replace(string(data), "      - group: security-team\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, "policy", "who-can", "--policy", "prod-db-admin", "--policy-file", next, "--db", db)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "change,") || !strings.Contains(stdout, "removed,ann@example.com") {
		t.Fatalf("who-can diff:\n%s", stdout)
	}
}

// TestMigrateURLFromEnvironment: without --to, migrate reads the database
// from KEYCARD_DATABASE_URL, so the password need not be on the command
// line; a malformed one is named, without its password.
func TestMigrateURLFromEnvironment(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "keycard.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	t.Setenv("KEYCARD_DATABASE_URL", "mysql://k:s3cret@db:3306/keycard")
	code, _, stderr := runCLI(t, "migrate", "--db", path)
	if code == 0 || !strings.Contains(stderr, "KEYCARD_DATABASE_URL is malformed") || strings.Contains(stderr, "s3cret") {
		t.Fatalf("exit %d, stderr %q; want the malformed KEYCARD_DATABASE_URL named without its password", code, stderr)
	}
}
