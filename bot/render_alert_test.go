package bot

import (
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
)

func TestRenderAlertTriage(t *testing.T) {
	e := access.Event{Seq: 42, Type: access.EvAlert, Time: t0, Subject: "ann@example.com", RequestID: "REQ-1001", Policy: "prod-db-admin",
		Detail: `{"kind":"provisioning_failed","message":"Could not add ann@example.com to prod-db-admins after 8 attempts"}`}
	d, err := access.AlertOf(e)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		st   handlers.AlertState
	}{
		{"alert_open", handlers.AlertState{Seq: 42, State: handlers.AlertOpen}},
		{"alert_acknowledged", handlers.AlertState{Seq: 42, State: handlers.AlertAcknowledged, By: "frank@example.com", At: t0.Add(time.Minute)}},
		{"alert_resolved", handlers.AlertState{Seq: 42, State: handlers.AlertResolved, By: "frank@example.com", At: t0.Add(time.Hour), Outcome: "Okta admin role fixed; re-requested"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { golden(t, c.name, TriagedAlert(e, d, c.st, time.UTC)) })
	}
	st := handlers.StagedPolicy{Hash: "6f1c2d", Path: "policy.yaml", StagedBy: "SIGHUP", StagedAt: t0,
		Changes: []string{"policies.prod-db-admin.duration.max 8h -> 12h", `alerts.channel "" -> "#security-alerts"`}}
	t.Run("policy_staged", func(t *testing.T) { golden(t, "policy_staged", PolicyStagedMessage(e, st, "", time.UTC)) })
	t.Run("policy_approved", func(t *testing.T) {
		golden(t, "policy_approved", PolicyStagedMessage(e, st, "frank@example.com", time.UTC))
	})
	t.Run("resolve_modal", func(t *testing.T) { golden(t, "resolve_modal", ResolveModal(42, "C1", "1.2")) })
}
