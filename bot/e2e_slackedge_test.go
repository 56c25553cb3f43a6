package bot_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keycard/access"
	"keycard/bot"
	"keycard/handlers"
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

// panicCore panics once in Get (an urgent route: the Deny click) or in
// Submit (a selfAck route: the request modal's submission).
type panicCore struct {
	*handlers.Service
	get, submit *atomic.Bool
}

func (c panicCore) Get(id string) (access.Request, error) {
	if c.get.CompareAndSwap(true, false) {
		panic("get blew up")
	}
	return c.Service.Get(id)
}

func (c panicCore) Submit(ctx context.Context, in handlers.SubmitInput) (access.Request, error) {
	if c.submit.CompareAndSwap(true, false) {
		panic("submit blew up")
	}
	return c.Service.Submit(ctx, in)
}

// TestPanicInUrgentOrSelfAckIsSurvived: a panic in the goroutine of an
// urgent or selfAck route is logged and the person told; the process (and
// the bot) carries on (issue 10).
func TestPanicInUrgentOrSelfAckIsSurvived(t *testing.T) {
	const told = "Something went wrong inside keycard"
	sawTold := func(user string) func(s *slackemu.Server) bool {
		return func(s *slackemu.Server) bool {
			for _, m := range s.Ephemerals(user) {
				if strings.Contains(m.PlainText(), told) {
					return true
				}
			}
			for _, v := range s.OpenViews(user) {
				if strings.Contains(string(v.Blocks), told) {
					return true
				}
			}
			_, ok := findDM(s, user, told)
			return ok
		}
	}
	for _, which := range []string{"urgent", "selfAck"} {
		t.Run(which, func(t *testing.T) {
			var idp, sub atomic.Bool
			e := newEnvWith(t, func(s *handlers.Service) bot.Core { return panicCore{s, &idp, &sub} }, 0)
			switch which {
			case "urgent":
				e.submit(uAnn, "prod-db-admin", "4h", "incident")
				m := e.approvalDM(uBob)
				idp.Store(true)
				e.click(uBob, m, "keycard_deny")
				e.waitFor("bob told of the failure", sawTold(uBob))
			case "selfAck":
				v := e.pickRole(uAnn, e.openForm(uAnn), "grafana-viewer")
				sub.Store(true)
				ack, _ := e.emu.SubmitView(e.ctx, uAnn, v.ID, requestValues("grafana-viewer", "", "look at a dashboard"))
				if !strings.Contains(string(ack.Payload), told) {
					e.waitFor("ann told of the failure", sawTold(uAnn))
				}
			}
			// The bot lives on: the next /access opens the form.
			for _, v := range e.emu.OpenViews(uAnn) {
				_, _ = e.emu.CloseView(e.ctx, uAnn, v.ID)
			}
			if v := e.openForm(uAnn); v.CallbackID != "keycard_request" {
				t.Fatalf("after the panic: %s", v.Blocks)
			}
		})
	}
}

// TestForeignTeamEnvelopesAreDropped: an envelope whose team_id is not the
// bot's own workspace (auth.test) — Slack Connect — is acknowledged and
// dropped: a request submitted from there creates nothing (issue 10).
func TestForeignTeamEnvelopesAreDropped(t *testing.T) {
	e := newEnv(t)
	v := e.pickRole(uAnn, e.openForm(uAnn), "grafana-viewer")
	e.emu.SetEnvelopeTeam("T0FOREIGN")
	if _, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, requestValues("grafana-viewer", "", "from elsewhere")); err != nil {
		t.Fatal(err)
	}
	mine, err := e.svc.Mine("ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 0 {
		t.Fatalf("an envelope from another workspace created %d requests", len(mine))
	}
}

// TestForgedIDOpensNoModal: Extend, review Keep and ask-to-extend check at
// the click what their submissions check, before a modal shows anyone's
// grant: carol clicking with another person's grant or item id (the button
// value is the id; a client can send any) opens no modal and is told why
// (issue 10).
func TestForgedIDOpensNoModal(t *testing.T) {
	told := func(user, sub string) func(s *slackemu.Server) bool {
		return func(s *slackemu.Server) bool {
			if ephemeralContains(s, user, sub) {
				return true
			}
			_, ok := findDM(s, user, sub)
			return ok
		}
	}
	cases := []struct {
		name   string
		setup  func(t *testing.T) (*env, slackemu.Message)
		action string
		want   string
	}{
		{"extend", func(t *testing.T) (*env, slackemu.Message) {
			e := newEnv(t)
			return e, e.expiringDM(e.activeGrant())
		}, "keycard_extend", "You hold no grant"},
		{"review keep", func(t *testing.T) (*env, slackemu.Message) {
			e := newReviewEnv(t)
			if _, err := e.emu.SlashCommand(e.ctx, uFrank, "/access", "review start prod-db-admin"); err != nil {
				t.Fatal(err)
			}
			var item slackemu.Message
			e.waitFor("bob's item DM about dave", func(s *slackemu.Server) bool {
				m, ok := findDM(s, uBob, "does Dave Kim")
				item = m
				return ok && hasButton(m, "keycard_review_keep")
			})
			return e.env, item
		}, "keycard_review_keep", "not a reviewer"},
		{"ask to extend", func(t *testing.T) (*env, slackemu.Message) {
			e := newReviewEnv(t)
			if _, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: uHank, Email: "hank@example.com", Policy: "grafana-viewer", Duration: 72 * time.Hour}); err != nil {
				t.Fatal(err)
			}
			e.provision()
			if err := e.svc.RunJobNow(e.ctx, e.bot, handlers.JobContractor, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			var ask slackemu.Message
			e.waitFor("bob's question about hank", func(s *slackemu.Server) bool {
				m, ok := findDM(s, uBob, "Hank Cole")
				ask = m
				return ok && hasButton(m, "keycard_contractor_extend")
			})
			return e.env, ask
		}, "keycard_contractor_extend", "Only "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, m := c.setup(t)
			e.click(uCarol, m, c.action)
			e.waitFor("carol refused", told(uCarol, c.want))
			if vs := e.emu.OpenViews(uCarol); len(vs) != 0 {
				t.Fatalf("carol sees a modal for someone else's id: %s", vs[len(vs)-1].PlainText())
			}
		})
	}
}

// TestOversizedSocketMessageIsRefused: a Socket Mode message over
// SocketReadLimit is not read (the connection is closed and slack-go
// reconnects), so it is never acknowledged; the bot serves on (issue 10).
func TestOversizedSocketMessageIsRefused(t *testing.T) {
	e := newEnv(t)
	ann, _ := e.emu.User(uAnn)
	ann.RealName = strings.Repeat("A", bot.SocketReadLimit+1)
	if _, err := e.emu.ChangeUser(e.ctx, ann); err == nil {
		t.Fatal("an envelope larger than the read limit was read and acknowledged")
	}
	ann.RealName = "Ann Lee"
	e.emu.AddUser(ann)
	if err := e.emu.WaitConnected(e.ctx); err != nil {
		t.Fatal(err)
	}
	if v := e.openForm(uAnn); v.CallbackID != "keycard_request" {
		t.Fatalf("after the oversized message: %s", v.Blocks)
	}
}
