package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"keycard/access"
	"keycard/store"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SLACK_") || strings.HasPrefix(name, "OKTA_") || strings.HasPrefix(name, "KEYCARD_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func TestServeWithoutTokensNamesThem(t *testing.T) {
	clearEnv(t)
	code, _, stderr := runCLI(t, "serve")
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, "SLACK_BOT_TOKEN") || !strings.Contains(stderr, "SLACK_APP_TOKEN") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
	_, _, stderr = runCLI(t, "serve")
	if strings.Contains(stderr, "SLACK_BOT_TOKEN") || !strings.Contains(stderr, "SLACK_APP_TOKEN") {
		t.Fatalf("stderr %q", stderr)
	}
}

func TestPolicyCheck(t *testing.T) {
	code, out, _ := runCLI(t, "policy", "check", "docs/examples/policy-static.yaml")
	if code != 0 || !strings.Contains(out, "prod-db-admin") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("version: 2\nbogus: 1\n"), 0o600)
	code, _, stderr := runCLI(t, "policy", "check", bad)
	if code != 1 || !strings.Contains(stderr, "bad.yaml:1") || !strings.Contains(stderr, "bad.yaml:2") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	// approval_mfa on a connector that cannot challenge names the connector.
	src, err := os.ReadFile("docs/examples/policy-static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mfa := filepath.Join(t.TempDir(), "mfa.yaml")
	os.WriteFile(mfa, []byte(strings.Replace(string(src), "    privileged: true\n", "    privileged: true\n    approval_mfa: true\n", 1)), 0o600)
	code, _, stderr = runCLI(t, "policy", "check", mfa)
	if code != 1 || !strings.Contains(stderr, "approval_mfa: connector ") || !strings.Contains(stderr, "cannot challenge an approver for MFA; only okta connectors can") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// seedDB writes a few requests and events with the real lifecycle.
func seedDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keycard.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		err := db.Update(now.Add(time.Duration(i)*time.Minute), func(tx *store.Tx) error {
			r := access.Request{Policy: "grafana-viewer", App: "Grafana", Role: "Viewer", Requester: access.Person{Email: fmt.Sprintf("u%d@example.com", i)},
				State: access.StatePending, CreatedAt: tx.Now(), Duration: time.Hour}
			if err := tx.PutRequest(&r); err != nil {
				return err
			}
			_, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, Actor: r.Requester.Email, Subject: r.Requester.Email, RequestID: r.ID})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	return path
}

func TestAuditVerifyAndExport(t *testing.T) {
	path := seedDB(t)
	code, out, _ := runCLI(t, "audit", "verify", "--db", path)
	if code != 0 || !strings.Contains(out, "3 events") {
		t.Fatalf("exit %d: %s", code, out)
	}
	code, out, _ = runCLI(t, "export", "--db", path, "--from", "2026-11-01", "--to", "2026-11-30")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.HasPrefix(out, "request_id,user_name,") {
		t.Fatalf("exit %d: %s", code, out)
	}
	// The access export above is itself an audit event (export.created).
	code, out, _ = runCLI(t, "export", "--events", "--db", path, "--from", "2026-11-01", "--to", "2099-11-30")
	if code != 0 || strings.Count(out, "\n") != 5 || !strings.HasPrefix(out, "seq,event_id,") || !strings.Contains(out, "export.created") {
		t.Fatalf("exit %d: %s", code, out)
	}
	// Tamper with event 2: verify names it and exits 1.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		var flipped bool
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if flipped || !strings.Contains(string(name), "event") || strings.Contains(string(name), "time") {
				return nil
			}
			k := []byte{0, 0, 0, 0, 0, 0, 0, 2}
			v := b.Get(k)
			if v == nil {
				return nil
			}
			c := append([]byte(nil), v...)
			c[len(c)/2] ^= 0xff
			flipped = true
			return b.Put(k, c)
		})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "audit", "verify", "--db", path)
	if code != 1 || !strings.Contains(out, "event 2") {
		t.Fatalf("tampered chain: exit %d: %s", code, out)
	}
}

func TestBackupRestores(t *testing.T) {
	path := seedDB(t)
	dir := t.TempDir()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for i := 0; i < 4; i++ {
		last, err = db.Backup(dir, 2, time.Date(2026, 11, 2, 9, i, 0, 0, time.UTC), nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "keycard-*.db"))
	if len(files) != 2 || files[1] != last {
		t.Fatalf("retention kept %v", files)
	}
	st, _ := os.Stat(last)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %v", st.Mode())
	}
	// Restore = copy the backup into place; it opens and verifies.
	restored := filepath.Join(t.TempDir(), "keycard.db")
	data, _ := os.ReadFile(last)
	os.WriteFile(restored, data, 0o600)
	code, out, _ := runCLI(t, "audit", "verify", "--db", restored)
	if code != 0 || !strings.Contains(out, "3 events") {
		t.Fatalf("restored backup: exit %d %s", code, out)
	}
}

func TestExportManifestAndVerify(t *testing.T) {
	path := seedDB(t)
	dir := t.TempDir()
	csvPath, manPath := filepath.Join(dir, "access.csv"), filepath.Join(dir, "manifest.json")
	code, _, stderr := runCLI(t, "export", "--db", path, "--from", "2026-11-01", "--to", "2026-11-30", "--out", csvPath, "--manifest", manPath)
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	man, _ := os.ReadFile(manPath)
	for _, want := range []string{`"report": "access"`, `"row_count": 3`, `"pending": 3`, `"chain_verified": true`, `"name": "access.csv"`,
		`"inclusion_rule": "requests whose lifecycle overlaps`, `"invocation": "keycard export --db`} {
		if !strings.Contains(string(man), want) {
			t.Errorf("manifest lacks %s:\n%s", want, man)
		}
	}
	code, out, _ := runCLI(t, "export", "verify", manPath, "--db", path)
	if code != 0 || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("verify of an untouched export: %d %s", code, out)
	}
	orig, _ := os.ReadFile(csvPath)
	cases := []struct {
		name string
		csv  func([]byte) []byte
		db   func(t *testing.T)
		want []string
	}{
		{"changed byte", func(b []byte) []byte { c := append([]byte(nil), b...); c[len(c)-5] ^= 1; return c }, nil, []string{"SHA-256"}},
		{"dropped row", func(b []byte) []byte {
			lines := strings.SplitAfter(string(b), "\n")
			return []byte(strings.Join(append(lines[:1], lines[2:]...), ""))
		}, nil, []string{"SHA-256", "2 rows", `status "pending"`}},
		{"truncated chain", func(b []byte) []byte { return b }, func(t *testing.T) { truncateEvents(t, path, 2) }, []string{"no event 3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.WriteFile(csvPath, c.csv(orig), 0o600)
			if c.db != nil {
				c.db(t)
			}
			code, out, _ := runCLI(t, "export", "verify", manPath, "--db", path)
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("verify output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// truncateEvents deletes every audit event after keep, as an attacker
// hiding the tail of the log would, and moves the head back.
func truncateEvents(t *testing.T, path string, keep uint64) {
	t.Helper()
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	err = raw.Update(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if string(name) != "events" {
				return nil
			}
			c := b.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if k[7] > byte(keep) {
					if err := c.Delete(); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
