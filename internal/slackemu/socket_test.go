package slackemu

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// seen records what the test bot received, for assertions.
type seen struct {
	mu       sync.Mutex
	system   string
	actions  []slack.BlockAction
	users    []string
	closed   int
	triggers []string
	envs     map[string]int
}

func (s *seen) add(f func(*seen)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func requestModal() slack.ModalViewRequest {
	sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("Pick"), "system_sel",
		slack.NewOptionBlockObject("prod-db", plain("prod-db"), nil), slack.NewOptionBlockObject("staging", plain("staging"), nil))
	ext := slack.NewOptionsSelectBlockElement(slack.OptTypeExternal, plain("Search"), "role_ext")
	return slack.ModalViewRequest{
		Type: slack.VTModal, Title: plain("Request access"), Submit: plain("Submit"), Close: plain("Cancel"),
		CallbackID: "access_request", PrivateMetadata: `{"c":"x"}`, NotifyOnClose: true,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewInputBlock("system", plain("System"), nil, sel),
			slack.NewInputBlock("reason", plain("Reason"), nil, slack.NewPlainTextInputBlockElement(nil, "reason_in")),
			slack.NewActionBlock("more", ext),
		}},
	}
}

// testBot is a small Socket Mode bot in the style keycard's bot will use.
func testBot(t *testing.T, api **slack.Client, got *seen) func(*socketmode.Client, socketmode.Event) {
	return func(sm *socketmode.Client, evt socketmode.Event) {
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			got.add(func(s *seen) { s.envs[evt.Request.EnvelopeID]++ })
		}
		switch evt.Type {
		case socketmode.EventTypeSlashCommand:
			cmd := evt.Data.(slack.SlashCommand)
			got.add(func(s *seen) { s.triggers = append(s.triggers, cmd.TriggerID) })
			if cmd.Text == "noop" {
				_ = sm.Ack(*evt.Request)
				return
			}
			if _, err := (*api).OpenView(cmd.TriggerID, requestModal()); err != nil {
				t.Errorf("OpenView: %v", err)
			}
			_ = sm.Ack(*evt.Request, map[string]any{"response_type": "ephemeral", "text": "Opening the request form"})
		case socketmode.EventTypeInteractive:
			cb := evt.Data.(slack.InteractionCallback)
			got.add(func(s *seen) { s.users = append(s.users, cb.User.ID) })
			switch cb.Type {
			case slack.InteractionTypeViewSubmission:
				if cb.View.CallbackID == "done" {
					_ = sm.Ack(*evt.Request)
					return
				}
				vals := cb.View.State.Values
				got.add(func(s *seen) { s.system = vals["system"]["system_sel"].SelectedOption.Value })
				if len(vals["reason"]["reason_in"].Value) < 5 {
					_ = sm.Ack(*evt.Request, slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "Too short"}))
					return
				}
				_ = sm.Ack(*evt.Request, slack.NewUpdateViewSubmissionResponse(&slack.ModalViewRequest{
					Type: slack.VTModal, Title: plain("Done"), Submit: plain("OK"), CallbackID: "done",
					Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewSectionBlock(plain("Requested."), nil, nil)}}}))
			case slack.InteractionTypeViewClosed:
				got.add(func(s *seen) { s.closed++ })
				_ = sm.Ack(*evt.Request)
			case slack.InteractionTypeBlockSuggestion:
				_ = sm.Ack(*evt.Request, slack.OptionsResponse{Options: []*slack.OptionBlockObject{
					slack.NewOptionBlockObject("admin", plain("admin ("+cb.Value+")"), nil)}})
			case slack.InteractionTypeBlockActions:
				act := cb.ActionCallback.BlockActions[0]
				got.add(func(s *seen) { s.actions = append(s.actions, *act) })
				_ = sm.Ack(*evt.Request)
				if cb.Container.Type != "message" {
					return
				}
				done := slack.MsgOptionBlocks(slack.NewSectionBlock(plain("Decided: "+act.ActionID), nil, nil))
				var err error
				if act.ActionID == "approve" {
					_, _, _, err = (*api).UpdateMessage(cb.Channel.ID, cb.Message.Timestamp, done)
				} else {
					_, _, err = (*api).PostMessage("", slack.MsgOptionReplaceOriginal(cb.ResponseURL), done)
				}
				if err != nil {
					t.Errorf("replace message: %v", err)
				}
			}
		case socketmode.EventTypeEventsAPI:
			ev := evt.Data.(slackevents.EventsAPIEvent)
			if home, ok := ev.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); ok {
				_, err := (*api).PublishView(home.User, slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: []slack.Block{
					slack.NewSectionBlock(plain("Your grants"), nil, nil),
					slack.NewActionBlock("home_actions", slack.NewButtonBlockElement("refresh", "r", plain("Refresh"))),
				}}}, "")
				if err != nil {
					t.Errorf("PublishView: %v", err)
				}
			}
			_ = sm.Ack(*evt.Request)
		}
	}
}

func TestSocketModeEndToEnd(t *testing.T) {
	srv, _ := newTestServer(t)
	got := &seen{envs: map[string]int{}}
	var api *slack.Client
	api = startBot(t, srv, testBot(t, &api, got))
	ctx := testCtx(t)
	var viewID, approvalTS string

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"slash command opens a modal and replies ephemerally", func(t *testing.T) {
			ack, err := srv.SlashCommand(ctx, "U1", "/access", "prod-db")
			if err != nil {
				t.Fatal(err)
			}
			if ack.Text() != "Opening the request form" {
				t.Fatalf("ack = %s", ack.Payload)
			}
			if eph := srv.Ephemerals("U1"); len(eph) != 1 || eph[0].Text != "Opening the request form" {
				t.Fatalf("ephemerals = %+v", eph)
			}
			views := srv.OpenViews("U1")
			if len(views) != 1 || views[0].CallbackID != "access_request" || views[0].Title != "Request access" {
				t.Fatalf("open views = %+v", views)
			}
			viewID = views[0].ID
		}},
		{"required input left empty cannot be submitted", func(t *testing.T) {
			_, err := srv.SubmitView(ctx, "U1", viewID, Values{"system": {"system_sel": {Selected: "prod-db"}}})
			if !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("err = %v, want ErrNotAllowed", err)
			}
		}},
		{"block suggestion returns options", func(t *testing.T) {
			ack, err := srv.Suggest(ctx, "U1", viewID, "role_ext", "adm")
			if err != nil || !strings.Contains(string(ack.Payload), "admin (adm)") {
				t.Fatalf("suggest = %s, %v", ack.Payload, err)
			}
		}},
		{"response_action errors are stored on the view", func(t *testing.T) {
			ack, err := srv.SubmitView(ctx, "U1", viewID, Values{"system": {"system_sel": {Selected: "prod-db"}}, "reason": {"reason_in": {Text: "no"}}})
			if err != nil || ack.ResponseAction() != "errors" || ack.Errors()["reason"] != "Too short" {
				t.Fatalf("ack = %s, %v", ack.Payload, err)
			}
			v, _ := srv.View(viewID)
			if v.Errors["reason"] != "Too short" || len(srv.OpenViews("U1")) != 1 {
				t.Fatalf("view = %+v", v)
			}
		}},
		{"response_action update replaces the view", func(t *testing.T) {
			ack, err := srv.SubmitView(ctx, "U1", viewID, Values{"system": {"system_sel": {Selected: "prod-db"}}, "reason": {"reason_in": {Text: "incident 42"}}})
			if err != nil || ack.ResponseAction() != "update" {
				t.Fatalf("ack = %s, %v", ack.Payload, err)
			}
			v, _ := srv.View(viewID)
			if v.Title != "Done" || v.CallbackID != "done" || v.PlainText() != "Done\nRequested." {
				t.Fatalf("view = %+v %q", v, v.PlainText())
			}
			got.add(func(s *seen) {
				if s.system != "prod-db" {
					t.Errorf("bot saw system %q", s.system)
				}
			})
		}},
		{"empty ack closes the modal", func(t *testing.T) {
			if _, err := srv.SubmitView(ctx, "U1", viewID, nil); err != nil {
				t.Fatal(err)
			}
			if n := len(srv.OpenViews("U1")); n != 0 {
				t.Fatalf("%d views still open", n)
			}
		}},
		{"close with notify_on_close sends view_closed", func(t *testing.T) {
			if _, err := srv.SlashCommand(ctx, "U1", "/access", ""); err != nil {
				t.Fatal(err)
			}
			v := srv.OpenViews("U1")[0]
			if _, err := srv.CloseView(ctx, "U1", v.ID); err != nil {
				t.Fatal(err)
			}
			got.add(func(s *seen) {
				if s.closed != 1 {
					t.Errorf("view_closed seen %d times", s.closed)
				}
			})
			if len(srv.OpenViews("U1")) != 0 {
				t.Fatal("modal still open")
			}
		}},
		{"button click in a DM; the bot removes the buttons", func(t *testing.T) {
			_, ts, err := api.PostMessage("U2", slack.MsgOptionText("Access request #42", false), slack.MsgOptionBlocks(
				slack.NewSectionBlock(plain("alice wants prod-db"), nil, nil),
				slack.NewActionBlock("req_42",
					slack.NewButtonBlockElement("approve", "42", plain("Approve")).WithStyle(slack.StylePrimary),
					slack.NewButtonBlockElement("deny", "42", plain("Deny")).WithStyle(slack.StyleDanger))))
			if err != nil {
				t.Fatal(err)
			}
			approvalTS = ts
			if b := srv.Messages("U2")[0].Buttons(); len(b) != 2 || b[0].Text != "Approve" || b[0].Value != "42" {
				t.Fatalf("buttons = %+v", b)
			}
			if _, err := srv.ClickButton(ctx, "U2", "U2", ts, "approve"); err != nil {
				t.Fatal(err)
			}
			if err := srv.WaitFor(ctx, func(s *Server) bool {
				m, _ := s.Message("U2", ts)
				return len(m.Buttons()) == 0
			}); err != nil {
				t.Fatal(err)
			}
			got.add(func(s *seen) {
				a := s.actions[len(s.actions)-1]
				if a.ActionID != "approve" || a.BlockID != "req_42" || a.Value != "42" || a.Text.Text != "Approve" {
					t.Errorf("bot saw action %+v", a)
				}
			})
		}},
		{"a removed button cannot be clicked", func(t *testing.T) {
			if _, err := srv.ClickButton(ctx, "U2", "U2", approvalTS, "approve"); !errors.Is(err, ErrNoSuchButton) {
				t.Fatalf("err = %v, want ErrNoSuchButton", err)
			}
		}},
		{"response_url replace_original", func(t *testing.T) {
			_, ts, err := api.PostMessage("U2", slack.MsgOptionText("req 43", false), slack.MsgOptionBlocks(
				slack.NewActionBlock("req_43", slack.NewButtonBlockElement("deny", "43", plain("Deny")))))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.ClickButton(ctx, "U2", "U2", ts, "deny"); err != nil {
				t.Fatal(err)
			}
			if err := srv.WaitFor(ctx, func(s *Server) bool { return len(s.ResponseURLPosts()) == 1 }); err != nil {
				t.Fatal(err)
			}
			m, _ := srv.Message("U2", ts)
			if p := srv.ResponseURLPosts()[0]; !p.ReplaceOriginal || m.PlainText() != "Decided: deny" {
				t.Fatalf("post = %+v, message = %q", p, m.PlainText())
			}
		}},
		{"app_home_opened; the bot publishes Home; a Home button is clickable", func(t *testing.T) {
			if _, err := srv.OpenHome(ctx, "U1"); err != nil {
				t.Fatal(err)
			}
			home := srv.Home("U1")
			if home == nil || home.PlainText() != "Your grants\n[Refresh]" {
				t.Fatalf("home = %+v", home)
			}
			if _, err := srv.ClickViewButton(ctx, "U1", home.ID, "refresh"); err != nil {
				t.Fatal(err)
			}
			got.add(func(s *seen) {
				if a := s.actions[len(s.actions)-1]; a.ActionID != "refresh" {
					t.Errorf("bot saw %+v", a)
				}
			})
		}},
		{"redelivered duplicate keeps its envelope_id", func(t *testing.T) {
			ack, err := srv.SlashCommand(ctx, "U1", "/access", "noop")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := srv.Redeliver(ctx, ack.EnvelopeID); err != nil {
				t.Fatal(err)
			}
			got.add(func(s *seen) {
				if s.envs[ack.EnvelopeID] != 2 {
					t.Errorf("envelope seen %d times", s.envs[ack.EnvelopeID])
				}
			})
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			t.FailNow()
		}
	}
}

func TestUnackedEventIsRedelivered(t *testing.T) {
	srv, _ := newTestServer(t)
	startBot(t, srv, func(sm *socketmode.Client, evt socketmode.Event) {
		// The first delivery is "lost" by the bot; the retry is acked.
		if evt.Type == socketmode.EventTypeEventsAPI && evt.Request.RetryAttempt >= 1 {
			_ = sm.Ack(*evt.Request)
		}
	})
	ctx := testCtx(t)
	if _, err := srv.OpenHome(ctx, "U1"); !errors.Is(err, ErrNoAck) {
		t.Fatalf("err = %v, want ErrNoAck", err)
	}
	if err := srv.WaitFor(ctx, func(s *Server) bool {
		d := s.Deliveries()
		return len(d) == 2 && d[1].Acked
	}); err != nil {
		t.Fatalf("%v; deliveries = %+v", err, srv.Deliveries())
	}
	d := srv.Deliveries()
	tests := []struct {
		name string
		ok   bool
	}{
		{"first attempt unacked", d[0].RetryAttempt == 0 && !d[0].Acked},
		{"retry_attempt 1, reason timeout", d[1].RetryAttempt == 1 && d[1].RetryReason == "timeout"},
		{"same event_id", d[0].EventID != "" && d[0].EventID == d[1].EventID},
		{"new envelope_id", d[0].EnvelopeID != d[1].EnvelopeID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fatalf("deliveries = %+v", d)
			}
		})
	}
}

func TestClientReconnects(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*Server)
	}{
		{"disconnect refresh_requested", func(s *Server) { s.Disconnect("refresh_requested") }},
		{"socket dropped", func(s *Server) { s.DropConnections() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t)
			startBot(t, srv, func(sm *socketmode.Client, evt socketmode.Event) {
				if evt.Type == socketmode.EventTypeSlashCommand {
					_ = sm.Ack(*evt.Request, map[string]any{"text": "pong"})
				}
			})
			ctx := testCtx(t)
			opens, connects := srv.Calls("apps.connections.open"), srv.Connects()
			tc.breakIt(srv)
			if err := srv.WaitFor(ctx, func(s *Server) bool {
				return s.Calls("apps.connections.open") > opens && s.Connects() > connects && s.Connected() == 1
			}); err != nil {
				t.Fatal(err)
			}
			ack, err := srv.SlashCommand(ctx, "U1", "/ping", "")
			if err != nil || ack.Text() != "pong" {
				t.Fatalf("after reconnect: %s, %v", ack.Payload, err)
			}
		})
	}
}

func TestTriggerIDs(t *testing.T) {
	srv, clock := newTestServer(t)
	var api *slack.Client
	got := &seen{envs: map[string]int{}}
	api = startBot(t, srv, testBot(t, &api, got))
	ctx := testCtx(t)
	trigger := func() string {
		if _, err := srv.SlashCommand(ctx, "U1", "/access", "noop"); err != nil {
			t.Fatal(err)
		}
		got.mu.Lock()
		defer got.mu.Unlock()
		return got.triggers[len(got.triggers)-1]
	}
	fresh, old := trigger(), trigger()
	clock.Advance(DefaultTriggerTTL + 1)
	expired := old
	fresh2 := trigger()
	_ = fresh
	tests := []struct {
		name    string
		trigger string
		want    string
	}{
		{"fresh trigger opens", fresh2, ""},
		{"reused trigger", fresh2, "exchanged_trigger_id"},
		{"expired trigger", expired, "expired_trigger_id"},
		{"unknown trigger", "123.456.abc", "invalid_trigger_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.OpenView(tc.trigger, requestModal())
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestViewStackAndHashes(t *testing.T) {
	srv, _ := newTestServer(t)
	api := newAPI(srv)
	srv.mu.Lock()
	t1, t2 := srv.newTriggerLocked("U1"), srv.newTriggerLocked("U1")
	srv.mu.Unlock()
	modal := requestModal()
	modal.ExternalID = "req-1"
	opened, err := api.OpenView(t1, modal)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := api.PushView(t2, slack.ModalViewRequest{Type: slack.VTModal, Title: plain("Deny reason")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"push stacks the view", func(t *testing.T) {
			views := srv.OpenViews("U1")
			if len(views) != 2 || views[1].ID != pushed.ID || views[1].RootViewID != opened.ID || views[1].PreviousViewID != opened.ID {
				t.Fatalf("stack = %+v", views)
			}
		}},
		{"update by external_id with current hash", func(t *testing.T) {
			m := requestModal()
			m.Title = plain("Request (2)")
			v, err := api.UpdateView(m, "req-1", opened.Hash, "")
			if err != nil || v.ID != opened.ID || v.Hash == opened.Hash {
				t.Fatalf("update = %+v, %v", v, err)
			}
		}},
		{"stale hash conflicts", func(t *testing.T) {
			if _, err := api.UpdateView(requestModal(), "", opened.Hash, opened.ID); err == nil || err.Error() != "hash_conflict" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"unknown view", func(t *testing.T) {
			if _, err := api.UpdateView(requestModal(), "", "", "V404"); err == nil || err.Error() != "not_found" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"only the top view can be submitted", func(t *testing.T) {
			if _, err := srv.SubmitView(testCtx(t), "U1", opened.ID, nil); !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("err = %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestSeveralConnections: an app holding several sockets (one per replica)
// gets each envelope on exactly one of them, spread over all; an events_api
// envelope one socket does not acknowledge is redelivered on another; and
// Posts keeps each message as it was posted.
func TestSeveralConnections(t *testing.T) {
	srv, _ := newTestServer(t)
	bot := func(name string, ackEvents bool) func(*socketmode.Client, socketmode.Event) {
		return func(sm *socketmode.Client, evt socketmode.Event) {
			switch evt.Type {
			case socketmode.EventTypeSlashCommand:
				_ = sm.Ack(*evt.Request, map[string]any{"text": name})
			case socketmode.EventTypeEventsAPI:
				if ackEvents {
					_ = sm.Ack(*evt.Request)
				}
			}
		}
	}
	api := startBot(t, srv, bot("a", false)) // connection 1 never acks events
	startBot(t, srv, bot("b", true))
	ctx := testCtx(t)
	if err := srv.WaitFor(ctx, func(s *Server) bool { return s.Connected() == 2 }); err != nil {
		t.Fatal(err)
	}
	answered := map[string]int{}
	for range 6 {
		ack, err := srv.SlashCommand(ctx, "U1", "/ping", "")
		if err != nil {
			t.Fatal(err)
		}
		answered[ack.Text()]++
	}
	byConn := map[int]int{}
	seen := map[string]bool{}
	for _, d := range srv.Deliveries() {
		if seen[d.EnvelopeID] {
			t.Errorf("envelope %s delivered twice", d.EnvelopeID)
		}
		seen[d.EnvelopeID] = true
		byConn[d.Conn]++
	}
	if answered["a"] != 3 || answered["b"] != 3 || byConn[1] != 3 || byConn[2] != 3 {
		t.Fatalf("answered by %v, delivered on %v: want 3 and 3", answered, byConn)
	}

	// Home opens until one lands on connection 1, which drops it: the
	// retry must come on connection 2 and be acked there.
	var first Delivery
	for first.Conn != 1 {
		n := len(srv.Deliveries())
		_, err := srv.OpenHome(ctx, "U1")
		first = srv.Deliveries()[n]
		if (err == nil) != (first.Conn == 2) {
			t.Fatalf("OpenHome on connection %d: %v", first.Conn, err)
		}
	}
	var retry Delivery
	if err := srv.WaitFor(ctx, func(s *Server) bool {
		for _, d := range s.Deliveries() {
			if d.EventID == first.EventID && d.RetryAttempt == 1 && d.Acked {
				retry = d
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("%v; deliveries = %+v", err, srv.Deliveries())
	}
	if retry.Conn != 2 {
		t.Errorf("retry went to connection %d, want the other one (2)", retry.Conn)
	}

	_, ts, err := api.PostMessage("U2", slack.MsgOptionText("Approve REQ-1?", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage("U2", ts, slack.MsgOptionText("Approved", false)); err != nil {
		t.Fatal(err)
	}
	if p := srv.Posts(); len(p) != 1 || p[0].Text != "Approve REQ-1?" || p[0].TS != ts {
		t.Errorf("Posts = %+v, want the one message as posted", p)
	}

	srv.DropConnections()
	if err := srv.WaitFor(ctx, func(s *Server) bool {
		c := s.Connections()
		return len(c) >= 2 && !c[0].Closed.IsZero() && !c[1].Closed.IsZero()
	}); err != nil {
		t.Fatalf("%v: %+v", err, srv.Connections())
	}
	if c := srv.Connections(); c[0].ID != 1 || c[1].ID != 2 || c[0].Opened.IsZero() {
		t.Errorf("Connections = %+v", c)
	}
}
