package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	dto "github.com/prometheus/client_model/go"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/internal/storetest"
)

// retryStore makes the PostgreSQL store's retry happen on demand, on
// bbolt: the armed Update (or Batch) runs its fn once in a transaction
// that rolls back, as a serialization failure or deadlock does, then runs
// between (what another replica commits meanwhile), then runs fn again for
// real. pgstore.Update does exactly that on SQLSTATE 40001/40P01, so any
// state a use case keeps outside its transaction body must not carry over
// from the rolled-back attempt into the answer.
type retryStore struct {
	handlers.Store

	mu      sync.Mutex
	armed   bool
	skip    int    // transactions to let through before the armed one
	before  func() // runs before the rolled-back attempt (nil: nothing)
	between func() // runs between the rolled-back attempt and the real one
	fired   bool   // the armed transaction was retried
	// pg: the first attempt fails with SQLSTATE 40001 itself and the
	// PostgreSQL store's own retry loop (undo log, backoff) runs fn
	// again; between is not run in this mode.
	pg bool
}

var errRetry = errors.New("simulated serialization failure (40001)")

// retrying rebuilds e.svc over a retryStore (same options as env.open) and
// returns it, disarmed.
func (e *env) retrying() *retryStore {
	rs := &retryStore{Store: adapt.Store(e.db)}
	e.svc = handlers.New(rs, e.conns, e.set, e.clock, handlers.Options{BackoffBase: time.Second, BackoffMax: time.Minute})
	return rs
}

// arm retries the transaction after the next skip ones. before and between
// may be nil; they may call the service (their transactions go through).
func (s *retryStore) arm(skip int, before, between func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed, s.skip, s.before, s.between, s.fired = true, skip, before, between, false
}

// take reports whether this transaction is the armed one (and disarms).
func (s *retryStore) take() (before, between func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.armed {
		return nil, nil, false
	}
	if s.skip > 0 {
		s.skip--
		return nil, nil, false
	}
	s.armed, s.fired = false, true
	return s.before, s.between, true
}

// mustHaveRetried fails the test when the armed transaction never came:
// a test whose retry did not happen proves nothing.
func (s *retryStore) mustHaveRetried(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fired {
		t.Fatalf("the armed transaction was never retried (armed %v, %d still to skip)", s.armed, s.skip)
	}
}

func (s *retryStore) Update(now time.Time, fn func(handlers.Tx) error) error {
	return s.run(now, fn, s.Store.Update)
}

func (s *retryStore) Batch(now time.Time, fn func(handlers.Tx) error) error {
	return s.run(now, fn, s.Store.Batch)
}

func (s *retryStore) run(now time.Time, fn func(handlers.Tx) error, tx func(time.Time, func(handlers.Tx) error) error) error {
	before, between, ok := s.take()
	if !ok {
		return tx(now, fn)
	}
	if before != nil {
		before()
	}
	if s.pg {
		first := true
		return tx(now, func(t handlers.Tx) error {
			if !first {
				return fn(t)
			}
			first = false
			if err := fn(t); err != nil {
				return err
			}
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access due to read/write dependencies among transactions (simulated)"}
		})
	}
	err := tx(now, func(t handlers.Tx) error {
		if err := fn(t); err != nil {
			return err
		}
		return errRetry
	})
	if !errors.Is(err, errRetry) {
		return err // the attempt failed on its own: the store would not retry it
	}
	if between != nil {
		between()
	}
	return tx(now, fn)
}

// The refusal an attempt finds is forgotten when the store runs the
// transaction again: a delegation command whose first attempt was refused
// and whose retry committed answers with what committed.
func TestRetryDelegationAnswersWhatCommitted(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		setup   func(e *env)
		between func(e *env) // what another replica commits between the attempts
		run     func(e *env) (access.Delegation, error)
		want    string // the delegation the answer names
		inForce int
	}{
		{
			// Nothing in force at the first attempt; bob's delegation
			// commits meanwhile; the retry ends it.
			name:    "EndDelegation",
			setup:   func(*env) {},
			between: func(e *env) { e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09") },
			run: func(e *env) (access.Delegation, error) {
				return e.svc.EndDelegation(ctx, slackID("bob@example.com"), "bob@example.com")
			},
			want: "DLG-1", inForce: 0,
		},
		{
			// frank had delegated away at the first attempt (delegations do
			// not chain); he turns it off meanwhile; the retry creates bob's.
			name:  "Delegate",
			setup: func(e *env) { e.mustDelegate("frank@example.com", "carol@example.com", "2026-11-09") },
			between: func(e *env) {
				if _, err := e.svc.EndDelegation(ctx, slackID("frank@example.com"), "frank@example.com"); err != nil {
					e.t.Fatal(err)
				}
			},
			run: func(e *env) (access.Delegation, error) {
				return e.delegate("bob@example.com", "frank@example.com", "2026-11-09", nil, "")
			},
			want: "DLG-2", inForce: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			rs := e.retrying()
			rs.arm(1, nil, func() { tc.between(e) }) // 1: identifying bob
			d, err := tc.run(e)
			rs.mustHaveRetried(t)
			if err != nil {
				t.Fatalf("the retry committed, yet the answer is the rolled-back attempt's refusal: %v", err)
			}
			if d.ID != tc.want {
				t.Errorf("answered with delegation %q, want %s", d.ID, tc.want)
			}
			if in, _ := e.svc.DelegationsInForce(); len(in) != tc.inForce {
				t.Errorf("%d delegations in force, want %d", len(in), tc.inForce)
			}
			if n := e.count(access.EvDelegationRefused); n != 0 {
				t.Errorf("%d delegation.refused events committed for a command that succeeded", n)
			}
			e.verify()
		})
	}
}

// Decide: the first attempt refuses frank (bob turned his delegation off
// after the click was checked), bob delegates to frank again meanwhile, the
// retry records frank's approval for bob: the answer is the approval.
func TestRetryDecideAnswersWhatCommitted(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	r, err := e.submit("ann@example.com", "prod-db-admin", time.Hour, "INC-9")
	if err != nil {
		t.Fatal(err)
	}
	e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09")
	rs := e.retrying()
	rs.arm(1, func() { // 1: identifying frank; the click's snapshot saw the delegation in force
		if _, err := e.svc.EndDelegation(ctx, slackID("bob@example.com"), "bob@example.com"); err != nil {
			t.Fatal(err)
		}
	}, func() { e.mustDelegate("bob@example.com", "frank@example.com", "2026-11-09") })
	got, err := e.decide(r.ID, 0, "frank@example.com", true, "covering")
	rs.mustHaveRetried(t)
	if err != nil {
		t.Fatalf("frank's approval committed, yet the answer is the rolled-back attempt's refusal: %v", err)
	}
	stored := e.get(r.ID)
	if got.Current != 1 || stored.Current != 1 || stored.Steps[0].Delegation != "DLG-2" {
		t.Fatalf("answer at step %d, stored at step %d decided under %q; want step 1 decided under DLG-2", got.Current, stored.Current, stored.Steps[0].Delegation)
	}
	if n := e.count(access.EvDecisionRefused); n != 0 {
		t.Errorf("%d decision.refused events committed for a click that approved", n)
	}
	e.verify()
}

// A transaction body the store runs again starts from the store, not from
// what its rolled-back attempt left in the use case's variables: a decision
// read over the last attempt's write (json keeps fields the stored document
// omits), a request already approved by it, a count it made.
func TestRetryStartsFromTheStore(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		// setup builds the world and returns the call under test; skip is
		// how many of its transactions come before the retried one.
		setup func(t *testing.T) (*env, func(e *env) (string, error))
		skip  int
		want  string
	}{
		{"alert acknowledged", func(t *testing.T) (*env, func(e *env) (string, error)) {
			e := newEnv(t)
			if err := e.svc.Alert("test", "ann@example.com", "something happened", nil); err != nil {
				t.Fatal(err)
			}
			return e, func(e *env) (string, error) {
				st, err := e.svc.TriageAlert(ctx, slackID("frank@example.com"), "frank@example.com", 1, false, "planned")
				return st.State + " by " + st.By, err
			}
		}, 1, handlers.AlertAcknowledged + " by frank@example.com"},
		{"campaign item reviewed", func(t *testing.T) (*env, func(e *env) (string, error)) {
			e := newEnv(t)
			withReviews(t, e)
			e.idp.setMember("prod-db-admins", "mallory@example.com", true) // standing: reviewed by ann
			c, err := e.svc.OpenCampaign(ctx, access.ActorScheduler, nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			_, items, err := e.svc.CampaignOf(c.ID)
			if err != nil || len(items) != 1 {
				t.Fatalf("items %+v %v", items, err)
			}
			return e, func(e *env) (string, error) {
				it, err := e.svc.Review(ctx, handlers.ReviewInput{ItemID: items[0].ID, SlackID: slackID("ann@example.com"), Email: "ann@example.com",
					Decision: access.ReviewKeep, Comment: "on call"})
				return string(it.Decision) + " by " + it.DecidedBy.Email, err
			}
		}, 1, string(access.ReviewKeep) + " by ann@example.com"},
		{"contractor grant let expire", func(t *testing.T) (*env, func(e *env) (string, error)) {
			e, g := contractorEnv(t, 4*time.Hour)
			return e, func(e *env) (string, error) {
				a, err := e.svc.ContractorLetExpire(ctx, g.ID, slackID("bob@example.com"), "bob@example.com")
				return a.Decision + " by " + a.DecidedBy.Email, err
			}
		}, 1, handlers.AskLetExpire + " by bob@example.com"},
		{"auto-approved request", func(t *testing.T) (*env, func(e *env) (string, error)) {
			return newEnv(t), func(e *env) (string, error) {
				r, err := e.submit("ann@example.com", "grafana-viewer", 0, "")
				return string(r.State), err
			}
		}, 1, string(access.StateProvisioning)},
		{"break-glass request", func(t *testing.T) (*env, func(e *env) (string, error)) {
			return newEnv(t), func(e *env) (string, error) {
				r, err := e.svc.Submit(ctx, handlers.SubmitInput{SlackID: slackID("ann@example.com"), Email: "ann@example.com", Policy: "prod-breakglass",
					Justification: "INC-7", BreakGlass: true})
				return string(r.State), err
			}
		}, 1, string(access.StateProvisioning)},
		{"offboarding count", func(t *testing.T) (*env, func(e *env) (string, error)) {
			e := newEnv(t)
			if _, err := e.submit("ann@example.com", "grafana-viewer", 0, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := e.submit("ann@example.com", "prod-db-admin", 0, "x"); err != nil {
				t.Fatal(err)
			}
			e.settle()
			return e, func(e *env) (string, error) {
				ann, _ := e.idp.UserByEmail(ctx, "ann@example.com")
				n, err := e.svc.Offboard(ctx, ann, handlers.Trigger{Source: "user.lifecycle.deactivate"})
				return fmt.Sprintf("%d ended", n), err
			}
		}, 0, "2 ended"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, call := tc.setup(t)
			rs := e.retrying()
			rs.arm(tc.skip, nil, nil)
			got, err := call(e)
			rs.mustHaveRetried(t)
			if err != nil {
				t.Fatalf("the retried transaction failed: %v", err)
			}
			if got != tc.want {
				t.Fatalf("answered %q, want %q", got, tc.want)
			}
			e.verify()
		})
	}
}

// A grant's provisioning time is observed once its activation commits: not
// by the attempt the store rolled back as well.
func TestRetryObservesProvisioningOnce(t *testing.T) {
	e := newEnv(t)
	if _, err := e.submit("ann@example.com", "grafana-viewer", 0, ""); err != nil {
		t.Fatal(err)
	}
	rs := e.retrying()
	rs.arm(1, nil, nil) // 1: the add's attempt is recorded before it is sent
	if _, err := e.svc.RunOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs.mustHaveRetried(t)
	var m dto.Metric
	if err := e.svc.Metrics().Provision.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetHistogram().GetSampleCount(); n != 1 {
		t.Fatalf("keycard_provisioning_seconds_count = %d after one activation, want 1", n)
	}
}

// An accepted push whose first recording attempt found the policy changed
// (void) is recorded as the retry finds it: the policy back to the version
// the click was checked against, the step is approved. The void is the
// rolled-back attempt's, not the poll's.
func TestRetryMFAPollDecidesAfresh(t *testing.T) {
	e, idp := newMFAEnv(t)
	if err := e.svc.RecordPolicyLoaded("test"); err != nil { // the click records the policy version it was checked against
		t.Fatal(err)
	}
	r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "migration")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.decide(r.ID, 0, "bob@example.com", true, "fine"); err != nil {
		t.Fatal(err)
	}
	idp.answer(access.ChallengeSuccess)
	e.clock.Advance(handlers.MFAPollEvery)
	setHash := func(h string) func() {
		return func() {
			if err := adapt.Store(e.db).Update(e.clock.Now(), func(tx handlers.Tx) error { return tx.SetCursor("policy.hash", h) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	rs := e.retrying()
	rs.arm(0, setHash("another-version"), setHash(e.set.Hash)) // a policy change, then its revert, on another replica
	if _, err := e.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs.mustHaveRetried(t)
	got := e.get(r.ID)
	if got.Current != 1 || got.Steps[0].Decision != access.DecisionApproved {
		t.Fatalf("step 1 %s (now at step %d), want approved: the poll recorded the rolled-back attempt's void; events %v", got.Steps[0].Decision, got.Current+1, e.events(r.ID))
	}
	e.verify()
}

// The first refusal after a closed window carries that window's count of
// suppressed refusals. When the store retries its transaction and the
// committed attempt does not refuse, the count is still recorded (by
// FlushRefusals): the limiter had handed it over and holds it no more.
func TestRetryKeepsTheSuppressedCount(t *testing.T) {
	e := newEnv(t)
	e.mustDelegate("frank@example.com", "carol@example.com", "2026-11-09")
	rs := e.retrying() // before the refusals: the limiter is the service's
	for i := 0; i < handlers.RefusalBurst+2; i++ {
		if _, err := e.delegate("bob@example.com", "frank@example.com", "2026-11-09", nil, ""); access.CodeOf(err) != access.CodeForbidden {
			t.Fatalf("refusal %d: %v", i+1, err)
		}
	}
	e.clock.Advance(handlers.RefusalWindow)
	rs.arm(1, nil, func() {
		if _, err := e.svc.EndDelegation(context.Background(), slackID("frank@example.com"), "frank@example.com"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := e.delegate("bob@example.com", "frank@example.com", "2026-11-09", nil, ""); err != nil {
		t.Fatal(err)
	}
	rs.mustHaveRetried(t)
	if err := e.svc.FlushRefusals(false); err != nil {
		t.Fatal(err)
	}
	var summaries []string
	for _, ev := range e.allEvents() {
		if ev.Type == access.EvDelegationRefused && strings.Contains(ev.Detail, `"suppressed"`) {
			summaries = append(summaries, ev.Detail)
		}
	}
	if len(summaries) != 1 || !strings.Contains(summaries[0], `"suppressed":"2"`) {
		t.Fatalf("summaries of bob's suppressed refusals %q, want one of 2", summaries)
	}
	// Nor does the refusal that did not commit count in bob's new window:
	// his next RefusalBurst refusals are each recorded.
	before := e.count(access.EvDelegationRefused)
	for i := 0; i < handlers.RefusalBurst; i++ {
		if _, err := e.delegate("bob@example.com", "bob@example.com", "2026-11-09", nil, ""); access.CodeOf(err) != access.CodeForbidden {
			t.Fatalf("refusal %d: %v", i+1, err)
		}
	}
	if n := e.count(access.EvDelegationRefused) - before; n != handlers.RefusalBurst {
		t.Errorf("%d of bob's %d refusals in his new window recorded", n, handlers.RefusalBurst)
	}
	e.verify()
}

// The same leaks through PostgreSQL's own retry loop: the first attempt
// fails with SQLSTATE 40001 and pgstore.Update runs the body again (after
// its undo log). Skips without KEYCARD_TEST_DATABASE_URL.
func TestRetryOnPostgres(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		setup func(t *testing.T, svc *handlers.Service)
		call  func(svc *handlers.Service, idp *fakeIdP) (string, error)
		skip  int
		want  string
	}{
		{"auto-approved request", func(*testing.T, *handlers.Service) {}, func(svc *handlers.Service, _ *fakeIdP) (string, error) {
			r, err := svc.Submit(ctx, handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "grafana-viewer"})
			return string(r.State), err
		}, 1, string(access.StateProvisioning)},
		{"break-glass request", func(*testing.T, *handlers.Service) {}, func(svc *handlers.Service, _ *fakeIdP) (string, error) {
			r, err := svc.Submit(ctx, handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "prod-breakglass", Justification: "INC-7", BreakGlass: true})
			return string(r.State), err
		}, 1, string(access.StateProvisioning)},
		{"alert acknowledged", func(t *testing.T, svc *handlers.Service) {
			if err := svc.Alert("test", "ann@example.com", "something happened", nil); err != nil {
				t.Fatal(err)
			}
		}, func(svc *handlers.Service, _ *fakeIdP) (string, error) {
			st, err := svc.TriageAlert(ctx, "UFRANK", "frank@example.com", 1, false, "planned")
			return st.State + " by " + st.By, err
		}, 1, handlers.AlertAcknowledged + " by frank@example.com"},
		{"offboarding count", func(t *testing.T, svc *handlers.Service) {
			for _, pol := range []string{"grafana-viewer", "prod-db-admin"} {
				if _, err := svc.Submit(ctx, handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: pol, Justification: "x"}); err != nil {
					t.Fatal(err)
				}
			}
		}, func(svc *handlers.Service, idp *fakeIdP) (string, error) {
			ann, _ := idp.UserByEmail(ctx, "ann@example.com")
			n, err := svc.Offboard(ctx, ann, handlers.Trigger{Source: "user.lifecycle.deactivate"})
			return fmt.Sprintf("%d ended", n), err
		}, 0, "2 ended"},
	}
	admin := storetest.PostgresURL(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, idp, set := pgWorld(t, admin)
			rs := &retryStore{Store: adapt.Postgres(db), pg: true}
			svc := handlers.New(rs, conns{idp}, set, fakeclock.New(t0), handlers.Options{BackoffBase: time.Second, BackoffMax: time.Minute})
			tc.setup(t, svc)
			rs.arm(tc.skip, nil, nil)
			got, err := tc.call(svc, idp)
			rs.mustHaveRetried(t)
			if err != nil {
				t.Fatalf("the retried transaction failed: %v", err)
			}
			if got != tc.want {
				t.Fatalf("answered %q, want %q", got, tc.want)
			}
		})
	}
}
