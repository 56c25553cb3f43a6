package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/fixture"
)

// mfaIdP is the fake IdP that can also challenge (access.Challenger): each
// push waits until the test answers it.
type mfaIdP struct {
	*fakeIdP
	cmu     sync.Mutex
	pushes  []string                          // user ids pushed, in order
	results map[string]access.ChallengeResult // by ref
	noPush  map[string]bool                   // user ids without a push factor
	pollErr error
}

func (f *mfaIdP) StartChallenge(_ context.Context, userID string) (string, string, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if f.noPush[userID] {
		return "", "", access.Errorf(access.CodeInvalid, "user %s has no push factor", userID)
	}
	ref := fmt.Sprintf("f1/tx%d", len(f.pushes)+1)
	f.pushes = append(f.pushes, userID)
	f.results[ref] = access.ChallengeWaiting
	return "fake:push", ref, nil
}

func (f *mfaIdP) PollChallenge(_ context.Context, userID, ref string) (access.ChallengeResult, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if f.pollErr != nil {
		return "", f.pollErr
	}
	return f.results[ref], nil
}

// answer decides the latest push.
func (f *mfaIdP) answer(res access.ChallengeResult) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.results[fmt.Sprintf("f1/tx%d", len(f.pushes))] = res
}

func (f *mfaIdP) pushCount() int {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return len(f.pushes)
}

type mfaConns struct{ idp *mfaIdP }

func (c mfaConns) Directory(name string) (access.Directory, bool) { return c.idp, name == "okta" }
func (c mfaConns) Provisioner(name string) (access.Provisioner, bool) {
	return c.idp.fakeIdP, name == "okta"
}

// newMFAEnv is newEnv with approval_mfa on prod-db-admin's both steps and a
// challenging IdP.
func newMFAEnv(t *testing.T) (*env, *mfaIdP) {
	t.Helper()
	var idp *mfaIdP
	text := fixture.RolesPolicy().Replace("    privileged: true\n", "    privileged: true\n    approval_mfa: true\n").String()
	e := newEnvWith(t, text, func(f *fakeIdP) handlers.Connectors {
		idp = &mfaIdP{fakeIdP: f, results: map[string]access.ChallengeResult{}, noPush: map[string]bool{}}
		return mfaConns{idp}
	})
	return e, idp
}

func TestMFAApproval(t *testing.T) {
	type outcome struct {
		answer   access.ChallengeResult // "" leaves the push unanswered
		wait     time.Duration          // how long the clock runs before the scheduler looks
		decided  bool                   // the step is approved
		wantLast string                 // the last audit event
		note     string                 // the step's MFANote afterwards
	}
	cases := []struct {
		name string
		out  outcome
	}{
		{"approved on the phone", outcome{access.ChallengeSuccess, handlers.MFAPollEvery, true, "step.approved", ""}},
		{"rejected on the phone", outcome{access.ChallengeRejected, handlers.MFAPollEvery, false, "mfa.failed", "rejected on the phone"}},
		{"IdP says timeout", outcome{access.ChallengeTimeout, handlers.MFAPollEvery, false, "mfa.failed", "timed out"}},
		{"never answered", outcome{"", handlers.MFAWindow, false, "mfa.failed", "timed out"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, idp := newMFAEnv(t)
			r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
			if err != nil {
				t.Fatal(err)
			}
			r, err = e.decide(r.ID, 0, "bob@example.com", true, "fine")
			if err != nil {
				t.Fatal(err)
			}
			st := r.Steps[0]
			if st.Decision != access.DecisionNone || st.Challenge == nil || st.Challenge.Approver.Email != "bob@example.com" || idp.pushCount() != 1 {
				t.Fatalf("after the click: step %+v, %d pushes", st, idp.pushCount())
			}
			if got := e.events(r.ID); got[len(got)-1] != "mfa.challenged" {
				t.Fatalf("events %v, want mfa.challenged last", got)
			}
			// Polls before the answer keep waiting.
			e.clock.Advance(handlers.MFAPollEvery)
			e.settle()
			if st := e.get(r.ID).Steps[0]; st.Challenge == nil || st.Decision != access.DecisionNone {
				t.Fatalf("while waiting: %+v", st)
			}
			if c.out.answer != "" {
				idp.answer(c.out.answer)
			}
			for run := time.Duration(0); run < c.out.wait; run += handlers.MFAPollEvery {
				e.clock.Advance(handlers.MFAPollEvery)
				e.settle()
			}
			r = e.get(r.ID)
			st = r.Steps[0]
			wantState(t, r, access.StatePending)
			if st.Challenge != nil {
				t.Errorf("challenge still pending: %+v", st.Challenge)
			}
			if got := st.Decision == access.DecisionApproved; got != c.out.decided {
				t.Fatalf("step decided %v, want %v (%+v)", got, c.out.decided, st)
			}
			if c.out.decided && (st.MFAFactor != "fake:push" || st.DecidedBy.Email != "bob@example.com" || st.Comment != "fine" || r.Current != 1) {
				t.Errorf("approved step: %+v, current %d", st, r.Current)
			}
			if !c.out.decided && (r.Current != 0 || st.MFAFactor != "") {
				t.Errorf("undecided step: %+v, current %d", st, r.Current)
			}
			if c.out.note != "" && !strings.Contains(st.MFANote, c.out.note) {
				t.Errorf("note %q, want %q", st.MFANote, c.out.note)
			}
			if got := e.events(r.ID); got[len(got)-1] != c.out.wantLast {
				t.Errorf("events %v, want %s last", got, c.out.wantLast)
			}
			if !r.MFAPollAt.IsZero() {
				t.Errorf("MFAPollAt still %s", r.MFAPollAt)
			}
			if !c.out.decided {
				// The approver may try again: a new push.
				if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
					t.Fatal(err)
				}
				if idp.pushCount() != 2 {
					t.Fatalf("%d pushes after trying again, want 2", idp.pushCount())
				}
			}
			e.verify()
		})
	}
}

func TestMFAFullChain(t *testing.T) {
	e, idp := newMFAEnv(t)
	r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
	if err != nil {
		t.Fatal(err)
	}
	for i, who := range []string{"bob@example.com", "carol@example.com"} {
		if _, err := e.decide(r.ID, i, who, true, ""); err != nil {
			t.Fatal(err)
		}
		e.answerPush(idp, access.ChallengeSuccess)
	}
	r = e.get(r.ID)
	wantState(t, r, access.StateActive)
	for i, st := range r.Steps {
		if st.MFAFactor != "fake:push" {
			t.Errorf("step %d: factor %q", i+1, st.MFAFactor)
		}
	}
	if !e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Error("not provisioned")
	}
	ev := e.events(r.ID)
	want := []string{"request.submitted", "mfa.challenged", "step.approved", "mfa.challenged", "request.approved", "grant.active"}
	if !slices.Equal(ev, want) {
		t.Errorf("events %v\nwant   %v", ev, want)
	}
	e.verify()
}

func TestMFARefusals(t *testing.T) {
	t.Run("a second click while the push waits", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
		if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
			t.Fatal(err)
		}
		_, err := e.decide(r.ID, 0, "bob@example.com", true, "")
		wantCode(t, err, access.CodeConflict)
		if !strings.Contains(access.MessageOf(err), "already waiting") || idp.pushCount() != 1 {
			t.Fatalf("%v; %d pushes", err, idp.pushCount())
		}
	})
	t.Run("a deposed approver's click sends no push and is audited", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
		if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
			t.Fatal(err)
		}
		e.answerPush(idp, access.ChallengeSuccess)
		e.idp.setMember("security-team", "dave@example.com", false) // left the team since the DM
		_, err := e.decide(r.ID, 1, "dave@example.com", true, "")
		wantCode(t, err, access.CodeForbidden)
		if idp.pushCount() != 1 {
			t.Fatalf("%d pushes, want only bob's", idp.pushCount())
		}
		if ev := e.events(r.ID); ev[len(ev)-1] != "decision.refused" {
			t.Fatalf("events %v", ev)
		}
	})
	t.Run("deny needs no MFA and ends the pending push", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
		if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
			t.Fatal(err)
		}
		r, err := e.decide(r.ID, 0, "bob@example.com", false, "changed my mind")
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, r, access.StateDenied)
		if r.Steps[0].Challenge != nil || !r.MFAPollAt.IsZero() || idp.pushCount() != 1 {
			t.Fatalf("after deny: %+v poll %s, %d pushes", r.Steps[0], r.MFAPollAt, idp.pushCount())
		}
		idp.answer(access.ChallengeSuccess) // a late phone approval changes nothing
		e.clock.Advance(handlers.MFAPollEvery)
		e.settle()
		wantState(t, e.get(r.ID), access.StateDenied)
	})
	t.Run("no push factor", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		idp.noPush["00ubob"] = true
		r, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
		_, err := e.decide(r.ID, 0, "bob@example.com", true, "")
		wantCode(t, err, access.CodeInvalid)
		if st := e.get(r.ID).Steps[0]; st.Challenge != nil || st.Decision != access.DecisionNone {
			t.Fatalf("step %+v", st)
		}
		if ev := e.events(r.ID); ev[len(ev)-1] != "mfa.failed" {
			t.Fatalf("the refused Approve is not audited: %v", ev)
		}
	})
	t.Run("an IdP outage while polling ends in timeout, not approval", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
		if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
			t.Fatal(err)
		}
		idp.pollErr = access.Errorf(access.CodeUnavailable, "okta down")
		for run := time.Duration(0); run < handlers.MFAWindow; run += handlers.MFAPollEvery {
			e.clock.Advance(handlers.MFAPollEvery)
			e.settle()
		}
		st := e.get(r.ID).Steps[0]
		if st.Decision != access.DecisionNone || st.Challenge != nil || !strings.Contains(st.MFANote, "timed out") {
			t.Fatalf("step %+v", st)
		}
	})
	t.Run("the poll survives a restart", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
		if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
			t.Fatal(err)
		}
		e.restart()
		e.answerPush(idp, access.ChallengeSuccess)
		if st := e.get(r.ID).Steps[0]; st.Decision != access.DecisionApproved || st.MFAFactor != "fake:push" {
			t.Fatalf("step %+v", st)
		}
	})
}

// The access export's approval_chain says which approvals were MFA-verified
// and by which factor, and which steps still need MFA.
func TestMFAExportGolden(t *testing.T) {
	e, idp := newMFAEnv(t)
	full, _ := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
	for i, who := range []string{"bob@example.com", "carol@example.com"} {
		if _, err := e.decide(full.ID, i, who, true, "ok"); err != nil {
			t.Fatal(err)
		}
		e.answerPush(idp, access.ChallengeSuccess)
	}
	e.clock.Advance(time.Minute)
	e.idp.addUser("zed@example.com", "Zed Eng", "bob@example.com", map[string]string{"department": "Engineering"})
	rejected, err := e.submit("zed@example.com", "prod-db-admin", time.Hour, "second")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.decide(rejected.ID, 0, "bob@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	e.answerPush(idp, access.ChallengeRejected)
	p, err := handlers.Period("2026-11-02", "2026-11-02", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	res, err := e.svc.ExportAccess(&buf, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records == nil || res.Records.Checked != 2 || res.Records.Unattested != 0 {
		t.Fatalf("record check %+v: every MFA state change must be attested by the chain", res.Records)
	}
	golden(t, "access_mfa.golden.csv", buf.Bytes())
	if !strings.Contains(buf.String(), "approved by bob@example.com at 2026-11-02T09:00:05Z (ok); MFA-verified (fake:push)") {
		t.Errorf("no MFA-verified approval in:\n%s", buf.String())
	}
}

// TestMFADelegateApproves: a delegate's Approve on an approval_mfa step
// sends the push to the delegate (the person clicking), and the approval it
// completes records whom they decided for, under which delegation, and the
// factor: the delegation checked at the click rides on the challenge.
func TestMFADelegateApproves(t *testing.T) {
	e, idp := newMFAEnv(t)
	d := e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
	r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
	if err != nil {
		t.Fatal(err)
	}
	r, err = e.decide(r.ID, 0, "frank@example.com", true, "covering for Bob")
	if err != nil {
		t.Fatal(err)
	}
	c := r.Steps[0].Challenge
	if c == nil || c.Approver.Email != "frank@example.com" || c.OnBehalfOf.Email != "bob@example.com" || c.Delegation != d.ID || idp.pushCount() != 1 {
		t.Fatalf("after the delegate's click: challenge %+v, %d pushes", c, idp.pushCount())
	}
	e.answerPush(idp, access.ChallengeSuccess)
	st := e.get(r.ID).Steps[0]
	if st.Decision != access.DecisionApproved || st.DecidedBy.Email != "frank@example.com" || st.OnBehalfOf.Email != "bob@example.com" ||
		st.Delegation != d.ID || st.MFAFactor != "fake:push" {
		t.Fatalf("step after the push: %+v", st)
	}
	if got := e.events(r.ID); got[len(got)-1] != "step.approved" {
		t.Fatalf("events %v, want step.approved last", got)
	}
}

// TestMFAReviewFindings: the reviews of issue 15's merge and of the
// re-check at acceptance. A delegate's click while another push waits is
// refused cleanly (it panicked); a push accepted after the delegation
// ended, the policy changed, the approver left the approval group or the
// delegate was suspended does not approve the step (it did); an acceptance
// the IdP cannot confirm before the window ends is "unverified", not
// "timed out unanswered".
func TestMFAReviewFindings(t *testing.T) {
	t.Run("delegate clicks while a push waits", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
		r := e.clickApprove("bob@example.com", "ok")
		_, err := e.decide(r.ID, 0, "frank@example.com", true, "covering")
		if access.CodeOf(err) != access.CodeConflict || idp.pushCount() != 1 {
			t.Fatalf("frank's click: %v (code %s), %d pushes; want a conflict and no second push", err, access.CodeOf(err), idp.pushCount())
		}
	})
	t.Run("approver left the approval group before the push was accepted", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r := e.clickApprove("bob@example.com", "")
		e.answerPush(idp, access.ChallengeSuccess)
		if _, err := e.decide(r.ID, 1, "dave@example.com", true, ""); err != nil {
			t.Fatal(err)
		}
		e.idp.setMember("security-team", "dave@example.com", false) // removed during the push window
		e.answerPush(idp, access.ChallengeSuccess)
		got := e.get(r.ID)
		st := got.Steps[1]
		if got.State != access.StatePending || st.Decision != access.DecisionNone || st.Challenge != nil || !strings.Contains(st.MFANote, "ended meanwhile") {
			t.Fatalf("request %s, step after the push: %+v; want pending and undecided with a note", got.State, st)
		}
		if e.count(access.EvMFAFailed) != 1 {
			t.Fatalf("%d mfa.failed events, want 1", e.count(access.EvMFAFailed))
		}
	})
	t.Run("an IdP that cannot re-check the approver leaves the push waiting", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r := e.clickApprove("bob@example.com", "")
		e.idp.failNext("lookup", access.Errorf(access.CodeUnavailable, "okta: 503"))
		e.answerPush(idp, access.ChallengeSuccess)
		if st := e.get(r.ID).Steps[0]; st.Decision != access.DecisionNone || st.Challenge == nil {
			t.Fatalf("step while the IdP is down: %+v; want the push still waiting", st)
		}
		e.clock.Advance(handlers.MFAPollEvery)
		e.settle()
		if st := e.get(r.ID).Steps[0]; st.Decision != access.DecisionApproved {
			t.Fatalf("step once the IdP answers: %+v; want approved", st)
		}
	})
	t.Run("delegate suspended before the push was accepted", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
		r := e.clickApprove("frank@example.com", "covering")
		e.idp.setStatus("frank@example.com", access.StatusSuspended) // the feed has not offboarded him yet
		e.answerPush(idp, access.ChallengeSuccess)
		st := e.get(r.ID).Steps[0]
		if st.Decision != access.DecisionNone || st.Challenge != nil || !strings.Contains(st.MFANote, "ended meanwhile") {
			t.Fatalf("step after the suspended delegate's push: %+v; want undecided with a note", st)
		}
		if why := mfaFailedDetail(e)["why"]; !strings.Contains(fmt.Sprint(why), "suspended") {
			t.Fatalf("mfa.failed why %q; want it to say the delegate is suspended", why)
		}
	})
	t.Run("accepted push the IdP cannot re-check before the window ends", func(t *testing.T) {
		e, idp := newMFAEnv(t)
		r := e.clickApprove("bob@example.com", "")
		errs := make([]error, 500)
		for i := range errs {
			errs[i] = access.Errorf(access.CodeUnavailable, "okta: 503")
		}
		e.idp.failNext("lookup", errs...)
		idp.answer(access.ChallengeSuccess)
		for run := time.Duration(0); run <= handlers.MFAWindow; run += handlers.MFAPollEvery {
			e.clock.Advance(handlers.MFAPollEvery)
			e.settle()
		}
		st := e.get(r.ID).Steps[0]
		if st.Decision != access.DecisionNone || st.Challenge != nil || !strings.Contains(st.MFANote, "could not confirm") {
			t.Fatalf("step: %+v; want undecided, and a note that the acceptance could not be confirmed (not 'timed out unanswered')", st)
		}
		if d := mfaFailedDetail(e); d["outcome"] != string(access.ChallengeUnverified) || d["why"] == nil {
			t.Fatalf("mfa.failed detail %v; want outcome unverified with a why", d)
		}
	})
	for _, c := range []struct {
		name  string
		after func(e *env)
	}{
		{"delegation turned off before the push was accepted", func(e *env) {
			if _, err := e.svc.EndDelegation(context.Background(), slackID("bob@example.com"), "bob@example.com"); err != nil {
				e.t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, idp := newMFAEnv(t)
			e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
			r := e.clickApprove("frank@example.com", "covering")
			c.after(e)
			e.answerPush(idp, access.ChallengeSuccess)
			st := e.get(r.ID).Steps[0]
			if st.Decision != access.DecisionNone || st.Challenge != nil || !strings.Contains(st.MFANote, "ended meanwhile") {
				t.Fatalf("step after the push: %+v; want undecided with a note", st)
			}
			if e.count(access.EvMFAFailed) != 1 {
				t.Fatalf("%d mfa.failed events, want 1", e.count(access.EvMFAFailed))
			}
		})
	}
}

// mfaFailedDetail is the detail of the last mfa.failed event.
func mfaFailedDetail(e *env) map[string]any {
	e.t.Helper()
	var d map[string]any
	_ = e.svc.Events(0, func(ev access.Event) error {
		if ev.Type == access.EvMFAFailed {
			d = nil
			return access.DecodeDetail(ev, &d)
		}
		return nil
	})
	return d
}

// clickApprove submits ann's migration request and has approver click
// Approve on its first step with note, which sends the MFA push.
func (e *env) clickApprove(approver, note string) access.Request {
	e.t.Helper()
	r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.decide(r.ID, 0, approver, true, note); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// answerPush answers the latest push and lets the scheduler poll it.
func (e *env) answerPush(idp *mfaIdP, res access.ChallengeResult) {
	e.t.Helper()
	idp.answer(res)
	e.clock.Advance(handlers.MFAPollEvery)
	e.settle()
}
