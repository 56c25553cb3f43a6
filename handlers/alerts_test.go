package handlers_test

import (
	"context"
	"slices"
	"testing"

	"keycard/access"
	"keycard/handlers"
)

func TestAlertTriage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Identify(ctx, "UANN", "ann@example.com"); err != nil { // seq 1: identity.pinned, not an alert
		t.Fatal(err)
	}
	if err := e.svc.Alert("test", "ann@example.com", "something happened", nil); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	_ = e.svc.Events(0, func(ev access.Event) error {
		if ev.Type == access.EvAlert {
			seq = ev.Seq
		}
		return nil
	})
	cases := []struct {
		name    string
		email   string
		seq     uint64
		resolve bool
		code    access.Code
		state   string
	}{
		{"non-admin", "ann@example.com", seq, false, access.CodeForbidden, handlers.AlertOpen},
		{"not an alert", "frank@example.com", 1, false, access.CodeInvalid, handlers.AlertOpen},
		{"acknowledge", "frank@example.com", seq, false, "", handlers.AlertAcknowledged},
		{"acknowledge twice", "frank@example.com", seq, false, access.CodeConflict, handlers.AlertAcknowledged},
		{"resolve", "frank@example.com", seq, true, "", handlers.AlertResolved},
		{"resolve twice", "frank@example.com", seq, true, access.CodeConflict, handlers.AlertResolved},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.TriageAlert(ctx, slackID(c.email), c.email, c.seq, c.resolve, "false positive: planned maintenance")
			wantCode(t, err, c.code)
			st, _ := e.svc.AlertStateOf(seq)
			if st.State != c.state {
				t.Fatalf("state %s, want %s", st.State, c.state)
			}
		})
	}
	evs := e.events("")
	if !slices.Contains(evs, "alert.acknowledged") || !slices.Contains(evs, "alert.resolved") {
		t.Fatalf("triage not audited: %v", evs)
	}
}
