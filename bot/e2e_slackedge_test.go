package bot_test

import (
	"strings"
	"testing"

	"keycard/internal/slackemu"
)

// TestUserChangeRechecksThePinAtOnce: ann's Slack email is changed to
// another employee's (erin's) and Slack delivers user_change. keycard drops
// the cached profile at once, re-checks the pin and reports the mismatch in
// the security channel without waiting for ann's next click or the profile
// cache; ann's next /access is refused (issue 10).
func TestUserChangeRechecksThePinAtOnce(t *testing.T) {
	e := newEnv(t)
	v := e.openForm(uAnn) // pins ann and caches her profile
	if v.CallbackID != "keycard_request" {
		t.Fatalf("ann's form: %s", v.Blocks)
	}
	if _, err := e.emu.CloseView(e.ctx, uAnn, v.ID); err != nil {
		t.Fatal(err)
	}
	ann, _ := e.emu.User(uAnn)
	ann.Email = "erin@example.com"
	if _, err := e.emu.ChangeUser(e.ctx, ann); err != nil {
		t.Fatal(err)
	}
	// No click by ann: the alert comes from user_change alone, well inside
	// the ten-minute profile cache (the fake clock does not move).
	e.waitFor("the identity-mismatch alert", func(s *slackemu.Server) bool {
		_, ok := channelMessage(s, "security-alerts", "Identity mismatch")
		return ok
	})
	if _, err := e.emu.SlashCommand(e.ctx, uAnn, "/access", ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor("ann's /access refused", func(s *slackemu.Server) bool {
		for _, v := range s.OpenViews(uAnn) {
			if strings.Contains(string(v.Blocks), "security team has been told") {
				return true
			}
		}
		return false
	})
	for _, v := range e.emu.OpenViews(uAnn) {
		if v.CallbackID == "keycard_request" {
			t.Fatalf("ann was offered the request form after her email changed: %s", v.Blocks)
		}
	}
}
