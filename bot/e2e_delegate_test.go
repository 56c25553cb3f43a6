package bot_test

import (
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/slackemu"
)

// Delegation end to end: Bob delegates to Frank with a Slack mention; Ann's
// request reaches Frank as well as Bob; Frank approves for Bob; the DMs,
// the stored decision, the access export's approval_chain and the
// delegations export all say Frank decided for Bob under DLG-1. Refusals
// reach the person and are audited.
func TestE2EDelegation(t *testing.T) {
	e := newEnv(t)
	// Bob is in New York: at 09:00 UTC on Monday 2 March it is 04:00 there.
	if _, err := e.emu.SlashCommand(e.ctx, uBob, "/access", "delegate <@U0FRANK|frank> until 2026-03-06 Conference week"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob's confirmation", func(s *slackemu.Server) bool {
		return ephemeralContains(s, uBob, "Fri 6 Mar 2026 (America/New_York)") && ephemeralContains(s, uBob, "DLG-1")
	})
	e.waitFor("frank told he is bob's delegate", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uFrank, "made you their delegate")
		return ok && strings.Contains(m.PlainText(), "Conference week")
	})

	r := e.submit(uAnn, "prod-db-admin", "4h", "INC-77 failover")
	mb := e.approvalDM(uBob)
	mf := e.approvalDM(uFrank)
	if !strings.Contains(mf.PlainText(), "delegate") || !strings.Contains(mf.PlainText(), "Ann Lee") {
		t.Fatalf("frank's DM does not say he is asked as a delegate:\n%s", mf.PlainText())
	}
	e.click(uFrank, mf, "keycard_approve")
	for _, m := range []slackemu.Message{mb, mf} {
		e.waitFor("step-1 DMs closed with who decided for whom", func(s *slackemu.Server) bool {
			got, ok := s.Message(m.Channel, m.TS)
			return ok && !hasButton(got, "keycard_approve") && strings.Contains(got.PlainText(), "for") && strings.Contains(got.PlainText(), "DLG-1")
		})
	}
	mc := e.approvalDM(uCarol)
	e.click(uCarol, mc, "keycard_approve")
	e.waitFor("request approved", func(*slackemu.Server) bool { return e.state(r.ID) == access.StateProvisioning })
	e.provision()
	got, err := e.svc.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := got.Steps[0]
	if st.DecidedBy.Email != "frank@example.com" || st.OnBehalfOf.Email != "bob@example.com" || st.Delegation != "DLG-1" {
		t.Fatalf("step 1 recorded as %+v", st)
	}

	// Frank is an admin: his App Home lists the delegation in force.
	if _, err := e.emu.OpenHome(e.ctx, uFrank); err != nil {
		t.Fatal(err)
	}
	e.waitFor("frank's home shows the delegation", func(s *slackemu.Server) bool {
		h := s.Home(uFrank)
		return h != nil && strings.Contains(string(h.Blocks), "Delegations in force") && strings.Contains(string(h.Blocks), "DLG-1")
	})

	// Refusals: to yourself; a date in the past in Ann's time zone.
	for _, c := range []struct{ text, want string }{
		{"delegate <@U0ANN|ann> until 2026-03-06", "yourself"},
		{"delegate <mailto:carol@example.com|carol@example.com> until 2026-03-01", "in the past"},
		{"delegate @carol until 2026-03-06", "not as a mention"},
	} {
		if _, err := e.emu.SlashCommand(e.ctx, uAnn, "/access", c.text); err != nil {
			t.Fatal(err)
		}
		e.waitFor("ann told: "+c.want, func(s *slackemu.Server) bool { return ephemeralContains(s, uAnn, c.want) })
	}
	if n := len(e.events(access.EvDelegationRefused)); n != 2 {
		t.Errorf("%d delegation.refused events, want 2 (the mention refusal is a usage error, before keycard acts)", n)
	}

	// Off: Bob ends it, Frank is told.
	if _, err := e.emu.SlashCommand(e.ctx, uBob, "/access", "delegate off"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob's off confirmation", func(s *slackemu.Server) bool { return ephemeralContains(s, uBob, "is off") })
	e.waitFor("frank told it ended", func(s *slackemu.Server) bool { _, ok := findDM(s, uFrank, "was turned off"); return ok })

	// The evidence.
	rows := e.exportFile("", "access")
	want := "approved by frank@example.com for bob@example.com (delegation DLG-1 from bob@example.com to frank@example.com)"
	if len(rows) != 2 || rows[1][0] != r.ID || !strings.Contains(rows[1][9], want) {
		t.Fatalf("access export approval_chain lacks %q: %q", want, rows)
	}
	rows = e.exportFile("delegations", "delegations")
	if len(rows) != 2 || rows[1][0] != "DLG-1" || rows[1][1] != "bob@example.com" || rows[1][3] != "frank@example.com" ||
		rows[1][9] != "off" || rows[1][11] != "ended" || rows[1][12] != r.ID+" step 1 approved" || rows[1][7] != "2026-03-07T05:00:00Z" {
		t.Fatalf("delegations export: %q", rows)
	}
	if n := len(e.events(access.EvDelegationCreated)) + len(e.events(access.EvDelegationEnded)); n != 2 {
		t.Errorf("%d delegation created/ended events, want 2", n)
	}
}

// A delegate's Deny opens the reason modal, as the delegator's would, and
// the denial records for whom it was decided. A delegation that ends while
// the delegate's DM is out makes the click a clear, audited refusal.
func TestE2EDelegateDeniesAndLapses(t *testing.T) {
	e := newEnv(t)
	if _, err := e.emu.SlashCommand(e.ctx, uBob, "/access", "delegate frank@example.com until 2026-03-02"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob's confirmation", func(s *slackemu.Server) bool { return ephemeralContains(s, uBob, "DLG-1") })
	r := e.submit(uAnn, "prod-db-admin", "2h", "schema migration")
	mf := e.approvalDM(uFrank)
	e.click(uFrank, mf, "keycard_deny")
	var v slackemu.View
	e.waitFor("frank's deny modal", func(s *slackemu.Server) bool {
		views := s.OpenViews(uFrank)
		if len(views) == 0 {
			return false
		}
		v = views[len(views)-1]
		return v.CallbackID == "keycard_deny"
	})
	// Bob's delegation ends (midnight in New York) before Frank submits.
	e.clock.Advance(20 * time.Hour) // 2026-03-03T05:00Z
	ack, err := e.emu.SubmitView(e.ctx, uFrank, v.ID, slackemu.Values{"reason": {"keycard_deny_reason": {Text: "Use the read-only role"}}})
	if err != nil {
		t.Fatal(err)
	}
	if errs := ack.Errors(); len(errs) == 0 || !strings.Contains(strings.Join(mapValues(errs), " "), "ended at 2026-03-03T05:00:00Z") {
		t.Fatalf("deny after the delegation ended: %v", errs)
	}
	if st := e.state(r.ID); st != access.StatePending {
		t.Fatalf("state %s after a lapsed delegate's deny", st)
	}
	if n := len(e.events(access.EvDecisionRefused)); n != 1 {
		t.Fatalf("%d decision.refused events, want 1", n)
	}

	// A new delegation: Frank's Deny now counts, for Bob.
	if _, err := e.emu.SlashCommand(e.ctx, uBob, "/access", "delegate frank@example.com until 2026-03-04"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob's second confirmation", func(s *slackemu.Server) bool { return ephemeralContains(s, uBob, "DLG-2") })
	e.click(uFrank, mf, "keycard_deny")
	e.waitFor("frank's second deny modal", func(s *slackemu.Server) bool {
		views := s.OpenViews(uFrank)
		if len(views) == 0 {
			return false
		}
		v = views[len(views)-1]
		return v.CallbackID == "keycard_deny"
	})
	ack, err = e.emu.SubmitView(e.ctx, uFrank, v.ID, slackemu.Values{"reason": {"keycard_deny_reason": {Text: "Use the read-only role"}}})
	if err != nil || len(ack.Errors()) > 0 {
		t.Fatalf("deny: %v %v", err, ack.Errors())
	}
	got, err := e.svc.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.events(access.EvDelegationEnded)); n != 1 {
		t.Errorf("%d delegation.ended events, want 1 (DLG-1's expiry, recorded when DLG-2 took its place)", n)
	}
	if got.State != access.StateDenied || got.Steps[0].OnBehalfOf.Email != "bob@example.com" || got.Steps[0].Delegation != "DLG-2" || got.Steps[0].Comment != "Use the read-only role" {
		t.Fatalf("denial recorded as %s %+v", got.State, got.Steps[0])
	}
	e.waitFor("ann told who denied for whom", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uAnn, "was denied")
		return ok && strings.Contains(m.PlainText(), "DLG-2")
	})
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// A delegate's offboarding ends the delegation, and the delegator is told
// their stand-in is gone, as well as the delegate (the DM to a departed
// person is Slack's to drop).
func TestE2EDelegateOffboarded(t *testing.T) {
	e := newEnv(t)
	if _, err := e.emu.SlashCommand(e.ctx, uBob, "/access", "delegate frank@example.com until 2026-03-04"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob's confirmation", func(s *slackemu.Server) bool { return ephemeralContains(s, uBob, "DLG-1") })
	frank := access.User{Email: "frank@example.com", Name: "Frank Ortiz", Status: access.StatusDeprovisioned}
	if _, err := e.svc.Offboard(e.ctx, frank, handlers.Trigger{Source: "user.lifecycle.deactivate", IdPEventID: "ev-frank"}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob told his delegate was offboarded", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uBob, "ended when one of you was offboarded")
		return ok && strings.Contains(m.PlainText(), "DLG-1")
	})
	e.waitFor("frank told too", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uFrank, "ended when one of you was offboarded")
		return ok
	})
	if in, err := e.svc.DelegationsInForce(); err != nil || len(in) != 0 {
		t.Fatalf("in force after frank's offboarding: %+v %v", in, err)
	}
}
