package handlers_test

import (
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// conflictsPolicy adds separation-of-duties sets to the test policy:
// prod-db-admin with grafana-viewer, and lonely with grafana-viewer.
var conflictsPolicy = testPolicy + "conflicts: [[prod-db-admin, grafana-viewer], [lonely, grafana-viewer]]\n"

func newConflictsEnv(t *testing.T, mode string) *env {
	t.Helper()
	e := newEnv(t)
	set, err := policy.Parse("policy.yaml", []byte(conflictsPolicy+"conflicts_mode: "+mode+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	e.set = set
	e.restart()
	return e
}

func TestSubmitSeparationOfDuties(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(e *env)
		policy  string
		refused string // substring of the refusal; "" = submitted
	}{
		{name: "holds nothing in conflict", policy: "grafana-viewer"},
		{name: "keycard grant completes the set", policy: "prod-db-admin",
			setup: func(e *env) {
				if _, err := e.submit("ann@example.com", "grafana-viewer", 0, ""); err != nil {
					e.t.Fatal(err)
				}
				e.settle()
			},
			refused: "prod-db-admin + grafana-viewer (grafana-viewer held through keycard request"},
		{name: "standing membership completes the set", policy: "grafana-viewer",
			setup:   func(e *env) { e.idp.setMember("app-lonely", "ann@example.com", true) },
			refused: "lonely + grafana-viewer (lonely held through standing membership of app-lonely)"},
		{name: "a pending request counts", policy: "grafana-viewer",
			setup: func(e *env) {
				if _, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "fix"); err != nil {
					e.t.Fatal(err)
				}
			},
			refused: "prod-db-admin + grafana-viewer"},
		{name: "another person's grant does not count", policy: "prod-db-admin",
			setup: func(e *env) {
				if _, err := e.submit("bob@example.com", "grafana-viewer", 0, ""); err != nil {
					e.t.Fatal(err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newConflictsEnv(t, policy.ConflictsRefuse)
			if tc.setup != nil {
				tc.setup(e)
			}
			_, err := e.submit("ann@example.com", tc.policy, time.Hour, "because")
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("submit: %v", err)
				}
				return
			}
			if access.CodeOf(err) != access.CodeConflictingDuties || !strings.Contains(access.MessageOf(err), tc.refused) {
				t.Fatalf("submit: %v (code %s), want %s naming %q", err, access.CodeOf(err), access.CodeConflictingDuties, tc.refused)
			}
			audited := false
			_ = e.svc.Events(0, func(ev access.Event) error {
				if ev.Type == access.EvRequestRefused && ev.Policy == tc.policy && strings.Contains(ev.Detail, string(access.CodeConflictingDuties)) {
					audited = true
				}
				return nil
			})
			if !audited {
				t.Error("the refusal is not audited")
			}
			e.verify()
		})
	}
}

func TestSubmitConflictGoesToAdmins(t *testing.T) {
	e := newConflictsEnv(t, policy.ConflictsApprove)
	e.idp.setMember("app-lonely", "ann@example.com", true)
	// grafana-viewer is auto-approved; completing a conflicting set puts
	// the admins' step in front of it.
	r, err := e.submit("ann@example.com", "grafana-viewer", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, r, access.StatePending)
	if len(r.Steps) != 1 || !strings.HasPrefix(r.Steps[0].Rule, "group:keycard-admins — separation of duties: nobody may hold lonely + grafana-viewer") {
		t.Fatalf("steps %+v, want one group:keycard-admins step naming the conflict", r.Steps)
	}
	// A non-admin cannot decide it; an admin can.
	if _, err := e.decide(r.ID, 0, "carol@example.com", true, ""); access.CodeOf(err) != access.CodeForbidden {
		t.Fatalf("carol decided the admins' step: %v", err)
	}
	if _, err := e.decide(r.ID, 0, "frank@example.com", true, "accepted risk"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	wantState(t, e.get(r.ID), access.StateActive)

	e.verify()
}

func TestHoldersFlagConflicts(t *testing.T) {
	e := newConflictsEnv(t, policy.ConflictsRefuse)
	// Standing access: keycard never granted either, so nothing refused it.
	e.idp.setMember("app-lonely", "ann@example.com", true)
	e.idp.setMember("app-grafana-viewers", "ann@example.com", true)
	e.idp.setMember("app-grafana-viewers", "bob@example.com", true)

	var out strings.Builder
	m, err := e.svc.Export(t.Context(), &out, handlers.ExportRequest{Kind: handlers.KindHolders, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.SplitN(out.String(), "\n", 2)[0]; got != strings.Join(handlers.HoldersHeader, ",") {
		t.Errorf("holders header changed: %s", got)
	}
	found, _ := m.Summary["conflicts"].([]handlers.ConflictHolder)
	want := handlers.ConflictHolder{Email: "ann@example.com", Name: "Ann Lee", Conflict: "lonely + grafana-viewer",
		Through: []string{"lonely: standing membership of app-lonely", "grafana-viewer: standing membership of app-grafana-viewers"}}
	if len(found) != 1 || found[0].Conflict != want.Conflict || found[0].Email != want.Email || strings.Join(found[0].Through, "|") != strings.Join(want.Through, "|") {
		t.Errorf("manifest conflicts %+v, want [%+v]", m.Summary["conflicts"], want)
	}

	rep, err := e.svc.BuildAdminReport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Conflicts) != 1 || rep.Conflicts[0].Email != "ann@example.com" {
		t.Errorf("admin report conflicts %+v", rep.Conflicts)
	}
}
