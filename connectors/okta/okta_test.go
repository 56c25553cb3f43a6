package okta

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/fakeclock"
	"keycard/internal/oktafake"
)

const secretToken = "00SECRET-token-value-never-logged"

type env struct {
	fake  *oktafake.Server
	conn  *Connector
	clock *fakeclock.Clock
}

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	clk := fakeclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	fake := oktafake.New(oktafake.Options{Token: secretToken, Clock: clk.Now})
	t.Cleanup(fake.Close)
	cfg := Config{OrgURL: fake.URL + "/", Token: secretToken, Timeout: 5 * time.Second, Clock: clk}
	for _, m := range mutate {
		m(&cfg)
	}
	conn, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, conn: conn, clock: clk}
}

func (e *env) user(login, email string, extra map[string]any) string {
	p := map[string]any{"login": login, "email": email, "firstName": strings.Split(login, "@")[0], "lastName": "Test"}
	for k, v := range extra {
		p[k] = v
	}
	return e.fake.AddUser(p, "")
}

func noToken(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secretToken) {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestValidateOrgURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"https", "https://acme.okta.com", "https://acme.okta.com", true},
		{"https trailing slash trimmed", "https://acme.okta.com/", "https://acme.okta.com", true},
		{"loopback v4 http", "http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"loopback localhost http", "http://localhost:9000/", "http://localhost:9000", true},
		{"loopback v6 http", "http://[::1]:9000", "http://[::1]:9000", true},
		{"plain http elsewhere", "http://acme.okta.com", "", false},
		{"http private address", "http://10.0.0.5:80", "", false},
		{"empty", "", "", false},
		{"other scheme", "ftp://acme.okta.com", "", false},
		{"no scheme", "acme.okta.com", "", false},
		{"path", "https://acme.okta.com/admin", "", false},
		{"query", "https://acme.okta.com?x=1", "", false},
		{"userinfo", "https://u:p@acme.okta.com", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidateOrgURL(tc.in)
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("ValidateOrgURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				if _, err := New(Config{OrgURL: tc.in, Token: "t"}); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if access.CodeOf(err) != access.CodeInvalid {
				t.Fatalf("ValidateOrgURL(%q) = %q, %v; want invalid", tc.in, got, err)
			}
			if _, err := New(Config{OrgURL: tc.in, Token: "t"}); access.CodeOf(err) != access.CodeInvalid {
				t.Fatalf("New accepted %q: %v", tc.in, err)
			}
		})
	}
	t.Run("token required", func(t *testing.T) {
		if _, err := New(Config{OrgURL: "https://acme.okta.com"}); access.CodeOf(err) != access.CodeInvalid {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestConfigRedactsToken(t *testing.T) {
	cfg := Config{OrgURL: "https://acme.okta.com", Token: secretToken}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "okta", cfg)
	for name, s := range map[string]string{"String": cfg.String(), "Sprintf %v": fmt.Sprintf("%v", cfg), "Sprintf %#v": fmt.Sprintf("%#v", cfg), "%d": fmt.Sprintf("%d", cfg), "%x": fmt.Sprintf("%x", cfg), "%q": fmt.Sprintf("%q", cfg), "Sprintf %+v of pointer": fmt.Sprintf("%+v", &cfg), "slog": buf.String()} {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(s, secretToken) || !strings.Contains(s, "acme.okta.com") {
				t.Fatalf("%s", s)
			}
		})
	}
}

func TestUserLookups(t *testing.T) {
	e := newEnv(t)
	ann := e.user("ann@x.com", "ann@x.com", map[string]any{"department": "Eng", "userType": "Employee", "managerId": "00uboss", "displayName": "Ann Lee", "employeeNumber": 1234.0})
	bob := e.user("bob.login", "bob@x.com", nil)
	e.user("dup1", "dup@x.com", nil)
	e.user("dup2", "dup@x.com", nil)
	ctx := context.Background()
	tests := []struct {
		name   string
		lookup func() (access.User, error)
		wantID string
		code   access.Code
	}{
		{"by email via login", func() (access.User, error) { return e.conn.UserByEmail(ctx, "ann@x.com") }, ann, ""},
		{"by email via email attribute", func() (access.User, error) { return e.conn.UserByEmail(ctx, "bob@x.com") }, bob, ""},
		{"by email ignoring case", func() (access.User, error) { return e.conn.UserByEmail(ctx, "Ann@X.com") }, ann, ""},
		{"by id", func() (access.User, error) { return e.conn.UserByID(ctx, bob) }, bob, ""},
		{"unknown email", func() (access.User, error) { return e.conn.UserByEmail(ctx, "nobody@x.com") }, "", access.CodeNotFound},
		{"unknown id", func() (access.User, error) { return e.conn.UserByID(ctx, "00unobody") }, "", access.CodeNotFound},
		{"id with slash", func() (access.User, error) { return e.conn.UserByID(ctx, "../groups") }, "", access.CodeNotFound},
		{"shared email is a conflict", func() (access.User, error) { return e.conn.UserByEmail(ctx, "dup@x.com") }, "", access.CodeConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.lookup()
			noToken(t, err)
			if access.CodeOf(err) != tc.code {
				t.Fatalf("err = %v, want code %q", err, tc.code)
			}
			if u.ID != tc.wantID {
				t.Fatalf("id = %q, want %q", u.ID, tc.wantID)
			}
		})
	}
	t.Run("mapping", func(t *testing.T) {
		u, err := e.conn.UserByID(ctx, ann)
		if err != nil {
			t.Fatal(err)
		}
		want := access.User{ID: ann, Login: "ann@x.com", Email: "ann@x.com", Name: "Ann Lee", Status: access.StatusActive, ManagerRef: "00uboss"}
		if u.ID != want.ID || u.Login != want.Login || u.Email != want.Email || u.Name != want.Name || u.Status != want.Status || u.ManagerRef != want.ManagerRef {
			t.Fatalf("got %+v, want %+v", u, want)
		}
		if u.Attributes["department"] != "Eng" || u.Attributes["employeeNumber"] != "1234" {
			t.Errorf("attributes %v", u.Attributes)
		}
		b, _ := e.conn.UserByID(ctx, bob)
		if b.Name != "bob.login Test" {
			t.Errorf("first+last name = %q", b.Name)
		}
	})
	t.Run("not-found error names Okta code and errorId", func(t *testing.T) {
		_, err := e.conn.UserByID(ctx, "00unobody")
		if !strings.Contains(err.Error(), "E0000007") || !strings.Contains(err.Error(), "errorId oae") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestManager(t *testing.T) {
	e := newEnv(t)
	boss := e.user("boss@x.com", "boss@x.com", nil)
	bossByEmail := e.user("boss2-login", "boss2@x.com", nil)
	ctx := context.Background()
	tests := []struct {
		name string
		ref  string
		want string
		code access.Code
	}{
		{"okta id", boss, boss, ""},
		{"login", "boss@x.com", boss, ""},
		{"email", "boss2@x.com", bossByEmail, ""},
		{"none", "", "", access.CodeNotFound},
		{"unresolvable", "ghost@x.com", "", access.CodeNotFound},
		{"display name is not resolvable", "Jane Boss", "", access.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uid := e.user("emp-"+tc.name+"@x.com", "emp-"+tc.name+"@x.com", map[string]any{"managerId": tc.ref})
			u, err := e.conn.UserByID(ctx, uid)
			if err != nil {
				t.Fatal(err)
			}
			m, err := e.conn.Manager(ctx, u)
			if access.CodeOf(err) != tc.code || m.ID != tc.want {
				t.Fatalf("Manager = %q, %v; want %q code %q", m.ID, err, tc.want, tc.code)
			}
		})
	}
	t.Run("custom manager attribute", func(t *testing.T) {
		e2 := newEnv(t, func(c *Config) { c.ManagerAttribute = "managerEmail" })
		b := e2.user("b@x.com", "b@x.com", nil)
		uid := e2.user("a@x.com", "a@x.com", map[string]any{"managerEmail": "b@x.com"})
		u, _ := e2.conn.UserByID(ctx, uid)
		m, err := e2.conn.Manager(ctx, u)
		if err != nil || m.ID != b {
			t.Fatalf("Manager = %q, %v", m.ID, err)
		}
	})
}

func TestGroupMembersPaginates(t *testing.T) {
	e := newEnv(t)
	gid := e.fake.AddGroup("app-big", "")
	e.fake.AddGroup("app-empty", "")
	const n = 450 // three pages of 200
	for i := 0; i < n; i++ {
		if err := e.fake.AddMember(gid, e.user(fmt.Sprintf("u%03d@x.com", i), fmt.Sprintf("u%03d@x.com", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	tests := []struct {
		name   string
		group  string
		want   int
		afters int
		code   access.Code
	}{
		{"three pages", "app-big", n, 2, ""},
		{"empty group", "app-empty", 0, 0, ""},
		{"unknown group", "app-nope", 0, 0, access.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.fake.ResetRequests()
			users, err := e.conn.GroupMembers(ctx, tc.group)
			if access.CodeOf(err) != tc.code || len(users) != tc.want {
				t.Fatalf("got %d users, err %v; want %d, code %q", len(users), err, tc.want, tc.code)
			}
			seen := map[string]bool{}
			for _, u := range users {
				if seen[u.ID] {
					t.Fatalf("duplicate member %s", u.ID)
				}
				seen[u.ID] = true
			}
			afters := 0
			for _, r := range e.fake.Requests() {
				if strings.HasSuffix(r.Path, "/users") && strings.HasPrefix(r.Path, "/api/v1/groups/") {
					if r.Query.Get("limit") != "200" {
						t.Errorf("member page without limit=200: %v", r.Query)
					}
					if r.Query.Get("after") != "" {
						afters++
					}
				}
			}
			if afters != tc.afters {
				t.Errorf("saw %d paged requests with after, want %d", afters, tc.afters)
			}
		})
	}
}

func TestMembershipChanges(t *testing.T) {
	e := newEnv(t)
	uid := e.user("a@x.com", "a@x.com", nil)
	gid := e.fake.AddGroup("app-grafana-admins", "OKTA_GROUP")
	e.fake.AddGroup("app-imported", "APP_GROUP")
	// Same name twice: the editable OKTA_GROUP must win.
	e.fake.AddGroup("app-dual", "APP_GROUP")
	dual := e.fake.AddGroup("app-dual", "OKTA_GROUP")
	ctx := context.Background()
	add := func(g, u string) error { _, err := e.conn.AddMember(ctx, g, u); return err }
	remove := func(g, u string) error { _, err := e.conn.RemoveMember(ctx, g, u); return err }
	steps := []struct {
		name    string
		do      func() error
		code    access.Code
		members []string
		member  bool
	}{
		{"add", func() error { return add("app-grafana-admins", uid) }, "", []string{uid}, true},
		{"add again is idempotent", func() error { return add("app-grafana-admins", uid) }, "", []string{uid}, true},
		{"remove", func() error { return remove("app-grafana-admins", uid) }, "", []string{}, false},
		{"remove again is idempotent", func() error { return remove("app-grafana-admins", uid) }, "", []string{}, false},
		{"unknown user", func() error { return add("app-grafana-admins", "00unobody") }, access.CodeNotFound, []string{}, false},
		{"unknown group", func() error { return add("app-nope", uid) }, access.CodeNotFound, []string{}, false},
		{"app group is forbidden", func() error { return add("app-imported", uid) }, access.CodeForbidden, []string{}, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			noToken(t, err)
			if access.CodeOf(err) != st.code {
				t.Fatalf("err = %v, want code %q", err, st.code)
			}
			got := e.fake.Members(gid)
			if fmt.Sprint(got) != fmt.Sprint(st.members) {
				t.Fatalf("members = %v, want %v", got, st.members)
			}
			is, err := e.conn.IsMember(ctx, "app-grafana-admins", uid)
			if err != nil || is != st.member {
				t.Fatalf("IsMember = %v, %v; want %v", is, err, st.member)
			}
		})
	}
	t.Run("prefers OKTA_GROUP among same-named groups", func(t *testing.T) {
		if err := add("app-dual", uid); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.Members(dual); len(got) != 1 {
			t.Fatalf("members of the OKTA_GROUP = %v", got)
		}
	})
	t.Run("forbidden names Okta code", func(t *testing.T) {
		err := add("app-imported", uid)
		if !strings.Contains(err.Error(), "E0000006") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestIsMemberPagesUserGroups(t *testing.T) {
	e := newEnv(t)
	uid := e.user("a@x.com", "a@x.com", nil)
	var last string
	for i := 0; i < 250; i++ { // the fake pages /users/{id}/groups at 200
		last = fmt.Sprintf("app-%03d", i)
		if err := e.fake.AddMember(e.fake.AddGroup(last, ""), uid); err != nil {
			t.Fatal(err)
		}
	}
	is, err := e.conn.IsMember(context.Background(), last, uid)
	if err != nil || !is {
		t.Fatalf("IsMember on the second page = %v, %v", is, err)
	}
}

func TestGroupIDCache(t *testing.T) {
	e := newEnv(t)
	uid := e.user("a@x.com", "a@x.com", nil)
	e.fake.AddGroup("app-a", "")
	ctx := context.Background()
	searches := func() int {
		n := 0
		for _, r := range e.fake.Requests() {
			if r.Path == "/api/v1/groups" {
				n++
			}
		}
		return n
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    int
	}{
		{"first lookup searches", 0, 1},
		{"within TTL uses cache", time.Minute, 1},
		{"after TTL searches again", DefaultGroupCacheTTL, 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.clock.Advance(st.advance)
			if _, err := e.conn.AddMember(ctx, "app-a", uid); err != nil {
				t.Fatal(err)
			}
			if got := searches(); got != st.want {
				t.Fatalf("group searches = %d, want %d", got, st.want)
			}
		})
	}
}

func TestTransientFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("429 becomes rate_limited with RetryAt, no SDK retry", func(t *testing.T) {
		e := newEnv(t)
		uid := e.user("a@x.com", "a@x.com", nil)
		e.fake.RateLimitNext(1, 30*time.Second)
		e.fake.ResetRequests()
		_, err := e.conn.UserByID(ctx, uid)
		noToken(t, err)
		if access.CodeOf(err) != access.CodeRateLimited {
			t.Fatalf("err = %v", err)
		}
		if want := e.clock.Now().Add(30 * time.Second).Truncate(time.Second); !access.RetryAtOf(err).Equal(want) {
			t.Fatalf("RetryAt = %v, want %v", access.RetryAtOf(err), want)
		}
		if n := len(e.fake.Requests()); n != 1 {
			t.Fatalf("the SDK sent %d requests, want 1 (no retry)", n)
		}
		// The header is honoured across calls: until its reset nothing is
		// sent, and the call is rate limited until the same moment.
		_, err = e.conn.UserByID(ctx, uid)
		if access.CodeOf(err) != access.CodeRateLimited || len(e.fake.Requests()) != 1 {
			t.Fatalf("a call before the reset: %v, %d requests reached Okta, want rate_limited and still 1", err, len(e.fake.Requests()))
		}
		e.clock.Advance(31 * time.Second)
		if _, err := e.conn.UserByID(ctx, uid); err != nil {
			t.Fatalf("after the limit: %v", err)
		}
	})
	t.Run("429 on a list call", func(t *testing.T) {
		e := newEnv(t)
		gid := e.fake.AddGroup("app-a", "")
		for i := 0; i < 250; i++ {
			_ = e.fake.AddMember(gid, e.user(fmt.Sprintf("u%d@x.com", i), fmt.Sprintf("u%d@x.com", i), nil))
		}
		if _, err := e.conn.GroupMembers(ctx, "app-a"); err != nil {
			t.Fatal(err)
		}
		e.fake.RateLimitNext(1, 10*time.Second)
		if _, err := e.conn.GroupMembers(ctx, "app-a"); access.CodeOf(err) != access.CodeRateLimited {
			t.Fatalf("err = %v", err)
		}
	})
	for _, status := range []int{500, 502, 503} {
		t.Run(fmt.Sprintf("%d becomes unavailable", status), func(t *testing.T) {
			e := newEnv(t)
			uid := e.user("a@x.com", "a@x.com", nil)
			e.fake.FailNext("GET /api/v1/users", 1, status)
			_, err := e.conn.UserByID(ctx, uid)
			noToken(t, err)
			if access.CodeOf(err) != access.CodeUnavailable || !access.Retryable(err) {
				t.Fatalf("err = %v", err)
			}
			if !strings.Contains(err.Error(), "E0000009") {
				t.Errorf("err lacks the Okta code: %v", err)
			}
		})
	}
	t.Run("5xx on membership change", func(t *testing.T) {
		e := newEnv(t)
		uid := e.user("a@x.com", "a@x.com", nil)
		e.fake.AddGroup("app-a", "")
		e.fake.FailNext("PUT /api/v1/groups", 1, 503)
		if _, err := e.conn.AddMember(ctx, "app-a", uid); access.CodeOf(err) != access.CodeUnavailable {
			t.Fatalf("err = %v", err)
		}
		if _, err := e.conn.AddMember(ctx, "app-a", uid); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})
	t.Run("latency beyond the timeout becomes unavailable promptly", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Timeout = 100 * time.Millisecond })
		uid := e.user("a@x.com", "a@x.com", nil)
		e.fake.Latency("GET /api/v1/users", time.Hour)
		start := time.Now()
		_, err := e.conn.UserByID(ctx, uid)
		if access.CodeOf(err) != access.CodeUnavailable {
			t.Fatalf("err = %v", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("took %v", el)
		}
		e.fake.Latency("GET /api/v1/users", 0)
		if _, err := e.conn.UserByID(ctx, uid); err != nil {
			t.Fatalf("after latency: %v", err)
		}
	})
	t.Run("wrong token is forbidden", func(t *testing.T) {
		e := newEnv(t)
		c, err := New(Config{OrgURL: e.fake.URL, Token: "wrong-" + secretToken, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.UserByID(ctx, "x")
		if access.CodeOf(err) != access.CodeForbidden || !strings.Contains(err.Error(), "E0000011") {
			t.Fatalf("err = %v", err)
		}
		noToken(t, err)
	})
}

// TestDroppedConnectionsEndAtTheDeadline proves the per-call deadline stops
// the v2 SDK's uncapped io.EOF retry loop (notes/okta.md §3): a server that
// closes every connection without answering must yield CodeUnavailable
// within the timeout, not spin forever.
func TestDroppedConnectionsEndAtTheDeadline(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, err := New(Config{OrgURL: srv.URL, Token: secretToken, Timeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.UserByID(context.Background(), "00u1")
	if access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits == 0 {
		t.Fatal("server saw no request")
	}
}

func TestConcurrentChanges(t *testing.T) {
	e := newEnv(t)
	gid := e.fake.AddGroup("app-a", "")
	var ids []string
	for i := 0; i < 8; i++ {
		ids = append(ids, e.user(fmt.Sprintf("c%d@x.com", i), fmt.Sprintf("c%d@x.com", i), nil))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(ids)*2)
	for _, id := range ids {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := e.conn.AddMember(context.Background(), "app-a", id)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := e.conn.GroupMembers(context.Background(), "app-a")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(e.fake.Members(gid)); got != len(ids) {
		t.Fatalf("members = %d, want %d", got, len(ids))
	}
}

func TestLifecycleEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann := e.user("ann@x.com", "ann@x.com", nil)
	bob := e.user("bob@x.com", "bob@x.com", nil)
	cat := e.user("cat@x.com", "cat@x.com", nil)
	gid := e.fake.AddGroup("app-a", "")
	start := SinceCursor(e.clock.Now().Add(-time.Minute))

	_ = e.fake.SetStatus(ann, "SUSPENDED")
	_ = e.fake.AddMember(gid, bob) // not a lifecycle event
	e.clock.Advance(time.Second)
	_ = e.fake.SetStatus(bob, "DEPROVISIONED")

	type want struct{ user, typ string }
	cursor := start
	polls := []struct {
		name   string
		before func()
		want   []want
	}{
		{"first poll from since", nil, []want{{ann, EventSuspend}, {bob, EventDeactivate}}},
		{"nothing new", nil, nil},
		{"second poll sees only new events", func() {
			e.clock.Advance(time.Minute)
			_ = e.fake.SetStatus(ann, "ACTIVE") // unsuspend: not watched
			_ = e.fake.SetStatus(cat, "SUSPENDED")
		}, []want{{cat, EventSuspend}}},
	}
	seen := map[string]bool{}
	for _, p := range polls {
		t.Run(p.name, func(t *testing.T) {
			if p.before != nil {
				p.before()
			}
			evs, next, err := e.conn.LifecycleEvents(ctx, cursor)
			if err != nil {
				t.Fatal(err)
			}
			if next == "" || strings.HasPrefix(next, "since:") {
				t.Fatalf("next cursor = %q", next)
			}
			cursor = next
			if len(evs) != len(p.want) {
				t.Fatalf("got %+v, want %v", evs, p.want)
			}
			for i, ev := range evs {
				if seen[ev.UUID] {
					t.Fatalf("duplicate event %s across polls", ev.UUID)
				}
				seen[ev.UUID] = true
				if ev.UserID != p.want[i].user || ev.Type != p.want[i].typ || ev.UserLogin == "" || ev.Published.IsZero() {
					t.Errorf("event %d = %+v, want %v", i, ev, p.want[i])
				}
			}
		})
	}
	t.Run("bad since cursor", func(t *testing.T) {
		if _, _, err := e.conn.LifecycleEvents(ctx, "since:yesterday"); access.CodeOf(err) != access.CodeInvalid {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("error keeps the cursor", func(t *testing.T) {
		e.fake.FailNext("GET /api/v1/logs", 1, 503)
		_, next, err := e.conn.LifecycleEvents(ctx, cursor)
		if access.CodeOf(err) != access.CodeUnavailable || next != cursor {
			t.Fatalf("next = %q, err = %v", next, err)
		}
	})
}

func TestLifecycleEventsManyPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	start := SinceCursor(e.clock.Now().Add(-time.Minute))
	const n = 1203 // pages of 1000
	for i := 0; i < n; i++ {
		_ = e.fake.SetStatus(e.user(fmt.Sprintf("u%d@x.com", i), fmt.Sprintf("u%d@x.com", i), nil), "SUSPENDED")
	}
	evs, next, err := e.conn.LifecycleEvents(ctx, start)
	if err != nil || len(evs) != n {
		t.Fatalf("got %d events, err %v", len(evs), err)
	}
	evs, _, err = e.conn.LifecycleEvents(ctx, next)
	if err != nil || len(evs) != 0 {
		t.Fatalf("second poll got %d events, err %v", len(evs), err)
	}
}
