package bot_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/fixture"
	"keycard/internal/slackemu"
	"keycard/policy"
)

// End-to-end tests of the Slack paths around a grant's life that the
// lifecycle tests do not walk: Extend, Give up, Cancel, an admin's Revoke,
// reminders, break-glass, alerts without a channel and the role search.

// setPolicy puts text in force as the policy file, as a SIGHUP would.
func (e *env) setPolicy(text string) {
	e.t.Helper()
	if _, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(text)) }, "test"); err != nil {
		e.t.Fatal(err)
	}
}

// activeGrant takes Ann's prod-db-admin request for 4h through both steps
// and provisioning.
func (e *env) activeGrant() access.Request {
	e.t.Helper()
	r := e.submit(uAnn, "prod-db-admin", "4h", "INC-42 database failover")
	e.click(uBob, e.approvalDM(uBob), "keycard_approve")
	e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
	e.waitFor("ann told it was approved", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "Access is being set up"); return ok })
	e.provision()
	g, err := e.svc.Get(r.ID)
	if err != nil || g.State != access.StateActive {
		e.t.Fatalf("grant %s: %s %v", r.ID, g.State, err)
	}
	return g
}

// expiringDM moves the clock into the grant's last 15 minutes and returns
// the expiring-soon DM with its Extend and Give up buttons.
func (e *env) expiringDM(g access.Request) slackemu.Message {
	e.t.Helper()
	e.clock.Advance(g.EndsAt.Sub(e.clock.Now()) - 10*time.Minute)
	e.provision()
	var m slackemu.Message
	e.waitFor("the expiring-soon DM", func(s *slackemu.Server) bool {
		x, ok := findDM(s, uAnn, g.ID+"`) ends")
		m = x
		return ok && hasButton(x, "keycard_extend") && hasButton(x, "keycard_give_up")
	})
	return m
}

// topView waits for user's top modal with callback id cb.
func (e *env) topView(user, cb string) slackemu.View {
	e.t.Helper()
	var v slackemu.View
	e.waitFor(user+"'s "+cb+" modal", func(s *slackemu.Server) bool {
		vs := s.OpenViews(user)
		if len(vs) == 0 || vs[len(vs)-1].CallbackID != cb {
			return false
		}
		v = vs[len(vs)-1]
		return true
	})
	return v
}

// home opens user's App Home and waits until it shows what has.
func (e *env) home(user string, has func(slackemu.View) bool) slackemu.View {
	e.t.Helper()
	if _, err := e.emu.OpenHome(e.ctx, user); err != nil {
		e.t.Fatal(err)
	}
	var h slackemu.View
	e.waitFor(user+"'s App Home", func(s *slackemu.Server) bool {
		x := s.Home(user)
		if x == nil || !has(*x) {
			return false
		}
		h = *x
		return true
	})
	return h
}

func viewHasButton(v slackemu.View, actionID string) bool {
	return slices.ContainsFunc(v.Buttons(), func(b slackemu.Button) bool { return b.ActionID == actionID })
}

// toldContains: user was answered (ephemeral in a channel, or a DM when
// the click came from the App Home, which has no channel) with sub.
func toldContains(s *slackemu.Server, user, sub string) bool {
	_, ok := findDM(s, user, sub)
	return ok || ephemeralContains(s, user, sub)
}

func (e *env) member(group string, idpID string) bool {
	e.t.Helper()
	ids, err := e.db.StaticMembers("lab", group)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.Contains(ids, idpID)
}

func (e *env) request(id string) access.Request {
	e.t.Helper()
	r, err := e.svc.Get(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func extendValues(dur, why string) slackemu.Values {
	return slackemu.Values{
		"duration:prod-db-admin": {"keycard_duration": {Selected: dur}},
		"justification":          {"keycard_justification": {Text: why}},
	}
}

// TestE2EExtend: the holder gets the expiring-soon DM, clicks Extend, asks
// for more time in the Extend modal (past extend.max_total first, refused
// inline); the extension goes through the approval chain, becomes active
// and continues the grant: the old grant expires keeping the membership,
// the extension's expiry removes it.
func TestE2EExtend(t *testing.T) {
	e := newEnv(t)
	e.setPolicy(fixture.LabPolicy().Replace("    justification: required\n", "    justification: required\n    extend: {max_total: 10h}\n").String())
	g := e.activeGrant()
	oldEnd := g.EndsAt
	m := e.expiringDM(g)

	e.click(uAnn, m, "keycard_extend")
	v := e.topView(uAnn, "keycard_extend")
	if v.PrivateMetadata != g.ID || !strings.Contains(v.PlainText(), g.ID) {
		t.Fatalf("extend modal for %q: %s", v.PrivateMetadata, v.PlainText())
	}
	t.Run("past max_total refused inline", func(t *testing.T) {
		ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, extendValues("8h", "migration overran"))
		if err != nil {
			t.Fatal(err)
		}
		if got := ack.Errors()["duration:prod-db-admin"]; !strings.Contains(got, "at most 10h") {
			t.Fatalf("errors %v, want the max_total refusal on the duration", ack.Errors())
		}
	})
	ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, extendValues("4h", "migration overran"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.Errors()) > 0 || !strings.Contains(string(ack.View()), "REQ") {
		t.Fatalf("extension refused: %s", ack.Payload)
	}
	var x access.Request
	mine, _ := e.svc.Mine("ann@example.com")
	for _, r := range mine {
		if r.Extends == g.ID {
			x = r
		}
	}
	if x.ID == "" || x.State != access.StatePending {
		t.Fatalf("no pending extension of %s: %+v", g.ID, x)
	}
	// The extension re-runs the policy's approval chain.
	mb := e.approvalDM(uBob)
	if !strings.Contains(mb.PlainText(), x.ID) {
		t.Fatalf("bob's DM is not about the extension %s:\n%s", x.ID, mb.PlainText())
	}
	e.click(uBob, mb, "keycard_approve")
	mc := e.approvalDM(uCarol)
	if !strings.Contains(mc.PlainText(), x.ID) {
		t.Fatalf("carol's DM is not about the extension %s:\n%s", x.ID, mc.PlainText())
	}
	e.click(uCarol, mc, "keycard_approve")
	e.waitFor("ann told the extension was approved", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uAnn, x.ID+"`) was approved. Access is being set up")
		return ok
	})
	e.provision()
	x = e.request(x.ID)
	if x.State != access.StateActive || !x.EndsAt.Equal(oldEnd.Add(4*time.Hour)) {
		t.Fatalf("extension %s ends %s, want active until %s", x.State, x.EndsAt, oldEnd.Add(4*time.Hour))
	}
	if got := e.request(g.ID); got.ExtendedBy != x.ID {
		t.Fatalf("old grant extended by %q", got.ExtendedBy)
	}

	ann := g.Requester.IdPID
	e.clock.Advance(oldEnd.Sub(e.clock.Now()) + time.Minute)
	e.provision()
	e.provision()
	if st := e.state(g.ID); st != access.StateExpired {
		t.Fatalf("old grant %s after its end", st)
	}
	if st := e.state(x.ID); st != access.StateActive {
		t.Fatalf("extension %s after the old grant's end", st)
	}
	if !e.member("prod-db-admins", ann) {
		t.Fatal("the old grant's expiry removed the membership the extension holds")
	}

	e.clock.Advance(x.EndsAt.Sub(e.clock.Now()) + time.Minute)
	e.provision()
	e.provision()
	if st := e.state(x.ID); st != access.StateExpired {
		t.Fatalf("extension %s after its end", st)
	}
	if e.member("prod-db-admins", ann) {
		t.Fatal("the membership survived the extension's expiry")
	}
	e.waitFor("ann told the extension ended", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uAnn, x.ID+"`) has ended: it expired")
		return ok
	})
}

// TestE2EGiveUp: Give up now, from the expiring DM or the App Home, ends
// the grant with reason revoked, by the holder.
func TestE2EGiveUp(t *testing.T) {
	cases := []struct {
		name  string
		click func(e *env, g access.Request)
	}{
		{"expiring DM", func(e *env, g access.Request) { e.click(uAnn, e.expiringDM(g), "keycard_give_up") }},
		{"App Home", func(e *env, g access.Request) {
			h := e.home(uAnn, func(v slackemu.View) bool {
				return strings.Contains(string(v.Blocks), g.ID) && viewHasButton(v, "keycard_give_up")
			})
			if _, err := e.emu.ClickViewButton(e.ctx, uAnn, h.ID, "keycard_give_up"); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			g := e.activeGrant()
			c.click(e, g)
			e.waitFor("ann told the access is being removed", func(s *slackemu.Server) bool { return toldContains(s, uAnn, "Revoking "+g.ID) })
			e.provision()
			got := e.request(g.ID)
			if got.State != access.StateRevoked || got.EndReason != access.ReasonRevoked || got.EndedBy.Email != "ann@example.com" {
				t.Fatalf("after give up: %s reason %s by %q", got.State, got.EndReason, got.EndedBy.Email)
			}
			if e.member("prod-db-admins", g.Requester.IdPID) {
				t.Fatal("membership kept after give up")
			}
			e.waitFor("ann told she ended it", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "revoked by you"); return ok })
		})
	}
}

// TestE2ECancel: the requester cancels a pending request from the
// submitted DM or the App Home; the approvers' DMs lose their buttons.
func TestE2ECancel(t *testing.T) {
	cases := []struct {
		name  string
		click func(e *env, r access.Request)
	}{
		{"submitted DM", func(e *env, r access.Request) {
			var m slackemu.Message
			e.waitFor("the submitted DM with Cancel", func(s *slackemu.Server) bool {
				x, ok := findDM(s, uAnn, "was submitted")
				m = x
				return ok && hasButton(x, "keycard_cancel")
			})
			e.click(uAnn, m, "keycard_cancel")
		}},
		{"App Home", func(e *env, r access.Request) {
			h := e.home(uAnn, func(v slackemu.View) bool {
				return strings.Contains(string(v.Blocks), r.ID) && viewHasButton(v, "keycard_cancel")
			})
			if _, err := e.emu.ClickViewButton(e.ctx, uAnn, h.ID, "keycard_cancel"); err != nil {
				e.t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
			m := e.approvalDM(uBob)
			c.click(e, r)
			e.waitFor("ann told it is cancelled", func(s *slackemu.Server) bool { return toldContains(s, uAnn, "Cancelled your request "+r.ID) })
			if st := e.state(r.ID); st != access.StateCancelled {
				t.Fatalf("state %s", st)
			}
			e.waitFor("bob's approval DM closed", func(s *slackemu.Server) bool {
				got, ok := s.Message(m.Channel, m.TS)
				return ok && !hasButton(got, "keycard_approve") && !hasButton(got, "keycard_deny")
			})
			e.waitFor("ann's notice", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "was cancelled"); return ok })
		})
	}
	t.Run("old approval button after cancel", func(t *testing.T) {
		e := newEnv(t)
		r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
		m := e.approvalDM(uBob)
		// Slack holds back the update of Bob's DM, so his client still
		// shows the buttons when he clicks.
		e.emu.RateLimit("chat.update", 1, time.Minute)
		var sub slackemu.Message
		e.waitFor("the submitted DM", func(s *slackemu.Server) bool {
			x, ok := findDM(s, uAnn, "was submitted")
			sub = x
			return ok && hasButton(x, "keycard_cancel")
		})
		e.click(uAnn, sub, "keycard_cancel")
		e.waitFor("ann told it is cancelled", func(s *slackemu.Server) bool { return toldContains(s, uAnn, "Cancelled your request") })
		e.click(uBob, m, "keycard_approve")
		e.waitFor("bob refused", func(s *slackemu.Server) bool { return toldContains(s, uBob, "already cancelled") })
		got := e.request(r.ID)
		if got.State != access.StateCancelled || got.Steps[0].Decision != access.DecisionNone {
			t.Fatalf("a click after cancel changed the request: %s %+v", got.State, got.Steps[0])
		}
		if n := len(e.events(access.EvStepApproved)); n != 0 {
			t.Fatalf("%d step approvals after cancel", n)
		}
	})
}

// TestE2ERevoke: admins see every active privileged grant on their App Home
// with Revoke; others do not, and cannot revoke someone else's grant by
// command; the holder can by command.
func TestE2ERevoke(t *testing.T) {
	t.Run("admin from the App Home", func(t *testing.T) {
		e := newEnv(t)
		g := e.activeGrant()
		for _, u := range []string{uAnn, uCarol} {
			h := e.home(u, func(v slackemu.View) bool { return strings.Contains(string(v.Blocks), "Updated") })
			if viewHasButton(h, "keycard_revoke") || strings.Contains(h.PlainText(), "All active privileged access") {
				t.Fatalf("%s (not an admin) sees the admin section:\n%s", u, h.PlainText())
			}
		}
		if _, err := e.emu.SlashCommand(e.ctx, uCarol, "/access", "revoke "+g.ID); err != nil {
			t.Fatal(err)
		}
		e.waitFor("carol refused", func(s *slackemu.Server) bool { return toldContains(s, uCarol, "Only the holder of "+g.ID) })
		if st := e.state(g.ID); st != access.StateActive {
			t.Fatalf("a non-admin's revoke ended the grant: %s", st)
		}

		h := e.home(uFrank, func(v slackemu.View) bool {
			return strings.Contains(string(v.Blocks), g.ID) && viewHasButton(v, "keycard_revoke")
		})
		if !strings.Contains(h.PlainText(), "<@"+uAnn+">") {
			t.Fatalf("admin home does not say whose grant:\n%s", h.PlainText())
		}
		if _, err := e.emu.ClickViewButton(e.ctx, uFrank, h.ID, "keycard_revoke"); err != nil {
			t.Fatal(err)
		}
		e.waitFor("frank told", func(s *slackemu.Server) bool { return toldContains(s, uFrank, "Revoking "+g.ID) })
		e.provision()
		got := e.request(g.ID)
		if got.State != access.StateRevoked || got.EndedBy.Email != "frank@example.com" {
			t.Fatalf("after admin revoke: %s by %q", got.State, got.EndedBy.Email)
		}
		e.waitFor("ann told who revoked it", func(s *slackemu.Server) bool {
			_, ok := findDM(s, uAnn, "revoked by <@"+uFrank+">")
			return ok
		})
		e.waitFor("frank's home no longer lists it", func(s *slackemu.Server) bool {
			x := s.Home(uFrank)
			return x != nil && !strings.Contains(string(x.Blocks), g.ID)
		})
	})
	t.Run("holder by command", func(t *testing.T) {
		e := newEnv(t)
		g := e.activeGrant()
		if _, err := e.emu.SlashCommand(e.ctx, uAnn, "/access", "revoke "+g.ID); err != nil {
			t.Fatal(err)
		}
		e.waitFor("ann told", func(s *slackemu.Server) bool { return toldContains(s, uAnn, "Revoking "+g.ID) })
		e.provision()
		got := e.request(g.ID)
		if got.State != access.StateRevoked || got.EndReason != access.ReasonRevoked || got.EndedBy.Email != "ann@example.com" {
			t.Fatalf("after holder revoke: %s %s by %q", got.State, got.EndReason, got.EndedBy.Email)
		}
	})
}

// TestE2EReminders: after remind_after (default 1h) the current step's
// approvers get one reminder, and another only after the next interval.
func TestE2EReminders(t *testing.T) {
	e := newEnv(t)
	r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
	e.approvalDM(uBob)
	steps := []struct {
		name    string
		advance time.Duration
		ticks   int
		want    int
	}{
		{"before remind_after", 59 * time.Minute, 1, 0},
		{"at remind_after", time.Minute, 3, 1},
		{"within the next interval", 59 * time.Minute, 2, 1},
		{"after the next interval", time.Minute, 2, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.clock.Advance(s.advance)
			for range s.ticks {
				e.provision()
			}
			e.caughtUp()
			if n := dmsContaining(e.emu, uBob, "Reminder: this request is still waiting"); n != s.want {
				t.Fatalf("bob has %d reminders, want %d", n, s.want)
			}
			if n := len(e.events(access.EvRequestReminded)); n != s.want {
				t.Fatalf("%d reminder events, want %d", n, s.want)
			}
		})
	}
	for _, u := range []string{uAnn, uCarol, uDave} {
		if n := dmsContaining(e.emu, u, "Reminder"); n != 0 {
			t.Errorf("%s got %d reminders; only the current step's approvers are re-pinged", u, n)
		}
	}
	// A reminder's buttons decide the request like the first DM's.
	var rem slackemu.Message
	e.waitFor("the reminder with buttons", func(s *slackemu.Server) bool {
		x, ok := findDM(s, uBob, "Reminder: this request")
		rem = x
		return ok && hasButton(x, "keycard_approve")
	})
	e.click(uBob, rem, "keycard_approve")
	e.approvalDM(uCarol)
	if got := e.request(r.ID); got.Current != 1 {
		t.Fatalf("step %d after approving from the reminder", got.Current)
	}
}

const breakGlassPolicy = `  - name: prod-db-emergency
    app: Database
    role: Emergency Admin
    group: prod-db-admins
    privileged: true
    eligible: [engineers]
    approval:
      - manager
      - group: security-team
    duration: {default: 1h, max: 4h}
    justification: required
    break_glass: true
`

// TestE2EBreakGlass: the request modal offers break-glass only for a policy
// that allows it; ticked, the request is self-approved at once and becomes
// active, and the alerts channel and every approver of the normal chain
// are told at once.
func TestE2EBreakGlass(t *testing.T) {
	e := newEnv(t)
	// The form preselects the first role (by app), so no role pick is needed: a
	// pick right after views.update races in slackemu (wireView shares
	// the view's state maps with the response being encoded).
	v := e.openForm(uAnn)
	if !strings.Contains(string(v.Blocks), `"duration:grafana-viewer"`) || strings.Contains(string(v.Blocks), "keycard_break_glass") {
		t.Fatalf("the break-glass box shows for a policy without break_glass: %s", v.Blocks)
	}
	if _, err := e.emu.CloseView(e.ctx, uAnn, v.ID); err != nil {
		t.Fatal(err)
	}
	e.setPolicy(fixture.LabPolicy().InsertBefore("prod-db-admin", breakGlassPolicy).String())
	v = e.openForm(uAnn)
	if !strings.Contains(string(v.Blocks), `"duration:prod-db-emergency"`) || !strings.Contains(string(v.Blocks), "keycard_break_glass") {
		t.Fatalf("no break-glass box for prod-db-emergency: %s", v.Blocks)
	}
	values := func(why string) slackemu.Values {
		vs := requestValues("prod-db-emergency", "1h", why)
		vs["break_glass"] = map[string]slackemu.Value{"keycard_break_glass": {SelectedOptions: []string{"break_glass"}}}
		return vs
	}
	t.Run("justification required", func(t *testing.T) {
		ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, values("  "))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ack.Errors()["justification"], "justification") {
			t.Fatalf("errors %v", ack.Errors())
		}
	})
	ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, values("INC-99 primary down, on-call cannot reach Bob"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.Errors()) > 0 {
		t.Fatalf("break-glass refused: %v", ack.Errors())
	}
	mine, _ := e.svc.Mine("ann@example.com")
	if len(mine) != 1 {
		t.Fatalf("%d requests", len(mine))
	}
	r := mine[0]
	if !r.BreakGlass || r.State != access.StateProvisioning || len(r.Steps) != 1 || r.Steps[0].DecidedBy.Email != "ann@example.com" {
		t.Fatalf("break-glass request: bg=%v %s %+v", r.BreakGlass, r.State, r.Steps)
	}
	// Told at once: before any provisioning or time passing.
	e.waitFor("the alerts channel told", func(s *slackemu.Server) bool {
		_, ok := channelMessage(s, "security-alerts", "Break-glass")
		return ok
	})
	for _, u := range []string{uBob, uCarol, uDave} {
		e.waitFor(u+" told", func(s *slackemu.Server) bool {
			m, ok := findDM(s, u, "Break-glass")
			return ok && strings.Contains(m.PlainText(), r.ID) && strings.Contains(m.PlainText(), "INC-99")
		})
		if hasButton(e.approvalDMOrZero(u), "keycard_approve") {
			t.Errorf("%s was asked to approve a self-approved break-glass request", u)
		}
	}
	e.provision()
	if st := e.state(r.ID); st != access.StateActive {
		t.Fatalf("break-glass grant %s", st)
	}
	if !e.member("prod-db-admins", r.Requester.IdPID) {
		t.Fatal("no membership after break-glass")
	}
}

// approvalDMOrZero returns user's newest DM with approval buttons, if any.
func (e *env) approvalDMOrZero(user string) slackemu.Message {
	msgs := e.emu.Messages(e.emu.DMChannel(user))
	for i := len(msgs) - 1; i >= 0; i-- {
		if hasButton(msgs[i], "keycard_approve") {
			return msgs[i]
		}
	}
	return slackemu.Message{}
}

// TestE2EAlertsByDM: a policy with no alerts channel sends alerts to every
// admin by DM instead.
func TestE2EAlertsByDM(t *testing.T) {
	e := newEnv(t)
	e.setPolicy(fixture.LabPolicy().Replace("alerts: {channel: \"#security-alerts\"}\n", "").String())
	if e.svc.Policy().Alerts.Channel != "" {
		t.Fatal("the alerts channel is still set")
	}
	if err := e.svc.Alert("test_kind", "ann@example.com", "Something odd happened", nil); err != nil {
		t.Fatal(err)
	}
	e.waitFor("frank (the admin) told by DM", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uFrank, "Something odd happened")
		return ok
	})
	// alertMessage posts to the channel or to the admins, never both.
	if _, ok := channelMessage(e.emu, "security-alerts", "Something odd happened"); ok {
		t.Error("the alert went to a channel the policy no longer names")
	}
	for _, u := range []string{uAnn, uBob, uCarol} {
		if _, ok := findDM(e.emu, u, "Something odd happened"); ok {
			t.Errorf("%s (not an admin) got the alert", u)
		}
	}
}

// TestE2ERoleSearch: a person eligible for more than Slack's 100 options
// gets an external_select; the suggestions match the query, grouped by app.
func TestE2ERoleSearch(t *testing.T) {
	e := newEnv(t)
	var many strings.Builder
	for i := range 120 {
		fmt.Fprintf(&many, "  - {name: tool-%03d, app: \"Tool %02d\", role: User, group: app-grafana-viewers, eligible: [employees], approval: auto, duration: {default: 1h, max: 4h}}\n", i, i/10)
	}
	e.setPolicy(fixture.LabPolicy().Replace("auditors:", many.String()+"auditors:").String())

	v := e.openForm(uAnn)
	if !strings.Contains(string(v.Blocks), `"external_select"`) || !strings.Contains(string(v.Blocks), "keycard_role_search") {
		t.Fatalf("no role search for 122 roles: %s", v.Blocks)
	}
	type group struct {
		Label   struct{ Text string } `json:"label"`
		Options []struct {
			Value string `json:"value"`
		} `json:"options"`
	}
	cases := []struct {
		name, query string
		wantGroups  []string
		wantOptions int
	}{
		{"one app", "tool 03", []string{"Tool 03"}, 10},
		{"by role", "emergency", nil, 0},
		{"by policy name", "tool-115", []string{"Tool 11"}, 1},
		{"empty query capped at 100", "", nil, 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ack, err := e.emu.Suggest(e.ctx, uAnn, v.ID, "keycard_role_search", c.query)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				OptionGroups []group `json:"option_groups"`
			}
			if err := json.Unmarshal(ack.Payload, &body); err != nil {
				t.Fatal(err)
			}
			var labels []string
			n := 0
			for _, g := range body.OptionGroups {
				labels = append(labels, g.Label.Text)
				n += len(g.Options)
			}
			if n != c.wantOptions {
				t.Fatalf("%d options in %v, want %d", n, labels, c.wantOptions)
			}
			if c.wantGroups != nil && !slices.Equal(labels, c.wantGroups) {
				t.Fatalf("groups %v, want %v", labels, c.wantGroups)
			}
		})
	}
	t.Run("pick and submit", func(t *testing.T) {
		if _, err := e.emu.SelectOption(e.ctx, uAnn, v.ID, "keycard_role_search", "tool-031"); err != nil {
			t.Fatal(err)
		}
		e.waitFor("the modal for tool-031", func(s *slackemu.Server) bool {
			got, ok := s.View(v.ID)
			if ok && strings.Contains(string(got.Blocks), `"duration:tool-031"`) {
				v = got
				return true
			}
			return false
		})
		ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, slackemu.Values{
			"role":              {"keycard_role_search": {Selected: "tool-031"}},
			"duration:tool-031": {"keycard_duration": {Selected: "1h"}},
			"justification":     {"keycard_justification": {Text: "onboarding task"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(ack.Errors()) > 0 {
			t.Fatalf("submission refused: %v", ack.Errors())
		}
		mine, _ := e.svc.Mine("ann@example.com")
		if len(mine) != 1 || mine[0].Policy != "tool-031" {
			t.Fatalf("requests %+v", mine)
		}
	})
}
