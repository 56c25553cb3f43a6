package handlers_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/fixture"
	"keycard/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test ./handlers -update and review the diff\n--- got ---\n%s", name, got)
	}
}

// exportWorld builds requests in every status, with hostile text.
func exportWorld(t *testing.T) *env {
	e := newEnv(t)
	e.idp.addUser("zoë@example.com", "Zoë \"Z\" Ørsted, Jr.", "bob@example.com", map[string]string{"department": "Engineering"})
	tricky := "=HYPERLINK(\"http://evil\",\"click\")\nline two, with comma; \"quoted\""
	mk := func(email, pol string, d time.Duration, why string) access.Request {
		t.Helper()
		r, err := e.submit(email, pol, d, why)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute)
		return r
	}
	active := mk("zoë@example.com", "prod-db-admin", 2*time.Hour, tricky)
	e.approveAll(active.ID)
	denied := mk("ann@example.com", "prod-db-admin", 0, "+1 needed for @oncall")
	if _, err := e.decide(denied.ID, 0, "bob@example.com", false, "-not now"); err != nil {
		t.Fatal(err)
	}
	mk("ann@example.com", "grafana-viewer", 24*time.Hour, "\tdashboards")
	pending := mk("ann@example.com", "prod-db-admin", time.Hour, "waiting")
	_ = pending
	e.settle()
	e.clock.Advance(30 * time.Minute)
	cancelled := mk("zoë@example.com", "grafana-viewer", 0, "")
	_ = cancelled
	e.settle()
	if _, err := e.svc.Revoke(context.Background(), cancelled.ID, slackID("frank@example.com"), "frank@example.com"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.clock.Advance(3 * time.Hour)
	e.settle()
	return e
}

func TestExportAccessGolden(t *testing.T) {
	e := exportWorld(t)
	p, err := handlers.Period("2026-11-01", "2026-11-02", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	res, err := e.svc.ExportAccess(&buf, p)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "access.golden.csv", buf.Bytes())
	recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatalf("not RFC 4180: %v", err)
	}
	if strings.Join(recs[0], ",") != strings.Join(handlers.AccessHeader, ",") {
		t.Fatalf("header %v", recs[0])
	}
	if res.Rows != len(recs)-1 || res.Rows != 5 {
		t.Fatalf("rows %d, records %d", res.Rows, len(recs)-1)
	}
	for _, rec := range recs[1:] {
		for i, c := range rec {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("column %s not neutralised: %q", handlers.AccessHeader[i], c)
			}
		}
	}
	// A re-run over the same closed period gives identical bytes.
	var again bytes.Buffer
	if _, err := e.svc.ExportAccess(&again, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("export is not deterministic")
	}
}

func TestExportEventsGolden(t *testing.T) {
	e := exportWorld(t)
	p, _ := handlers.Period("2026-11-02", "2026-11-02", e.clock.Now())
	var buf bytes.Buffer
	res, err := e.svc.ExportEvents(&buf, p)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "events.golden.csv", buf.Bytes())
	if res.FirstSeq != 1 || res.LastSeq != res.HeadSeq {
		t.Fatalf("range %d..%d head %d", res.FirstSeq, res.LastSeq, res.HeadSeq)
	}
}

func TestExportPeriodFilter(t *testing.T) {
	e := exportWorld(t)
	cases := []struct {
		name     string
		from, to string
		policy   string
		rows     int
	}{
		{"before everything", "2026-10-01", "2026-10-31", "", 0},
		{"the day", "2026-11-02", "2026-11-02", "", 5},
		{"one policy", "2026-11-02", "2026-11-02", "grafana-viewer", 2},
		{"after, still active grants overlap", "2026-11-03", "2026-11-03", "", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := handlers.Period(c.from, c.to, e.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			p.Policy = c.policy
			res, err := e.svc.ExportAccess(&bytes.Buffer{}, p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows != c.rows {
				t.Fatalf("%d rows, want %d", res.Rows, c.rows)
			}
		})
	}
}

func TestPeriod(t *testing.T) {
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	cases := []struct {
		from, to   string
		wantFrom   string
		wantTo     string
		wantErrSub string
	}{
		{"", "", "2026-08-28", "2026-11-26", ""},
		{"2026-01-01", "2026-12-31", "2026-01-01", "2027-01-01", ""},
		{"2026-13-01", "", "", "", "not a date"},
		{"2026-05-01", "2026-04-01", "", "", "starts"},
	}
	for _, c := range cases {
		p, err := handlers.Period(c.from, c.to, now)
		if c.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Errorf("Period(%q,%q) error %v, want %q", c.from, c.to, err, c.wantErrSub)
			}
			continue
		}
		if err != nil || p.From.Format(time.DateOnly) != c.wantFrom || p.To.Format(time.DateOnly) != c.wantTo {
			t.Errorf("Period(%q,%q) = %v..%v, %v", c.from, c.to, p.From, p.To, err)
		}
	}
}

// A closed period's export is the same whenever it is run: what happened
// after the period's end does not leak into it (security review H3).
func TestClosedPeriodExportNeverChanges(t *testing.T) {
	e := newEnv(t)
	a, _ := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "x")
	b, _ := e.submit("bob@example.com", "grafana-viewer", 24*time.Hour, "")
	c, _ := e.submit("carol@example.com", "grafana-viewer", 24*time.Hour, "")
	e.settle()
	p, _ := handlers.Period("2026-11-01", "2026-11-01", e.clock.Now()) // [Nov 1, Nov 2): closed at...
	p.To = e.clock.Now().Add(time.Minute)                              // ...a minute from now
	e.clock.Advance(2 * time.Minute)
	var first bytes.Buffer
	if _, err := e.svc.ExportAccess(&first, p); err != nil {
		t.Fatal(err)
	}
	// After the period: approvals, expiry, a revoke, a denial.
	e.approveAll(a.ID)
	e.settle()
	if _, err := e.svc.Revoke(context.Background(), b.ID, slackID("frank@example.com"), "frank@example.com"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Hour)
	e.settle()
	_ = c
	var again bytes.Buffer
	if _, err := e.svc.ExportAccess(&again, p); err != nil {
		t.Fatal(err)
	}
	if first.String() != again.String() {
		t.Fatalf("the closed period's export changed:\n--- then ---\n%s\n--- now ---\n%s", first.String(), again.String())
	}
	if !strings.Contains(first.String(), ",pending,") || !strings.Contains(first.String(), ",active,") {
		t.Fatalf("states as of the period's end are wrong:\n%s", first.String())
	}
}

// An access review's removal of a standing membership is not a request and
// the export must not make it look auto-approved (security review M2).
func TestReviewRemovalRow(t *testing.T) {
	r := access.Request{ID: "REQ-9", Kind: access.KindReviewRemoval, State: access.StateRevoked, EndReason: access.ReasonRevoked,
		EndedBy: access.Person{Email: "bob@example.com"}}
	if got := handlers.ApprovalChain(&r); !strings.HasPrefix(got, "not a request") || !strings.HasSuffix(got, "bob@example.com") {
		t.Fatalf("chain %q", got)
	}
}

// An escalation after the period's end does not change the period's export
// (second review M4).
func TestClosedPeriodIgnoresLaterEscalation(t *testing.T) {
	e := newEnv(t)
	withEscalation := fixture.RolesPolicy().InsertBefore("lonely", escalatingPolicy).String()
	if _, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(withEscalation)) }, "test"); err != nil {
		t.Fatal(err)
	}
	r, err := e.submit("ann@example.com", "escalating", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	p := handlers.ExportParams{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)}
	e.clock.Advance(time.Hour + time.Minute)
	var before bytes.Buffer
	if _, err := e.svc.ExportAccess(&before, p); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour) // past escalate_after
	e.settle()
	if !e.get(r.ID).Steps[0].Escalated {
		t.Fatal("the request did not escalate")
	}
	var after bytes.Buffer
	if _, err := e.svc.ExportAccess(&after, p); err != nil {
		t.Fatal(err)
	}
	if before.String() != after.String() || strings.Contains(after.String(), "frank@example.com") {
		t.Fatalf("a later escalation changed the closed period:\n%s\n---\n%s", before.String(), after.String())
	}
}
