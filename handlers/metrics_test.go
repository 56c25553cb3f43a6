package handlers_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"keycard/access"
	"keycard/store"
)

// TestMetrics drives one grant through submission, an IdP failure,
// activation and a missed expiry, and reads every keycard metric through
// client_golang's testutil.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	m := e.svc.Metrics()
	if _, err := e.submit("ann@example.com", "no-such-policy", time.Hour, "x"); err == nil {
		t.Fatal("a request for an unknown policy was accepted")
	}
	r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "INC-42")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute)
	e.approveAll(r.ID)
	e.idp.failNext("add", access.Errorf(access.CodeUnavailable, "down"))
	e.clock.Advance(time.Minute)
	e.settle() // the add fails and backs off
	if got := testutil.ToFloat64(m.IdPErrors); got != 1 {
		t.Fatalf("keycard_idp_errors_total = %v, want 1", got)
	}
	e.clock.Advance(time.Minute)
	e.settle()
	g := e.get(r.ID)
	if g.State != access.StateActive {
		t.Fatalf("state %s", g.State)
	}

	refused := string(access.CodeOf(func() error {
		_, err := e.submit("ann@example.com", "no-such-policy", time.Hour, "x")
		return err
	}()))
	// approval: 600 s (submitted at t0, approved at +10m); provisioning:
	// 120 s (approved at +10m, confirmed at +12m).
	want := `
# HELP keycard_requests_total Access requests submitted, by outcome (submitted or the refusal code).
# TYPE keycard_requests_total counter
keycard_requests_total{outcome="` + refused + `"} 2
keycard_requests_total{outcome="submitted"} 1
# HELP keycard_approval_seconds Time from submission to the final human approval.
# TYPE keycard_approval_seconds histogram
keycard_approval_seconds_bucket{le="0.5"} 0
keycard_approval_seconds_bucket{le="1"} 0
keycard_approval_seconds_bucket{le="5"} 0
keycard_approval_seconds_bucket{le="15"} 0
keycard_approval_seconds_bucket{le="60"} 0
keycard_approval_seconds_bucket{le="300"} 0
keycard_approval_seconds_bucket{le="900"} 1
keycard_approval_seconds_bucket{le="3600"} 1
keycard_approval_seconds_bucket{le="14400"} 1
keycard_approval_seconds_bucket{le="86400"} 1
keycard_approval_seconds_bucket{le="+Inf"} 1
keycard_approval_seconds_sum 600
keycard_approval_seconds_count 1
# HELP keycard_provisioning_seconds Time from final approval to the IdP confirming the membership.
# TYPE keycard_provisioning_seconds histogram
keycard_provisioning_seconds_bucket{le="0.5"} 0
keycard_provisioning_seconds_bucket{le="1"} 0
keycard_provisioning_seconds_bucket{le="5"} 0
keycard_provisioning_seconds_bucket{le="15"} 0
keycard_provisioning_seconds_bucket{le="60"} 0
keycard_provisioning_seconds_bucket{le="300"} 1
keycard_provisioning_seconds_bucket{le="900"} 1
keycard_provisioning_seconds_bucket{le="3600"} 1
keycard_provisioning_seconds_bucket{le="14400"} 1
keycard_provisioning_seconds_bucket{le="86400"} 1
keycard_provisioning_seconds_bucket{le="+Inf"} 1
keycard_provisioning_seconds_sum 120
keycard_provisioning_seconds_count 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"keycard_requests_total", "keycard_approval_seconds", "keycard_provisioning_seconds"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "go_goroutines", "process_start_time_seconds"); err != nil || n != 2 {
		t.Fatalf("runtime and process collectors: %d metrics, %v", n, err)
	}

	backup := e.clock.Now().Add(-time.Hour).Truncate(time.Second)
	if err := e.svc.SetCursor("job.backup.success", backup.Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	scrape := func(t *testing.T, connected bool, want string) {
		t.Helper()
		c := e.svc.ScrapeCollector([]string{"backup", "offboarding.poll"}, func() bool { return connected })
		if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
	}
	gauges := func(lag, socket string) string {
		return `
# HELP keycard_active_grants Active grants by policy.
# TYPE keycard_active_grants gauge
keycard_active_grants{policy="prod-db-admin"} 1
# HELP keycard_audit_events Sequence number of the newest audit event.
# TYPE keycard_audit_events gauge
keycard_audit_events ` + head(t, e) + `
# HELP keycard_expiry_lag_seconds How far past its end the most overdue active grant is (0 when none).
# TYPE keycard_expiry_lag_seconds gauge
keycard_expiry_lag_seconds ` + lag + `
# HELP keycard_job_last_success_timestamp_seconds Unix time of each scheduled job's last success.
# TYPE keycard_job_last_success_timestamp_seconds gauge
keycard_job_last_success_timestamp_seconds{job="backup"} ` + itoa(backup.Unix()) + `
# HELP keycard_lease_age_seconds Seconds since this replica last read or renewed the leader lease in PostgreSQL (grows while the database is unreachable; 0 with bbolt).
# TYPE keycard_lease_age_seconds gauge
keycard_lease_age_seconds 0
# HELP keycard_leader 1 while this replica leads (runs the scheduler, the outbox worker, the notifier and the other singleton work), 0 on a standby; always 1 with bbolt.
# TYPE keycard_leader gauge
keycard_leader 1
# HELP keycard_outbox_depth Provisioning operations waiting in the outbox.
# TYPE keycard_outbox_depth gauge
keycard_outbox_depth 0
# HELP keycard_outbox_oldest_age_seconds Age of the oldest queued provisioning operation (0 when empty).
# TYPE keycard_outbox_oldest_age_seconds gauge
keycard_outbox_oldest_age_seconds 0
# HELP keycard_slack_socket_connected 1 while the Slack Socket Mode connection is up, else 0.
# TYPE keycard_slack_socket_connected gauge
keycard_slack_socket_connected ` + socket + `
`
	}
	t.Run("on time", func(t *testing.T) { scrape(t, true, gauges("0", "1")) })
	// The expiry worker has not run for 7 minutes past the grant's end.
	e.clock.Advance(g.EndsAt.Sub(e.clock.Now()) + 7*time.Minute)
	t.Run("expiry late, socket down", func(t *testing.T) { scrape(t, false, gauges("420", "0")) })
	e.settle()
	t.Run("expired", func(t *testing.T) {
		c := e.svc.ScrapeCollector(nil, nil)
		want := `
# HELP keycard_expiry_lag_seconds How far past its end the most overdue active grant is (0 when none).
# TYPE keycard_expiry_lag_seconds gauge
keycard_expiry_lag_seconds 0
`
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "keycard_expiry_lag_seconds"); err != nil {
			t.Fatal(err)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// head is the audit chain's newest seq, as text.
func head(t *testing.T, e *env) string {
	t.Helper()
	var seq uint64
	if err := e.db.View(func(tx *store.Tx) error { seq, _, _ = tx.Head(); return nil }); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(seq, 10)
}
