package handlers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fixture"
	"keycard/policy"
)

func TestStagedPolicyChange(t *testing.T) {
	e := newEnv(t)
	guarded := fixture.RolesPolicy().Setting("change_approval: true").String()
	// Start with change approval on (the first load is not a change).
	first, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(guarded)) }, "keycard")
	if err != nil || !first.ChangeApproval {
		t.Fatal(err)
	}
	files := map[string]string{"policy.yaml": guarded + "alerts: {channel: \"#security-alerts\"}\n"}
	load := func(path string) (*policy.Set, error) { return policy.Parse(path, []byte(files[path])) }
	in, staged, err := e.svc.ChangePolicy(handlers.PolicyChange{Load: func() (*policy.Set, error) { return load("policy.yaml") }, By: "frank@example.com"})
	if err != nil || !staged || in.Hash != first.Hash || e.svc.Policy() != first {
		t.Fatalf("change was not staged: staged=%v err=%v", staged, err)
	}
	st, ok, _ := e.svc.Staged()
	if !ok || !slices.Contains(st.Changes, `alerts.channel "" -> "#security-alerts"`) && len(st.Changes) == 0 {
		t.Fatalf("staged %+v", st)
	}
	ctx := context.Background()
	// The admin who staged it cannot approve it; a non-admin cannot either.
	_, err = e.svc.ApprovePolicy(ctx, "UFRANK", "frank@example.com", st.Hash, load)
	wantCode(t, err, access.CodeForbidden)
	_, err = e.svc.ApprovePolicy(ctx, "UANN", "ann@example.com", st.Hash, load)
	wantCode(t, err, access.CodeForbidden)
	// A second admin approves; the reviewed bytes take effect.
	e.idp.setMember("keycard-admins", "carol@example.com", true)
	e.clock.Advance(2 * 60e9) // past the admin-group cache
	next, err := e.svc.ApprovePolicy(ctx, "UCAROL", "carol@example.com", st.Hash, load)
	if err != nil || next.Hash != st.Hash || e.svc.Policy().Hash != st.Hash {
		t.Fatalf("approval: %v", err)
	}
	if _, ok, _ := e.svc.Staged(); ok {
		t.Fatal("still staged after approval")
	}
	// A file changed after staging is refused at approval.
	files["policy.yaml"] = guarded + "alerts: {channel: \"#other\"}\n"
	if _, staged, err := e.svc.ChangePolicy(handlers.PolicyChange{Load: func() (*policy.Set, error) { return load("policy.yaml") }, By: "frank@example.com"}); err != nil || !staged {
		t.Fatal(err)
	}
	st, _, _ = e.svc.Staged()
	files["policy.yaml"] += "# edited after review\n"
	_, err = e.svc.ApprovePolicy(ctx, "UCAROL", "carol@example.com", st.Hash, load)
	wantCode(t, err, access.CodeConflict)
	// The emergency path applies at once, needs a reason, and is alerted.
	_, _, err = e.svc.ChangePolicy(handlers.PolicyChange{Load: func() (*policy.Set, error) { return load("policy.yaml") }, By: "frank@example.com", Emergency: true})
	wantCode(t, err, access.CodeInvalid)
	got, _, err := e.svc.ChangePolicy(handlers.PolicyChange{Load: func() (*policy.Set, error) { return load("policy.yaml") }, By: "frank@example.com", Emergency: true, Reason: "INC-7 lockout"})
	if err != nil || e.svc.Policy() != got {
		t.Fatal(err)
	}
	evs := e.events("")
	for _, want := range []string{"policy.staged", "policy.approved", "policy.emergency", "alert", "decision.refused"} {
		if !slices.Contains(evs, want) {
			t.Errorf("no %s event in %v", want, evs)
		}
	}
	// Every version is in the policies export, with who loaded and approved it.
	var b strings.Builder
	m, err := e.svc.Export(t.Context(), &b, handlers.ExportRequest{Kind: handlers.KindPolicies})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if m.RowCount != 3 || strings.Count(out, ",2026-11-02T09:02:00Z,") < 2 || !strings.Contains(out, "frank@example.com (stated), approved by carol@example.com (Slack, verified admin)") || !strings.Contains(out, "EMERGENCY") {
		t.Fatalf("policies export (%d rows):\n%s", m.RowCount, out)
	}
}

// Restarting keycard with an edited policy file is not a way around
// change_approval (security review H2): the last approved version stays in
// force and the file waits for a second admin.
func TestRestartDoesNotBypassChangeApproval(t *testing.T) {
	e := newEnv(t)
	guarded := fixture.RolesPolicy().Setting("change_approval: true").String()
	approved, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(guarded)) }, "keycard")
	if err != nil {
		t.Fatal(err)
	}
	edited, err := policy.Parse("policy.yaml", []byte(guarded+"offboarding_sla: 1h\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.restart()
	inForce, stage, err := handlers.InForce(adapt.Store(e.db), edited)
	if err != nil || !stage || inForce.Hash != approved.Hash {
		t.Fatalf("in force %v (stage %v, %v), want the approved %s", inForce.Hash, stage, err, approved.Hash)
	}
	svc := handlers.New(adapt.Store(e.db), conns{e.idp}, inForce, e.clock, handlers.Options{})
	if err := svc.StageAtStart(edited); err != nil {
		t.Fatal(err)
	}
	st, ok, _ := svc.Staged()
	if !ok || st.Hash != edited.Hash || svc.Policy().Hash != approved.Hash {
		t.Fatalf("staged %+v ok=%v; in force %s", st, ok, svc.Policy().Hash)
	}
	// Without change_approval a restart simply loads the file.
	e2 := newEnv(t)
	plain, _ := policy.Parse("policy.yaml", []byte(testPolicy+"offboarding_sla: 1h\n"))
	if got, stage, _ := handlers.InForce(adapt.Store(e2.db), plain); stage || got != plain {
		t.Fatal("a policy without change_approval was held back")
	}
}

// Issue 10 review item 9c: a failed grant whose (idempotent) removal is
// still queued in the outbox needs its connector's scope too: a policy
// change that would put that group out of scope is refused, as for a live
// grant, or the removal could never be carried out.
func TestPolicyChangeKeepsQueuedRemovalInScope(t *testing.T) {
	e := newEnv(t)
	e.idp.failNext("add", access.Errorf(access.CodeInvalid, "okta says no"))
	r, err := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	e.idp.failNext("remove", access.Errorf(access.CodeUnavailable, "okta down"), access.Errorf(access.CodeUnavailable, "okta down"))
	e.settle()
	wantState(t, e.get(r.ID), access.StateFailed)
	narrowed := fixture.RolesPolicy().Without("grafana-viewer").Scope("app-lonely", "prod-*").String()
	_, err = e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(narrowed)) }, "test")
	wantCode(t, err, access.CodeConflict)
	if !strings.Contains(access.MessageOf(err), r.ID) {
		t.Fatalf("the refusal does not name the queued removal's grant: %v", err)
	}
}
