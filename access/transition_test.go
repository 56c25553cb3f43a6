package access_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"keycard/access"
)

var (
	t0    = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	bob   = access.Person{Email: "bob@example.com"}
	carol = access.Person{Email: "carol@example.com"}
)

// inState is a request in state s with two steps, the first approved when
// it is past pending, and the deadlines a pending request has.
func inState(s access.State) access.Request {
	r := access.Request{ID: "REQ-1", State: s, Requester: access.Person{Email: "alice@example.com"}, Duration: time.Hour,
		Steps:     []access.Step{{Rule: "manager", Candidates: []access.Person{bob}}, {Rule: "group:sec", Candidates: []access.Person{carol}}},
		CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour), RemindAt: t0.Add(time.Hour), EscalateAt: t0.Add(2 * time.Hour)}
	if s != access.StatePending {
		r.ExpiresAt, r.RemindAt, r.EscalateAt = time.Time{}, time.Time{}, time.Time{}
	}
	return r
}

// Every transition, from every state: the legal ones move the request to
// the state the SPEC's lifecycle names; every other one is refused with a
// conflict and leaves the request as it was.
func TestTransitionTable(t *testing.T) {
	now := t0.Add(30 * time.Minute)
	late := t0.Add(25 * time.Hour) // past the pending request's ExpiresAt
	transitions := []struct {
		name string
		do   func(r *access.Request) error
		from map[access.State]access.State // legal source -> resulting state
	}{
		{"ApproveStep", func(r *access.Request) error { _, err := r.ApproveStep(bob, "ok", now); return err },
			map[access.State]access.State{access.StatePending: access.StatePending}},
		{"Deny", func(r *access.Request) error { return r.Deny(bob, "no", now) },
			map[access.State]access.State{access.StatePending: access.StateDenied}},
		{"Cancel", func(r *access.Request) error { return r.Cancel(now) },
			map[access.State]access.State{access.StatePending: access.StateCancelled}},
		{"TimeOut", func(r *access.Request) error { return r.TimeOut(late) },
			map[access.State]access.State{access.StatePending: access.StateTimedOut}},
		{"Activate", func(r *access.Request) error { _, err := r.Activate(now, "ev1", time.Time{}); return err },
			map[access.State]access.State{access.StateProvisioning: access.StateActive}},
		{"Fail", func(r *access.Request) error { return r.Fail("boom", now) },
			map[access.State]access.State{access.StateProvisioning: access.StateFailed, access.StateScheduled: access.StateFailed}},
		{"Start", func(r *access.Request) error { return r.Start(now) },
			map[access.State]access.State{access.StateScheduled: access.StateProvisioning}},
		{"DelayStart", func(r *access.Request) error { return r.DelayStart(late) },
			map[access.State]access.State{access.StateScheduled: access.StateScheduled}},
		{"Withdraw", func(r *access.Request) error { return r.Withdraw(access.ReasonRevoked, bob, now) },
			map[access.State]access.State{access.StateScheduled: access.StateRevoked}},
		{"BeginEnding", func(r *access.Request) error { return r.BeginEnding(access.ReasonRevoked, bob, now) },
			map[access.State]access.State{access.StateProvisioning: access.StateDeprovisioning, access.StateActive: access.StateDeprovisioning}},
		{"End", func(r *access.Request) error { return r.End(now, "ev2") },
			map[access.State]access.State{access.StateDeprovisioning: access.StateRevoked}},
		{"Extend", func(r *access.Request) error { return r.Extend("REQ-2") },
			map[access.State]access.State{access.StateActive: access.StateActive}},
		{"Remind", func(r *access.Request) error { return r.Remind(late, time.Time{}) },
			map[access.State]access.State{access.StatePending: access.StatePending}},
		{"Escalate", func(r *access.Request) error { _, err := r.Escalate([]access.Person{carol}, late); return err },
			map[access.State]access.State{access.StatePending: access.StatePending}},
	}
	states := []access.State{access.StatePending, access.StateScheduled, access.StateProvisioning, access.StateActive, access.StateDeprovisioning,
		access.StateExpired, access.StateRevoked, access.StateDenied, access.StateCancelled, access.StateTimedOut, access.StateFailed}
	for _, tr := range transitions {
		for _, from := range states {
			t.Run(tr.name+"/"+string(from), func(t *testing.T) {
				r := inState(from)
				before := r
				before.Steps = slices.Clone(r.Steps)
				err := tr.do(&r)
				want, legal := tr.from[from]
				if !legal {
					if access.CodeOf(err) != access.CodeConflict {
						t.Fatalf("%s from %s: got %v, want a conflict", tr.name, from, err)
					}
					if !reflect.DeepEqual(r, before) {
						t.Fatalf("a refused %s changed the request: %s", tr.name, r.String())
					}
					return
				}
				if err != nil {
					t.Fatalf("%s from %s: %v", tr.name, from, err)
				}
				if r.State != want {
					t.Fatalf("%s from %s: state %s, want %s", tr.name, from, r.State, want)
				}
			})
		}
	}
}

// Closing a pending request records when it was decided and drops every
// deadline, so the scheduler never looks at it again.
func TestClosePendingBookkeeping(t *testing.T) {
	now := t0.Add(30 * time.Minute)
	cases := []struct {
		name  string
		do    func(r *access.Request) error
		state access.State
		at    time.Time
	}{
		{"deny", func(r *access.Request) error { return r.Deny(bob, "no", now) }, access.StateDenied, now},
		{"cancel", func(r *access.Request) error { return r.Cancel(now) }, access.StateCancelled, now},
		{"time out", func(r *access.Request) error { return r.TimeOut(t0.Add(24 * time.Hour)) }, access.StateTimedOut, t0.Add(24 * time.Hour)},
		{"approve", func(r *access.Request) error {
			for done := false; !done; {
				var err error
				if done, err = r.ApproveStep(bob, "", now); err != nil {
					return err
				}
			}
			return r.Approve(now)
		}, access.StateProvisioning, now},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := inState(access.StatePending)
			if err := c.do(&r); err != nil {
				t.Fatal(err)
			}
			if r.State != c.state || !r.DecidedAt.Equal(c.at) {
				t.Fatalf("state %s decided %v, want %s at %v", r.State, r.DecidedAt, c.state, c.at)
			}
			if !r.ExpiresAt.IsZero() || !r.RemindAt.IsZero() || !r.EscalateAt.IsZero() || !r.NextDue().IsZero() {
				t.Fatalf("deadlines left: expires %v remind %v escalate %v", r.ExpiresAt, r.RemindAt, r.EscalateAt)
			}
		})
	}
}

func TestApproveStepWalksTheChain(t *testing.T) {
	r := inState(access.StatePending)
	if done, err := r.ApproveStep(bob, "fine", t0); err != nil || done || r.Current != 1 {
		t.Fatalf("first step: done %v err %v current %d", done, err, r.Current)
	}
	if st := r.Steps[0]; st.Decision != access.DecisionApproved || !st.DecidedBy.Same(bob) || st.Comment != "fine" || !st.DecidedAt.Equal(t0) {
		t.Fatalf("first step recorded as %+v", st)
	}
	if err := r.Approve(t0); access.CodeOf(err) != access.CodeInvalid {
		t.Fatalf("approve with a step undecided: %v, want invalid", err)
	}
	if done, err := r.ApproveStep(carol, "", t0); err != nil || !done || r.Current != 1 {
		t.Fatalf("last step: done %v err %v current %d", done, err, r.Current)
	}
	if err := r.Approve(t0); err != nil || r.Current != 2 || r.Step() != nil {
		t.Fatalf("approve: %v, current %d", err, r.Current)
	}
	auto := access.Request{ID: "REQ-3", State: access.StatePending}
	if err := auto.Approve(t0); err != nil || auto.State != access.StateProvisioning {
		t.Fatalf("auto approval: %v, %s", err, auto.State)
	}
}

func TestDenyRecordsTheStep(t *testing.T) {
	r := inState(access.StatePending)
	if err := r.Deny(bob, "not now", t0); err != nil {
		t.Fatal(err)
	}
	if st := r.Steps[0]; st.Decision != access.DecisionDenied || st.Comment != "not now" || r.Current != 0 {
		t.Fatalf("step %+v current %d", st, r.Current)
	}
}

func TestTimeOutBeforeTheDeadlineIsRefused(t *testing.T) {
	r := inState(access.StatePending)
	if err := r.TimeOut(r.ExpiresAt.Add(-time.Second)); access.CodeOf(err) != access.CodeConflict || r.State != access.StatePending {
		t.Fatalf("early timeout: %v, %s", err, r.State)
	}
}

func TestActivate(t *testing.T) {
	cases := []struct {
		name     string
		assumed  time.Time
		start    time.Time
		assuming bool
	}{
		{"confirmed", time.Time{}, t0, false},
		{"assumed from the first attempt", t0.Add(-time.Minute), t0.Add(-time.Minute), true},
		{"an attempt after the confirmation is not assumed", t0.Add(time.Minute), t0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := inState(access.StateProvisioning)
			start, err := r.Activate(t0, "ev", c.assumed)
			if err != nil {
				t.Fatal(err)
			}
			if !start.Equal(c.start) || r.StartAssumed != c.assuming || !r.ProvisionedAt.Equal(t0) || r.AddEventID != "ev" {
				t.Fatalf("start %v assumed %v provisioned %v event %q", start, r.StartAssumed, r.ProvisionedAt, r.AddEventID)
			}
			if c.assuming && !r.StartedAt.Equal(c.assumed) {
				t.Fatalf("started at %v, want %v", r.StartedAt, c.assumed)
			}
		})
	}
}

func TestEndingAGrant(t *testing.T) {
	cases := []struct {
		reason access.Reason
		want   access.State
	}{
		{access.ReasonExpired, access.StateExpired},
		{access.ReasonRevoked, access.StateRevoked},
		{access.ReasonOffboarded, access.StateRevoked},
	}
	for _, c := range cases {
		t.Run(string(c.reason), func(t *testing.T) {
			r := inState(access.StateActive)
			r.EndsAt, r.WarnAt = t0.Add(time.Hour), t0.Add(50*time.Minute)
			if err := r.BeginEnding(c.reason, bob, t0); err != nil {
				t.Fatal(err)
			}
			if r.State != access.StateDeprovisioning || !r.EndedAt.Equal(t0) || !r.WarnAt.IsZero() || !r.EndsAt.Equal(t0.Add(time.Hour)) || !r.EndedBy.Same(bob) {
				t.Fatalf("ending: %+v", r)
			}
			if !r.State.HoldsMembership() {
				t.Fatal("an ending grant must still count as holding the membership")
			}
			if err := r.End(t0.Add(time.Minute), "ev"); err != nil {
				t.Fatal(err)
			}
			if r.State != c.want || !r.DeprovisionedAt.Equal(t0.Add(time.Minute)) || r.RemoveEventID != "ev" {
				t.Fatalf("ended: %s at %v", r.State, r.DeprovisionedAt)
			}
		})
	}
}

func TestFailAndExtend(t *testing.T) {
	r := inState(access.StateProvisioning)
	r.EndsAt = t0
	if err := r.Fail("IdP said no", t0); err != nil || r.FailReason != "IdP said no" || !r.EndsAt.IsZero() || !r.EndedAt.Equal(t0) {
		t.Fatalf("fail: %v %+v", err, r)
	}
	g := inState(access.StateActive)
	g.WarnAt = t0
	if err := g.Extend("REQ-2"); err != nil || g.ExtendedBy != "REQ-2" || !g.WarnAt.IsZero() {
		t.Fatalf("extend: %v %+v", err, g)
	}
	if err := g.Extend(""); access.CodeOf(err) != access.CodeInvalid {
		t.Fatalf("extend by nothing: %v", err)
	}
}

func TestRemind(t *testing.T) {
	cases := []struct {
		name     string
		now      time.Time
		next     time.Time
		wantNext time.Time
		refused  bool
	}{
		{"not due", t0.Add(59 * time.Minute), t0.Add(2 * time.Hour), time.Time{}, true},
		{"due, next scheduled", t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(2 * time.Hour), false},
		{"due, no next", t0.Add(time.Hour), time.Time{}, time.Time{}, false},
		{"the timeout comes first", t0.Add(time.Hour), t0.Add(24 * time.Hour), time.Time{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := inState(access.StatePending)
			err := r.Remind(c.now, c.next)
			if c.refused {
				if access.CodeOf(err) != access.CodeConflict || !r.RemindAt.Equal(t0.Add(time.Hour)) {
					t.Fatalf("early reminder: %v, remind at %v", err, r.RemindAt)
				}
				return
			}
			if err != nil || !r.RemindAt.Equal(c.wantNext) || !r.Steps[0].Reminded.Equal(c.now) {
				t.Fatalf("remind: %v, next %v, reminded %v", err, r.RemindAt, r.Steps[0].Reminded)
			}
		})
	}
}

func TestEscalate(t *testing.T) {
	r := inState(access.StatePending)
	dave := access.Person{Email: "dave@example.com"}
	if _, err := r.Escalate([]access.Person{dave}, t0.Add(time.Hour)); access.CodeOf(err) != access.CodeConflict {
		t.Fatalf("early escalation: %v", err)
	}
	at := t0.Add(2 * time.Hour)
	added, err := r.Escalate([]access.Person{bob, r.Requester, dave}, at)
	if err != nil || len(added) != 1 || added[0] != dave.Email {
		t.Fatalf("escalate: %v, added %v", err, added)
	}
	st := r.Steps[0]
	if !st.Escalated || !st.EscalatedAt.Equal(at) || st.Added != 1 || len(st.Candidates) != 2 || !r.EscalateAt.IsZero() {
		t.Fatalf("step after escalation: %+v, escalate at %v", st, r.EscalateAt)
	}
	// Nobody new to add: the escalation is still done, and says so with an
	// empty list (the audit detail shows "added":[]).
	r2 := inState(access.StatePending)
	if added, err := r2.Escalate(nil, at); err != nil || added == nil || len(added) != 0 || !r2.Steps[0].Escalated {
		t.Fatalf("escalation adding nobody: %v, %v", added, err)
	}
}
