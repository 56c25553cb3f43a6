// The conformance harness for connectors/connectortest: the same cases as
// okta, entra and static, through the real client against the emulator.

package jumpcloud

import (
	"context"
	"testing"
	"time"

	"keycard/access"
	"keycard/connectors/connectortest"
	"keycard/internal/fakeclock"
	"keycard/internal/jumpcloudfake"
)

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Harness { return newHarness(t) })
}

type harness struct {
	fake  *jumpcloudfake.Server
	conn  *Connector
	clock *fakeclock.Clock
}

func newHarness(t *testing.T) *harness {
	clk := fakeclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	fake := jumpcloudfake.New(jumpcloudfake.Options{APIKey: secretKey, Clock: clk.Now})
	t.Cleanup(fake.Close)
	conn, err := New(Config{
		APIURL: fake.URL, APIKey: secretKey, Timeout: time.Second, Clock: clk,
		Sleep: func(ctx context.Context, d time.Duration) error { clk.Advance(d); return ctx.Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{fake: fake, conn: conn, clock: clk}
}

func (h *harness) Connector() connectortest.Connector { return h.conn }
func (h *harness) Clock() access.Clock                { return h.clock }
func (h *harness) Advance(d time.Duration)            { h.clock.Advance(d) }

func (h *harness) AddUser(p connectortest.Person) string {
	return h.fake.AddUser(jumpcloudfake.User{Email: p.Email, Displayname: p.Name, Manager: p.ManagerID, Department: p.Department})
}

func (h *harness) Deactivate(id string) { _ = h.fake.Suspend(id) }
func (h *harness) Delete(id string) bool {
	return h.fake.Delete(id) == nil
}
func (h *harness) AddGroup(name string) { h.fake.AddGroup(name) }
func (h *harness) AddStandingMember(group, id string) {
	_ = h.fake.AddMember(h.fake.GroupID(group), id)
}
func (h *harness) Members(group string) []string { return h.fake.Members(h.fake.GroupID(group)) }
func (h *harness) UnknownID() string             { return jumpcloudfake.UnknownID }
func (h *harness) PageSize() int                 { return pageLimit }
func (h *harness) Faults() connectortest.Faults  { return faults{h.fake} }
func (h *harness) Leavers() connectortest.LeaverFeed {
	return nil // the holder sweep covers JumpCloud (README "Leavers")
}

type faults struct{ f *jumpcloudfake.Server }

func (f faults) RateLimitNext(d time.Duration) { f.f.RateLimitNext(1, d) }
func (f faults) FailNext(n, status int)        { f.f.FailNext("", n, status) }
func (f faults) Stall()                        { f.f.Latency("", time.Hour) }
func (f faults) Clear()                        { f.f.ResetFaults() }
func (f faults) Requests() []connectortest.Request {
	var out []connectortest.Request
	for _, r := range f.f.Requests() {
		out = append(out, connectortest.Request{At: r.At, Status: r.Status})
	}
	return out
}

func (f faults) HTMLNext(n, status int) { f.f.FailNextHTML("", n, status) }
