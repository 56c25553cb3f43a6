package bot_test

import (
	"context"
	"encoding/csv"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/bot"
	"keycard/handlers"
	"keycard/internal/fakeclock"
	"keycard/internal/fixture"
	"keycard/internal/idptest"
	"keycard/internal/server"
	"keycard/internal/slackemu"
	"keycard/policy"
	"keycard/store"
)

// The e2e tests boot the lab's policy file, fixture.LabPolicy: a static
// connector "lab" holding fixture.Lab's people and groups, prod-db-admin
// (manager, then security-team) and grafana-viewer (auto), the auditors and
// admins groups and the #security-alerts channel.

// Slack users of the e2e workspace.
const (
	uAnn    = "U0ANN"
	uBob    = "U0BOB"
	uCarol  = "U0CAROL"
	uDave   = "U0DAVE"
	uErin   = "U0ERIN"
	uFrank  = "U0FRANK"
	uGus    = "U0GUS"
	uNoMail = "U0NOMAIL"
	uHank   = "U0HANK"
	uIvy    = "U0IVY"
)

// workspace is the e2e tests' Slack workspace: everyone of the policies'
// directories (hank and ivy, reviewPolicy's contractors, too), and
// nomail, a Slack user without an email.
var workspace = slackUsers(fixture.Lab().With(fixture.Hank, fixture.Ivy), slackemu.User{ID: uNoMail, Name: "nomail", RealName: "No Mail"})

// slackUsers are org's people as Slack users, then more.
func slackUsers(org fixture.Org, more ...slackemu.User) []slackemu.User {
	var us []slackemu.User
	for _, p := range org.People {
		us = append(us, slackemu.User{ID: p.SlackID, Name: p.Key, RealName: p.Name, Email: p.Email, TZ: p.TZ})
	}
	return append(us, more...)
}

// workspaceChannels are the channels the policies name.
var workspaceChannels = []string{"security-alerts", "security-reviews", "compliance"}

// newClock starts at the e2e tests' moment, Monday 2026-03-02 09:00 UTC.
func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) }

// env is one running keycard, booted through internal/server as keycard
// serve boots it — real store, connectors, handlers, the real bot over the
// real slack-go client — against the Slack emulator. The server runs
// Manual: no background loop, the test calls Tick, RunOutbox, ReviewTick
// at its fake clock's now.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *fakeclock.Clock
	emu   *slackemu.Server
	chans map[string]string // channel name -> id
	cfg   server.Config
	deps  server.Deps
	// Of the running server (start replaces them):
	db   *store.DB
	svc  *handlers.Service
	bot  *bot.Bot
	set  *policy.Set
	stop func() error // stops Run and closes the server, once
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil, 0) }

// newEnvWith lets a test wrap the Core the bot sees and set its submit budget.
func newEnvWith(t *testing.T, wrap func(*handlers.Service) bot.Core, budget time.Duration) *env {
	return boot(t, world{policy: fixture.LabPolicy().String(), wrap: wrap, budget: budget})
}

// world is what one e2e test boots in the workspace: the policy, and
// optionally a Core wrapper and the submit budget, or a live IdP.
type world struct {
	policy string
	wrap   func(*handlers.Service) bot.Core
	budget time.Duration
	// idp, when set, is the identity provider the policy's connector
	// "idp" reaches through its real client (internal/idptest); else the
	// policy's static directory "lab".
	idp *idptest.World
	// clock, when set, is shared with the IdP emulator; else a new one.
	clock *fakeclock.Clock
}

// boot writes the policy file and starts keycard on it, as keycard serve
// starts, against a fresh Slack emulator holding the workspace.
//
// keycard's clock is the fake clock with real-speed timers
// (fakeclock.RealTimers): the test moves the domain's time by hand, while
// the bot's waits — the notifier's 50 ms poll, Slack's Retry-After and the
// retry backoff the fault tests inject, the submit budget — pass as in
// production without the clock moving (nothing else waits on the clock in
// Manual mode: the connectors' own waits are real timers).
func boot(t *testing.T, w world) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	clock := w.clock
	if clock == nil {
		clock = newClock()
	}
	emu := slackemu.New(slackemu.Options{Logf: t.Logf})
	t.Cleanup(emu.Close)
	for _, u := range workspace {
		emu.AddUser(u)
	}
	chans := map[string]string{}
	for _, ch := range workspaceChannels {
		chans[ch] = emu.AddChannel(ch)
	}
	var cfg server.Config
	if w.idp != nil {
		// As serve reads them: the connector's own variables.
		for k, v := range w.idp.Env {
			t.Setenv(k, v)
		}
		var err error
		if cfg, err = server.LoadConfig(); err != nil {
			t.Fatal(err)
		}
		cfg.IdPHTTPClient = w.idp.HTTPClient
	}
	dir := t.TempDir()
	cfg.Policy, cfg.DB = filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "keycard.db")
	if err := os.WriteFile(cfg.Policy, []byte(w.policy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.SlackBotToken, cfg.SlackAppToken, cfg.SlackAPIURL = slackemu.DefaultBotToken, slackemu.DefaultAppToken, emu.APIURL()
	cfg.DatabaseURL, cfg.HTTPAddr, cfg.BackupDir = "", "", "" // the bbolt file; no ops listener, no backups
	e := &env{t: t, ctx: ctx, clock: clock, emu: emu, chans: chans, cfg: cfg,
		deps: server.Deps{Clock: clock.RealTimers(), Manual: true, NoSync: true, Core: w.wrap,
			ExportDir: t.TempDir(), SubmitBudget: w.budget, NotifyEvery: 50 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))}}
	e.start()
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	return e
}

// start boots the server on e's configuration and waits for its socket.
func (e *env) start() {
	e.t.Helper()
	srv, err := server.New(e.cfg, e.deps)
	if err != nil {
		e.t.Fatal(err)
	}
	before := e.emu.Connects()
	runCtx, stopRun := context.WithCancel(e.ctx)
	exited := make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = srv.Run(runCtx)
	}()
	var once sync.Once
	var stopErr error
	e.stop = func() error {
		once.Do(func() {
			stopRun()
			<-exited
			stopErr = runErr
			if err := srv.Close(); stopErr == nil {
				stopErr = err
			}
		})
		return stopErr
	}
	e.db, e.svc, e.bot, e.set = srv.Bolt(), srv.Service(), srv.Bot(), srv.Service().Policy()
	e.waitFor("the bot's socket", func(s *slackemu.Server) bool {
		select {
		case <-exited:
			return true
		default:
			return s.Connects() > before && s.Connected() > 0
		}
	})
	select {
	case <-exited:
		e.t.Fatalf("server.Run ended at start: %v", e.stop())
	default:
	}
}

// restart stops keycard and starts it again on the same database and
// policy file, as a process restart would; the Slack workspace stays.
func (e *env) restart() {
	e.t.Helper()
	if err := e.stop(); err != nil {
		e.t.Fatalf("server.Run: %v", err)
	}
	e.start()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor waits (without sleeping) until cond holds in the emulator.
func (e *env) waitFor(what string, cond func(*slackemu.Server) bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
	defer cancel()
	if err := e.emu.WaitFor(ctx, cond); err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// findDM returns the latest message in user's DM whose text contains s.
func findDM(s *slackemu.Server, user, sub string) (slackemu.Message, bool) {
	msgs := s.Messages(s.DMChannel(user))
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.Contains(msgs[i].PlainText(), sub) {
			return msgs[i], true
		}
	}
	return slackemu.Message{}, false
}

func hasButton(m slackemu.Message, actionID string) bool {
	for _, b := range m.Buttons() {
		if b.ActionID == actionID {
			return true
		}
	}
	return false
}

// approvalDM waits for user's approval DM with buttons and returns it.
func (e *env) approvalDM(user string) slackemu.Message {
	e.t.Helper()
	var m slackemu.Message
	e.waitFor(user+"'s approval DM", func(s *slackemu.Server) bool {
		msgs := s.Messages(s.DMChannel(user))
		for i := len(msgs) - 1; i >= 0; i-- {
			if hasButton(msgs[i], "keycard_approve") {
				m = msgs[i]
				return true
			}
		}
		return false
	})
	return m
}

// openForm runs /access and waits for the filled request modal.
func (e *env) openForm(user string) slackemu.View {
	e.t.Helper()
	if _, err := e.emu.SlashCommand(e.ctx, user, "/access", ""); err != nil {
		e.t.Fatal(err)
	}
	var v slackemu.View
	e.waitFor("the request modal", func(s *slackemu.Server) bool {
		views := s.OpenViews(user)
		if len(views) == 0 {
			return false
		}
		v = views[len(views)-1]
		return v.CallbackID == "keycard_request" || strings.Contains(string(v.Blocks), "nothing you can request") ||
			strings.Contains(string(v.Blocks), "no email")
	})
	return v
}

func requestValues(pol, dur, why string) slackemu.Values {
	v := slackemu.Values{
		"role":          {"keycard_role": {Selected: pol}},
		"justification": {"keycard_justification": {Text: why}},
	}
	if dur != "" {
		v["duration:"+pol] = map[string]slackemu.Value{"keycard_duration": {Selected: dur}}
	}
	return v
}

// pickRole chooses pol in the open request modal, as a person would, and
// waits for the modal to show that role's durations.
func (e *env) pickRole(user string, v slackemu.View, pol string) slackemu.View {
	e.t.Helper()
	if strings.Contains(string(v.Blocks), `"duration:`+pol+`"`) || !strings.Contains(string(v.Blocks), `"value":"`+pol+`"`) {
		return v
	}
	if _, err := e.emu.SelectOption(e.ctx, user, v.ID, "keycard_role", pol); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor("the modal for "+pol, func(s *slackemu.Server) bool {
		got, ok := s.View(v.ID)
		if ok && strings.Contains(string(got.Blocks), `"duration:`+pol+`"`) {
			v = got
			return true
		}
		return false
	})
	return v
}

// submit requests pol for user and returns the new request (from the store).
func (e *env) submit(user, pol, dur, why string) access.Request {
	e.t.Helper()
	v := e.pickRole(user, e.openForm(user), pol)
	ack, err := e.emu.SubmitView(e.ctx, user, v.ID, requestValues(pol, dur, why))
	if err != nil {
		e.t.Fatal(err)
	}
	if errs := ack.Errors(); len(errs) > 0 {
		e.t.Fatalf("submission refused: %v", errs)
	}
	email := map[string]string{uAnn: "ann@example.com", uCarol: "carol@example.com", uErin: "erin@example.com"}[user]
	mine, err := e.svc.Mine(email)
	if err != nil || len(mine) == 0 {
		e.t.Fatalf("no request stored: %v", err)
	}
	return mine[0]
}

func (e *env) click(user string, m slackemu.Message, actionID string) slackemu.Ack {
	e.t.Helper()
	ack, err := e.emu.ClickButton(e.ctx, user, m.Channel, m.TS, actionID)
	if err != nil {
		e.t.Fatalf("%s clicks %s: %v", user, actionID, err)
	}
	return ack
}

// provision runs the provisioning worker and the scheduler once.
func (e *env) provision() {
	e.t.Helper()
	if _, err := e.svc.Tick(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.RunOutbox(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) state(id string) access.State {
	e.t.Helper()
	r, err := e.svc.Get(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.State
}

func (e *env) events(typ access.EventType) []access.Event {
	var out []access.Event
	_ = e.svc.Events(0, func(ev access.Event) error {
		if ev.Type == typ {
			out = append(out, ev)
		}
		return nil
	})
	return out
}

func ephemeralContains(s *slackemu.Server, user, sub string) bool {
	for _, m := range s.Ephemerals(user) {
		if strings.Contains(m.PlainText(), sub) || strings.Contains(m.Text, sub) {
			return true
		}
	}
	return false
}

func TestE2ELifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.submit(uAnn, "prod-db-admin", "4h", "INC-42 database failover")
	if r.State != access.StatePending {
		t.Fatalf("state %s", r.State)
	}
	e.waitFor("ann's submitted notice", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "was submitted"); return ok })

	// Step 1: Bob, Ann's manager.
	m := e.approvalDM(uBob)
	for _, want := range []string{"Ann Lee", "Production Database", "4h", "INC-42", "1 of 2", "Engineering", "Bob Stone"} {
		if !strings.Contains(m.PlainText(), want) {
			t.Errorf("approval DM lacks %q:\n%s", want, m.PlainText())
		}
	}
	e.click(uBob, m, "keycard_approve")
	e.waitFor("bob's DM updated without buttons", func(s *slackemu.Server) bool {
		got, ok := s.Message(m.Channel, m.TS)
		return ok && !hasButton(got, "keycard_approve") && strings.Contains(got.PlainText(), "Approved by")
	})
	// Step 2: any of the security team.
	mc := e.approvalDM(uCarol)
	md := e.approvalDM(uDave)
	e.waitFor("ann told step 1 approved", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "Step 1 of 2"); return ok })
	e.click(uCarol, mc, "keycard_approve")
	e.waitFor("dave's step-2 DM closed", func(s *slackemu.Server) bool {
		got, ok := s.Message(md.Channel, md.TS)
		return ok && !hasButton(got, "keycard_approve") && strings.Contains(got.PlainText(), "Approved by")
	})
	if st := e.state(r.ID); st != access.StateProvisioning {
		t.Fatalf("after two approvals: %s", st)
	}
	e.provision()
	if st := e.state(r.ID); st != access.StateActive {
		t.Fatalf("after provisioning: %s", st)
	}
	e.waitFor("ann told access is active", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uAnn, "You now have")
		return ok && strings.Contains(m.PlainText(), "CET") // Ann's own time zone (Europe/Berlin)
	})
	e.waitFor("ann's App Home shows the grant", func(s *slackemu.Server) bool {
		h := s.Home(uAnn)
		return h != nil && strings.Contains(string(h.Blocks), r.ID) && strings.Contains(string(h.Blocks), "keycard_give_up")
	})

	// Expiry: the warning, then the end.
	e.clock.Advance(3*time.Hour + 50*time.Minute)
	e.provision()
	e.waitFor("expiring-soon notice with Extend", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uAnn, "ends")
		return ok && hasButton(m, "keycard_extend")
	})
	e.clock.Advance(15 * time.Minute)
	e.provision()
	e.provision()
	if st := e.state(r.ID); st != access.StateExpired {
		t.Fatalf("after expiry: %s", st)
	}
	e.waitFor("ann told access ended", func(s *slackemu.Server) bool { _, ok := findDM(s, uAnn, "it expired"); return ok })

	// The auditor exports; the CSV arrives in her DM.
	f, rows := e.exportCSV("", "access")
	if f.Channel != e.emu.DMChannel(uErin) {
		t.Errorf("export went to %s, want erin's DM", f.Channel)
	}
	if len(rows) != 2 || rows[1][0] != r.ID || rows[1][17] != "expired" || !strings.Contains(rows[1][10], "carol@example.com") {
		t.Fatalf("export rows: %q", rows)
	}
	if !strings.Contains(f.InitialComment, "Rows: 1") || !strings.Contains(f.InitialComment, "Audit chain head") {
		t.Errorf("summary: %s", f.InitialComment)
	}
	if len(e.events(access.EvExportCreated)) != 1 {
		t.Error("export not audited")
	}
}

func TestE2EDenyWithReason(t *testing.T) {
	e := newEnv(t)
	r := e.submit(uAnn, "prod-db-admin", "2h", "schema migration")
	m := e.approvalDM(uBob)
	e.click(uBob, m, "keycard_deny")
	var v slackemu.View
	e.waitFor("deny modal", func(s *slackemu.Server) bool {
		views := s.OpenViews(uBob)
		if len(views) == 0 {
			return false
		}
		v = views[len(views)-1]
		return v.CallbackID == "keycard_deny"
	})
	ack, err := e.emu.SubmitView(e.ctx, uBob, v.ID, slackemu.Values{"reason": {"keycard_deny_reason": {Text: "Use the read-only role"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.Errors()) > 0 {
		t.Fatalf("deny refused: %v", ack.Errors())
	}
	if st := e.state(r.ID); st != access.StateDenied {
		t.Fatalf("state %s", st)
	}
	e.waitFor("ann told of the denial and the reason", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uAnn, "was denied")
		return ok && strings.Contains(m.PlainText(), "Use the read-only role")
	})
	e.waitFor("bob's DM shows the denial", func(s *slackemu.Server) bool {
		got, ok := s.Message(m.Channel, m.TS)
		return ok && !hasButton(got, "keycard_approve") && strings.Contains(got.PlainText(), "Denied by")
	})
}

func TestE2EWrongPersonAndDoubleClick(t *testing.T) {
	e := newEnv(t)
	r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
	m := e.approvalDM(uBob)

	t.Run("wrong person", func(t *testing.T) {
		// Frank is an admin but not Ann's manager: his click changes nothing.
		e.click(uFrank, m, "keycard_approve")
		e.waitFor("frank's ephemeral explanation", func(s *slackemu.Server) bool {
			return ephemeralContains(s, uFrank, "not an approver")
		})
		got, _ := e.svc.Get(r.ID)
		if got.State != access.StatePending || got.Current != 0 {
			t.Fatalf("a wrong click changed the request: %s step %d", got.State, got.Current)
		}
		if len(e.events(access.EvDecisionRefused)) != 1 {
			t.Error("refused click not audited")
		}
	})
	t.Run("double click", func(t *testing.T) {
		e.click(uBob, m, "keycard_approve")
		if _, err := e.emu.ClickButton(e.ctx, uBob, m.Channel, m.TS, "keycard_approve"); err != nil && !errors.Is(err, slackemu.ErrNoSuchButton) {
			t.Fatal(err)
		}
		e.approvalDM(uCarol)
		if n := len(e.events(access.EvStepApproved)); n != 1 {
			t.Fatalf("%d step approvals, want 1", n)
		}
		got, _ := e.svc.Get(r.ID)
		if got.Current != 1 || got.Steps[0].DecidedBy.Email != "bob@example.com" {
			t.Fatalf("request after double click: step %d %+v", got.Current, got.Steps[0])
		}
	})
}

func TestE2ERedeliveredEnvelope(t *testing.T) {
	e := newEnv(t)
	r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
	m := e.approvalDM(uBob)
	e.click(uBob, m, "keycard_approve")
	var envID string
	for _, d := range e.emu.Deliveries() {
		if d.Type == "interactive" && strings.Contains(string(d.Payload), "keycard_approve") {
			envID = d.EnvelopeID
		}
	}
	if envID == "" {
		t.Fatal("no approve envelope recorded")
	}
	if _, err := e.emu.Redeliver(e.ctx, envID); err != nil {
		t.Fatal(err)
	}
	e.approvalDM(uCarol)
	if n := len(e.events(access.EvStepApproved)); n != 1 {
		t.Fatalf("%d step approvals after redelivery, want 1", n)
	}
	if n := len(e.events(access.EvDecisionRefused)); n != 0 {
		t.Fatalf("redelivery reached Decide (%d refusals)", n)
	}
	_ = r
}

func TestE2EReconnect(t *testing.T) {
	e := newEnv(t)
	r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
	m := e.approvalDM(uBob)
	before := e.emu.Connects()
	e.emu.Disconnect("refresh_requested")
	e.waitFor("a new socket", func(s *slackemu.Server) bool { return s.Connects() > before && s.Connected() > 0 })
	e.click(uBob, m, "keycard_approve")
	e.approvalDM(uCarol)
	if st := e.state(r.ID); st != access.StatePending {
		t.Fatalf("state %s", st)
	}
	got, _ := e.svc.Get(r.ID)
	if got.Current != 1 {
		t.Fatalf("step %d after reconnect, want 1", got.Current)
	}
}

func TestE2EModalRefusals(t *testing.T) {
	e := newEnv(t)
	t.Run("missing justification", func(t *testing.T) {
		v := e.pickRole(uAnn, e.openForm(uAnn), "prod-db-admin")
		defer func() { _, _ = e.emu.CloseView(e.ctx, uAnn, v.ID) }()
		// Slack's client refuses an empty required input itself; blanks pass it.
		ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, requestValues("prod-db-admin", "4h", "   "))
		if err != nil {
			t.Fatal(err)
		}
		if got := ack.Errors()["justification"]; !strings.Contains(got, "justification is required") {
			t.Fatalf("errors %v", ack.Errors())
		}
	})
	t.Run("policy tightened while the modal was open", func(t *testing.T) {
		v := e.pickRole(uAnn, e.openForm(uAnn), "prod-db-admin")
		tightened := fixture.LabPolicy().Replace("duration: {default: 4h, max: 8h}", "duration: {default: 2h, max: 4h}").
			Replace("eligible: [engineers]", "eligible: [sre]").String()
		if _, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(tightened)) }, "test"); err != nil {
			t.Fatal(err)
		}
		cases := []struct{ name, dur, block, want string }{
			{"over max", "8h", "duration:prod-db-admin", "at most 4h"},
			{"not eligible", "2h", "role", "not eligible"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, requestValues("prod-db-admin", c.dur, "incident"))
				if err != nil {
					t.Fatal(err)
				}
				if got := ack.Errors()[c.block]; !strings.Contains(got, c.want) {
					t.Fatalf("errors %v, want %q on %s", ack.Errors(), c.want, c.block)
				}
			})
		}
		_, _ = e.emu.CloseView(e.ctx, uAnn, v.ID)
		if len(e.events(access.EvRequestRefused)) == 0 {
			t.Error("refusal not audited")
		}
	})
	t.Run("already active", func(t *testing.T) {
		r := e.submit(uAnn, "grafana-viewer", "30d", "")
		e.provision()
		if st := e.state(r.ID); st != access.StateActive {
			t.Fatalf("auto grant %s", st)
		}
		v := e.pickRole(uAnn, e.openForm(uAnn), "grafana-viewer")
		ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, requestValues("grafana-viewer", "30d", ""))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ack.Errors()["role"], "already hold") {
			t.Fatalf("errors %v", ack.Errors())
		}
	})
	t.Run("ineligible user sees no roles", func(t *testing.T) {
		v := e.openForm(uGus)
		if v.Submit != "" || !strings.Contains(string(v.Blocks), "nothing you can request") {
			t.Fatalf("gus's modal: submit=%q %s", v.Submit, v.Blocks)
		}
	})
	t.Run("no email", func(t *testing.T) {
		v := e.openForm(uNoMail)
		if !strings.Contains(string(v.Blocks), "no email") {
			t.Fatalf("modal: %s", v.Blocks)
		}
	})
}

func TestE2EExportRefused(t *testing.T) {
	e := newEnv(t)
	if _, err := e.emu.SlashCommand(e.ctx, uAnn, "/export", ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor("ann's refusal", func(s *slackemu.Server) bool { return ephemeralContains(s, uAnn, "Only auditors") })
	if len(e.emu.Files()) != 0 {
		t.Fatal("a file was uploaded for a non-auditor")
	}
	if len(e.events(access.EvExportRefused)) != 1 {
		t.Fatal("refusal not audited")
	}
}

func TestE2ECommands(t *testing.T) {
	e := newEnv(t)
	defer func() {
		// The commands were acked, so the socket is up: /readyz must say so.
		if !e.bot.Connected() {
			t.Error("bot.Connected() is false on a working socket")
		}
	}()
	cases := []struct {
		name, text, want string
	}{
		{"help", "help", "/access list"},
		{"unknown", "frobnicate", "Unknown subcommand"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ack, err := e.emu.SlashCommand(e.ctx, uAnn, "/access", c.text)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(ack.Payload), c.want) {
				t.Fatalf("ack %s", ack.Payload)
			}
		})
	}
	t.Run("list", func(t *testing.T) {
		r := e.submit(uAnn, "prod-db-admin", "4h", "incident")
		if _, err := e.emu.SlashCommand(e.ctx, uAnn, "/access", "list"); err != nil {
			t.Fatal(err)
		}
		e.waitFor("list", func(s *slackemu.Server) bool { return ephemeralContains(s, uAnn, r.ID) })
	})
}

// slowCore holds Submit until release is closed: an identity provider
// slower than the submit budget.
type slowCore struct {
	*handlers.Service
	release chan struct{}
}

func (c slowCore) Submit(ctx context.Context, in handlers.SubmitInput) (access.Request, error) {
	<-c.release
	return c.Service.Submit(ctx, in)
}

func TestE2ESlowSubmit(t *testing.T) {
	release := make(chan struct{})
	e := newEnvWith(t, func(s *handlers.Service) bot.Core { return slowCore{s, release} }, time.Millisecond)
	v := e.pickRole(uAnn, e.openForm(uAnn), "prod-db-admin")
	ack, err := e.emu.SubmitView(e.ctx, uAnn, v.ID, requestValues("prod-db-admin", "4h", "incident"))
	if err != nil {
		t.Fatal(err)
	}
	if ack.ResponseAction() != "update" || !strings.Contains(string(ack.View()), "One moment") {
		t.Fatalf("ack %s, want an update to the waiting view", ack.Payload)
	}
	close(release)
	e.waitFor("the confirmation replaces the waiting view", func(s *slackemu.Server) bool {
		got, ok := s.View(v.ID)
		return ok && strings.Contains(string(got.Blocks), "REQ")
	})
	e.approvalDM(uBob)
}

// exportFile runs /export text as erin and returns the CSV's rows.
func (e *env) exportFile(text, name string) [][]string {
	e.t.Helper()
	_, rows := e.exportCSV(text, name)
	return rows
}

// exportCSV runs /export text as erin and returns the new keycard-name
// CSV file and its rows.
func (e *env) exportCSV(text, name string) (slackemu.File, [][]string) {
	e.t.Helper()
	before := len(e.emu.Files())
	if _, err := e.emu.SlashCommand(e.ctx, uErin, "/export", text); err != nil {
		e.t.Fatal(err)
	}
	var f slackemu.File
	e.waitFor("the "+name+" export", func(s *slackemu.Server) bool {
		files := s.Files()
		for i := before; i < len(files); i++ {
			if files[i].Completed && strings.HasPrefix(files[i].Name, "keycard-"+name) && strings.HasSuffix(files[i].Name, ".csv") {
				f = files[i]
				return true
			}
		}
		return false
	})
	rows, err := csv.NewReader(strings.NewReader(string(f.Content))).ReadAll()
	if err != nil {
		e.t.Fatal(err)
	}
	return f, rows
}
