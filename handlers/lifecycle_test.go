package handlers_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fixture"
	"keycard/policy"
)

func TestFullLifecycle(t *testing.T) {
	e := newEnv(t)
	r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "incident INC-42")
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, r, access.StatePending)
	if r.PolicyVersion != e.set.Hash || r.Steps[0].Candidates[0].Email != "bob@example.com" || len(r.Steps[1].Candidates) != 2 {
		t.Fatalf("unexpected request %+v", r)
	}
	e.clock.Advance(10 * time.Minute)
	if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	wantState(t, e.get(r.ID), access.StatePending)
	if _, err := e.decide(r.ID, 1, "dave@example.com", true, "looks fine"); err != nil {
		t.Fatal(err)
	}
	wantState(t, e.get(r.ID), access.StateProvisioning)
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("membership before the worker ran")
	}
	e.clock.Advance(time.Minute) // the clock starts when the IdP confirms, not at approval
	confirmAt := e.clock.Now()
	e.settle()
	g := e.get(r.ID)
	wantState(t, g, access.StateActive)
	if !g.ProvisionedAt.Equal(confirmAt) || !g.EndsAt.Equal(confirmAt.Add(2*time.Hour)) {
		t.Fatalf("clock: provisioned %v ends %v", g.ProvisionedAt, g.EndsAt)
	}
	if !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("no IdP membership after activation")
	}
	// Expiring-soon notice 15 minutes before the end, then expiry.
	e.clock.Advance(2*time.Hour - 15*time.Minute)
	e.settle()
	e.clock.Advance(15 * time.Minute)
	e.settle()
	g = e.get(r.ID)
	wantState(t, g, access.StateExpired)
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("membership survived expiry")
	}
	if g.EndReason != access.ReasonExpired || g.DeprovisionedAt.IsZero() || g.RemoveEventID == "" || g.AddEventID == "" {
		t.Fatalf("ended grant %+v", g)
	}
	want := []string{"request.submitted", "step.approved", "request.approved", "grant.active", "grant.expiring", "grant.ending", "grant.expired"}
	if got := e.events(r.ID); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	e.verify()
}

func TestSubmitRefusals(t *testing.T) {
	cases := []struct {
		name   string
		email  string
		policy string
		d      time.Duration
		why    string
		setup  func(e *env)
		code   access.Code
	}{
		{"unknown policy", "ann@example.com", "nope", 0, "x", nil, access.CodeUnknownPolicy},
		{"over max", "ann@example.com", "prod-db-admin", 9 * time.Hour, "x", nil, access.CodeOverMax},
		{"missing justification", "ann@example.com", "prod-db-admin", 0, "  ", nil, access.CodeNeedJustify},
		{"not eligible", "mallory@example.com", "prod-db-admin", 0, "x", nil, access.CodeNotEligible},
		{"unknown user", "ghost@example.com", "grafana-viewer", 0, "", nil, access.CodeUnknownUser},
		{"no email", "", "grafana-viewer", 0, "", nil, access.CodeNoEmail},
		{"inactive user", "ann@example.com", "grafana-viewer", 0, "", func(e *env) { e.idp.setStatus("ann@example.com", access.StatusSuspended) }, access.CodeUserInactive},
		{"standing membership", "ann@example.com", "prod-db-admin", 0, "x", func(e *env) { e.idp.setMember("prod-db-admins", "ann@example.com", true) }, access.CodeStanding},
		{"no possible approver", "ann@example.com", "lonely", 0, "", nil, access.CodeNoApprover},
		{"duplicate pending", "ann@example.com", "prod-db-admin", 0, "x", func(e *env) {
			if _, err := e.submit("ann@example.com", "prod-db-admin", 0, "first"); err != nil {
				t.Fatal(err)
			}
		}, access.CodeDuplicate},
		{"already active", "ann@example.com", "grafana-viewer", 0, "", func(e *env) {
			if _, err := e.submit("ann@example.com", "grafana-viewer", 0, ""); err != nil {
				t.Fatal(err)
			}
			e.settle()
		}, access.CodeAlreadyActive},
		{"break glass not allowed", "ann@example.com", "grafana-viewer", 0, "", nil, access.CodeForbidden},
		{"justification too long", "ann@example.com", "prod-db-admin", 0, string(make([]byte, 3000)), nil, access.CodeInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if c.setup != nil {
				c.setup(e)
			}
			before := len(e.events(""))
			in := handlers.SubmitInput{SlackID: slackID(c.email), Email: c.email, Policy: c.policy, Duration: c.d, Justification: c.why}
			if c.name == "break glass not allowed" {
				in.BreakGlass = true
			}
			_, err := e.svc.Submit(context.Background(), in)
			wantCode(t, err, c.code)
			if access.MessageOf(err) == "" || errors.Is(err, context.Canceled) {
				t.Fatalf("no message for %v", err)
			}
			evs := e.events("")
			// A refusal where a person was identified is audited; nothing else changes.
			identified := c.code != access.CodeUnknownUser && c.code != access.CodeNoEmail
			if identified && evs[len(evs)-1] != "request.refused" {
				t.Fatalf("refusal not audited: %v", evs[before:])
			}
		})
	}
}

func TestDecideRefusals(t *testing.T) {
	e := newEnv(t)
	r, err := e.submit("ann@example.com", "prod-db-admin", 0, "need it")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		email string
		step  int
		code  access.Code
	}{
		{"requester approves own", "ann@example.com", 0, access.CodeForbidden},
		{"not a candidate", "mallory@example.com", 0, access.CodeForbidden},
		{"security cannot decide step 1", "carol@example.com", 0, access.CodeForbidden},
		{"stale button for step 2", "carol@example.com", 1, access.CodeConflict},
		{"unknown request", "bob@example.com", 0, access.CodeNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := r.ID
			if c.name == "unknown request" {
				id = "REQ-9999"
			}
			_, err := e.decide(id, c.step, c.email, true, "")
			wantCode(t, err, c.code)
			if got := e.get(r.ID); got.State != access.StatePending || got.Current != 0 {
				t.Fatalf("a refused click changed the request: %+v", got)
			}
		})
	}
	if evs := e.events(r.ID); slices.Index(evs, "decision.refused") < 0 {
		t.Fatalf("refused clicks not audited: %v", evs)
	}
	// The same person may not satisfy two steps: bob is made a security member too.
	e.idp.setMember("security-team", "bob@example.com", true)
	r2, err := e.submit("ann@example.com", "prod-breakglass", 0, "x")
	if err != nil {
		t.Fatal(err)
	}
	_ = r2
	if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.decide(r.ID, 1, "bob@example.com", true, "")
	wantCode(t, err, access.CodeForbidden)
	// Double click on an already decided step.
	_, err = e.decide(r.ID, 0, "bob@example.com", true, "")
	wantCode(t, err, access.CodeConflict)
}

func TestDenyWithReason(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "prod-db-admin", 0, "why not")
	if _, err := e.decide(r.ID, 0, "bob@example.com", false, "not during the freeze"); err != nil {
		t.Fatal(err)
	}
	g := e.get(r.ID)
	wantState(t, g, access.StateDenied)
	if g.Steps[0].Comment != "not during the freeze" || g.Steps[0].Decision != access.DecisionDenied {
		t.Fatalf("denial not recorded: %+v", g.Steps[0])
	}
	_, err := e.decide(r.ID, 1, "carol@example.com", true, "")
	wantCode(t, err, access.CodeConflict)
	e.settle()
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("denied request provisioned")
	}
}

func TestConcurrentApproversOneWins(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, who := range []string{"carol@example.com", "dave@example.com"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.decide(r.ID, 1, who, i == 0, "")
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch access.CodeOf(err) {
		case "":
			wins++
		case access.CodeConflict:
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d decisions won, want exactly 1 (%v)", wins, errs)
	}
	g := e.get(r.ID)
	n := 0
	for _, ev := range e.events(r.ID) {
		if ev == "request.approved" || ev == "request.denied" {
			n++
		}
	}
	if n != 1 || (g.State != access.StateProvisioning && g.State != access.StateDenied) {
		t.Fatalf("state %s with %d final decisions", g.State, n)
	}
}

func TestTimeoutAndReminders(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	e.clock.Advance(61 * time.Minute)
	e.settle()
	if evs := e.events(r.ID); evs[len(evs)-1] != "request.reminded" {
		t.Fatalf("no reminder after remind_after: %v", evs)
	}
	for i := 0; i < 23; i++ {
		e.clock.Advance(time.Hour)
		e.settle()
	}
	g := e.get(r.ID)
	wantState(t, g, access.StateTimedOut)
	reminded := 0
	for _, ev := range e.events(r.ID) {
		if ev == "request.reminded" {
			reminded++
		}
	}
	if reminded < 2 || reminded > 24 {
		t.Fatalf("%d reminders in 24h", reminded)
	}
	_, err := e.decide(r.ID, 0, "bob@example.com", true, "")
	wantCode(t, err, access.CodeConflict)
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	_, err := e.svc.Cancel(context.Background(), r.ID, slackID("bob@example.com"), "bob@example.com")
	wantCode(t, err, access.CodeForbidden)
	if _, err := e.svc.Cancel(context.Background(), r.ID, slackID("ann@example.com"), "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	wantState(t, e.get(r.ID), access.StateCancelled)
}

func TestRevokeAuthorization(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	e.settle()
	_, err := e.svc.Revoke(context.Background(), r.ID, slackID("mallory@example.com"), "mallory@example.com")
	wantCode(t, err, access.CodeForbidden)
	wantState(t, e.get(r.ID), access.StateActive)
	if _, err := e.svc.Revoke(context.Background(), r.ID, slackID("frank@example.com"), "frank@example.com"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	g := e.get(r.ID)
	wantState(t, g, access.StateRevoked)
	if g.EndedBy.Email != "frank@example.com" || g.EndReason != access.ReasonRevoked || e.idp.isMember("app-grafana-viewers", "ann@example.com") {
		t.Fatalf("revoke by admin: %+v", g)
	}
	// Holder gives up early.
	r2, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	e.settle()
	if _, err := e.svc.Revoke(context.Background(), r2.ID, slackID("ann@example.com"), "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	wantState(t, e.get(r2.ID), access.StateRevoked)
	_, err = e.svc.Revoke(context.Background(), r2.ID, slackID("ann@example.com"), "ann@example.com")
	wantCode(t, err, access.CodeConflict)
}

func TestTwoGrantsOneGroup(t *testing.T) {
	e := newEnv(t)
	a, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "x")
	e.approveAll(a.ID)
	e.settle()
	b, err := e.submit("ann@example.com", "prod-db-admin-alt", time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	wantState(t, e.get(b.ID), access.StateActive)
	e.clock.Advance(time.Hour)
	e.settle()
	wantState(t, e.get(b.ID), access.StateExpired)
	if !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("membership removed while another grant still holds it")
	}
	e.clock.Advance(time.Hour)
	e.settle()
	wantState(t, e.get(a.ID), access.StateExpired)
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("membership kept after the last grant ended")
	}
	e.verify()
}

func TestExtend(t *testing.T) {
	e := newEnv(t)
	a, _ := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "x")
	e.approveAll(a.ID)
	e.settle()
	first := e.get(a.ID)
	e.clock.Advance(3*time.Hour + 50*time.Minute)
	x, err := e.svc.Extend(context.Background(), a.ID, handlers.SubmitInput{SlackID: slackID("ann@example.com"), Email: "ann@example.com", Duration: 4 * time.Hour, Justification: "still fixing"})
	if err != nil {
		t.Fatal(err)
	}
	e.approveAll(x.ID)
	e.settle()
	ext := e.get(x.ID)
	wantState(t, ext, access.StateActive)
	if !ext.EndsAt.Equal(first.EndsAt.Add(4 * time.Hour)) {
		t.Fatalf("extension ends %v, want %v", ext.EndsAt, first.EndsAt.Add(4*time.Hour))
	}
	// Its access_start is where the first grant ends, not its confirmation
	// (security review L3): the two rows do not overlap.
	if got := ext.AccessStart(); !got.Equal(first.EndsAt) {
		t.Fatalf("extension access_start %v, want %v", got, first.EndsAt)
	}
	// Past extend.max_total (12h) is refused.
	_, err = e.svc.Extend(context.Background(), x.ID, handlers.SubmitInput{SlackID: slackID("ann@example.com"), Email: "ann@example.com", Duration: 8 * time.Hour, Justification: "more"})
	wantCode(t, err, access.CodeOverTotal)
	e.clock.Advance(15 * time.Minute)
	e.settle()
	wantState(t, e.get(a.ID), access.StateExpired)
	if !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("extension lost the membership when the first grant ended")
	}
	e.clock.Advance(4 * time.Hour)
	e.settle()
	wantState(t, e.get(x.ID), access.StateExpired)
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("membership survived the extension's end")
	}
}

func TestProvisioningRetriesAndFailure(t *testing.T) {
	t.Run("transient add failures then success", func(t *testing.T) {
		e := newEnv(t)
		unavailable := access.Errorf(access.CodeUnavailable, "okta 503")
		reset := t0.Add(10 * time.Minute)
		limited := &access.Error{Code: access.CodeRateLimited, Msg: "okta 429", RetryAt: reset}
		e.idp.failNext("add", unavailable, limited)
		r, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
		e.settle()
		wantState(t, e.get(r.ID), access.StateProvisioning)
		e.clock.Advance(5 * time.Second) // past the first backoff; hits the 429
		e.settle()
		e.clock.Advance(time.Minute)
		e.settle()
		if got := e.get(r.ID); got.State != access.StateProvisioning {
			t.Fatalf("retried before the rate-limit reset: %s", got.State)
		}
		e.clock.Advance(10 * time.Minute)
		e.settle()
		wantState(t, e.get(r.ID), access.StateActive)
		if n := countOf(e.events(r.ID), "provision.retrying"); n != 2 {
			t.Fatalf("%d retry events, want 2", n)
		}
	})
	t.Run("adds give up", func(t *testing.T) {
		e := newEnv(t)
		for i := 0; i < 20; i++ {
			e.idp.failNext("add", access.Errorf(access.CodeUnavailable, "down"))
		}
		r, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
		for i := 0; i < 12; i++ {
			e.settle()
			e.clock.Advance(2 * time.Minute)
		}
		g := e.get(r.ID)
		wantState(t, g, access.StateFailed)
		if evs := e.events(r.ID); !slices.Contains(evs, "grant.failed") || !slices.Contains(evs, "alert") {
			t.Fatalf("failure not audited/alerted: %v", evs)
		}
	})
	t.Run("removes never give up", func(t *testing.T) {
		e := newEnv(t)
		r, _ := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
		e.settle()
		for i := 0; i < 12; i++ {
			e.idp.failNext("remove", access.Errorf(access.CodeUnavailable, "down"))
		}
		e.clock.Advance(time.Hour)
		for i := 0; i < 30; i++ {
			e.settle()
			e.clock.Advance(2 * time.Minute)
			if st := e.get(r.ID).State; st == access.StateExpired {
				break
			}
		}
		g := e.get(r.ID)
		wantState(t, g, access.StateExpired)
		if !slices.Contains(e.events(r.ID), "provision.alert") {
			t.Fatal("stuck removal was not alerted")
		}
		if e.idp.isMember("app-grafana-viewers", "ann@example.com") {
			t.Fatal("grant shown as ended while the IdP still holds the membership")
		}
	})
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestRestartResumesOutbox(t *testing.T) {
	e := newEnv(t)
	block := make(chan struct{})
	e.idp.mu.Lock()
	e.idp.block = block
	e.idp.mu.Unlock()
	r, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	// The worker is stopped mid-call (shutdown / crash): the op stays queued.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = e.svc.RunOutbox(ctx)
	}()
	cancel()
	<-done
	wantState(t, e.get(r.ID), access.StateProvisioning)
	e.idp.mu.Lock()
	e.idp.block = nil
	e.idp.mu.Unlock()
	e.restart()
	e.settle()
	wantState(t, e.get(r.ID), access.StateActive)
	e.verify()
}

func TestExpiryCaughtUpAtStart(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
	e.settle()
	e.restart()
	e.clock.Advance(6 * time.Hour) // keycard was down past the end
	e.settle()
	wantState(t, e.get(r.ID), access.StateExpired)
	if e.idp.isMember("app-grafana-viewers", "ann@example.com") {
		t.Fatal("expired while down, still a member")
	}
}

func TestBreakGlass(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.Submit(context.Background(), handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "prod-breakglass", BreakGlass: true})
	wantCode(t, err, access.CodeNeedJustify)
	r, err := e.svc.Submit(context.Background(), handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "prod-breakglass", BreakGlass: true, Justification: "prod down"})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	g := e.get(r.ID)
	wantState(t, g, access.StateActive)
	if !g.BreakGlass || g.Steps[0].DecidedBy.Email != "ann@example.com" {
		t.Fatalf("break glass %+v", g)
	}
}

func TestIdentityPinning(t *testing.T) {
	e := newEnv(t)
	if _, err := e.submit("ann@example.com", "grafana-viewer", 0, ""); err != nil {
		t.Fatal(err)
	}
	// The email moves to another IdP account: the pinned Slack user is refused.
	e.idp.mu.Lock()
	old := e.idp.users["00uann"]
	delete(e.idp.users, "00uann")
	old.ID = "00uimpostor"
	e.idp.users[old.ID] = old
	e.idp.mu.Unlock()
	_, err := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	wantCode(t, err, access.CodeIdentityMismatch)
	if !slices.Contains(e.events(""), "identity.mismatch") {
		t.Fatal("mismatch not audited")
	}
}

func TestOffboard(t *testing.T) {
	e := newEnv(t)
	g, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	p, _ := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	e.settle()
	ann, _ := e.idp.UserByEmail(context.Background(), "ann@example.com")
	n, err := e.svc.Offboard(context.Background(), ann, handlers.Trigger{Source: "user.lifecycle.deactivate"})
	if err != nil || n != 2 {
		t.Fatalf("offboard: %d, %v", n, err)
	}
	e.settle()
	gg := e.get(g.ID)
	wantState(t, gg, access.StateRevoked)
	if gg.EndReason != access.ReasonOffboarded {
		t.Fatalf("reason %s", gg.EndReason)
	}
	wantState(t, e.get(p.ID), access.StateCancelled)
}

func TestPolicyReload(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.RecordPolicyLoaded("keycard"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte("version: 2\n")) }, "SIGHUP")
	if err == nil || e.svc.Policy() != e.set {
		t.Fatal("an invalid file replaced the policy")
	}
	changed := testPolicy + "alerts: {channel: \"#security-alerts\"}\n"
	next, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(changed)) }, "SIGHUP")
	if err != nil || next.Hash == e.set.Hash || e.svc.Policy() != next {
		t.Fatalf("valid reload: %v", err)
	}
	evs := e.events("")
	if !slices.Contains(evs, "policy.loaded") || !slices.Contains(evs, "policy.rejected") || !slices.Contains(evs, "policy.changed") {
		t.Fatalf("policy events %v", evs)
	}
	// New requests carry the new version.
	r, _ := e.submit("ann@example.com", "grafana-viewer", 0, "")
	if r.PolicyVersion != next.Hash {
		t.Fatal("request not stamped with the policy in force")
	}
}

func TestSubmitRateLimit(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 10; i++ {
		_, err := e.submit("ann@example.com", "nope", 0, "")
		wantCode(t, err, access.CodeUnknownPolicy)
	}
	_, err := e.submit("ann@example.com", "grafana-viewer", 0, "")
	wantCode(t, err, access.CodeRateLimitedUser)
	if _, err := e.submit("bob@example.com", "grafana-viewer", 0, ""); err != nil {
		t.Fatalf("another person is limited too: %v", err)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.submit("ann@example.com", "grafana-viewer", 0, ""); err != nil {
		t.Fatalf("limit did not reset after the window: %v", err)
	}
}

const escalatingPolicy = `  - name: escalating
    app: Billing
    role: Admin
    group: app-billing-admins
    eligible: [everyone]
    approval:
      - manager
    escalate_after: 2h
    escalate_to:
      - user: frank@example.com
    duration: {default: 1h, max: 2h}
    justification: optional
`

func TestEscalation(t *testing.T) {
	e := newEnv(t)
	withEscalation := fixture.RolesPolicy().InsertBefore("lonely", escalatingPolicy).String()
	if _, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(withEscalation)) }, "test"); err != nil {
		t.Fatal(err)
	}
	r, err := e.submit("ann@example.com", "escalating", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	// Frank may not decide before the step escalates.
	_, err = e.decide(r.ID, 0, "frank@example.com", true, "")
	wantCode(t, err, access.CodeForbidden)
	// While the IdP fails, the escalation is retried a minute later, not
	// spun on (security review M3).
	e.clock.Advance(2*time.Hour + time.Second)
	for i := 0; i < 3; i++ {
		e.idp.failNext("lookup", access.Errorf(access.CodeUnavailable, "okta down"))
	}
	e.idp.mu.Lock()
	before := e.idp.calls["lookup"]
	e.idp.mu.Unlock()
	if _, err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.idp.mu.Lock()
	spent := e.idp.calls["lookup"] - before
	e.idp.fail["lookup"] = nil
	e.idp.mu.Unlock()
	if got := e.get(r.ID); got.Steps[0].Escalated || spent > 2 || !got.EscalateAt.After(e.clock.Now()) {
		t.Fatalf("escalation during an outage: escalated=%v lookups=%d next=%v", got.Steps[0].Escalated, spent, got.EscalateAt)
	}
	e.clock.Advance(time.Minute)
	e.settle()
	g := e.get(r.ID)
	if !g.Steps[0].Escalated || !g.Steps[0].IsCandidate(access.Person{Email: "frank@example.com"}) {
		t.Fatalf("step not escalated to frank: %+v", g.Steps[0])
	}
	if !slices.Contains(e.events(r.ID), "request.escalated") {
		t.Fatal("escalation not audited")
	}
	if _, err := e.decide(r.ID, 0, "frank@example.com", true, "covering for bob"); err != nil {
		t.Fatalf("the escalation approver cannot decide: %v", err)
	}
	wantState(t, e.get(r.ID), access.StateProvisioning)
	// The original approver can no longer act on it.
	_, err = e.decide(r.ID, 0, "bob@example.com", true, "")
	wantCode(t, err, access.CodeConflict)
}

func TestConcurrentAutoSubmitsGrantOnce(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.submit("ann@example.com", "grafana-viewer", 0, "")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch access.CodeOf(err) {
		case "":
			ok++
		case access.CodeAlreadyActive, access.CodeDuplicate:
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 4 racing submissions were granted, want 1: %v", ok, errs)
	}
}

// grantAndExtend gives ann an active 4h prod-db-admin grant and asks for a
// 2h extension, approved (and active) when approve is set.
func (e *env) grantAndExtend(approve bool) (grant, ext access.Request) {
	e.t.Helper()
	a, _ := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "x")
	e.approveAll(a.ID)
	e.settle()
	x, err := e.svc.Extend(context.Background(), a.ID, handlers.SubmitInput{SlackID: slackID("ann@example.com"), Email: "ann@example.com", Duration: 2 * time.Hour, Justification: "more"})
	if err != nil {
		e.t.Fatal(err)
	}
	if approve {
		e.approveAll(x.ID)
		e.settle()
	}
	return a, x
}

// A revoke takes the access away, not just one record of it: a grant with
// an active extension, or a sibling grant on the same group, ends too, and a
// pending extension is cancelled (security review C1, M1).
func TestRevokeEndsEveryGrantOnTheGroup(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *env) (revoke string, others []string)
	}{
		{"extension active", func(e *env) (string, []string) {
			a, x := e.grantAndExtend(true)
			return a.ID, []string{x.ID}
		}},
		{"extension pending", func(e *env) (string, []string) {
			a, x := e.grantAndExtend(false)
			return a.ID, []string{x.ID}
		}},
		{"revoking an expired grant whose extension holds the group", func(e *env) (string, []string) {
			a, x := e.grantAndExtend(true)
			e.clock.Advance(4*time.Hour + time.Minute) // a expires; x holds the group
			e.settle()
			return a.ID, []string{x.ID}
		}},
		{"sibling policy on the same group", func(e *env) (string, []string) {
			a, _ := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "x")
			e.approveAll(a.ID)
			b, _ := e.submit("ann@example.com", "prod-db-admin-alt", time.Hour, "")
			e.settle()
			return b.ID, []string{a.ID}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			id, others := c.setup(e)
			if _, err := e.svc.Revoke(context.Background(), id, slackID("frank@example.com"), "frank@example.com"); err != nil {
				t.Fatal(err)
			}
			e.settle()
			if st := e.get(id).State; st != access.StateRevoked && st != access.StateExpired {
				t.Fatalf("%s is %s", id, st)
			}
			for _, o := range others {
				if st := e.get(o).State; st != access.StateRevoked && st != access.StateCancelled {
					t.Fatalf("%s is %s after revoking %s", o, st, id)
				}
			}
			if e.idp.isMember("prod-db-admins", "ann@example.com") {
				t.Fatal("the membership survived the revoke")
			}
		})
	}
}

// An expired grant's removal must not be skipped for a grant that never
// became active (security review H1): the membership goes, and the later
// grant's add (ordered after) or its failure decides what stays.
func TestRemovalNotSkippedForAProvisioningGrant(t *testing.T) {
	e := newEnv(t)
	a, _ := e.submit("ann@example.com", "prod-db-admin-alt", time.Hour, "")
	e.settle()
	for i := 0; i < 30; i++ {
		e.idp.failNext("remove", access.Errorf(access.CodeUnavailable, "okta down"))
	}
	e.clock.Advance(time.Hour)
	e.settle() // a expires; its removal fails and waits
	for i := 0; i < 30; i++ {
		e.idp.failNext("add", access.Errorf(access.CodeForbidden, "okta says no"))
	}
	b, _ := e.submit("ann@example.com", "prod-db-admin", time.Hour, "x")
	e.approveAll(b.ID)
	e.idp.mu.Lock()
	e.idp.fail["remove"] = nil // Okta is back for removals
	e.idp.mu.Unlock()
	for i := 0; i < 20; i++ {
		e.clock.Advance(2 * time.Minute)
		e.settle()
	}
	wantState(t, e.get(a.ID), access.StateExpired)
	wantState(t, e.get(b.ID), access.StateFailed)
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("a membership nobody holds was left in the IdP")
	}
}

// A second Slack account that presents a pinned person's email is refused
// and reported (security review C3).
func TestSecondSlackAccountWithTheSameEmail(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.Identify(context.Background(), "UANN", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Identify(context.Background(), "UGUEST", "ann@example.com")
	wantCode(t, err, access.CodeIdentityMismatch)
	_, err = e.svc.Submit(context.Background(), handlers.SubmitInput{SlackID: "UGUEST", Email: "ann@example.com", Policy: "grafana-viewer"})
	wantCode(t, err, access.CodeIdentityMismatch)
	if n := countOf(e.events(""), "identity.mismatch"); n != 2 {
		t.Fatalf("%d mismatch events, want 2", n)
	}
	if _, err := e.svc.Identify(context.Background(), "UANN", "ann@example.com"); err != nil {
		t.Fatalf("the pinned account is refused: %v", err)
	}
}

// A suspended approver whose Slack session lives on cannot decide
// (security review H4).
func TestSuspendedApproverRefused(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "prod-db-admin", 0, "x")
	e.idp.setStatus("bob@example.com", access.StatusSuspended)
	_, err := e.decide(r.ID, 0, "bob@example.com", true, "")
	wantCode(t, err, access.CodeUserInactive)
	wantState(t, e.get(r.ID), access.StatePending)
	if e.get(r.ID).Steps[0].Decision != access.DecisionNone {
		t.Fatal("a suspended approver's click was recorded")
	}
}

// viewHookStore runs hook once, right after the first read-only
// transaction that reads request rid: a write that commits between a
// handler's snapshot and its update.
type viewHookStore struct {
	handlers.Store
	rid  string
	mu   sync.Mutex
	hook func()
}

type readSpyTx struct {
	handlers.Tx
	rid  string
	read bool
}

func (t *readSpyTx) Request(id string) (access.Request, error) {
	if id == t.rid {
		t.read = true
	}
	return t.Tx.Request(id)
}

func (s *viewHookStore) View(fn func(handlers.Tx) error) error {
	spy := &readSpyTx{rid: s.rid}
	err := s.Store.View(func(tx handlers.Tx) error { spy.Tx = tx; return fn(spy) })
	s.mu.Lock()
	h := s.hook
	if spy.read {
		s.hook = nil
	}
	s.mu.Unlock()
	if spy.read && h != nil {
		h()
	}
	return err
}

// Issue 10 review item 9a: a click whose snapshot refused the clicker (so
// the IdP re-check never ran) must not approve because an escalation
// committed before the update made the clicker a candidate.
func TestDecideRacingEscalationIsConflict(t *testing.T) {
	e := newEnv(t)
	hs := &viewHookStore{Store: adapt.Store(e.db)}
	e.svc = handlers.New(hs, conns{e.idp}, e.set, e.clock, handlers.Options{BackoffBase: time.Second, BackoffMax: time.Minute})
	withEscalation := fixture.RolesPolicy().InsertBefore("lonely", escalatingPolicy).String()
	if _, err := e.svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(withEscalation)) }, "test"); err != nil {
		t.Fatal(err)
	}
	r, err := e.submit("ann@example.com", "escalating", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2*time.Hour + time.Second)
	hs.mu.Lock()
	hs.rid = r.ID
	hs.hook = func() {
		if _, err := e.svc.Tick(context.Background()); err != nil {
			t.Error(err)
		}
	}
	hs.mu.Unlock()
	_, err = e.decide(r.ID, 0, "frank@example.com", true, "")
	wantCode(t, err, access.CodeConflict)
	if g := e.get(r.ID); !g.Steps[0].Escalated || g.State != access.StatePending {
		t.Fatalf("escalated %v, state %s: want escalated and still pending", g.Steps[0].Escalated, g.State)
	}
	if _, err := e.decide(r.ID, 0, "frank@example.com", true, "again"); err != nil {
		t.Fatalf("the retried click: %v", err)
	}
}

// Issue 10 review item 9b: a policy change that commits while a click is
// being checked makes the click a conflict: it was checked against a policy
// no longer in force.
func TestDecideRacingPolicyChangeIsConflict(t *testing.T) {
	e := newEnv(t)
	hs := &viewHookStore{Store: adapt.Store(e.db)}
	e.svc = handlers.New(hs, conns{e.idp}, e.set, e.clock, handlers.Options{BackoffBase: time.Second, BackoffMax: time.Minute})
	if err := e.svc.RecordPolicyLoaded(access.ActorKeycard); err != nil {
		t.Fatal(err)
	}
	r, err := e.submit("bob@example.com", "lonely", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	hs.mu.Lock()
	hs.rid = r.ID
	hs.hook = func() {
		if _, err := e.svc.ReloadPolicy(func() (*policy.Set, error) {
			return policy.Parse("policy.yaml", []byte(testPolicy+"# changed\n"))
		}, "test"); err != nil {
			t.Error(err)
		}
	}
	hs.mu.Unlock()
	_, err = e.decide(r.ID, 0, "ann@example.com", true, "")
	wantCode(t, err, access.CodeConflict)
	wantState(t, e.get(r.ID), access.StatePending)
	if _, err := e.decide(r.ID, 0, "ann@example.com", true, "again"); err != nil {
		t.Fatalf("the retried click: %v", err)
	}
}
