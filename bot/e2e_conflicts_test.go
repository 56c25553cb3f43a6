package bot_test

import (
	"strings"
	"testing"

	"keycard/access"
	"keycard/internal/slackemu"
)

// conflictWorld is the e2e world with prod-db-admin and grafana-viewer in
// one separation-of-duties set, and Ann a standing member of
// app-grafana-viewers (not granted by keycard).
func conflictWorld(t *testing.T, mode string) *env {
	t.Helper()
	pol := strings.Replace(e2ePolicy, "{name: app-grafana-viewers, members: []}", "{name: app-grafana-viewers, members: [ann@example.com]}", 1) +
		"conflicts: [[prod-db-admin, grafana-viewer]]\nconflicts_mode: " + mode + "\n"
	return boot(t, world{policy: pol, channels: []string{"security-alerts"}, users: []slackemu.User{
		{ID: uAnn, Name: "ann", RealName: "Ann Lee", Email: "ann@example.com"},
		{ID: uBob, Name: "bob", RealName: "Bob Stone", Email: "bob@example.com"},
		{ID: uCarol, Name: "carol", RealName: "Carol Diaz", Email: "carol@example.com"},
		{ID: uDave, Name: "dave", RealName: "Dave Kim", Email: "dave@example.com"},
		{ID: uFrank, Name: "frank", RealName: "Frank Ortiz", Email: "frank@example.com"},
	}})
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
