package access_test

import (
	"testing"
	"time"

	"keycard/access"
)

// scheduledGrant: requested at 0 to start at 100, approved at 10.
func scheduledGrant(t *testing.T) access.Request {
	t.Helper()
	r := access.Request{ID: "REQ-7", State: access.StatePending, Duration: time.Hour, CreatedAt: at(0), StartAt: at(100),
		Steps: []access.Step{{Rule: "manager", Candidates: []access.Person{bob}}}}
	if _, err := r.ApproveStep(bob, "", at(10)); err != nil {
		t.Fatal(err)
	}
	if err := r.Approve(at(10)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestScheduledLifecycle(t *testing.T) {
	t.Run("approved before the start: scheduled, due at the start", func(t *testing.T) {
		r := scheduledGrant(t)
		if r.State != access.StateScheduled || !r.NextDue().Equal(at(100)) || r.ExportStatus() != "pending" {
			t.Fatalf("state %s, due %v, status %s", r.State, r.NextDue(), r.ExportStatus())
		}
		if r.State.HoldsMembership() {
			t.Fatal("a scheduled grant holds no membership")
		}
	})
	t.Run("approved after the start asked for: provisioning at once", func(t *testing.T) {
		r := access.Request{ID: "REQ-8", State: access.StatePending, StartAt: at(5)}
		if err := r.Approve(at(10)); err != nil || r.State != access.StateProvisioning || r.Scheduled() {
			t.Fatalf("state %s, scheduled %v, err %v", r.State, r.Scheduled(), err)
		}
	})
	t.Run("start refused before StartAt, then provisioning", func(t *testing.T) {
		r := scheduledGrant(t)
		if err := r.Start(at(99)); access.CodeOf(err) != access.CodeConflict || r.State != access.StateScheduled {
			t.Fatalf("early start: %v, state %s", err, r.State)
		}
		if err := r.DelayStart(at(101)); err != nil || !r.NextDue().Equal(at(101)) {
			t.Fatalf("delay: %v, due %v", err, r.NextDue())
		}
		if err := r.Start(at(101)); err != nil || r.State != access.StateProvisioning || !r.StartRetryAt.IsZero() {
			t.Fatalf("start: %v, state %s", err, r.State)
		}
		if !r.DecidedAt.Equal(at(10)) {
			t.Errorf("the approval time moved: %v", r.DecidedAt)
		}
		start, err := r.Activate(at(101), "ev", time.Time{})
		if err != nil || !start.Equal(at(101)) {
			t.Fatalf("activate: %v %v", start, err)
		}
	})
	t.Run("withdrawn before the start: revoked, nothing to remove", func(t *testing.T) {
		r := scheduledGrant(t)
		if err := r.Withdraw(access.ReasonRevoked, carol, at(50)); err != nil {
			t.Fatal(err)
		}
		if r.State != access.StateRevoked || !r.NeverStarted() || !r.NextDue().IsZero() || r.EndedBy != carol {
			t.Fatalf("%+v", r)
		}
		if !r.AccessStart().IsZero() || !r.AccessEnd().IsZero() || !r.LifecycleEnd().Equal(at(50)) {
			t.Errorf("start %v end %v lifecycle end %v", r.AccessStart(), r.AccessEnd(), r.LifecycleEnd())
		}
		if err := r.Withdraw(access.ReasonRevoked, carol, at(51)); access.CodeOf(err) != access.CodeConflict {
			t.Errorf("second withdraw: %v", err)
		}
	})
	t.Run("only a scheduled grant is withdrawn or started", func(t *testing.T) {
		for _, s := range []access.State{access.StatePending, access.StateProvisioning, access.StateActive, access.StateExpired} {
			r := access.Request{State: s, StartAt: at(1)}
			if r.Withdraw(access.ReasonRevoked, carol, at(5)) == nil || r.Start(at(5)) == nil || r.DelayStart(at(6)) == nil {
				t.Errorf("%s: a transition of scheduled access was allowed", s)
			}
		}
	})
	t.Run("the re-check at the start refuses it: failed", func(t *testing.T) {
		r := scheduledGrant(t)
		if err := r.Fail("no longer eligible", at(100)); err != nil || r.State != access.StateFailed {
			t.Fatalf("%v %s", err, r.State)
		}
	})
}

func TestAsOfScheduled(t *testing.T) {
	started := scheduledGrant(t)
	if err := started.Start(at(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := started.Activate(at(101), "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	started.EndsAt = at(161)
	withdrawn := scheduledGrant(t)
	if err := withdrawn.Withdraw(access.ReasonRevoked, carol, at(50)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		r    access.Request
		t    time.Time
		want access.State
	}{
		{"before the approval", started, at(5), access.StatePending},
		{"approved, start not come", started, at(60), access.StateScheduled},
		{"start come, add not confirmed", started, at(100).Add(time.Second), access.StateProvisioning},
		{"active", started, at(120), access.StateActive},
		{"withdrawn: scheduled before", withdrawn, at(40), access.StateScheduled},
		{"withdrawn: as stored after", withdrawn, at(60), access.StateRevoked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.r.AsOf(c.t)
			if got.State != c.want {
				t.Fatalf("AsOf(%v) = %s, want %s", c.t, got.State, c.want)
			}
			if got.State == access.StateScheduled && got.State.HoldsMembership() {
				t.Fatal("a scheduled grant as of then held a membership")
			}
		})
	}
}
