package entra_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/connectors/connectortest"
	"keycard/connectors/entra"
	"keycard/internal/fakeclock"
	"keycard/internal/graphfake"
)

// harness runs the conformance suite against the real connector, its real
// azidentity credential and internal/graphfake.
type harness struct {
	t     *testing.T
	fake  *graphfake.Server
	clock *fakeclock.Clock
	conn  *entra.Connector
}

func newHarness(t *testing.T) *harness {
	clk := fakeclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	fake := graphfake.New(graphfake.Options{Clock: clk.Now, MaxPageSize: 5})
	t.Cleanup(fake.Close)
	conn, err := entra.New(entra.Config{
		TenantID: fake.Tenant(), ClientID: fake.ClientID(), ClientSecret: fake.Secret(),
		AuthorityHost: fake.AuthorityHost(), GraphURL: fake.GraphURL(),
		HTTPClient: fake.Client(), Timeout: 500 * time.Millisecond, Clock: clk,
		// Waits move the fake clock instead of sleeping: the request log
		// then shows whether a retry came before Retry-After said.
		Sleep: func(ctx context.Context, d time.Duration) error { clk.Advance(d); return ctx.Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, fake: fake, clock: clk, conn: conn}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Harness { return newHarness(t) })
}

func (h *harness) Connector() connectortest.Connector { return h.conn }
func (h *harness) Clock() access.Clock                { return h.clock }
func (h *harness) PageSize() int                      { return 5 }
func (h *harness) UnknownID() string                  { return "00000000-0000-4000-8000-000000000000" }
func (h *harness) Faults() connectortest.Faults       { return faults{h.fake} }

func (h *harness) AddUser(p connectortest.Person) string {
	return h.fake.AddUser(graphfake.User{Mail: p.Email, DisplayName: p.Name, ManagerID: p.ManagerID, Department: p.Department})
}

func (h *harness) Deactivate(id string) {
	if err := h.fake.SetEnabled(id, false); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) Delete(id string) bool {
	if err := h.fake.DeleteUser(id); err != nil {
		h.t.Fatal(err)
	}
	return true
}

func (h *harness) AddGroup(name string) { h.fake.AddGroup(name) }

func (h *harness) AddStandingMember(group, id string) {
	if err := h.fake.AddMember(h.fake.GroupID(group), id); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) Members(group string) []string { return h.fake.Members(h.fake.GroupID(group)) }

func (h *harness) Leavers() connectortest.LeaverFeed {
	return func(ctx context.Context, cursor string) ([]connectortest.Leaver, string, error) {
		evs, next, err := h.conn.LifecycleEvents(ctx, cursor)
		out := make([]connectortest.Leaver, 0, len(evs))
		for _, e := range evs {
			out = append(out, connectortest.Leaver{ID: e.UUID, UserID: e.UserID})
		}
		return out, next, err
	}
}

// faults drives graphfake; token requests are left alone and out of the
// log, so the suite sees Graph calls only.
type faults struct{ f *graphfake.Server }

func (x faults) RateLimitNext(d time.Duration) { x.f.Throttle("/v1.0/", 1, d) }
func (x faults) FailNext(n, status int)        { x.f.FailNext("/v1.0/", n, status, 0) }
func (x faults) Stall()                        { x.f.Latency("/v1.0/", time.Hour) }
func (x faults) Clear()                        { x.f.ClearFaults() }

func (x faults) Requests() []connectortest.Request {
	var out []connectortest.Request
	for _, r := range x.f.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") {
			out = append(out, connectortest.Request{At: r.At, Status: r.Status})
		}
	}
	return out
}

func (x faults) HTMLNext(n, status int) { x.f.HTMLNext("/v1.0/", n, status) }
