package connectortest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/connectors"
)

// Connector is what every connector offers: the directory and the
// provisioner.
type Connector interface {
	access.Directory
	access.Provisioner
}

// Person is a user to set up.
type Person struct {
	Email      string
	Name       string
	ManagerID  string // an id AddUser returned earlier; "" for none
	Department string
}

// Request is one request that reached the emulator.
type Request struct {
	At     time.Time // on the harness clock
	Status int       // as answered
}

// Faults injects failures at the wire. See the package doc.
type Faults interface {
	RateLimitNext(retryAfter time.Duration)
	FailNext(n, status int)
	Stall()
	Clear()
	Requests() []Request
}

// PageFaults is an optional extension of Faults: HTMLNext answers the next
// n requests with status and a text/html page, as a proxy or gateway in
// front of the provider does ("<html>404 Not Found (nginx)</html>"). A
// harness whose emulator cannot serve one does not implement it, and the
// case that needs it is skipped.
type PageFaults interface {
	HTMLNext(n, status int)
}

// NoCrossCallHold is implemented by a harness whose connector keeps no
// Retry-After past the call that drew it: NoCrossCallHold says why, and
// the case that checks the hold across calls is skipped with that reason.
type NoCrossCallHold interface {
	NoCrossCallHold() string
}

// Leaver is one person a leaver feed reported.
type Leaver struct {
	ID     string // the event's id (stable for a replay)
	UserID string
}

// LeaverFeed reads leavers after cursor and returns the next cursor, like
// handlers.DeactivationFeed.
type LeaverFeed func(ctx context.Context, cursor string) ([]Leaver, string, error)

// Harness sets up one provider's emulator and connector. See the package
// doc.
type Harness interface {
	Connector() Connector
	Clock() access.Clock
	AddUser(p Person) string
	Deactivate(id string)
	Delete(id string) bool
	AddGroup(name string)
	AddStandingMember(group, id string)
	Members(group string) []string
	UnknownID() string
	PageSize() int
	Faults() Faults
	Leavers() LeaverFeed
}

// Run runs every case, each against a fresh harness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"lookup/case-insensitive email", caseInsensitive},
		{"lookup/unknown person", unknownPerson},
		{"lookup/inactive person", inactivePerson},
		{"lookup/attributes and manager", attributesAndManager},
		{"members/several pages", severalPages},
		{"provision/add twice", addTwice},
		{"provision/remove a non-member", removeNonMember},
		{"wire/rate limit honoured", rateLimit},
		{"wire/rate limit held across calls", rateLimitAcrossCalls},
		{"wire/non-JSON 404 is not an answer", proxyPage},
		{"wire/5xx retried with backoff", serverError},
		{"wire/call past its deadline", pastDeadline},
		{"scope/ceiling refused at the call", scopeCeiling},
		{"leavers/from a cursor, not twice", leavers},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newHarness(t)) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func caseInsensitive(t *testing.T, h Harness) {
	id := h.AddUser(Person{Email: "Case.Person@Example.com", Name: "Case Person"})
	for _, q := range []string{"case.person@example.com", "CASE.PERSON@EXAMPLE.COM", " Case.Person@Example.com "} {
		u, err := h.Connector().UserByEmail(ctxT(t), q)
		if err != nil {
			t.Fatalf("UserByEmail(%q): %v", q, err)
		}
		if u.ID != id || !strings.EqualFold(u.Email, "case.person@example.com") || u.Status.Offboarded() {
			t.Fatalf("UserByEmail(%q) = %+v, want id %s, active", q, u, id)
		}
	}
}

func unknownPerson(t *testing.T, h Harness) {
	h.AddUser(Person{Email: "someone@example.com"})
	c := h.Connector()
	if _, err := c.UserByEmail(ctxT(t), "nobody@example.com"); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("unknown email: %v (code %q), want not_found", err, access.CodeOf(err))
	}
	if _, err := c.UserByEmail(ctxT(t), "o'brien@example.com"); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("an email with a quote: %v, want not_found", err)
	}
	if _, err := c.UserByID(ctxT(t), h.UnknownID()); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("unknown id: %v, want not_found", err)
	}
}

func inactivePerson(t *testing.T, h Harness) {
	id := h.AddUser(Person{Email: "leaver@example.com"})
	h.Deactivate(id)
	c := h.Connector()
	u, err := c.UserByEmail(ctxT(t), "leaver@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Status.Offboarded() || u.Status.CanRequest() {
		t.Fatalf("deactivated user has status %q, want an offboarded one", u.Status)
	}
	if u2, err := c.UserByID(ctxT(t), id); err != nil || !u2.Status.Offboarded() {
		t.Fatalf("UserByID of a deactivated user: %+v, %v", u2, err)
	}
	if h.Delete(id) {
		if _, err := c.UserByID(ctxT(t), id); access.CodeOf(err) != access.CodeNotFound {
			t.Fatalf("deleted user: %v, want not_found", err)
		}
	}
}

func attributesAndManager(t *testing.T, h Harness) {
	boss := h.AddUser(Person{Email: "boss@example.com", Name: "Bo Boss"})
	id := h.AddUser(Person{Email: "dev@example.com", Name: "Dee Dev", ManagerID: boss, Department: "Engineering"})
	loner := h.AddUser(Person{Email: "loner@example.com"})
	c := h.Connector()
	u, err := c.UserByID(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := u.Attr("department"); d != "Engineering" {
		t.Fatalf("department = %q (attributes %v)", d, u.Attributes)
	}
	if u.Name != "Dee Dev" {
		t.Fatalf("name = %q", u.Name)
	}
	m, err := c.Manager(ctxT(t), u)
	if err != nil || m.ID != boss {
		t.Fatalf("Manager = %+v, %v; want %s", m, err, boss)
	}
	lu, err := c.UserByID(ctxT(t), loner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Manager(ctxT(t), lu); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("no manager: %v, want not_found", err)
	}
}

func severalPages(t *testing.T, h Harness) {
	n := 3*h.PageSize() + 1
	if h.PageSize() == 0 {
		n = 7
	}
	h.AddGroup("big-group")
	want := make([]string, 0, n)
	for i := range n {
		id := h.AddUser(Person{Email: fmt.Sprintf("member%04d@example.com", i)})
		h.AddStandingMember("big-group", id)
		want = append(want, id)
	}
	got, err := h.Connector().GroupMembers(ctxT(t), "big-group")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(got))
	for _, u := range got {
		ids = append(ids, u.ID)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("GroupMembers: %d members, want %d (every page, no duplicates)", len(ids), len(want))
	}
	if _, err := h.Connector().GroupMembers(ctxT(t), "no-such-group"); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("unknown group: %v, want not_found", err)
	}
}

func addTwice(t *testing.T, h Harness) {
	h.AddGroup("app-admins")
	id := h.AddUser(Person{Email: "twice@example.com"})
	c := h.Connector()
	for i := range 2 {
		if _, err := c.AddMember(ctxT(t), "app-admins", id); err != nil {
			t.Fatalf("add #%d: %v", i+1, err)
		}
	}
	if got := h.Members("app-admins"); !slices.Equal(got, []string{id}) {
		t.Fatalf("members after two adds: %v, want [%s]", got, id)
	}
	if ok, err := c.IsMember(ctxT(t), "app-admins", id); err != nil || !ok {
		t.Fatalf("IsMember = %v, %v", ok, err)
	}
}

func removeNonMember(t *testing.T, h Harness) {
	h.AddGroup("app-admins")
	stays := h.AddUser(Person{Email: "stays@example.com"})
	h.AddStandingMember("app-admins", stays)
	id := h.AddUser(Person{Email: "never@example.com"})
	c := h.Connector()
	if _, err := c.RemoveMember(ctxT(t), "app-admins", id); err != nil {
		t.Fatalf("remove a non-member: %v", err)
	}
	if got := h.Members("app-admins"); !slices.Equal(got, []string{stays}) {
		t.Fatalf("members: %v, want [%s]", got, stays)
	}
	if ok, err := c.IsMember(ctxT(t), "app-admins", id); err != nil || ok {
		t.Fatalf("IsMember of a non-member = %v, %v", ok, err)
	}
}

func rateLimit(t *testing.T, h Harness) {
	f := wire(t, h, "rate limit")
	reqs, i, allowed, errs := underRateLimit(t, h, f, 30*time.Second, 1)
	switch err := errs[0]; {
	case err == nil:
		if len(reqs) == i+1 {
			t.Fatal("the call succeeded without trying again")
		}
	case access.CodeOf(err) == access.CodeRateLimited:
		var e *access.Error
		if !asError(err, &e) || e.RetryAt.Before(allowed) {
			t.Fatalf("RetryAt %v is before the header's %s", e.RetryAt, allowed)
		}
		if len(reqs) != i+1 {
			t.Fatalf("gave up but sent %d more requests", len(reqs)-i-1)
		}
	default:
		t.Fatalf("rate limited call: %v (code %q), want success after the wait or rate_limited", err, access.CodeOf(err))
	}
}

// rateLimitAcrossCalls: a Retry-After longer than any connector waits
// inside one call is handed back as rate_limited; the next call, at the
// same instant, must not reach the provider before the header's time
// either (the limit is the app's, not the one request's).
func rateLimitAcrossCalls(t *testing.T, h Harness) {
	f := wire(t, h, "rate limit")
	if n, ok := h.(NoCrossCallHold); ok {
		t.Skip(n.NoCrossCallHold())
	}
	_, _, _, errs := underRateLimit(t, h, f, 10*time.Minute, 2)
	for n, err := range errs {
		if err != nil && access.CodeOf(err) != access.CodeRateLimited {
			t.Fatalf("call %d: %v (code %q), want success after the wait or rate_limited", n+1, err, access.CodeOf(err))
		}
	}
}

// underRateLimit makes calls lookups of one user after arming a 429 with
// Retry-After after, and fails the test when the 429 did not reach the
// connector or any request went out before the time it allowed. It returns
// the requests sent, the index of the 429 among them, that time, and each
// call's error.
func underRateLimit(t *testing.T, h Harness, f Faults, after time.Duration, calls int) (reqs []Request, i int, allowed time.Time, errs []error) {
	t.Helper()
	h.AddUser(Person{Email: "busy@example.com"})
	c := h.Connector()
	before := len(f.Requests())
	f.RateLimitNext(after)
	for range calls {
		_, err := c.UserByEmail(ctxT(t), "busy@example.com")
		errs = append(errs, err)
	}
	reqs = f.Requests()[before:]
	i = slices.IndexFunc(reqs, func(r Request) bool { return r.Status == 429 })
	if i < 0 {
		t.Fatalf("no 429 reached the connector: %+v", reqs)
	}
	allowed = reqs[i].At.Add(after)
	for _, r := range reqs[i+1:] {
		if r.At.Before(allowed) {
			t.Fatalf("a request at %s, before the rate limit said (%s); calls: %v", r.At, allowed, errs)
		}
	}
	return reqs, i, allowed, errs
}

// proxyPage: a 4xx text/html page from something in front of the provider
// says nothing about the user or group. Read as the provider's 404 it
// would make a live user "deleted" (and the holder sweep offboard them)
// or report a removal done while the membership stays.
func proxyPage(t *testing.T, h Harness) {
	f := wire(t, h, "fault")
	pf, ok := f.(PageFaults)
	if !ok {
		t.Skip("the harness's emulator cannot answer an HTML error page (no PageFaults)")
	}
	id := h.AddUser(Person{Email: "kept@example.com"})
	h.AddGroup("app-proxy")
	h.AddStandingMember("app-proxy", id)
	c := h.Connector()
	pf.HTMLNext(1000, 404)
	defer f.Clear()
	if _, err := c.UserByID(ctxT(t), id); access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("UserByID over a proxy's 404 page: %v (code %q), want unavailable", err, access.CodeOf(err))
	}
	if _, err := c.RemoveMember(ctxT(t), "app-proxy", id); access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("RemoveMember over a proxy's 404 page: %v (code %q), want unavailable", err, access.CodeOf(err))
	}
	f.Clear()
	if got := h.Members("app-proxy"); !slices.Contains(got, id) {
		t.Fatalf("members %v: the membership is gone", got)
	}
}

func serverError(t *testing.T, h Harness) {
	f := wire(t, h, "fail")
	h.AddUser(Person{Email: "flaky@example.com"})
	c := h.Connector()
	before := len(f.Requests())
	f.FailNext(2, 503)
	_, err := c.UserByEmail(ctxT(t), "flaky@example.com")
	reqs := f.Requests()[before:]
	switch {
	case err == nil:
		// Retried: two failures, then success, with growing pauses.
		if len(reqs) != 3 || reqs[0].Status != 503 || reqs[1].Status != 503 || reqs[2].Status != 200 {
			t.Fatalf("requests: %+v, want 503, 503, 200", reqs)
		}
		d1, d2 := reqs[1].At.Sub(reqs[0].At), reqs[2].At.Sub(reqs[1].At)
		if d1 <= 0 || d2 <= d1 {
			t.Fatalf("pauses %s then %s: want a growing backoff", d1, d2)
		}
	case access.CodeOf(err) == access.CodeUnavailable:
		// Left to the caller's retry queue: one request, no tight loop.
		if len(reqs) != 1 {
			t.Fatalf("gave up after %d requests without pausing", len(reqs))
		}
	default:
		t.Fatalf("5xx: %v (code %q), want success after backoff or unavailable", err, access.CodeOf(err))
	}
}

func pastDeadline(t *testing.T, h Harness) {
	f := wire(t, h, "stall")
	h.AddUser(Person{Email: "slow@example.com"})
	h.AddGroup("app-admins")
	c := h.Connector()
	f.Stall()
	defer f.Clear()
	start := time.Now()
	_, err := c.UserByEmail(context.Background(), "slow@example.com")
	if access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("stalled call: %v (code %q), want unavailable", err, access.CodeOf(err))
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("the call took %s: no per-call deadline", el)
	}
	f.Clear()
	if _, err := c.UserByEmail(ctxT(t), "slow@example.com"); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
}

func scopeCeiling(t *testing.T, h Harness) {
	h.AddGroup("app-admins")
	h.AddGroup("prod-db")
	id := h.AddUser(Person{Email: "scoped@example.com"})
	c := h.Connector()
	scope := []string{"app-*"}
	set := connectors.NewSet()
	set.Add("idp", c, c, scope)
	viaSet, _ := set.Provisioner("idp")
	for name, p := range map[string]access.Provisioner{"Scoped": connectors.Scoped("idp", scope, c), "Set": viaSet} {
		var before int
		if f := h.Faults(); f != nil {
			before = len(f.Requests())
		}
		if _, err := p.AddMember(ctxT(t), "prod-db", id); access.CodeOf(err) != access.CodeOutOfScope {
			t.Fatalf("%s: add outside the scope: %v, want out_of_scope", name, err)
		}
		if _, err := p.RemoveMember(ctxT(t), "prod-db", id); access.CodeOf(err) != access.CodeOutOfScope {
			t.Fatalf("%s: remove outside the scope: %v, want out_of_scope", name, err)
		}
		if f := h.Faults(); f != nil && len(f.Requests()) != before {
			t.Fatalf("%s: a refused change still reached the IdP", name)
		}
		if _, err := p.AddMember(ctxT(t), "app-admins", id); err != nil {
			t.Fatalf("%s: add inside the scope: %v", name, err)
		}
	}
	if got := h.Members("prod-db"); len(got) != 0 {
		t.Fatalf("prod-db members: %v", got)
	}
	if got := h.Members("app-admins"); !slices.Equal(got, []string{id}) {
		t.Fatalf("app-admins members: %v", got)
	}
}

func leavers(t *testing.T, h Harness) {
	feed := h.Leavers()
	if feed == nil {
		t.Skip("no leaver feed: the holder sweep covers this connector")
	}
	a := h.AddUser(Person{Email: "stays@example.com"})
	b := h.AddUser(Person{Email: "goes@example.com"})
	c := h.AddUser(Person{Email: "deleted@example.com"})
	_ = a
	start := "since:" + h.Clock().Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	evs, cur, err := feed(ctxT(t), start)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("nobody left yet, feed says %+v", evs)
	}
	advance(h, time.Second)
	h.Deactivate(b)
	deleted := h.Delete(c)
	advance(h, time.Second)
	evs, cur2, err := feed(ctxT(t), cur)
	if err != nil {
		t.Fatal(err)
	}
	if !hasUser(evs, b) {
		t.Fatalf("deactivated %s not reported: %+v", b, evs)
	}
	if deleted && !hasUser(evs, c) {
		t.Fatalf("deleted %s not reported: %+v", c, evs)
	}
	if hasUser(evs, a) {
		t.Fatalf("active %s reported as a leaver", a)
	}
	if cur2 == "" {
		t.Fatal("no cursor to resume from")
	}
	advance(h, time.Second)
	evs, _, err = feed(ctxT(t), cur2)
	if err != nil {
		t.Fatal(err)
	}
	if hasUser(evs, b) || hasUser(evs, c) {
		t.Fatalf("leavers found twice: %+v", evs)
	}
}

// advance moves the harness clock when it can be moved (a clock with an
// Advance method), so event times are ordered.
func advance(h Harness, d time.Duration) {
	if a, ok := h.Clock().(interface{ Advance(time.Duration) }); ok {
		a.Advance(d)
	}
}

func hasUser(evs []Leaver, id string) bool {
	return slices.ContainsFunc(evs, func(l Leaver) bool { return l.UserID == id })
}

// wire is the harness's fault injector; a harness without one (no wire to
// fault) skips the test, saying what it could not do.
func wire(t *testing.T, h Harness, what string) Faults {
	t.Helper()
	f := h.Faults()
	if f == nil {
		t.Skip("no wire to " + what)
	}
	return f
}
