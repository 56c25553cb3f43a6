package chaos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/fakeclock"
	"keycard/internal/oktafake"
	"keycard/internal/server"
	"keycard/store"
)

// oktaEnv is keycard booted through internal/server as keycard serve boots
// it (a real bbolt store, the real Okta connector talking to the Okta
// emulator, handlers), but never Run: the test calls the scheduler and the
// provisioning worker itself, and no Slack takes part. One fake clock
// drives keycard, the connector and the emulator (Date and
// X-Rate-Limit-Reset headers), so waits are exact and nothing sleeps.
type oktaEnv struct {
	t     *testing.T
	ctx   context.Context
	clock *fakeclock.Clock
	org   *org
	fake  *oktafake.Server
	db    *store.DB
	svc   *handlers.Service
}

// callTimeout is the connector's per-call deadline in these tests; the
// emulator's Latency holds a call past it (the SDK has no deadline of its
// own: notes/okta.md §3). A second, not less: every call of these tests
// shares the deadline, and a loopback lookup under -race on a loaded
// 2-core CI machine has been seen to take over 300 ms.
const callTimeout = time.Second

func newOktaEnv(t *testing.T) *oktaEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	clock := fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	fake := oktafake.New(oktafake.Options{Clock: clock.Now})
	t.Cleanup(fake.Close)
	o := seedOkta(fake)
	dir := t.TempDir()
	cfg := server.Config{Policy: filepath.Join(dir, "policy.yaml"), DB: filepath.Join(dir, "keycard.db"),
		OktaOrgURL: fake.URL, OktaToken: server.Secret(fake.Token()), IdPTimeout: callTimeout}
	if err := os.WriteFile(cfg.Policy, []byte(policyYAML("{default: 1h, max: 8h}")), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Deps{Clock: clock, Manual: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &oktaEnv{t: t, ctx: ctx, clock: clock, org: o, fake: fake, db: srv.Bolt(), svc: srv.Service()}
}

// grant submits an auto-approved Grafana request for Ann and returns it
// (provisioning, its add queued).
func (e *oktaEnv) grant() access.Request {
	e.t.Helper()
	r, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: "U0ANN", Email: "ann@example.com", Policy: "grafana-viewer"})
	if err != nil {
		e.t.Fatal(err)
	}
	if r.State != access.StateProvisioning {
		e.t.Fatalf("auto request is %s, want provisioning", r.State)
	}
	return r
}

// work runs the scheduler and the provisioning worker once at the clock's now.
func (e *oktaEnv) work() {
	e.t.Helper()
	if _, err := e.svc.Tick(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.RunOutbox(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *oktaEnv) get(id string) access.Request {
	e.t.Helper()
	r, err := e.svc.Get(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// membershipCalls counts the membership changes (PUT/DELETE
// /api/v1/groups/{id}/users/{uid}) Okta received.
func (e *oktaEnv) membershipCalls() int {
	n := 0
	for _, r := range e.fake.Requests() {
		if (r.Method == "PUT" || r.Method == "DELETE") && strings.HasPrefix(r.Path, "/api/v1/groups/") {
			n++
		}
	}
	return n
}

func (e *oktaEnv) pendingOp(id string) (access.Op, bool) {
	var out access.Op
	found := false
	_ = e.db.View(func(tx *store.Tx) error {
		return tx.Ops(func(op access.Op) error {
			if op.RequestID == id {
				out, found = op, true
			}
			return nil
		})
	})
	return out, found
}

func (e *oktaEnv) count(typ access.EventType, id string) int {
	n := 0
	_ = e.svc.Events(0, func(ev access.Event) error {
		if ev.Type == typ && ev.RequestID == id {
			n++
		}
		return nil
	})
	return n
}

// TestOktaRateLimitDuringProvisioning: Okta answers 429 E0000047 with
// X-Rate-Limit-Reset 45 s ahead. The worker must not call Okta again before
// the reset (no burst), and the grant becomes active only after it, with
// its clock starting at Okta's confirmation. Without RetryAt (backoff only:
// 2-3 s) the worker would call again at the first step below.
func TestOktaRateLimitDuringProvisioning(t *testing.T) {
	cases := []struct {
		name    string
		limited int // consecutive 429s
		reset   time.Duration
	}{
		{"one 429", 1, 45 * time.Second},
		{"429 again at the reset", 2, 20 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newOktaEnv(t)
			r := e.grant()
			e.fake.ResetRequests()
			e.fake.RateLimitNext(c.limited, c.reset)
			var lastReset time.Time
			for i := 0; i < c.limited; i++ {
				before := len(e.fake.Requests())
				e.work()
				if got := len(e.fake.Requests()) - before; got != 1 {
					t.Fatalf("429 #%d: %d requests reached Okta in one pass, want 1", i+1, got)
				}
				op, ok := e.pendingOp(r.ID)
				if !ok {
					t.Fatal("the add op is gone after a 429")
				}
				lastReset = e.clock.Now().Add(c.reset).Truncate(time.Second)
				if op.NextAt.Before(lastReset) {
					t.Fatalf("op retries at %s, before Okta's reset %s", op.NextAt, lastReset)
				}
				if st := e.get(r.ID).State; st != access.StateProvisioning {
					t.Fatalf("after a 429: %s, want provisioning", st)
				}
				// Walk up to the reset in 1 s steps: Okta hears nothing.
				seen := len(e.fake.Requests())
				for e.clock.Now().Add(time.Second).Before(op.NextAt) {
					e.clock.Advance(time.Second)
					e.work()
				}
				if n := len(e.fake.Requests()) - seen; n != 0 {
					t.Fatalf("%d requests reached Okta before its X-Rate-Limit-Reset", n)
				}
				if st := e.get(r.ID).State; st != access.StateProvisioning {
					t.Fatalf("active before the reset: %s", st)
				}
				e.clock.Set(op.NextAt)
			}
			e.work()
			got := e.get(r.ID)
			if got.State != access.StateActive {
				t.Fatalf("after the reset: %s, want active", got.State)
			}
			if got.ProvisionedAt.Before(lastReset) {
				t.Fatalf("clock started at %s, before the reset %s", got.ProvisionedAt, lastReset)
			}
			if !got.EndsAt.Equal(got.ProvisionedAt.Add(time.Hour)) {
				t.Fatalf("ends %s, want an hour after Okta confirmed (%s)", got.EndsAt, got.ProvisionedAt)
			}
			if !e.org.isMember("app-grafana-viewers", "ann@example.com") {
				t.Fatal("Okta does not hold the membership")
			}
			if total := len(e.fake.Requests()); total > c.limited+3 {
				t.Fatalf("%d requests for one add after %d 429s (a burst)", total, c.limited)
			}
			if n := e.count(access.EvProvisionRetrying, r.ID); n != c.limited {
				t.Fatalf("%d provision.retrying events, want %d", n, c.limited)
			}
		})
	}
}

// fault is one way an Okta membership call fails; method is PUT (add) or
// DELETE (remove). heal (oktafake.ResetFaults and Latency 0) ends it.
type fault struct {
	name   string
	inject func(e *oktaEnv, method string)
}

var faults = []fault{
	{"503", func(e *oktaEnv, m string) { e.fake.FailNext(m+" /api/v1/groups/*/users/*", 1000, 503) }},
	{"500", func(e *oktaEnv, m string) { e.fake.FailNext(m+" /api/v1/groups/*/users/*", 1000, 500) }},
	// Held past the connector's deadline: the call is abandoned, Okta never
	// applies it.
	{"timeout", func(e *oktaEnv, m string) { e.fake.Latency(m+" /api/v1/groups/*/users/*", time.Hour) }},
}

func heal(e *oktaEnv, m string) {
	e.fake.ResetFaults()
	e.fake.Latency(m+" /api/v1/groups/*/users/*", 0)
}

// TestOktaAddFailures: 5xx answers and calls that outlive the connector's
// deadline during the add are retried with growing backoff; the grant is
// not active (its clock not started) until Okta confirms, and is active
// once Okta recovers.
func TestOktaAddFailures(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			e := newOktaEnv(t)
			r := e.grant()
			f.inject(e, "PUT")
			var waits []time.Duration
			for i := 0; i < 4; i++ {
				e.work()
				op, ok := e.pendingOp(r.ID)
				if !ok {
					t.Fatalf("attempt %d: the add op is gone", i+1)
				}
				if op.Attempts != i+1 {
					t.Fatalf("attempt %d recorded as %d", i+1, op.Attempts)
				}
				if got := e.get(r.ID); got.State != access.StateProvisioning || !got.ProvisionedAt.IsZero() {
					t.Fatalf("attempt %d: %s provisioned_at %s, want provisioning with no start", i+1, got.State, got.ProvisionedAt)
				}
				waits = append(waits, op.NextAt.Sub(e.clock.Now()))
				// Nothing is retried before the backoff elapses.
				calls := e.membershipCalls()
				e.clock.Advance(waits[i] / 2)
				e.work()
				if e.membershipCalls() != calls {
					t.Fatalf("attempt %d: retried before its backoff (%s)", i+1, waits[i])
				}
				e.clock.Set(op.NextAt)
			}
			// Exponential from 2 s with up to 50% jitter: 2-3, 4-6, 8-12, 16-24 s.
			if waits[0] < 2*time.Second || waits[3] < 16*time.Second {
				t.Fatalf("backoff %v, want exponential growth from 2s", waits)
			}
			for i := 1; i < len(waits); i++ {
				if waits[i] <= waits[i-1] {
					t.Fatalf("backoff does not grow: %v", waits)
				}
			}
			heal(e, "PUT")
			e.work()
			if got := e.get(r.ID); got.State != access.StateActive || got.ProvisionedAt.Before(e.clock.Now()) {
				t.Fatalf("after Okta recovered: %s from %s", got.State, got.ProvisionedAt)
			}
			if !e.org.isMember("app-grafana-viewers", "ann@example.com") {
				t.Fatal("Okta does not hold the membership")
			}
		})
	}
}

// TestOktaRemoveNeverGivesUp: when the removal keeps failing (5xx or
// timeouts, far more often than an add would be tried), keycard keeps
// trying, raises one alert, and never shows the grant as ended while Okta
// holds the membership: the state stays deprovisioning and the export
// status active. Once Okta recovers the grant ends as expired.
func TestOktaRemoveNeverGivesUp(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			e := newOktaEnv(t)
			r := e.grant()
			e.work()
			if st := e.get(r.ID).State; st != access.StateActive {
				t.Fatalf("grant %s", st)
			}
			f.inject(e, "DELETE")
			e.clock.Advance(time.Hour) // the grant expires
			const attempts = 12        // more than MaxAddAttempts (8): an add would have failed by now
			for i := 0; i < attempts; i++ {
				e.work()
				got := e.get(r.ID)
				if got.State != access.StateDeprovisioning {
					t.Fatalf("attempt %d: %s while Okta still holds the membership", i+1, got.State)
				}
				if got.ExportStatus() != string(access.StateActive) {
					t.Fatalf("attempt %d: export shows %s while Okta still holds the membership", i+1, got.ExportStatus())
				}
				if !got.DeprovisionedAt.IsZero() {
					t.Fatalf("attempt %d: deprovisioned_at set before Okta confirmed", i+1)
				}
				if !e.org.isMember("app-grafana-viewers", "ann@example.com") {
					t.Fatalf("attempt %d: the emulator dropped the membership despite the fault", i+1)
				}
				op, ok := e.pendingOp(r.ID)
				if !ok || op.Kind != access.OpRemove || op.Attempts != i+1 {
					t.Fatalf("attempt %d: remove op %+v present=%v", i+1, op, ok)
				}
				e.clock.Set(op.NextAt)
			}
			if n := e.count(access.EvProvisionAlert, r.ID); n != 1 {
				t.Fatalf("%d deprovisioning alerts, want 1", n)
			}
			heal(e, "DELETE")
			e.work()
			got := e.get(r.ID)
			if got.State != access.StateExpired || got.DeprovisionedAt.IsZero() {
				t.Fatalf("after Okta recovered: %s (deprovisioned %s)", got.State, got.DeprovisionedAt)
			}
			if e.org.isMember("app-grafana-viewers", "ann@example.com") {
				t.Fatal("the ended grant is still in Okta")
			}
		})
	}
}
