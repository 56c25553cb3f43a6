package bot_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/bot"
	"keycard/handlers"
	"keycard/internal/slackemu"
)

// Slack-side fault tolerance, through the real slack-go client against the
// emulator's fault injection. Each case fails without the mechanism it
// names: the notifier's retry honouring Retry-After (Slack rate limits,
// https://api.slack.com/apis/rate-limits), its retry of transient ok:false
// errors, the cursor that moves only after an event is handled, and
// slack-go's reconnect with ack-first routing.

// dmsContaining counts the messages in user's DM whose text contains sub.
func dmsContaining(s *slackemu.Server, user, sub string) int {
	n := 0
	for _, m := range s.Messages(s.DMChannel(user)) {
		if strings.Contains(m.PlainText(), sub) {
			n++
		}
	}
	return n
}

func approvalDMs(s *slackemu.Server, user string) int {
	n := 0
	for _, m := range s.Messages(s.DMChannel(user)) {
		if strings.Contains(m.PlainText(), "REQ") && (hasButton(m, "keycard_approve") || strings.Contains(m.PlainText(), "Approved by")) {
			n++
		}
	}
	return n
}

// caughtUp waits until the notifier's cursor reaches the audit head: every
// event was handled (delivered, or refused by Slack for good).
func (e *env) caughtUp() {
	e.t.Helper()
	var head uint64
	_ = e.svc.Events(0, func(ev access.Event) error { head = ev.Seq; return nil })
	e.waitFor("the notifier to reach seq "+strconv.FormatUint(head, 10), func(*slackemu.Server) bool {
		cur, err := e.svc.Cursor("notifier.seq")
		if err != nil {
			return false
		}
		n, _ := strconv.ParseUint(cur, 10, 64)
		return n >= head
	})
}

func TestE2ESlackFaultsNotifier(t *testing.T) {
	cases := []struct {
		name   string
		inject func(*slackemu.Server)
		// lostNotice: Slack refused Ann's notice for good (a permanent
		// error), so it is skipped, but nothing after it is.
		lostNotice bool
	}{
		{"chat.postMessage 429 Retry-After", func(s *slackemu.Server) { s.RateLimit("chat.postMessage", 2, time.Second) }, false},
		{"chat.postMessage internal_error", func(s *slackemu.Server) { s.FailNext("chat.postMessage", 2, "internal_error") }, false},
		{"chat.postMessage service_unavailable", func(s *slackemu.Server) { s.FailNext("chat.postMessage", 1, "service_unavailable") }, false},
		{"conversations.open 429", func(s *slackemu.Server) { s.RateLimit("conversations.open", 1, time.Second) }, false},
		{"chat.update 429 on the closed approval DM", func(s *slackemu.Server) { s.RateLimit("chat.update", 1, time.Second) }, false},
		{"permanent channel_not_found", func(s *slackemu.Server) { s.FailNext("chat.postMessage", 1, "channel_not_found") }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			c.inject(e.emu)
			r := e.submit(uAnn, "prod-db-admin", "4h", "INC-7 failover")
			m := e.approvalDM(uBob)
			e.click(uBob, m, "keycard_approve")
			e.approvalDM(uCarol)
			e.waitFor("bob's DM closed", func(s *slackemu.Server) bool {
				got, ok := s.Message(m.Channel, m.TS)
				return ok && strings.Contains(got.PlainText(), "Approved by")
			})
			e.caughtUp()
			if n := approvalDMs(e.emu, uBob); n != 1 {
				t.Errorf("bob has %d approval DMs, want exactly 1", n)
			}
			if n := approvalDMs(e.emu, uCarol); n != 1 {
				t.Errorf("carol has %d approval DMs, want exactly 1", n)
			}
			want := 1
			if c.lostNotice {
				want = 0
			}
			if n := dmsContaining(e.emu, uAnn, "was submitted"); n != want {
				t.Errorf("ann got the submitted notice %d times, want %d", n, want)
			}
			if n := dmsContaining(e.emu, uAnn, "was approved by"); n != 1 {
				t.Errorf("ann got the step-approved notice %d times, want exactly 1 (an event after a failed one was skipped or repeated)", n)
			}
			if got, _ := e.svc.Get(r.ID); got.Current != 1 {
				t.Fatalf("request at step %d", got.Current)
			}
		})
	}
}

// TestE2EHomeRateLimited: views.publish answers 429 for the App Home
// refresh after a submission; the home must still come to show the request
// without another event about the person.
func TestE2EHomeRateLimited(t *testing.T) {
	e := newEnv(t)
	e.emu.RateLimit("views.publish", 2, time.Second) // the refresh of Ann's and Bob's homes
	r := e.submit(uAnn, "prod-db-admin", "4h", "INC-8")
	e.approvalDM(uBob)
	e.waitFor("ann's App Home shows the request", func(s *slackemu.Server) bool {
		h := s.Home(uAnn)
		return h != nil && strings.Contains(string(h.Blocks), r.ID)
	})
	e.waitFor("bob's App Home shows what waits on him", func(s *slackemu.Server) bool {
		h := s.Home(uBob)
		return h != nil && strings.Contains(h.PlainText(), "asks for *Production Database")
	})
	if n := e.emu.Calls("views.publish"); n < 4 {
		t.Fatalf("%d views.publish calls: the rate-limited refreshes were not retried", n)
	}
}

// heldDecide holds Decide until release is closed, so a test can cut the
// socket while a click's work is in flight.
type heldDecide struct {
	*handlers.Service
	entered chan struct{}
	release chan struct{}
}

func (c heldDecide) Decide(ctx context.Context, in handlers.DecideInput) (access.Request, error) {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	<-c.release
	return c.Service.Decide(ctx, in)
}

// TestE2ESocketCutMidFlow: the Socket Mode connection drops (abruptly, or
// with Slack's disconnect message) between the submission and the approval,
// or while an approval click is being handled; the flow completes after
// slack-go reconnects.
func TestE2ESocketCutMidFlow(t *testing.T) {
	cuts := []struct {
		name string
		cut  func(*slackemu.Server)
	}{
		{"drop", (*slackemu.Server).DropConnections},
		{"disconnect warning", func(s *slackemu.Server) { s.Disconnect("warning") }},
	}
	for _, c := range cuts {
		t.Run(c.name+" between submit and approval", func(t *testing.T) {
			e := newEnv(t)
			r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
			before := e.emu.Connects()
			c.cut(e.emu)
			m := e.approvalDM(uBob) // the notifier uses the Web API: DMs still go out
			e.waitFor("a new socket", func(s *slackemu.Server) bool { return s.Connects() > before && s.Connected() > 0 })
			e.click(uBob, m, "keycard_approve")
			e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
			e.waitFor("ann told it was approved", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "Access is being set up"); return ok })
			if st := e.state(r.ID); st != access.StateProvisioning {
				t.Fatalf("state %s, want provisioning", st)
			}
		})
		t.Run(c.name+" during a click", func(t *testing.T) {
			held := heldDecide{entered: make(chan struct{}, 1), release: make(chan struct{})}
			e := newEnvWith(t, func(s *handlers.Service) bot.Core { held.Service = s; return held }, 0)
			r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
			m := e.approvalDM(uBob)
			before := e.emu.Connects()
			e.click(uBob, m, "keycard_approve") // acked first; the decision runs after
			select {
			case <-held.entered:
			case <-e.ctx.Done():
				t.Fatal("the click never reached Decide")
			}
			c.cut(e.emu)
			close(held.release)
			e.waitFor("a new socket", func(s *slackemu.Server) bool { return s.Connects() > before && s.Connected() > 0 })
			e.click(uCarol, e.approvalDM(uCarol), "keycard_approve")
			e.waitFor("ann told it was approved", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "Access is being set up"); return ok })
			if st := e.state(r.ID); st != access.StateProvisioning {
				t.Fatalf("state %s, want provisioning", st)
			}
			if n := len(e.events(access.EvStepApproved)); n != 1 {
				t.Fatalf("%d step approvals, want 1", n)
			}
		})
	}
}
