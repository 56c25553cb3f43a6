package handlers_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
)

func TestPollDeactivations(t *testing.T) {
	e := newEnv(t)
	g, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	e.settle()
	e.idp.setStatus("ann@example.com", access.StatusDeprovisioned)
	published := e.clock.Now().Add(-10 * time.Minute)
	var cursors []string
	feed := func(_ context.Context, cursor string) ([]handlers.Deactivation, string, error) {
		cursors = append(cursors, cursor)
		return []handlers.Deactivation{
			{ID: "uuid-1", Type: "user.lifecycle.deactivate", UserID: "00uann", Published: published},
			{ID: "uuid-2", Type: "user.lifecycle.suspend", UserID: "00ubob", Published: published}, // bob is still active
		}, "after-1", nil
	}
	n, err := e.svc.PollDeactivations(context.Background(), "okta", feed, t0.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("poll: %d %v", n, err)
	}
	e.settle()
	r := e.get(g.ID)
	wantState(t, r, access.StateRevoked)
	if r.EndReason != access.ReasonOffboarded || e.idp.isMember("app-grafana-viewers", "ann@example.com") {
		t.Fatalf("offboarded grant %+v", r)
	}
	// The same events replayed (a crash before the cursor moved) change nothing.
	before := len(e.events(""))
	if n, err := e.svc.PollDeactivations(context.Background(), "okta", feed, t0); err != nil || n != 0 {
		t.Fatalf("replay: %d %v", n, err)
	}
	if len(e.events("")) != before {
		t.Fatal("replayed deactivation recorded again")
	}
	if !slices.Equal(cursors, []string{"since:2026-11-01T09:00:00Z", "after-1"}) {
		t.Fatalf("cursors %v", cursors)
	}
}

func TestSweepHolders(t *testing.T) {
	e := newEnv(t)
	a, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	m, _ := e.submit("mallory@example.com", "grafana-viewer", 0, "")
	p, _ := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	e.settle()
	e.idp.setStatus("ann@example.com", access.StatusSuspended)
	n, err := e.svc.SweepHolders(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	e.settle()
	wantState(t, e.get(a.ID), access.StateRevoked)
	wantState(t, e.get(p.ID), access.StateCancelled)
	wantState(t, e.get(m.ID), access.StateActive)
	if n, _ := e.svc.SweepHolders(context.Background()); n != 0 {
		t.Fatalf("second sweep ended %d more", n)
	}
}

func TestOffboardedOnlyApproverIsReported(t *testing.T) {
	e := newEnv(t)
	// Ann asks for prod-db-admin; bob is the only manager candidate.
	req, _ := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	bob, _ := e.idp.UserByEmail(context.Background(), "bob@example.com")
	e.idp.setStatus("bob@example.com", access.StatusDeprovisioned)
	if _, err := e.svc.Offboard(context.Background(), bob, handlers.Trigger{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.events(req.ID), "alert") {
		t.Fatalf("no alert for the stranded request: %v", e.events(req.ID))
	}
}

func TestOffboardingSLA(t *testing.T) {
	e := newEnv(t)
	fast, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	slow, _ := e.submit("mallory@example.com", "grafana-viewer", 0, "")
	e.settle()
	ann, _ := e.idp.UserByEmail(context.Background(), "ann@example.com")
	mal, _ := e.idp.UserByEmail(context.Background(), "mallory@example.com")
	// Ann: deactivated 10 minutes ago, removed now — inside the 24h SLA.
	if _, err := e.svc.Offboard(context.Background(), ann, handlers.Trigger{Source: "user.lifecycle.deactivate", IdPEventID: "u1", At: e.clock.Now().Add(-10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	// Mallory: deactivated 30 hours ago (keycard was down), removed now — breach.
	if _, err := e.svc.Offboard(context.Background(), mal, handlers.Trigger{Source: "user.lifecycle.suspend", IdPEventID: "u2", At: e.clock.Now().Add(-30 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if slices.Contains(e.events(fast.ID), "alert") {
		t.Fatal("an offboarding inside the SLA was alerted")
	}
	if !slices.Contains(e.events(slow.ID), "alert") {
		t.Fatalf("an offboarding past the SLA was not alerted: %v", e.events(slow.ID))
	}
	p, _ := handlers.Period("2026-11-01", "2026-11-30", e.clock.Now())
	m, err := e.svc.Export(t.Context(), io.Discard, handlers.ExportRequest{Kind: handlers.KindAccess, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	if m.Summary["offboarding_revocations"] != 2 || m.Summary["offboarding_sla_breaches"] != 1 || m.Summary["offboarding_max_lag"] != "30h0m0s" {
		t.Fatalf("manifest summary %v", m.Summary)
	}
}

// An event whose handling failed is handled on the next poll, not skipped as
// already seen (security review M6).
func TestDeactivationRetriedAfterAFailure(t *testing.T) {
	e := newEnv(t)
	g, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	e.settle()
	e.idp.setStatus("ann@example.com", access.StatusDeprovisioned)
	feed := func(_ context.Context, cursor string) ([]handlers.Deactivation, string, error) {
		return []handlers.Deactivation{{ID: "uuid-9", Type: "user.lifecycle.deactivate", UserID: "00uann", Published: e.clock.Now()}}, cursor, nil
	}
	e.idp.failNext("byid", access.Errorf(access.CodeUnavailable, "okta down"))
	if _, err := e.svc.PollDeactivations(context.Background(), "okta", feed, t0); err == nil {
		t.Fatal("a failed lookup was not reported")
	}
	wantState(t, e.get(g.ID), access.StateActive)
	if n, err := e.svc.PollDeactivations(context.Background(), "okta", feed, t0); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	e.settle()
	wantState(t, e.get(g.ID), access.StateRevoked)
}

// Offboarding finds a person's grants by IdP id when the IdP renamed them
// after they asked (second review H2), and records nothing for someone who
// holds nothing.
func TestOffboardAfterRename(t *testing.T) {
	e := newEnv(t)
	g, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	e.settle()
	e.idp.mu.Lock()
	u := e.idp.users["00uann"]
	u.Email, u.Login, u.Status = "ann.lee@example.com", "ann.lee@example.com", access.StatusSuspended
	e.idp.users["00uann"] = u
	e.idp.mu.Unlock()
	n, err := e.svc.SweepHolders(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	e.settle()
	wantState(t, e.get(g.ID), access.StateRevoked)
	before := countOf(e.events(""), "user.offboarded")
	if _, err := e.svc.SweepHolders(context.Background()); err != nil {
		t.Fatal(err)
	}
	carol, _ := e.idp.UserByEmail(context.Background(), "carol@example.com")
	if _, err := e.svc.Offboard(context.Background(), carol, handlers.Trigger{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if after := countOf(e.events(""), "user.offboarded"); after != before {
		t.Fatalf("%d more user.offboarded events for people with nothing to end", after-before)
	}
}
