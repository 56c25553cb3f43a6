package bot_test

import (
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/idptest"
	"keycard/internal/oktafake"
	"keycard/internal/slackemu"
)

// Step-up MFA end to end: approval_mfa on the policy, the Slack emulator's
// Approve clicks, the Okta emulator's Factors API pushes. A rejected push
// leaves the step undecided and the DM says so; the approver tries again and
// approves on the phone; the second step's approver's push times out, then
// succeeds; the grant is provisioned and the export says both approvals were
// MFA-verified by Okta Verify push.
func TestE2EMFAApprovalOkta(t *testing.T) {
	clock := newClock()
	idp := idptest.Okta(clock.Now, idpPeople, idpGroups)
	t.Cleanup(idp.Close)
	for _, who := range []string{"bob@example.com", "carol@example.com", "dave@example.com"} {
		idp.Okta.EnrollPush(idp.ID(who))
	}
	policy := idpPolicy("okta").Replace("    privileged: true\n", "    privileged: true\n    approval_mfa: true\n")
	e := boot(t, world{policy: policy.String(), idp: idp, clock: clock})
	var r0 string
	bob, carol := idp.ID("bob@example.com"), idp.ID("carol@example.com")
	// pushed waits until the n-th push to user is sent and its challenge
	// stored on the step (the push goes out before the commit).
	pushed := func(who, user string, n, step int) {
		t.Helper()
		e.waitFor(who+"'s push", func(*slackemu.Server) bool {
			return len(idp.Okta.Pushes(user)) == n && e.request(r0).Steps[step].Challenge != nil
		})
	}

	r := e.submit(uAnn, "prod-db-admin", "4h", "INC-42 database failover")
	r0 = r.ID
	dm := e.approvalDM(uBob)
	if !strings.Contains(dm.PlainText(), "needs MFA") {
		t.Fatalf("approval DM does not say the step needs MFA:\n%s", dm.PlainText())
	}
	// Bob's Approve sends a push; the DM says to check the phone.
	e.click(uBob, dm, "keycard_approve")
	pushed("Bob", bob, 1, 0)
	e.waitFor("'check your phone' in Bob's DM", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uBob, "Check your phone")
		return ok
	})
	// A second click while the push waits sends nothing more.
	e.click(uBob, e.approvalDM(uBob), "keycard_approve")
	e.waitFor("the refusal of the second click", func(s *slackemu.Server) bool {
		for _, m := range s.Ephemerals(uBob) {
			if strings.Contains(m.PlainText(), "already waiting") {
				return true
			}
		}
		return false
	})
	if n := len(idp.Okta.Pushes(bob)); n != 1 {
		t.Fatalf("%d pushes after the second click, want 1", n)
	}

	// Bob rejects on the phone: the step stays undecided, the DM says so.
	idp.Okta.AnswerPush(bob, oktafake.PushRejected)
	e.clock.Advance(handlers.MFAPollEvery)
	e.provision()
	e.waitFor("the rejection in Bob's DM", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uBob, "rejected on the phone")
		return ok
	})
	if got := e.request(r.ID); got.Steps[0].Decision != access.DecisionNone || got.Current != 0 {
		t.Fatalf("after the rejection: step %+v", got.Steps[0])
	}

	// He tries again and approves on the phone.
	e.click(uBob, e.approvalDM(uBob), "keycard_approve")
	pushed("Bob", bob, 2, 0)
	idp.Okta.AnswerPush(bob, oktafake.PushSuccess)
	e.clock.Advance(handlers.MFAPollEvery)
	e.provision()
	if got := e.request(r.ID); got.Current != 1 || got.Steps[0].MFAFactor != "okta:push" {
		t.Fatalf("after Bob's push: current %d, step %+v", got.Current, got.Steps[0])
	}

	// Carol's push goes unanswered until Okta times it out; then she approves.
	e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
	pushed("Carol", carol, 1, 1)
	for run := time.Duration(0); run <= oktafake.PushLifetime; run += handlers.MFAPollEvery {
		e.clock.Advance(handlers.MFAPollEvery)
		e.provision()
	}
	e.waitFor("the timeout in Carol's DM", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uCarol, "timed out unanswered")
		return ok
	})
	if st := e.state(r.ID); st != access.StatePending {
		t.Fatalf("after the timeout: %s", st)
	}
	e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
	pushed("Carol", carol, 2, 1)
	idp.Okta.AnswerPush(carol, oktafake.PushSuccess)
	e.clock.Advance(handlers.MFAPollEvery)
	e.provision()
	e.provision()
	if st := e.state(r.ID); st != access.StateActive || !idp.IsMember("prod-db-admins", "ann@example.com") {
		t.Fatalf("after Carol's push: %s, member %v", st, idp.IsMember("prod-db-admins", "ann@example.com"))
	}
	if n := len(e.events(access.EvMFAChallenged)); n != 4 {
		t.Errorf("%d mfa.challenged events, want 4", n)
	}
	if n := len(e.events(access.EvMFAFailed)); n != 2 {
		t.Errorf("%d mfa.failed events, want 2", n)
	}

	// The auditor's export says both approvals were MFA-verified.
	rows := e.exportFile("", "access")
	if len(rows) != 2 || strings.Count(rows[1][9], "MFA-verified (okta:push)") != 2 {
		t.Fatalf("approval_chain: %q", rows[1][9])
	}
}

// A delegate's approval DM keeps saying whom they decide for when the MFA
// push it sent re-renders it ("check your phone"): the refresh renders a
// delegate's copy as a delegate's copy (it used to drop the line).
func TestE2EMFADelegateCopyKeepsItsLine(t *testing.T) {
	clock := newClock()
	idp := idptest.Okta(clock.Now, idpPeople, idpGroups)
	t.Cleanup(idp.Close)
	idp.Okta.EnrollPush(idp.ID("frank@example.com"))
	policy := idpPolicy("okta").Replace("    privileged: true\n", "    privileged: true\n    approval_mfa: true\n")
	e := boot(t, world{policy: policy.String(), idp: idp, clock: clock})
	if _, err := e.emu.SlashCommand(e.ctx, uBob, "/access", "delegate <@U0FRANK|frank> until 2026-03-06"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob's confirmation", func(s *slackemu.Server) bool { return ephemeralContains(s, uBob, "DLG-1") })
	e.submit(uAnn, "prod-db-admin", "4h", "INC-42 database failover")
	dm := e.approvalDM(uFrank)
	if !strings.Contains(dm.PlainText(), "You get this as") {
		t.Fatalf("frank's copy does not say he is bob's delegate:\n%s", dm.PlainText())
	}
	e.click(uFrank, dm, "keycard_approve")
	e.waitFor("'check your phone' in frank's copy, still a delegate's", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uFrank, "Check your phone")
		return ok && strings.Contains(m.PlainText(), "You get this as")
	})
}
