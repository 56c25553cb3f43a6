package bot_test

import (
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fixture"
	"keycard/internal/slackemu"
)

// conflictWorld is the e2e world with prod-db-admin and grafana-viewer in
// one separation-of-duties set, and Ann a standing member of
// app-grafana-viewers (not granted by keycard).
func conflictWorld(t *testing.T, mode string) *env {
	t.Helper()
	pol := fixture.Directory("lab", "static", fixture.Lab().WithGroup("app-grafana-viewers", "ann@example.com")).Append(fixture.LabRules).String() +
		"conflicts: [[prod-db-admin, grafana-viewer]]\nconflicts_mode: " + mode + "\n"
	return boot(t, world{policy: pol})
}

// A request completing a conflicting set through standing access is refused
// in the modal, naming the conflict, and the refusal is audited.
func TestE2EConflictRefused(t *testing.T) {
	e := conflictWorld(t, "refuse")
	v := e.pickRole(uAnn, e.openForm(uAnn), "prod-db-admin")
	ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, requestValues("prod-db-admin", "4h", "INC-7 failover"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, m := range ack.Errors() {
		msgs = append(msgs, m)
	}
	got := strings.Join(msgs, " ")
	if !strings.Contains(got, "prod-db-admin + grafana-viewer") || !strings.Contains(got, "standing membership of app-grafana-viewers") {
		t.Fatalf("modal errors %v, want the conflict named", ack.Errors())
	}
	refused := false
	for _, ev := range e.events(access.EvRequestRefused) {
		if ev.Policy == "prod-db-admin" && strings.Contains(ev.Detail, string(access.CodeConflictingDuties)) {
			refused = true
		}
	}
	if !refused {
		t.Error("the refusal is not in the audit log")
	}
	if mine, _ := e.svc.Mine("ann@example.com"); len(mine) != 0 {
		t.Errorf("a request was stored: %+v", mine)
	}
}

// With conflicts_mode: approve the admins decide last, and their DM shows
// the conflict.
func TestE2EConflictGoesToAdmins(t *testing.T) {
	e := conflictWorld(t, "approve")
	r := e.submit(uAnn, "prod-db-admin", "4h", "INC-7 failover")
	if len(r.Steps) != 3 {
		t.Fatalf("steps %+v, want manager, security-team and the admins", r.Steps)
	}
	e.click(uBob, e.approvalDM(uBob), "keycard_approve")
	e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
	m := e.approvalDM(uFrank)
	if !strings.Contains(m.PlainText(), "separation of duties") || !strings.Contains(m.PlainText(), "prod-db-admin + grafana-viewer") {
		t.Fatalf("the admin's DM does not show the conflict:\n%s", m.PlainText())
	}
	e.click(uFrank, m, "keycard_approve")
	e.waitFor("approved", func(*slackemu.Server) bool { return e.state(r.ID) == access.StateProvisioning })
}

// The weekly admin report names each separation-of-duties set someone
// holds anyway and who: Dave is a standing member of both groups of a
// conflicting set. Ann's prod-db-admin grant approved for a later start
// is not access yet: the report lists no grant of hers and no conflict.
func TestE2EAdminReportShowsConflicts(t *testing.T) {
	pol := fixture.Directory("lab", "static", reviewOrg.WithGroup("app-grafana-viewers", "dave@example.com")).Append(reviewRules).String() +
		"conflicts: [[prod-db-admin, grafana-viewer]]\n"
	e := &reviewEnv{env: boot(t, world{policy: pol})}
	e.mem = adapt.Memberships{DB: e.db}
	if err := e.svc.TakeBaselines(e.ctx); err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: uAnn, Email: "ann@example.com", Policy: "prod-db-admin",
		Justification: "CHG-9", StartAt: e.clock.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for i, who := range [][2]string{{uBob, "bob@example.com"}, {uCarol, "carol@example.com"}} {
		if _, err := e.svc.Decide(e.ctx, handlers.DecideInput{RequestID: r.ID, Step: i, SlackID: who[0], Email: who[1], Approve: true}); err != nil {
			t.Fatal(err)
		}
	}
	if e.state(r.ID) != access.StateScheduled {
		t.Fatalf("state %s", e.state(r.ID))
	}
	if err := e.svc.RunJobNow(e.ctx, e.bot, handlers.JobAdminReport, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the report", func(*slackemu.Server) bool {
		return strings.Contains(e.channelText("security-reviews"), "Privileged access report")
	})
	text := e.channelText("security-reviews")
	for _, want := range []string{"*1* conflicting set held anyway", "Separation of duties", "prod-db-admin + grafana-viewer",
		"Dave Kim (dave@example.com) — prod-db-admin: standing membership of prod-db-admins; grafana-viewer: standing membership of app-grafana-viewers"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Ann Lee") || strings.Contains(text, r.ID) {
		t.Errorf("a grant that has not started is in the report:\n%s", text)
	}
}
