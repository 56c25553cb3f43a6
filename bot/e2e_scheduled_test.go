package bot_test

import (
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/idptest"
	"keycard/internal/slackemu"
)

// Scheduled access end to end, through the Slack emulator and the Okta
// emulator: Ann (Europe/Berlin) asks on Monday for Saturday 02:00 her time,
// the two approvals happen now, nothing changes in Okta until the fake
// clock reaches the start, then the membership is added, the grant's clock
// starts there and it expires at start + duration. A start beyond
// schedule_ahead is refused in the modal, naming the bound, and audited; a
// grant cancelled before its start never reaches Okta.
func TestE2EScheduledAccess(t *testing.T) {
	clock := newClock() // Mon 2 Mar 2026 09:00 UTC
	idp := idptest.Okta(clock.Now, idpPeople, idpGroups)
	t.Cleanup(idp.Close)
	e := bootIdP(t, idp, clock)

	scheduledValues := func(wallClock string) slackemu.Values {
		ts, err := e.emu.LocalDateTime(uAnn, wallClock)
		if err != nil {
			t.Fatal(err)
		}
		v := requestValues("prod-db-admin", "4h", "CHG-7 change window")
		v["start"] = map[string]slackemu.Value{"keycard_start": {Selected: "later"}}
		v["start_at"] = map[string]slackemu.Value{"keycard_start_at": {DateTime: ts}}
		return v
	}
	// openNewForm closes Ann's earlier modals (as she would, to type a
	// slash command again) and opens the request modal.
	openNewForm := func() slackemu.View {
		t.Helper()
		views := e.emu.OpenViews(uAnn)
		for i := len(views) - 1; i >= 0; i-- {
			if _, err := e.emu.CloseView(e.ctx, uAnn, views[i].ID); err != nil {
				t.Fatal(err)
			}
		}
		return e.openForm(uAnn)
	}
	submitScheduled := func(wallClock string) slackemu.Ack {
		t.Helper()
		v := e.pickRole(uAnn, openNewForm(), "prod-db-admin")
		if !strings.Contains(string(v.Blocks), `"datetimepicker"`) || !strings.Contains(string(v.Blocks), "Europe/Berlin") {
			t.Fatalf("the modal offers no start date and time in Ann's zone: %s", v.Blocks)
		}
		ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, scheduledValues(wallClock))
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}

	// Beyond schedule_ahead (default 14d): refused on the start input, audited.
	ack := submitScheduled("2026-03-20 02:00")
	if msg := ack.Errors()["start_at"]; !strings.Contains(msg, "at most 2w ahead (policy prod-db-admin, schedule_ahead)") {
		t.Fatalf("refusal: %v", ack.Errors())
	}
	if evs := e.events(access.EvRequestRefused); len(evs) != 1 || !strings.Contains(evs[0].Detail, "schedule_ahead") {
		t.Fatalf("refusal not audited: %v", evs)
	}

	// Saturday 02:00 in Berlin is 01:00 UTC.
	start := time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC)
	ack = submitScheduled("2026-03-07 02:00")
	if errs := ack.Errors(); len(errs) > 0 || !strings.Contains(string(ack.View()), "starting *Sat 7 Mar 2026 02:00 CET*") {
		t.Fatalf("confirmation: %v %s", errs, ack.View())
	}
	mine, err := e.svc.Mine("ann@example.com")
	if err != nil || len(mine) != 1 || !mine[0].StartAt.Equal(start) {
		t.Fatalf("stored: %+v %v", mine, err)
	}
	r := mine[0]
	// Bob, the approver, sees it in his own zone: 20:00 the evening before in New York.
	bobDM := e.approvalDM(uBob)
	if !strings.Contains(bobDM.PlainText(), "Fri 6 Mar 2026 20:00 EST (scheduled)") {
		t.Fatalf("the approver does not see the start: %s", bobDM.PlainText())
	}
	e.click(uBob, bobDM, "keycard_approve")
	e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
	defer func() {
		if t.Failed() {
			for _, m := range e.emu.Messages(e.emu.DMChannel(uAnn)) {
				t.Logf("ann DM: %s", m.PlainText())
			}
		}
	}()
	e.waitFor("approved for the start", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uAnn, "approved for its scheduled start. Access begins *Sat 7 Mar 2026 02:00 CET*")
		return ok
	})
	e.provision()
	if st := e.state(r.ID); st != access.StateScheduled || idp.IsMember("prod-db-admins", "ann@example.com") {
		t.Fatalf("before the start: %s, member %v", st, idp.IsMember("prod-db-admins", "ann@example.com"))
	}

	// A minute before the start, nothing; at the start, the add.
	clock.Advance(start.Sub(clock.Now()) - time.Minute)
	e.provision()
	if st := e.state(r.ID); st != access.StateScheduled || idp.IsMember("prod-db-admins", "ann@example.com") {
		t.Fatalf("a minute before the start: %s", st)
	}
	clock.Advance(time.Minute)
	e.provision()
	got, err := e.svc.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != access.StateActive || !idp.IsMember("prod-db-admins", "ann@example.com") ||
		!got.ProvisionedAt.Equal(start) || !got.EndsAt.Equal(start.Add(4*time.Hour)) {
		t.Fatalf("at the start: %s, member %v, provisioned %v, ends %v", got.State, idp.IsMember("prod-db-admins", "ann@example.com"), got.ProvisionedAt, got.EndsAt)
	}
	e.waitFor("access began", func(s *slackemu.Server) bool {
		_, ok := findDM(s, uAnn, "Your scheduled access began")
		return ok
	})

	// It expires at start + duration, and Okta loses the membership.
	clock.Advance(4*time.Hour + time.Minute)
	e.provision()
	e.provision()
	if st := e.state(r.ID); st != access.StateExpired || idp.IsMember("prod-db-admins", "ann@example.com") {
		t.Fatalf("after expiry: %s, member %v", st, idp.IsMember("prod-db-admins", "ann@example.com"))
	}

	// Cancelled before its start: revoked by Ann, and Okta never hears of it.
	if errs := submitScheduled("2026-03-10 09:00").Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	mine, _ = e.svc.Mine("ann@example.com")
	r2 := mine[0]
	e.click(uBob, e.approvalDM(uBob), "keycard_approve")
	e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
	var approved slackemu.Message
	e.waitFor("the approved DM with its Cancel", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uAnn, "Access begins *Tue 10 Mar 2026 09:00 CET*")
		approved = m
		return ok && hasButton(m, "keycard_cancel")
	})
	e.click(uAnn, approved, "keycard_cancel")
	e.waitFor("withdrawn", func(s *slackemu.Server) bool {
		return e.state(r2.ID) == access.StateRevoked && ephemeralContains(s, uAnn, "before its scheduled start: nothing had been granted")
	})
	clock.Advance(4 * 24 * time.Hour)
	e.provision()
	if idp.IsMember("prod-db-admins", "ann@example.com") {
		t.Fatal("a cancelled scheduled grant was added")
	}
	for _, ev := range e.events(access.EvGrantEnding) {
		if ev.RequestID == r2.ID {
			t.Fatal("a removal was queued for a grant that never started")
		}
	}
}
