package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// crashAfterAdd runs the outbox until the IdP has applied the add, then
// stops the worker before it records the answer, as a SIGKILL would.
func crashAfterAdd(t *testing.T, e *env) {
	t.Helper()
	applied := make(chan struct{})
	e.idp.mu.Lock()
	e.idp.applied = applied
	e.idp.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = e.svc.RunOutbox(ctx)
	}()
	<-applied
	cancel()
	<-done
}

// Issue 10 item 1: a crash right after the IdP add must not make the grant
// longer than approved; the clock starts at the first attempt.
func TestCrashAfterAddStartsClockAtFirstAttempt(t *testing.T) {
	for _, tc := range []struct {
		name string
		down time.Duration // keycard is down this long after the add
	}{
		{"restart within the grant", 23 * time.Minute},
		{"restart after the whole duration", 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, err := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
			if err != nil {
				t.Fatal(err)
			}
			crashAfterAdd(t, e)
			wantState(t, e.get(r.ID), access.StateProvisioning)
			if !e.idp.isMember("app-grafana-viewers", "ann@example.com") {
				t.Fatal("the add was not applied")
			}
			e.clock.Advance(tc.down)
			e.restart()
			e.settle()
			g := e.get(r.ID)
			if start := g.AccessStart(); !start.Equal(t0) {
				t.Fatalf("access_start %v, want the first attempt %v", start, t0)
			}
			if end := g.AccessEnd(); !end.Equal(t0.Add(time.Hour)) {
				t.Fatalf("access_end %v, want %v", end, t0.Add(time.Hour))
			}
			if !strings.Contains(handlers.ApprovalChain(&g), "access start assumed") {
				t.Fatalf("the export does not say the start was assumed: %q", handlers.ApprovalChain(&g))
			}
			if tc.down < time.Hour {
				wantState(t, g, access.StateActive)
				e.clock.Advance(time.Hour - tc.down)
				e.settle()
				g = e.get(r.ID)
			} else if n := e.idp.calls["add"]; n != 1 {
				t.Fatalf("%d adds: a grant whose time passed was granted afresh", n)
			}
			wantState(t, g, access.StateExpired)
			if e.idp.isMember("app-grafana-viewers", "ann@example.com") {
				t.Fatal("membership outlived the grant")
			}
			e.verify()
		})
	}
}

// Issue 10 item 3 (High): a timed-out add retried with backoff must not
// push the start later; nor does a 429, which cannot prove the add did not
// apply (the review of the fixes): the start is the first attempt.
func TestRetriedAddKeepsFirstAttemptStart(t *testing.T) {
	timeout := access.Errorf(access.CodeUnavailable, "okta: context deadline exceeded")
	limited := &access.Error{Code: access.CodeRateLimited, Msg: "okta 429", RetryAt: t0.Add(30 * time.Second)}
	for _, tc := range []struct {
		name         string
		lost         bool // the IdP applied the add but its answer was lost
		errs         []error
		wantAssumed  bool
		wantStartOff time.Duration // access_start - t0
	}{
		{"timed out twice, applied", true, []error{timeout, timeout}, true, 0},
		// A 429 does not say nothing reached the IdP (a connector retries
		// inside one call), so the start stays at the first attempt.
		{"rate limited first", false, []error{limited}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.lost = tc.lost
			e.idp.failNext("add", tc.errs...)
			r, _ := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
			e.settle()
			for i := 0; i < 10 && e.get(r.ID).State == access.StateProvisioning; i++ {
				e.clock.Advance(time.Minute)
				e.settle()
			}
			g := e.get(r.ID)
			wantState(t, g, access.StateActive)
			if g.StartAssumed != tc.wantAssumed {
				t.Fatalf("start assumed %v, want %v", g.StartAssumed, tc.wantAssumed)
			}
			want := t0.Add(tc.wantStartOff)
			if start := g.AccessStart(); !start.Equal(want) {
				t.Fatalf("access_start %v, want %v", start, want)
			}
			if !g.EndsAt.Equal(want.Add(time.Hour)) {
				t.Fatalf("ends %v, want %v", g.EndsAt, want.Add(time.Hour))
			}
		})
	}
}

// Issue 10 item 4 (Medium): a standing membership added while a request is
// pending is not keycard's to remove.
func TestStandingMembershipAddedWhilePending(t *testing.T) {
	for _, end := range []string{"expiry", "revoke"} {
		t.Run(end, func(t *testing.T) {
			e := newEnv(t)
			r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "incident")
			if err != nil {
				t.Fatal(err)
			}
			e.idp.setMember("prod-db-admins", "ann@example.com", true) // added outside keycard
			e.approveAll(r.ID)
			e.settle()
			g := e.get(r.ID)
			wantState(t, g, access.StateActive)
			if !g.NotOwner || e.idp.calls["add"] != 0 {
				t.Fatalf("not owner %v, %d adds: want the standing membership recorded and no add", g.NotOwner, e.idp.calls["add"])
			}
			if end == "revoke" {
				if _, err := e.svc.Revoke(context.Background(), r.ID, slackID("frank@example.com"), "frank@example.com"); err != nil {
					t.Fatal(err)
				}
			} else {
				e.clock.Advance(time.Hour)
			}
			e.settle()
			g = e.get(r.ID)
			if g.State != access.StateExpired && g.State != access.StateRevoked {
				t.Fatalf("state %s, want ended", g.State)
			}
			if !e.idp.isMember("prod-db-admins", "ann@example.com") || e.idp.calls["remove"] != 0 {
				t.Fatal("keycard removed a membership it did not grant")
			}
			e.verify()
		})
	}
}

// Issue 10 item 5 (Low): a bad rate-limit reset cannot postpone a removal
// without bound; a capped wait alerts.
func TestRemovalRateLimitResetCapped(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
	e.settle()
	e.clock.Advance(time.Hour)
	e.idp.failNext("remove", &access.Error{Code: access.CodeRateLimited, Msg: "okta 429", RetryAt: t0.Add(1000 * time.Hour)})
	e.settle()
	wantState(t, e.get(r.ID), access.StateDeprovisioning)
	if !slices.Contains(e.events(r.ID), "provision.alert") {
		t.Fatal("a removal postponed past the cap was not alerted")
	}
	e.clock.Advance(15 * time.Minute)
	e.settle()
	wantState(t, e.get(r.ID), access.StateExpired)
	if e.idp.isMember("app-grafana-viewers", "ann@example.com") {
		t.Fatal("still a member")
	}
}

// Issue 10 review item 7: the capped-wait alert must not silence the later
// deprovisioning_stuck alert for the same removal.
func TestRemovalCappedThenStuckAlertsBoth(t *testing.T) {
	e := newEnv(t)
	r, _ := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
	e.settle()
	e.clock.Advance(time.Hour)
	var errs []error
	for range 8 {
		errs = append(errs, &access.Error{Code: access.CodeRateLimited, Msg: "idp 429", RetryAt: t0.Add(1000 * time.Hour)})
	}
	e.idp.failNext("remove", errs...)
	for range 7 {
		e.settle()
		e.clock.Advance(15 * time.Minute)
	}
	kinds := map[string]int{}
	if err := e.svc.Events(0, func(ev access.Event) error {
		if ev.RequestID == r.ID && ev.Type == access.EvProvisionAlert {
			var a access.Alert
			if err := json.Unmarshal([]byte(ev.Detail), &a); err != nil {
				return err
			}
			kinds[a.Kind]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if kinds["deprovisioning_rate_limited"] != 1 || kinds["deprovisioning_stuck"] != 1 {
		t.Fatalf("alerts %v, want one capped-wait and one stuck", kinds)
	}
}

// SPEC: two grants on one group keep the membership until the last ends. A
// membership another active keycard grant added is not standing: the second
// grant owns it too, and the last one to end removes it.
func TestMembershipOfAnotherGrantIsNotStanding(t *testing.T) {
	e := newEnv(t)
	a, err := e.submit("ann@example.com", "prod-db-admin-alt", time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	wantState(t, e.get(a.ID), access.StateActive)
	b, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "incident")
	if err != nil {
		t.Fatal(err)
	}
	e.approveAll(b.ID)
	e.settle()
	if g := e.get(b.ID); g.State != access.StateActive || g.NotOwner {
		t.Fatalf("second grant %s, not owner %v: want active and owning", g.State, g.NotOwner)
	}
	e.clock.Advance(time.Hour)
	e.settle()
	wantState(t, e.get(a.ID), access.StateExpired)
	if !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("membership removed while another grant still holds it")
	}
	e.clock.Advance(time.Hour)
	e.settle()
	wantState(t, e.get(b.ID), access.StateExpired)
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("membership kept after the last keycard grant ended")
	}
	e.verify()
}

// Review of the issue 10 fixes (High): JumpCloud and Entra retry inside
// one AddMember call, so a call that ends in 429 may follow an attempt that
// applied. The retry must not take that membership for a standing one
// (NotOwner, never removed): once an add was sent, the membership may be
// keycard's, and it goes at expiry. With and without a restart between the
// 429 and the retry (the send record is durable).
func TestAddAppliedThenRateLimitedIsNotStanding(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			e := newEnv(t)
			e.idp.lost = true // the IdP applies the add, then the call ends in 429
			e.idp.failNext("add", &access.Error{Code: access.CodeRateLimited, Msg: "jumpcloud 429", RetryAt: t0.Add(30 * time.Second)})
			r, err := e.submit("ann@example.com", "grafana-viewer", time.Hour, "")
			if err != nil {
				t.Fatal(err)
			}
			e.settle()
			wantState(t, e.get(r.ID), access.StateProvisioning)
			if restart {
				e.restart()
			}
			e.clock.Advance(time.Minute)
			e.settle()
			g := e.get(r.ID)
			wantState(t, g, access.StateActive)
			if g.NotOwner {
				t.Fatal("a membership keycard's own add applied was recorded as standing")
			}
			if !g.StartAssumed || !g.AccessStart().Equal(t0) {
				t.Fatalf("start %v assumed %v, want the first attempt %v", g.AccessStart(), g.StartAssumed, t0)
			}
			e.clock.Advance(time.Hour)
			e.settle()
			wantState(t, e.get(r.ID), access.StateExpired)
			if e.idp.isMember("app-grafana-viewers", "ann@example.com") || e.idp.calls["remove"] != 1 {
				t.Fatalf("member %v after expiry, %d removes: keycard left its own membership behind",
					e.idp.isMember("app-grafana-viewers", "ann@example.com"), e.idp.calls["remove"])
			}
			e.verify()
		})
	}
}

// Review of the issue 10 fixes (High): when the pre-add membership check
// fails (a permanent refusal, or every attempt transient), the grant fails
// without ever sending the add. It must not queue the compensating removal:
// a membership the person has was not added by keycard.
func TestFailedBeforeAddRemovesNothing(t *testing.T) {
	unavailable := access.Errorf(access.CodeUnavailable, "okta 503")
	transient := make([]error, 8) // MaxAddAttempts by default
	for i := range transient {
		transient[i] = unavailable
	}
	for _, tc := range []struct {
		name string
		errs []error
	}{
		{"permanent", []error{access.Errorf(access.CodeForbidden, "okta 403 E0000006")}},
		{"transient until the last attempt", transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "incident")
			if err != nil {
				t.Fatal(err)
			}
			e.idp.setMember("prod-db-admins", "ann@example.com", true) // added outside keycard
			e.idp.failNext("ismember", tc.errs...)
			e.approveAll(r.ID)
			e.settle()
			for i := 0; i < 20 && e.get(r.ID).State == access.StateProvisioning; i++ {
				e.clock.Advance(time.Minute)
				e.settle()
			}
			wantState(t, e.get(r.ID), access.StateFailed)
			if e.idp.calls["add"] != 0 || e.idp.calls["remove"] != 0 {
				t.Fatalf("%d adds, %d removes: want none", e.idp.calls["add"], e.idp.calls["remove"])
			}
			if !e.idp.isMember("prod-db-admins", "ann@example.com") {
				t.Fatal("keycard removed a standing membership it never added to")
			}
			e.verify()
		})
	}
}

// Review of the issue 10 fixes (Medium): a grant that found the person
// already a member (NotOwner) must not hide the standing membership from
// access reviews. The holders snapshot calls it standing (naming the
// grant), and a review Revoke removes the membership, as for any standing
// item, and ends the grant.
func TestReviewRevokesStandingUnderNotOwnerGrant(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	set, err := policy.Parse("policy.yaml", []byte(testPolicy+strings.Replace(reviewsYAML, "reviewer: {user: ann@example.com}", "reviewer: manager", 1)))
	if err != nil {
		t.Fatal(err)
	}
	e.set = set
	e.restart()
	r, err := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	e.idp.setMember("prod-db-admins", "ann@example.com", true) // added outside keycard
	e.approveAll(r.ID)
	e.settle()
	if g := e.get(r.ID); g.State != access.StateActive || !g.NotOwner {
		t.Fatalf("state %s not owner %v: want active over a standing membership", g.State, g.NotOwner)
	}
	rows, _, err := e.svc.Holders(ctx, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, h := range rows {
		if h.Group == "prod-db-admins" && h.Email == "ann@example.com" {
			found = true
			if h.Source != handlers.SourceStanding || h.Grant == nil || h.Grant.ID != r.ID {
				t.Fatalf("holder row %s (grant %v): want standing, naming %s", h.Source, h.Grant, r.ID)
			}
		}
	}
	if !found {
		t.Fatal("ann is not in the holders snapshot")
	}
	c, err := e.svc.OpenCampaign(ctx, access.ActorScheduler, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, items, _ := e.svc.CampaignOf(c.ID)
	if len(items) != 1 || items[0].Source != handlers.SourceStanding {
		t.Fatalf("items %+v: want ann's standing membership", items)
	}
	if _, err := e.svc.Review(ctx, handlers.ReviewInput{ItemID: items[0].ID, SlackID: slackID("bob@example.com"), Email: "bob@example.com",
		Decision: access.ReviewRevoke, Comment: "not needed"}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("a review Revoke left the standing membership in place")
	}
	wantState(t, e.get(r.ID), access.StateRevoked)
	e.verify()
}

// A NotOwner grant keeps nothing of keycard's: when the standing membership
// under it went (removed outside keycard) and a later grant added the
// membership, that later grant's end removes it.
func TestNotOwnerGrantDoesNotKeepAnotherGrantsMembership(t *testing.T) {
	e := newEnv(t)
	a, err := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "incident")
	if err != nil {
		t.Fatal(err)
	}
	e.idp.setMember("prod-db-admins", "ann@example.com", true) // standing
	e.approveAll(a.ID)
	e.settle()
	if g := e.get(a.ID); !g.NotOwner {
		t.Fatal("the first grant does not record the standing membership")
	}
	e.idp.setMember("prod-db-admins", "ann@example.com", false) // removed outside keycard
	b, err := e.submit("ann@example.com", "prod-db-admin-alt", time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	if g := e.get(b.ID); g.State != access.StateActive || g.NotOwner || !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatalf("second grant %s not owner %v: want active, added by keycard", g.State, g.NotOwner)
	}
	e.clock.Advance(time.Hour)
	e.settle()
	wantState(t, e.get(b.ID), access.StateExpired)
	wantState(t, e.get(a.ID), access.StateActive)
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatal("the membership keycard added outlived its grant, kept by a grant that owns nothing")
	}
	e.verify()
}

// The same for a grant ended before its add was ever sent: revoked while
// the pre-add membership check waits to retry, its removal must not take
// away a standing membership keycard never added to.
func TestRevokedBeforeAddSentRemovesNothing(t *testing.T) {
	e := newEnv(t)
	r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "incident")
	if err != nil {
		t.Fatal(err)
	}
	e.idp.setMember("prod-db-admins", "ann@example.com", true) // added outside keycard
	e.idp.failNext("ismember", access.Errorf(access.CodeUnavailable, "okta 503"))
	e.approveAll(r.ID)
	e.settle()
	wantState(t, e.get(r.ID), access.StateProvisioning)
	if _, err := e.svc.Revoke(context.Background(), r.ID, slackID("frank@example.com"), "frank@example.com"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	e.settle()
	wantState(t, e.get(r.ID), access.StateRevoked)
	if e.idp.calls["add"] != 0 || e.idp.calls["remove"] != 0 || !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Fatalf("%d adds, %d removes, member %v: keycard removed a standing membership it never added to",
			e.idp.calls["add"], e.idp.calls["remove"], e.idp.isMember("prod-db-admins", "ann@example.com"))
	}
	e.verify()
}
