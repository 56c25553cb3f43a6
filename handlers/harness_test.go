package handlers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/internal/fixture"
	"keycard/policy"
	"keycard/store"
)

// fakeIdP is a directory and provisioner with state and fault injection.
type fakeIdP struct {
	mu      sync.Mutex
	users   map[string]access.User     // by id
	members map[string]map[string]bool // group -> user id
	// failures queued per op kind: each call pops one error (nil = succeed)
	fail  map[string][]error
	calls map[string]int
	block chan struct{} // when set, AddMember waits for it or ctx
	// lost: an injected add failure still applies the membership (the
	// answer was lost, as with a timeout after the IdP acted).
	lost bool
	// applied, when set, makes AddMember apply the membership, close it and
	// hang until ctx ends (keycard dies before recording the answer).
	applied chan struct{}
}

func newIdP() *fakeIdP {
	return &fakeIdP{users: map[string]access.User{}, members: map[string]map[string]bool{}, fail: map[string][]error{}, calls: map[string]int{}}
}

func (f *fakeIdP) addUser(email, name, manager string, attrs map[string]string) access.User {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := access.User{ID: "00u" + strings.Split(email, "@")[0], Login: email, Email: email, Name: name,
		Status: access.StatusActive, ManagerRef: manager, Attributes: attrs}
	f.users[u.ID] = u
	return u
}

// addPerson adds one of the fixture's people.
func (f *fakeIdP) addPerson(p fixture.Person) access.User {
	return f.addUser(p.Email, p.Name, p.Manager, p.Attributes())
}

// seed adds an org's people and its group memberships.
func (f *fakeIdP) seed(org fixture.Org) {
	for _, p := range org.People {
		f.addPerson(p)
	}
	for _, g := range org.Groups {
		for _, m := range g.Members {
			f.setMember(g.Name, m, true)
		}
	}
}

func (f *fakeIdP) setStatus(email string, st access.UserStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, u := range f.users {
		if u.Email == email {
			u.Status = st
			f.users[id] = u
		}
	}
}

func (f *fakeIdP) setMember(group, email string, in bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, u := range f.users {
		if u.Email == email {
			if f.members[group] == nil {
				f.members[group] = map[string]bool{}
			}
			if in {
				f.members[group][id] = true
			} else {
				delete(f.members[group], id)
			}
		}
	}
}

func (f *fakeIdP) isMember(group, email string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, u := range f.users {
		if u.Email == email {
			return f.members[group][id]
		}
	}
	return false
}

func (f *fakeIdP) failNext(kind string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[kind] = append(f.fail[kind], errs...)
}

func (f *fakeIdP) pop(kind string) error {
	f.calls[kind]++
	if q := f.fail[kind]; len(q) > 0 {
		f.fail[kind] = q[1:]
		return q[0]
	}
	return nil
}

func (f *fakeIdP) UserByEmail(_ context.Context, email string) (access.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pop("lookup"); err != nil {
		return access.User{}, err
	}
	for _, u := range f.users {
		if strings.EqualFold(u.Email, email) {
			return u, nil
		}
	}
	return access.User{}, access.Errorf(access.CodeNotFound, "no user %s", email)
}

func (f *fakeIdP) UserByID(_ context.Context, id string) (access.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pop("byid"); err != nil {
		return access.User{}, err
	}
	if u, ok := f.users[id]; ok {
		return u, nil
	}
	return access.User{}, access.Errorf(access.CodeNotFound, "no user %s", id)
}

func (f *fakeIdP) Manager(ctx context.Context, u access.User) (access.User, error) {
	if u.ManagerRef == "" {
		return access.User{}, access.Errorf(access.CodeNotFound, "%s has no manager", u.Email)
	}
	return f.UserByEmail(ctx, u.ManagerRef)
}

func (f *fakeIdP) GroupMembers(_ context.Context, group string) ([]access.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []access.User
	for id := range f.members[group] {
		out = append(out, f.users[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}

func (f *fakeIdP) AddMember(ctx context.Context, group, userID string) (access.Change, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return access.Change{}, access.Wrap(access.CodeUnavailable, ctx.Err(), "cancelled")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pop("add"); err != nil {
		if f.lost {
			f.setMemberID(group, userID)
		}
		return access.Change{}, err
	}
	f.setMemberID(group, userID)
	if applied := f.applied; applied != nil {
		f.applied = nil
		close(applied)
		f.mu.Unlock()
		<-ctx.Done()
		f.mu.Lock()
		return access.Change{}, access.Wrap(access.CodeUnavailable, ctx.Err(), "cancelled")
	}
	return access.Change{IdPEventID: fmt.Sprintf("evt-add-%d", f.calls["add"])}, nil
}

func (f *fakeIdP) setMemberID(group, userID string) {
	if f.members[group] == nil {
		f.members[group] = map[string]bool{}
	}
	f.members[group][userID] = true
}

func (f *fakeIdP) RemoveMember(_ context.Context, group, userID string) (access.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pop("remove"); err != nil {
		return access.Change{}, err
	}
	delete(f.members[group], userID)
	return access.Change{IdPEventID: fmt.Sprintf("evt-remove-%d", f.calls["remove"])}, nil
}

func (f *fakeIdP) IsMember(_ context.Context, group, userID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pop("ismember"); err != nil {
		return false, err
	}
	return f.members[group][userID], nil
}

// conns hands the fake out under the connector name "okta".
type conns struct{ idp *fakeIdP }

func (c conns) Directory(name string) (access.Directory, bool) {
	return c.idp, name == "okta"
}
func (c conns) Provisioner(name string) (access.Provisioner, bool) {
	return c.idp, name == "okta"
}

// testPolicy is the use-case tests' policy file (fixture.RolesPolicy): an
// okta connector and prod-db-admin, prod-db-admin-alt, grafana-viewer,
// prod-breakglass and lonely.
var testPolicy = fixture.RolesPolicy().String()

// env is one test's world: clock, IdP, store, service.
type env struct {
	t     *testing.T
	clock *fakeclock.Clock
	idp   *fakeIdP
	db    *store.DB
	path  string
	svc   *handlers.Service
	set   *policy.Set
	conns handlers.Connectors
}

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, testPolicy, nil)
}

// newEnvWith is newEnv with another policy text and, when wrap is set,
// connectors built around the fake IdP.
func newEnvWith(t *testing.T, text string, wrap func(*fakeIdP) handlers.Connectors) *env {
	t.Helper()
	e := &env{t: t, clock: fakeclock.New(t0), idp: newIdP(), path: filepath.Join(t.TempDir(), "keycard.db")}
	e.idp.seed(fixture.Roles())
	set, err := policy.Parse("policy.yaml", []byte(text))
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	e.set = set
	e.conns = conns{e.idp}
	if wrap != nil {
		e.conns = wrap(e.idp)
	}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	return e
}

// open (re)opens the store and builds a fresh service, as a restart would.
func (e *env) open() {
	e.t.Helper()
	db, err := store.Open(e.path, store.Options{NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.svc = handlers.New(adapt.Store(db), e.conns, e.set, e.clock, handlers.Options{BackoffBase: time.Second, BackoffMax: time.Minute})
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func slackID(email string) string { return "U" + strings.ToUpper(strings.Split(email, "@")[0]) }

func (e *env) submit(email, pol string, d time.Duration, why string) (access.Request, error) {
	return e.svc.Submit(context.Background(), handlers.SubmitInput{SlackID: slackID(email), Email: email, Policy: pol, Duration: d, Justification: why})
}

func (e *env) decide(id string, step int, email string, approve bool, comment string) (access.Request, error) {
	return e.svc.Decide(context.Background(), handlers.DecideInput{RequestID: id, Step: step, SlackID: slackID(email), Email: email, Approve: approve, Comment: comment})
}

// settle runs the scheduler and the outbox until nothing is due now.
func (e *env) settle() {
	e.t.Helper()
	for i := 0; i < 10; i++ {
		if _, err := e.svc.Tick(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		next, err := e.svc.RunOutbox(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if next.IsZero() || next.After(e.clock.Now()) {
			return
		}
	}
}

func (e *env) get(id string) access.Request {
	e.t.Helper()
	r, err := e.svc.Get(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// events returns the types of all audit events for a request (all when id is "").
func (e *env) events(id string) []string {
	e.t.Helper()
	var out []string
	if err := e.svc.Events(0, func(ev access.Event) error {
		if id == "" || ev.RequestID == id {
			out = append(out, string(ev.Type))
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) verify() {
	e.t.Helper()
	res, err := e.db.Verify(1, nil)
	if err != nil || res.Problem != "" {
		e.t.Fatalf("audit chain does not verify: %v %s", err, res.Problem)
	}
}

// approveAll walks a prod-db-admin request through both steps.
func (e *env) approveAll(id string) {
	e.t.Helper()
	if _, err := e.decide(id, 0, "bob@example.com", true, ""); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.decide(id, 1, "carol@example.com", true, "ok"); err != nil {
		e.t.Fatal(err)
	}
}

func wantState(t *testing.T, r access.Request, s access.State) {
	t.Helper()
	if r.State != s {
		t.Fatalf("%s: state %s, want %s", r.ID, r.State, s)
	}
}

func wantCode(t *testing.T, err error, c access.Code) {
	t.Helper()
	if access.CodeOf(err) != c {
		t.Fatalf("error %v (code %q), want code %q", err, access.CodeOf(err), c)
	}
}
