package handlers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
)

// switchLead is a Leadership a test turns on and off; Fence refuses while
// off, as a lease whose term ended does.
type switchLead struct{ on atomic.Bool }

func (l *switchLead) IsLeader() bool     { return l.on.Load() }
func (l *switchLead) Age() time.Duration { return 0 }
func (l *switchLead) Term() (time.Time, bool) {
	return time.Time{}, l.on.Load()
}
func (l *switchLead) Fence(handlers.Tx) error {
	if !l.on.Load() {
		return access.Errorf(access.CodeConflict, "not the leader")
	}
	return nil
}

// TestLeadershipGatesSingletonWork: a standby answers people (a request, an
// approval) but its scheduler and worker commit nothing and call no IdP; the
// leader provisions what the standby approved; a deposed leader's expiry
// and cursor writes are refused inside their transaction.
func TestLeadershipGatesSingletonWork(t *testing.T) {
	e := newEnv(t)
	lead := &switchLead{}
	e.svc = handlers.New(adapt.Store(e.db), conns{e.idp}, e.set, e.clock, handlers.Options{Leadership: lead, Poll: time.Second})
	ctx := context.Background()

	r, err := e.submit("ann@example.com", "grafana-viewer", time.Hour, "dashboards")
	if err != nil {
		t.Fatalf("a standby must still take requests: %v", err)
	}
	if _, err := e.svc.RunOutbox(ctx); err != nil {
		t.Errorf("standby's worker: %v, want it to leave the outbox to the leader", err)
	}
	if e.idp.isMember("app-grafana-viewers", "ann@example.com") {
		t.Fatal("a standby called the IdP")
	}
	if err := e.svc.SetCursor("notifier.seq", "1"); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("standby's cursor write: %v, want a conflict", err)
	}

	lead.on.Store(true)
	e.settle()
	if g := e.get(r.ID); g.State != access.StateActive || !e.idp.isMember("app-grafana-viewers", "ann@example.com") {
		t.Fatalf("the leader did not provision the standby's grant: %s", g.State)
	}

	// Deposed before the grant's end: the expiry is not committed.
	lead.on.Store(false)
	e.clock.Advance(2 * time.Hour)
	if _, err := e.svc.Tick(ctx); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("a deposed leader's sweep: %v, want its commit refused", err)
	}
	if g := e.get(r.ID); g.State != access.StateActive {
		t.Fatalf("a deposed leader ended a grant: %s", g.State)
	}
	// Leading again: caught up once.
	lead.on.Store(true)
	e.settle()
	if g := e.get(r.ID); g.State != access.StateExpired || e.idp.isMember("app-grafana-viewers", "ann@example.com") {
		t.Fatalf("after leading again: %s", g.State)
	}
}

// TestRunWakesOnLeadership: Run on a standby does no singleton work; when
// the replica becomes leader, LeadershipChanged wakes it and it catches up
// at once, without its clock moving.
func TestRunWakesOnLeadership(t *testing.T) {
	e := newEnv(t)
	lead := &switchLead{}
	e.svc = handlers.New(adapt.Store(e.db), conns{e.idp}, e.set, e.clock, handlers.Options{Leadership: lead, Poll: time.Second})
	r, err := e.submit("ann@example.com", "grafana-viewer", time.Hour, "dashboards")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(ctx) }()
	// Two rounds as standby (the submission's wake-up, then the poll's
	// timer): Run is asleep on the clock, which this test never moves.
	for e.clock.Waiters() < 2 {
		time.Sleep(time.Millisecond)
	}
	if e.get(r.ID).State != access.StateProvisioning {
		t.Fatalf("a standby's Run provisioned: %s", e.get(r.ID).State)
	}
	lead.on.Store(true)
	e.svc.LeadershipChanged(true)
	deadline := time.Now().Add(10 * time.Second)
	for e.get(r.ID).State != access.StateActive {
		if time.Now().After(deadline) {
			t.Fatal("the new leader did not catch up without its clock moving")
		}
		time.Sleep(5 * time.Millisecond) // Run works in its own goroutine
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// termLead is a switchLead whose term ends at a fixed moment.
type termLead struct {
	switchLead
	end time.Time
}

func (l *termLead) Term() (time.Time, bool) { return l.end, l.on.Load() }

// deadlineProv records the deadline of the context each add is called with.
type deadlineProv struct {
	access.Provisioner
	got []time.Duration
}

func (p *deadlineProv) AddMember(ctx context.Context, group, userID string) (access.Change, error) {
	dl, _ := ctx.Deadline()
	p.got = append(p.got, time.Until(dl))
	return p.Provisioner.AddMember(ctx, group, userID)
}

type provConns struct {
	conns
	p *deadlineProv
}

func (c provConns) Provisioner(string) (access.Provisioner, bool) { return c.p, true }

// TestIdPCallsEndWithTheTerm: a leader's IdP call is bounded by what is
// left of its lease term, not only by the op timeout (30 s, longer than a
// term): a deposed leader's connector must not go on retrying an add after
// another replica took over. With the term over, no call is made at all.
func TestIdPCallsEndWithTheTerm(t *testing.T) {
	e := newEnv(t)
	lead := &termLead{end: e.clock.Now().Add(3 * time.Second)}
	lead.on.Store(true)
	prov := &deadlineProv{Provisioner: e.idp}
	e.svc = handlers.New(adapt.Store(e.db), provConns{conns{e.idp}, prov}, e.set, e.clock, handlers.Options{Leadership: lead, Poll: time.Second})
	if _, err := e.submit("ann@example.com", "grafana-viewer", time.Hour, "dashboards"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RunOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(prov.got) != 1 || prov.got[0] > 3*time.Second || prov.got[0] <= 0 {
		t.Fatalf("add called with deadlines %v, want one within the 3 s left of the term", prov.got)
	}

	// The term has ended (the lease's clock says so even if IsLeader lags).
	lead.end = e.clock.Now().Add(-time.Second)
	if _, err := e.submit("bob@example.com", "grafana-viewer", time.Hour, "dashboards"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RunOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(prov.got) != 1 {
		t.Fatalf("%d adds after the term ended, want none", len(prov.got)-1)
	}
}
