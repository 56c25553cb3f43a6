package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"keycard/internal/storetest"
)

// The command-line tools read PostgreSQL when KEYCARD_DATABASE_URL (or
// --database-url) is set (SPEC "Beyond one machine"): a bbolt file migrated
// into PostgreSQL verifies and exports exactly as the file does, and a
// broken chain in PostgreSQL is found.
func TestCLIOnPostgres(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t)) // before clearEnv, which drops KEYCARD_*
	clearEnv(t)
	path := seedDB(t)
	if code, out, errOut := runCLI(t, "migrate", "--to", url, "--db", path); code != 0 {
		t.Fatalf("migrate: exit %d: %s%s", code, out, errOut)
	}
	// Both stores side by side: bbolt through --db, PostgreSQL through the
	// variable (as an operator runs it) and through the flag.
	bolt := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, "--db", path)...)
	}
	pgEnv := func(args ...string) (int, string, string) {
		t.Helper()
		t.Setenv("KEYCARD_DATABASE_URL", url)
		defer os.Unsetenv("KEYCARD_DATABASE_URL")
		return runCLI(t, args...)
	}
	pgFlag := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, "--database-url", url)...)
	}

	code, wantVerify, errOut := bolt("audit", "verify")
	if code != 0 || !strings.Contains(wantVerify, "audit chain ok: 3 events") {
		t.Fatalf("bbolt audit verify: exit %d: %s%s", code, wantVerify, errOut)
	}
	for name, run := range map[string]func(...string) (int, string, string){"KEYCARD_DATABASE_URL": pgEnv, "--database-url": pgFlag} {
		if code, out, errOut := run("audit", "verify"); code != 0 || out != wantVerify {
			t.Errorf("audit verify on PostgreSQL (%s): exit %d: %q%s, want %q", name, code, out, errOut, wantVerify)
		}
	}

	// A closed period: the same CSV, byte for byte, from either store.
	dir := t.TempDir()
	for _, kind := range []string{"access", "events"} {
		boltCSV, pgCSV := filepath.Join(dir, kind+"-bolt.csv"), filepath.Join(dir, kind+"-pg.csv")
		boltMan, pgMan := filepath.Join(dir, kind+"-bolt.json"), filepath.Join(dir, kind+"-pg.json")
		period := []string{"export", "--kind", kind, "--from", "2026-11-01", "--to", "2026-11-10"}
		if code, _, errOut := bolt(append(period, "--out", boltCSV, "--manifest", boltMan)...); code != 0 {
			t.Fatalf("bbolt export %s: exit %d: %s", kind, code, errOut)
		}
		if code, _, errOut := pgEnv(append(period, "--out", pgCSV, "--manifest", pgMan)...); code != 0 {
			t.Fatalf("PostgreSQL export %s: exit %d: %s", kind, code, errOut)
		}
		a, _ := os.ReadFile(boltCSV)
		b, _ := os.ReadFile(pgCSV)
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s export differs between bbolt and PostgreSQL:\nbbolt:\n%s\nPostgreSQL:\n%s", kind, a, b)
		}
		man, _ := os.ReadFile(pgMan)
		if !strings.Contains(string(man), `"chain_verified": true`) {
			t.Errorf("PostgreSQL %s manifest does not say the chain verified:\n%s", kind, man)
		}
		if code, out, errOut := pgEnv("export", "verify", pgMan); code != 0 || !strings.HasPrefix(out, "ok:") {
			t.Errorf("export verify on PostgreSQL (%s): exit %d: %s%s", kind, code, out, errOut)
		}
	}
	// The exports are audited in PostgreSQL itself.
	if code, out, errOut := pgFlag("export", "--events", "--from", "2026-11-01", "--to", "2099-12-31"); code != 0 ||
		strings.Count(out, "export.created") != 2 {
		t.Errorf("PostgreSQL events export after two exports: exit %d: %s%s", code, out, errOut)
	}

	// who-can reads a static directory's keycard-made members from PostgreSQL.
	t.Setenv("KEYCARD_POLICY", "docs/examples/policy-static.yaml")
	if code, out, errOut := pgEnv("policy", "who-can", "--user", "ann@example.com"); code != 0 ||
		!strings.Contains(out, "ann@example.com,Ann Lee,prod-db-admin,true") {
		t.Errorf("who-can on PostgreSQL: exit %d: %s%s", code, out, errOut)
	}
	os.Unsetenv("KEYCARD_POLICY")

	// backup refuses and says how PostgreSQL is backed up.
	code, out, errOut := pgEnv("backup", "--dir", t.TempDir())
	if code != 1 || out != "" || !strings.Contains(errOut, "pg_dump") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("backup with PostgreSQL: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// A flipped byte in event 2, in PostgreSQL: verify names it, exit 1.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `UPDATE keycard_audit_events
		SET body = set_byte(body, length(body)/2, get_byte(body, length(body)/2) # 255) WHERE seq = 2`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := pgEnv("audit", "verify"); code != 1 || !strings.Contains(out, "BROKEN at event 2") {
		t.Errorf("tampered chain in PostgreSQL: exit %d: %s", code, out)
	}
	if code, out, _ := bolt("audit", "verify"); code != 0 || !strings.Contains(out, "audit chain ok: 5 events") { // 3 + its two exports
		t.Errorf("the bbolt file is untouched: exit %d: %s", code, out)
	}
}

// A malformed database URL stops a tool with one line naming where it came
// from, never the password; --db beside a URL is refused as ambiguous.
func TestCLIDatabaseURLErrors(t *testing.T) {
	clearEnv(t)
	path := seedDB(t)
	bad := []string{
		"postgres://keycard:hunter2@db.example.com:notaport/keycard",
		"mysql://keycard:hunter2@db.example.com/keycard",
		"postgres://keycard:hunter2@db.example.com/keycard?sslmode=sometimes",
	}
	for _, u := range bad {
		for _, cmd := range [][]string{{"audit", "verify"}, {"export"}, {"policy", "who-can", "--file", "docs/examples/policy-static.yaml"}} {
			t.Setenv("KEYCARD_DATABASE_URL", u)
			code, _, errOut := runCLI(t, cmd...)
			if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "KEYCARD_DATABASE_URL is malformed") ||
				strings.Contains(errOut, "hunter2") {
				t.Errorf("%v with %s: exit %d, stderr %q", cmd, u, code, errOut)
			}
			os.Unsetenv("KEYCARD_DATABASE_URL")
			code, _, errOut = runCLI(t, append(cmd, "--database-url", u)...)
			if code != 1 || !strings.Contains(errOut, "--database-url is malformed") || strings.Contains(errOut, "hunter2") {
				t.Errorf("%v --database-url %s: exit %d, stderr %q", cmd, u, code, errOut)
			}
		}
	}
	t.Setenv("KEYCARD_DATABASE_URL", "postgres://keycard:hunter2@db.example.com/keycard")
	code, _, errOut := runCLI(t, "audit", "verify", "--db", path)
	if code != 2 || !strings.Contains(errOut, "--db names a bbolt file and KEYCARD_DATABASE_URL a PostgreSQL database") ||
		strings.Contains(errOut, "hunter2") {
		t.Errorf("--db beside KEYCARD_DATABASE_URL: exit %d, stderr %q", code, errOut)
	}
	// --database-url= reads the file even with the variable set.
	if code, out, errOut := runCLI(t, "audit", "verify", "--db", path, "--database-url="); code != 0 || !strings.Contains(out, "3 events") {
		t.Errorf("--database-url= --db FILE: exit %d: %s%s", code, out, errOut)
	}
}
