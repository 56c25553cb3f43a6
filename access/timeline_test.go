package access_test

import (
	"testing"
	"time"

	"keycard/access"
)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// A grant's life in minutes from t0: requested 0, decided 10, provisioned
// 12, scheduled to end 72, ended early at 40, removal confirmed at 41.
func revokedGrant() access.Request {
	return access.Request{ID: "REQ-1", State: access.StateRevoked, Duration: time.Hour, CreatedAt: at(0),
		Steps:   []access.Step{{Rule: "manager", Candidates: []access.Person{bob}, Decision: access.DecisionApproved, DecidedBy: bob, DecidedAt: at(10)}},
		Current: 1, DecidedAt: at(10), ProvisionedAt: at(12), EndsAt: at(72), EndedAt: at(40), DeprovisionedAt: at(41),
		EndReason: access.ReasonRevoked, EndedBy: carol}
}

func TestAccessStartAndEnd(t *testing.T) {
	cases := []struct {
		name       string
		edit       func(r *access.Request)
		start, end time.Time
	}{
		{"confirmed, revoked early", func(*access.Request) {}, at(12), at(40)},
		{"ran its time", func(r *access.Request) { r.EndedAt, r.EndReason = at(72), access.ReasonExpired }, at(12), at(72)},
		{"assumed start at the first attempt", func(r *access.Request) {
			r.StartAssumed, r.StartedAt, r.EndsAt = true, at(11), at(71)
		}, at(11), at(40)},
		{"an extension starts where the grant it continues ends", func(r *access.Request) {
			r.EndsAt, r.EndedAt = at(150), time.Time{}
		}, at(90), at(150)},
		{"not provisioned", func(r *access.Request) {
			r.ProvisionedAt, r.EndsAt, r.EndedAt = time.Time{}, time.Time{}, time.Time{}
		}, time.Time{}, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := revokedGrant()
			c.edit(&r)
			if got := r.AccessStart(); !got.Equal(c.start) {
				t.Errorf("AccessStart = %v, want %v", got, c.start)
			}
			if got := r.AccessEnd(); !got.Equal(c.end) {
				t.Errorf("AccessEnd = %v, want %v", got, c.end)
			}
		})
	}
}

func TestLifecycleEnd(t *testing.T) {
	cases := []struct {
		state access.State
		edit  func(r *access.Request)
		want  time.Time
	}{
		{access.StateRevoked, nil, at(41)},
		{access.StateExpired, nil, at(41)},
		{access.StateDenied, nil, at(10)},
		{access.StateCancelled, nil, at(10)},
		{access.StateTimedOut, nil, at(10)},
		{access.StateFailed, nil, at(40)},
		{access.StateFailed, func(r *access.Request) { r.EndedAt = time.Time{} }, at(10)},
		{access.StateFailed, func(r *access.Request) { r.EndedAt, r.DecidedAt = time.Time{}, time.Time{} }, at(0)},
		{access.StatePending, nil, time.Time{}},
		{access.StateProvisioning, nil, time.Time{}},
		{access.StateActive, nil, time.Time{}},
		{access.StateDeprovisioning, nil, time.Time{}},
	}
	for _, c := range cases {
		r := revokedGrant()
		r.State = c.state
		if c.edit != nil {
			c.edit(&r)
		}
		if got := r.LifecycleEnd(); !got.Equal(c.want) {
			t.Errorf("%s: LifecycleEnd = %v, want %v", c.state, got, c.want)
		}
	}
}

// AsOf shows the request as it stood just before each moment of its life,
// and ChangedSince says whether there is anything to undo.
func TestAsOf(t *testing.T) {
	cases := []struct {
		at      time.Time
		state   access.State
		current int
		changed bool
	}{
		{at(5), access.StatePending, 0, true},
		{at(10), access.StatePending, 0, true}, // decided at 10: not yet, just before
		{at(11), access.StateProvisioning, 1, true},
		{at(20), access.StateActive, 1, true},
		{at(40), access.StateActive, 1, true},
		{at(41), access.StateDeprovisioning, 1, true},
		{at(42), access.StateRevoked, 1, false},
	}
	for _, c := range cases {
		t.Run(c.at.Format("15:04"), func(t *testing.T) {
			r := revokedGrant()
			if got := r.ChangedSince(c.at); got != c.changed {
				t.Fatalf("ChangedSince = %v, want %v", got, c.changed)
			}
			a := r.AsOf(c.at)
			if a.State != c.state || a.Current != c.current {
				t.Fatalf("as of %v: %s at step %d, want %s at step %d", c.at, a.State, a.Current, c.state, c.current)
			}
			if c.state == access.StatePending && (a.Steps[0].Decision != access.DecisionNone || !a.DecidedAt.IsZero() || !a.EndsAt.IsZero()) {
				t.Fatalf("a pending request as of %v still shows its decision: %+v", c.at, a)
			}
			if c.state == access.StateActive && (!a.EndedAt.IsZero() || a.EndReason != "" || !a.EndsAt.Equal(at(72))) {
				t.Fatalf("an active grant as of %v: ended %v (%s), ends %v", c.at, a.EndedAt, a.EndReason, a.EndsAt)
			}
			if r.Steps[0].Decision != access.DecisionApproved {
				t.Fatal("AsOf changed the stored request's steps")
			}
		})
	}
}

// An escalation after the moment is undone: the approvers it added were
// not asked yet.
func TestAsOfBeforeAnEscalation(t *testing.T) {
	r := access.Request{ID: "REQ-2", State: access.StatePending, CreatedAt: at(0),
		Steps: []access.Step{{Rule: "manager", Candidates: []access.Person{bob, carol}, Escalated: true, EscalatedAt: at(30), Added: 1}}}
	a := r.AsOf(at(20))
	if st := a.Steps[0]; st.Escalated || len(st.Candidates) != 1 || !st.Candidates[0].Same(bob) {
		t.Fatalf("as of before the escalation: %+v", st)
	}
	if len(r.Steps[0].Candidates) != 2 {
		t.Fatal("AsOf changed the stored request's candidates")
	}
}
