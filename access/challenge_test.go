package access

import (
	"testing"
	"time"
)

func mfaRequest() Request {
	bob, carol := Person{Email: "bob@x", Name: "Bob"}, Person{Email: "carol@x", Name: "Carol"}
	return Request{ID: "REQ-1", State: StatePending, Steps: []Step{
		{Rule: "manager", Candidates: []Person{bob}, MFA: true},
		{Rule: "group:sec", Candidates: []Person{carol}, MFA: true},
	}}
}

func TestChallengeTransitions(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	bob := Person{Email: "bob@x", Name: "Bob"}
	c := Challenge{Approver: bob, Factor: "okta:push", Ref: "f/1", SentAt: t0, Deadline: t0.Add(6 * time.Minute), Comment: "ok"}
	cases := []struct {
		name     string
		res      ChallengeResult
		decided  bool
		complete bool
		note     string
	}{
		{"success", ChallengeSuccess, true, false, ""},
		{"rejected", ChallengeRejected, false, false, "The MFA push to Bob was rejected on the phone."},
		{"timeout", ChallengeTimeout, false, false, "The MFA push to Bob timed out unanswered."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mfaRequest()
			if err := r.BeginChallenge(c, t0.Add(5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if r.ChallengePending(t0) == nil || r.NextDue() != t0.Add(5*time.Second) {
				t.Fatalf("pending %v, due %s", r.ChallengePending(t0), r.NextDue())
			}
			// A second challenge while one waits is a conflict.
			second := c
			second.Ref, second.SentAt = "f/2", t0.Add(time.Minute)
			if err := r.BeginChallenge(second, t0); CodeOf(err) != CodeConflict {
				t.Fatalf("second challenge: %v", err)
			}
			// An outcome for another ref changes nothing.
			if _, _, err := r.FinishChallenge("f/9", ChallengeSuccess, t0); CodeOf(err) != CodeConflict {
				t.Fatalf("foreign ref: %v", err)
			}
			got, complete, err := r.FinishChallenge("f/1", tc.res, t0.Add(time.Minute))
			if err != nil || got.Approver != bob || complete != tc.complete {
				t.Fatalf("finish: %+v %v %v", got, complete, err)
			}
			st := r.Steps[0]
			if (st.Decision == DecisionApproved) != tc.decided || st.Challenge != nil || !r.MFAPollAt.IsZero() || st.MFANote != tc.note {
				t.Fatalf("step %+v poll %s", st, r.MFAPollAt)
			}
			if tc.decided && (st.MFAFactor != "okta:push" || st.DecidedBy != bob || st.Comment != "ok" || r.Current != 1) {
				t.Fatalf("approved step %+v current %d", st, r.Current)
			}
			if !tc.decided && r.Current != 0 {
				t.Fatalf("current %d", r.Current)
			}
		})
	}
	t.Run("a step without MFA refuses a challenge", func(t *testing.T) {
		r := mfaRequest()
		r.Steps[0].MFA = false
		if err := r.BeginChallenge(c, t0); CodeOf(err) != CodeInvalid {
			t.Fatal(err)
		}
	})
	t.Run("an expired challenge no longer blocks a new one", func(t *testing.T) {
		r := mfaRequest()
		_ = r.BeginChallenge(c, t0)
		later := c
		later.Ref, later.SentAt, later.Deadline = "f/2", c.Deadline, c.Deadline.Add(6*time.Minute)
		if err := r.BeginChallenge(later, later.SentAt); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deny ends the challenge", func(t *testing.T) {
		r := mfaRequest()
		_ = r.BeginChallenge(c, t0)
		if err := r.Deny(bob, "no", t0); err != nil {
			t.Fatal(err)
		}
		if r.Steps[0].Challenge != nil || !r.MFAPollAt.IsZero() {
			t.Fatal("challenge survived the denial")
		}
		if _, _, err := r.FinishChallenge("f/1", ChallengeSuccess, t0); CodeOf(err) != CodeConflict {
			t.Fatalf("late success: %v", err)
		}
	})
	t.Run("as of before the approval, no factor", func(t *testing.T) {
		r := mfaRequest()
		_ = r.BeginChallenge(c, t0)
		_, _, _ = r.FinishChallenge("f/1", ChallengeSuccess, t0.Add(time.Minute))
		old := r.AsOf(t0.Add(30 * time.Second))
		if old.Steps[0].MFAFactor != "" || old.Steps[0].Decision != DecisionNone {
			t.Fatalf("as of: %+v", old.Steps[0])
		}
	})
}
