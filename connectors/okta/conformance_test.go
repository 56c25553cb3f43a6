package okta_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/connectors/connectortest"
	"keycard/connectors/okta"
	"keycard/internal/fakeclock"
	"keycard/internal/oktafake"
)

// harness runs the conformance suite against the connector, the real
// okta-sdk-golang client and internal/oktafake. oktafake keeps no request
// times, so a recording transport notes each exchange on the clock.
type harness struct {
	t     *testing.T
	fake  *oktafake.Server
	clock *fakeclock.Clock
	conn  *okta.Connector
	rec   *recorder
}

func newHarness(t *testing.T) *harness {
	clk := fakeclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	fake := oktafake.New(oktafake.Options{Clock: clk.Now})
	t.Cleanup(fake.Close)
	rec := &recorder{clock: clk, next: http.DefaultTransport}
	conn, err := okta.New(okta.Config{
		OrgURL: fake.URL, Token: fake.Token(), Timeout: 500 * time.Millisecond, Clock: clk,
		HTTPClient: &http.Client{Transport: rec},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, fake: fake, clock: clk, conn: conn, rec: rec}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Harness { return newHarness(t) })
}

func (h *harness) Connector() connectortest.Connector { return h.conn }
func (h *harness) Clock() access.Clock                { return h.clock }

// PageSize is the connector's page for group members (its pageLimit).
func (h *harness) PageSize() int     { return 200 }
func (h *harness) UnknownID() string { return "00uzzzzzzzzzzzzzzzzz" }
func (h *harness) Faults() connectortest.Faults {
	return faults{f: h.fake, rec: h.rec}
}

func (h *harness) AddUser(p connectortest.Person) string {
	first, last, _ := strings.Cut(p.Name, " ")
	prof := map[string]any{"login": p.Email, "email": p.Email, "firstName": first, "lastName": last}
	if p.Name != "" {
		prof["displayName"] = p.Name
	}
	if p.ManagerID != "" {
		prof["managerId"] = p.ManagerID
	}
	if p.Department != "" {
		prof["department"] = p.Department
	}
	return h.fake.AddUser(prof, "")
}

func (h *harness) Deactivate(id string) {
	if err := h.fake.SetStatus(id, "SUSPENDED"); err != nil {
		h.t.Fatal(err)
	}
}

// Delete: oktafake has no user deletion (Okta deletes only deprovisioned
// users, and the connector sees that as DEPROVISIONED, then 404).
func (h *harness) Delete(string) bool { return false }

func (h *harness) AddGroup(name string) { h.fake.AddGroup(name, "") }

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

type faults struct {
	f   *oktafake.Server
	rec *recorder
}

func (x faults) RateLimitNext(d time.Duration)     { x.f.RateLimitNext(1, d) }
func (x faults) FailNext(n, status int)            { x.f.FailNext("/api/v1/", n, status) }
func (x faults) Stall()                            { x.f.Latency("/api/v1/", time.Hour) }
func (x faults) Clear()                            { x.f.Latency("/api/v1/", 0); x.f.ClearFaults() }
func (x faults) HTMLNext(n, status int)            { x.f.FailNextHTML("/api/v1/", n, status) }
func (x faults) Requests() []connectortest.Request { return x.rec.log() }

// recorder notes each exchange's clock time and status.
type recorder struct {
	clock *fakeclock.Clock
	next  http.RoundTripper
	mu    sync.Mutex
	reqs  []connectortest.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	at := r.clock.Now()
	resp, err := r.next.RoundTrip(req)
	st := 0
	if err == nil {
		st = resp.StatusCode
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, connectortest.Request{At: at, Status: st})
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) log() []connectortest.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]connectortest.Request(nil), r.reqs...)
}
