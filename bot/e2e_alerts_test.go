package bot_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/fixture"
	"keycard/internal/slackemu"
	"keycard/policy"
)

// channelMessage finds the newest message in a channel containing sub.
func channelMessage(s *slackemu.Server, channel, sub string) (slackemu.Message, bool) {
	if id, ok := s.ChannelID(channel); ok {
		channel = id
	}
	msgs := s.Messages(channel)
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.Contains(msgs[i].PlainText(), sub) {
			return msgs[i], true
		}
	}
	return slackemu.Message{}, false
}

// TestE2EAlertTriage: an alert reaches the security channel with
// Acknowledge and Resolve; a non-admin's click is refused and changes
// nothing; an admin acknowledges, then resolves with an outcome, and the
// message and the audit log say who, when and what.
func TestE2EAlertTriage(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.Alert("test_kind", "ann@example.com", "Something odd happened", nil); err != nil {
		t.Fatal(err)
	}
	var m slackemu.Message
	e.waitFor("the alert with its buttons", func(s *slackemu.Server) bool {
		x, ok := channelMessage(s, "security-alerts", "Something odd happened")
		m = x
		return ok && hasButton(x, "keycard_alert_ack")
	})
	e.click(uAnn, m, "keycard_alert_ack")
	e.waitFor("Ann is told she may not", func(s *slackemu.Server) bool { return ephemeralContains(s, uAnn, "Only a keycard admin") })
	e.click(uFrank, m, "keycard_alert_ack")
	e.waitFor("the alert shows who acknowledged it", func(s *slackemu.Server) bool {
		x, ok := channelMessage(s, m.Channel, "Acknowledged by frank@example.com")
		return ok && !hasButton(x, "keycard_alert_ack") && hasButton(x, "keycard_alert_resolve")
	})
	e.click(uFrank, m, "keycard_alert_resolve")
	var v slackemu.View
	e.waitFor("the resolve form", func(s *slackemu.Server) bool {
		vs := s.OpenViews(uFrank)
		if len(vs) == 0 || vs[len(vs)-1].CallbackID != "keycard_resolve" {
			return false
		}
		v = vs[len(vs)-1]
		return true
	})
	if _, err := e.emu.SubmitView(e.ctx, uFrank, v.ID, slackemu.Values{"outcome": {"keycard_outcome": {Text: "False positive: planned maintenance"}}}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the alert shows its resolution", func(s *slackemu.Server) bool {
		x, ok := channelMessage(s, m.Channel, "Resolved by frank@example.com")
		return ok && strings.Contains(x.PlainText(), "False positive") && len(x.Buttons()) == 0
	})
	if len(e.events(access.EvAlertAcknowledged)) != 1 || len(e.events(access.EvAlertResolved)) != 1 {
		t.Fatal("triage not audited exactly once")
	}
}

// TestE2EStagedPolicyApproval: with change_approval on, a new policy file is
// shown to the security channel with what changes and an Approve button; a
// non-admin cannot approve; an admin's approval puts it in force.
func TestE2EStagedPolicyApproval(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	guarded := fixture.LabPolicy().Setting("change_approval: true").String()
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(guarded)
	if _, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Load(path) }, "keycard"); err != nil {
		t.Fatal(err)
	}
	write(guarded + "offboarding_sla: 12h\n")
	if _, staged, err := e.svc.ChangePolicy(handlers.PolicyChange{Load: func() (*policy.Set, error) { return policy.Load(path) }, By: "SIGHUP"}); err != nil || !staged {
		t.Fatalf("not staged: %v", err)
	}
	var m slackemu.Message
	e.waitFor("the staged change with its Approve button", func(s *slackemu.Server) bool {
		x, ok := channelMessage(s, "security-alerts", "offboarding_sla")
		m = x
		return ok && hasButton(x, "keycard_policy_approve")
	})
	e.click(uAnn, m, "keycard_policy_approve")
	e.waitFor("Ann is refused", func(s *slackemu.Server) bool { return ephemeralContains(s, uAnn, "Only a keycard admin") })
	if e.svc.Policy().OffboardingSLA == 12*3600e9 {
		t.Fatal("a non-admin's click applied the policy")
	}
	e.click(uFrank, m, "keycard_policy_approve")
	e.waitFor("the message says who approved", func(s *slackemu.Server) bool {
		x, ok := channelMessage(s, m.Channel, "Approved by frank@example.com")
		return ok && !hasButton(x, "keycard_policy_approve")
	})
	if e.svc.Policy().OffboardingSLA != 12*3600e9 || len(e.events(access.EvPolicyApproved)) != 1 {
		t.Fatal("the approved version is not in force")
	}
}

// TestE2EGuestsAndStrangersRefused: a guest or a Slack Connect user whose
// profile shows an employee's email cannot act as that employee
// (security review C3).
func TestE2EGuestsAndStrangersRefused(t *testing.T) {
	e := newEnv(t)
	for _, u := range []slackemu.User{
		{ID: "U0GUEST", Name: "guest", RealName: "A Guest", Email: "dave@example.com", Guest: true},
		{ID: "U0STRANGER", Name: "stranger", RealName: "Someone Else", Email: "dave@example.com", Stranger: true},
	} {
		e.emu.AddUser(u)
		if _, err := e.emu.SlashCommand(e.ctx, u.ID, "/access", "list"); err != nil {
			t.Fatal(err)
		}
		e.waitFor(u.ID+" is refused", func(s *slackemu.Server) bool {
			return ephemeralContains(s, u.ID, "Guests and people from other organisations")
		})
	}
	if n := len(e.events(access.EvIdentityPinned)); n != 0 {
		t.Fatalf("%d identities pinned for guests", n)
	}
}

// TestE2EAlertWhenTheAlertsChannelIsMissing: an alert is not lost to a setup
// mistake — with the alerts channel missing it goes to the admins by DM
// (second review H3).
func TestE2EAlertWhenTheAlertsChannelIsMissing(t *testing.T) {
	e := boot(t, world{policy: fixture.LabPolicy().Replace(`alerts: {channel: "#security-alerts"}`, `alerts: {channel: "#no-such-channel"}`).String()})
	if err := e.svc.Alert("test_kind", "ann@example.com", "Something odd happened", nil); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the alert in frank's DM", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uFrank, "Something odd happened")
		return ok && strings.Contains(m.PlainText(), "could not post to #no-such-channel")
	})
}

// TestE2EReportRetryPostsOnce: a report whose file upload failed is not
// posted again on retry; the missing files go into the same thread
// (second review M2).
func TestE2EReportRetryPostsOnce(t *testing.T) {
	e := newEnv(t)
	e.emu.FailNext("files.completeUploadExternal", 1, "internal_error")
	rep := handlers.Report{Key: "test/1", Job: "test", Channel: "#security-alerts",
		Files: []handlers.ReportFile{{Name: "a.csv", Content: []byte("x\n1\n")}, {Name: "b.csv", Content: []byte("y\n2\n")}}}
	if err := e.bot.Publish(e.ctx, rep); err == nil {
		t.Fatal("the failed upload was not reported")
	}
	if err := e.bot.Publish(e.ctx, rep); err != nil {
		t.Fatal(err)
	}
	if err := e.bot.Publish(e.ctx, rep); err != nil { // a third run after success: nothing new
		t.Fatal(err)
	}
	id, _ := e.emu.ChannelID("security-alerts")
	posts := 0
	for _, m := range e.emu.Messages(id) {
		if strings.Contains(m.PlainText(), "keycard report") {
			posts++
		}
	}
	names := map[string]int{}
	for _, f := range e.emu.Files() {
		if f.Completed {
			names[f.Name]++
		}
	}
	if posts != 1 || names["a.csv"] != 1 || names["b.csv"] != 1 {
		t.Fatalf("%d report posts, files %v; want 1 post and each file once", posts, names)
	}
}
