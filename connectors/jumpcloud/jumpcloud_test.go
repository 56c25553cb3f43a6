package jumpcloud

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
	"keycard/internal/jumpcloudfake"
)

const secretKey = "jc-SECRET-api-key-never-logged-0123456789"

type env struct {
	fake   *jumpcloudfake.Server
	conn   *Connector
	clock  *fakeclock.Clock
	mu     sync.Mutex
	sleeps []time.Duration
}

// newEnv builds the emulator and the connector over it. Sleep moves the
// fake clock, so waits are instant and the emulator's request times show
// whether a wait happened.
func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	e := &env{clock: fakeclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))}
	e.fake = jumpcloudfake.New(jumpcloudfake.Options{APIKey: secretKey, OrgID: "org-1", Clock: e.clock.Now})
	t.Cleanup(e.fake.Close)
	cfg := Config{
		APIURL: e.fake.URL + "/", APIKey: secretKey, OrgID: "org-1", Timeout: 5 * time.Second, Clock: e.clock,
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.sleeps = append(e.sleeps, d)
			e.mu.Unlock()
			e.clock.Advance(d)
			return ctx.Err()
		},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	conn, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = conn
	return e
}

func (e *env) user(email string, mutate ...func(*jumpcloudfake.User)) string {
	u := jumpcloudfake.User{Email: email, Firstname: strings.Split(email, "@")[0], Lastname: "Test"}
	for _, m := range mutate {
		m(&u)
	}
	return e.fake.AddUser(u)
}

func noKey(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secretKey) {
		t.Fatalf("error leaks the API key: %v", err)
	}
}

func TestValidateAPIURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"us", "https://console.jumpcloud.com", DefaultAPIURL, true},
		{"eu trailing slash", "https://console.eu.jumpcloud.com/", EUAPIURL, true},
		{"loopback http", "http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"localhost http", "http://localhost:9000/", "http://localhost:9000", true},
		{"v6 loopback http", "http://[::1]:9000", "http://[::1]:9000", true},
		{"plain http elsewhere", "http://console.jumpcloud.com", "", false},
		{"http private address", "http://10.0.0.5", "", false},
		{"path", "https://console.jumpcloud.com/api", "", false},
		{"userinfo", "https://u:p@console.jumpcloud.com", "", false},
		{"other scheme", "ftp://console.jumpcloud.com", "", false},
		{"no scheme", "console.jumpcloud.com", "", false},
		{"empty", " ", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidateAPIURL(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("ValidateAPIURL(%q) = %q, %v", tc.in, got, err)
			}
			if !tc.ok && access.CodeOf(err) != access.CodeInvalid {
				t.Fatalf("code %q", access.CodeOf(err))
			}
			_, err = New(Config{APIURL: tc.in, APIKey: "k"})
			if tc.ok != (err == nil) {
				t.Fatalf("New accepted=%v: %v", err == nil, err)
			}
		})
	}
	t.Run("default base", func(t *testing.T) {
		c, err := New(Config{APIKey: "k"})
		if err != nil || c.base != DefaultAPIURL {
			t.Fatalf("%v %v", c, err)
		}
	})
	t.Run("key required", func(t *testing.T) {
		if _, err := New(Config{}); access.CodeOf(err) != access.CodeInvalid {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantURL string
		errHas  string
	}{
		{"defaults to the US base", map[string]string{"JUMPCLOUD_API_KEY": secretKey}, DefaultAPIURL, ""},
		{"EU base", map[string]string{"JUMPCLOUD_API_KEY": secretKey, "JUMPCLOUD_API_URL": EUAPIURL + "/"}, EUAPIURL, ""},
		{"missing key", map[string]string{}, "", "JUMPCLOUD_API_KEY"},
		{"key with a newline", map[string]string{"JUMPCLOUD_API_KEY": "abc\ndef"}, "", "JUMPCLOUD_API_KEY"},
		{"http URL", map[string]string{"JUMPCLOUD_API_KEY": secretKey, "JUMPCLOUD_API_URL": "http://console.jumpcloud.com"}, "", "JUMPCLOUD_API_URL"},
		{"org id with space", map[string]string{"JUMPCLOUD_API_KEY": secretKey, "JUMPCLOUD_ORG_ID": "a b"}, "", "JUMPCLOUD_ORG_ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			noKey(t, err)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line naming %s", err, tc.errHas)
				}
				return
			}
			if err != nil || cfg.APIURL != tc.wantURL || cfg.APIKey != secretKey {
				t.Fatalf("cfg %v, err %v", cfg, err)
			}
		})
	}
}

func TestConfigRedactsKey(t *testing.T) {
	cfg := Config{APIURL: DefaultAPIURL, APIKey: secretKey, OrgID: "org-1"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "jumpcloud", cfg)
	for name, s := range map[string]string{"String": cfg.String(), "%v": fmt.Sprintf("%v", cfg), "%#v": fmt.Sprintf("%#v", cfg), "%d": fmt.Sprintf("%d", cfg), "%x": fmt.Sprintf("%x", cfg), "%q": fmt.Sprintf("%q", cfg), "%+v pointer": fmt.Sprintf("%+v", &cfg), "slog": buf.String()} {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(s, secretKey) || !strings.Contains(s, "console.jumpcloud.com") {
				t.Fatalf("%s", s)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.conn.Check(ctx); err != nil {
		t.Fatalf("good key: %v", err)
	}
	for name, cfg := range map[string]Config{
		"wrong key":    {APIURL: e.fake.URL, APIKey: "wrong-" + secretKey, OrgID: "org-1"},
		"wrong org id": {APIURL: e.fake.URL, APIKey: secretKey, OrgID: "org-2"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Check(ctx)
			noKey(t, err)
			if access.CodeOf(err) != access.CodeForbidden || !strings.Contains(access.MessageOf(err), "the IdP refused keycard's credentials") {
				t.Fatalf("err = %v", err)
			}
			if _, err := c.UserByID(ctx, jumpcloudfake.UnknownID); !strings.Contains(access.MessageOf(err), "the IdP refused keycard's credentials") {
				t.Fatalf("a later call: %v", err)
			}
		})
	}
}

func TestUserLookups(t *testing.T) {
	e := newEnv(t)
	boss := e.user("boss@x.com")
	ann := e.user("Ann.Lee@X.com", func(u *jumpcloudfake.User) {
		u.Displayname, u.Manager, u.Department, u.JobTitle, u.EmployeeType = "Ann Lee", boss, "Eng", "SRE", "Employee"
		u.Company, u.Location, u.CostCenter = "Acme", "Berlin", "CC-7"
		u.Attributes = map[string]string{"team": "core", "department": "ignored: the field wins"}
	})
	low := e.user("low@x.com")
	sus := e.user("sus@x.com", func(u *jumpcloudfake.User) { u.State = "SUSPENDED" })
	staged := e.user("new@x.com", func(u *jumpcloudfake.User) { u.State = "STAGED" })
	e.user("dup@x.com")
	e.user("dup@x.com")
	ctx := context.Background()
	tests := []struct {
		name   string
		lookup func() (access.User, error)
		wantID string
		status access.UserStatus
		code   access.Code
	}{
		{"email exact", func() (access.User, error) { return e.conn.UserByEmail(ctx, "Ann.Lee@X.com") }, ann, access.StatusActive, ""},
		{"email other case (search)", func() (access.User, error) { return e.conn.UserByEmail(ctx, "ann.lee@x.com") }, ann, access.StatusActive, ""},
		{"email upper case (lowered filter)", func() (access.User, error) { return e.conn.UserByEmail(ctx, " LOW@X.COM ") }, low, access.StatusActive, ""},
		{"suspended by email", func() (access.User, error) { return e.conn.UserByEmail(ctx, "sus@x.com") }, sus, access.StatusSuspended, ""},
		{"suspended by id", func() (access.User, error) { return e.conn.UserByID(ctx, sus) }, sus, access.StatusSuspended, ""},
		{"staged", func() (access.User, error) { return e.conn.UserByID(ctx, staged) }, staged, access.StatusStaged, ""},
		{"unknown email", func() (access.User, error) { return e.conn.UserByEmail(ctx, "nobody@x.com") }, "", "", access.CodeNotFound},
		{"email with a quote and colon", func() (access.User, error) { return e.conn.UserByEmail(ctx, "o'brien:$eq:x@x.com") }, "", "", access.CodeNotFound},
		{"unknown id", func() (access.User, error) { return e.conn.UserByID(ctx, jumpcloudfake.UnknownID) }, "", "", access.CodeNotFound},
		{"id with slash", func() (access.User, error) { return e.conn.UserByID(ctx, "../v2/usergroups") }, "", "", access.CodeNotFound},
		{"one email on two accounts is a conflict", func() (access.User, error) { return e.conn.UserByEmail(ctx, "Dup@x.com") }, "", "", access.CodeConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.lookup()
			noKey(t, err)
			if access.CodeOf(err) != tc.code || u.ID != tc.wantID || u.Status != tc.status {
				t.Fatalf("got %q %q, err %v; want %q %q code %q", u.ID, u.Status, err, tc.wantID, tc.status, tc.code)
			}
		})
	}
	t.Run("deleted user is not found", func(t *testing.T) {
		gone := e.user("gone@x.com")
		if err := e.fake.Delete(gone); err != nil {
			t.Fatal(err)
		}
		if _, err := e.conn.UserByID(ctx, gone); access.CodeOf(err) != access.CodeNotFound {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("mapping", func(t *testing.T) {
		u, err := e.conn.UserByID(ctx, ann)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "Ann.Lee@X.com" || u.Name != "Ann Lee" || u.Login != "ann.lee" || u.ManagerRef != boss {
			t.Fatalf("%+v", u)
		}
		want := map[string]string{"department": "Eng", "jobTitle": "SRE", "employeeType": "Employee", "company": "Acme",
			"location": "Berlin", "costCenter": "CC-7", "team": "core", "manager": boss}
		for k, v := range want {
			if got, _ := u.Attr(k); got != v {
				t.Errorf("attribute %s = %q, want %q", k, got, v)
			}
		}
		b, _ := e.conn.UserByID(ctx, boss)
		if b.Name != "boss Test" {
			t.Errorf("first+last name = %q", b.Name)
		}
	})
}

func TestManager(t *testing.T) {
	e := newEnv(t)
	boss := e.user("boss@x.com")
	ctx := context.Background()
	tests := []struct {
		name, ref, want string
		code            access.Code
	}{
		{"user id", boss, boss, ""},
		{"email written by an import", "boss@x.com", boss, ""},
		{"none", "", "", access.CodeNotFound},
		{"deleted manager", jumpcloudfake.UnknownID, "", access.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := e.user("emp-"+strings.ReplaceAll(tc.name, " ", "-")+"@x.com", func(u *jumpcloudfake.User) { u.Manager = tc.ref })
			u, err := e.conn.UserByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			m, err := e.conn.Manager(ctx, u)
			if access.CodeOf(err) != tc.code || m.ID != tc.want {
				t.Fatalf("Manager = %q, %v; want %q code %q", m.ID, err, tc.want, tc.code)
			}
		})
	}
}

func TestGroupMembersPaginates(t *testing.T) {
	e := newEnv(t)
	gid := e.fake.AddGroup("app-big")
	e.fake.AddGroup("app-empty")
	const n = 3*pageLimit + 1
	for i := range n {
		if err := e.fake.AddMember(gid, e.user(fmt.Sprintf("u%03d@x.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	tests := []struct {
		name, group string
		want        int
		skips       []string
		code        access.Code
	}{
		{"four pages", "app-big", n, []string{"0", "100", "200", "300"}, ""},
		{"empty group", "app-empty", 0, []string{"0"}, ""},
		{"unknown group", "app-nope", 0, nil, access.CodeNotFound},
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
			var skips []string
			for _, r := range e.fake.Requests() {
				if strings.HasSuffix(r.Path, "/members") {
					if r.Query.Get("limit") != "100" {
						t.Errorf("member page without limit=100: %v", r.Query)
					}
					skips = append(skips, r.Query.Get("skip"))
				}
			}
			if fmt.Sprint(skips) != fmt.Sprint(tc.skips) {
				t.Errorf("skips %v, want %v", skips, tc.skips)
			}
		})
	}
	t.Run("a paging loop is an error naming the call", func(t *testing.T) {
		e.fake.PageLoop("/api/v2/usergroups/*/members")
		defer e.fake.ResetFaults()
		e.fake.ResetRequests()
		users, err := e.conn.GroupMembers(ctx, "app-big")
		if access.CodeOf(err) != access.CodeUnavailable || users != nil || !strings.Contains(err.Error(), "list members of app-big") {
			t.Fatalf("users %d, err %v", len(users), err)
		}
		if n := len(e.fake.Requests()); n > 3 {
			t.Fatalf("%d requests before the loop was noticed; a repeated page must stop it at once", n)
		}
		if ok, err := e.conn.IsMember(ctx, "app-big", "6nobody"); ok || access.CodeOf(err) != access.CodeUnavailable {
			t.Fatalf("IsMember through a loop = %v, %v", ok, err)
		}
	})
	t.Run("Groups lists every page", func(t *testing.T) {
		for i := range 150 {
			e.fake.AddGroup(fmt.Sprintf("grp-%03d", i))
		}
		names, err := e.conn.Groups(ctx)
		if err != nil || len(names) != 152 || names[0] != "app-big" || names[151] != "grp-149" {
			t.Fatalf("%d names, err %v", len(names), err)
		}
	})
}

func TestMembershipChanges(t *testing.T) {
	e := newEnv(t)
	uid := e.user("a@x.com")
	stays := e.user("stays@x.com")
	gid := e.fake.AddGroup("app-grafana-admins")
	_ = e.fake.AddMember(gid, stays)
	ctx := context.Background()
	add := func(g, u string) error { _, err := e.conn.AddMember(ctx, g, u); return err }
	remove := func(g, u string) error { _, err := e.conn.RemoveMember(ctx, g, u); return err }
	steps := []struct {
		name    string
		do      func() error
		code    access.Code
		answer  int // what the emulator answered the membership POST
		members []string
		member  bool
	}{
		{"add", func() error { return add("app-grafana-admins", uid) }, "", 204, []string{uid, stays}, true},
		{"add again is idempotent", func() error { return add("app-grafana-admins", uid) }, "", 409, []string{uid, stays}, true},
		{"remove", func() error { return remove("app-grafana-admins", uid) }, "", 204, []string{stays}, false},
		{"remove a non-member is idempotent", func() error { return remove("app-grafana-admins", uid) }, "", 404, []string{stays}, false},
		{"unknown user", func() error { return add("app-grafana-admins", jumpcloudfake.UnknownID) }, access.CodeNotFound, 404, []string{stays}, false},
		{"unknown group", func() error { return add("app-nope", uid) }, access.CodeNotFound, 0, []string{stays}, false},
		{"id with slash", func() error { return add("app-grafana-admins", "../x") }, access.CodeNotFound, 0, []string{stays}, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.fake.ResetRequests()
			err := st.do()
			noKey(t, err)
			if access.CodeOf(err) != st.code {
				t.Fatalf("err = %v, want code %q", err, st.code)
			}
			answer := 0
			for _, r := range e.fake.Requests() {
				if r.Method == http.MethodPost {
					answer = r.Status
				}
			}
			if answer != st.answer {
				t.Fatalf("the emulator answered %d, want %d", answer, st.answer)
			}
			if got := e.fake.Members(gid); fmt.Sprint(got) != fmt.Sprint(sorted(st.members)) {
				t.Fatalf("members = %v, want %v", got, st.members)
			}
			is, err := e.conn.IsMember(ctx, "app-grafana-admins", uid)
			if err != nil || is != st.member {
				t.Fatalf("IsMember = %v, %v; want %v", is, err, st.member)
			}
		})
	}
	t.Run("two groups of one name are a conflict", func(t *testing.T) {
		e.fake.AddGroup("twin")
		e.fake.AddGroup("twin")
		if err := add("twin", uid); access.CodeOf(err) != access.CodeConflict {
			t.Fatalf("err = %v", err)
		}
	})
}

func sorted(a []string) []string {
	out := append([]string(nil), a...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestGroupIDCache(t *testing.T) {
	e := newEnv(t)
	uid := e.user("a@x.com")
	e.fake.AddGroup("app-a")
	ctx := context.Background()
	lookups := func() int {
		n := 0
		for _, r := range e.fake.Requests() {
			if r.Path == "/api/v2/usergroups" {
				n++
			}
		}
		return n
	}
	for _, st := range []struct {
		name    string
		advance time.Duration
		want    int
	}{
		{"first lookup asks", 0, 1},
		{"within TTL uses the cache", time.Minute, 1},
		{"after TTL asks again", DefaultGroupCacheTTL, 2},
	} {
		t.Run(st.name, func(t *testing.T) {
			e.clock.Advance(st.advance)
			if _, err := e.conn.AddMember(ctx, "app-a", uid); err != nil {
				t.Fatal(err)
			}
			if got := lookups(); got != st.want {
				t.Fatalf("group lookups = %d, want %d", got, st.want)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	t.Run("a short Retry-After is waited out, nothing sent before it", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("a@x.com")
		e.fake.RateLimitNext(1, 3*time.Second)
		if _, err := e.conn.UserByID(ctx, id); err != nil {
			t.Fatal(err)
		}
		reqs := e.fake.Requests()
		if len(reqs) != 2 || reqs[0].Status != 429 || reqs[1].Status != 200 {
			t.Fatalf("requests %+v", reqs)
		}
		if gap := reqs[1].At.Sub(reqs[0].At); gap < 3*time.Second {
			t.Fatalf("retried after %s, before Retry-After's 3s", gap)
		}
	})
	t.Run("a long Retry-After is returned, and no call sends before it", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("a@x.com")
		e.fake.RateLimitNext(1, 30*time.Second)
		start := e.clock.Now()
		_, err := e.conn.UserByID(ctx, id)
		noKey(t, err)
		if access.CodeOf(err) != access.CodeRateLimited || !access.RetryAtOf(err).Equal(start.Add(30*time.Second)) {
			t.Fatalf("err = %v, RetryAt %v", err, access.RetryAtOf(err))
		}
		e.clock.Advance(10 * time.Second)
		for _, call := range []func() error{
			func() error { _, err := e.conn.UserByEmail(ctx, "a@x.com"); return err },
			func() error { _, err := e.conn.AddMember(ctx, "app-a", id); return err },
		} {
			if err := call(); access.CodeOf(err) != access.CodeRateLimited || !access.RetryAtOf(err).Equal(start.Add(30*time.Second)) {
				t.Fatalf("a call inside the window: %v", err)
			}
		}
		if n := len(e.fake.Requests()); n != 1 {
			t.Fatalf("%d requests reached JumpCloud, want only the first", n)
		}
		e.clock.Advance(20 * time.Second)
		if _, err := e.conn.UserByID(ctx, id); err != nil {
			t.Fatalf("after the window: %v", err)
		}
	})
	t.Run("a Retry-After years away holds calls for MaxHold at most", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("a@x.com")
		e.fake.AddGroup("app-a")
		e.fake.RateLimitNext(1, 100000000*time.Second)
		if _, err := e.conn.UserByID(ctx, id); access.CodeOf(err) != access.CodeRateLimited {
			t.Fatalf("err = %v", err)
		}
		e.clock.Advance(15*time.Minute - time.Minute) // DefaultMaxHold less a minute
		if _, err := e.conn.AddMember(ctx, "app-a", id); access.CodeOf(err) != access.CodeRateLimited {
			t.Fatalf("inside the hold: %v", err)
		}
		e.clock.Advance(time.Minute)
		if _, err := e.conn.RemoveMember(ctx, "app-a", id); err != nil {
			t.Fatalf("a removal after MaxHold was not sent: %v", err)
		}
		if n := len(e.fake.Requests()); n < 2 {
			t.Fatalf("%d requests reached JumpCloud, want the removal's too", n)
		}
	})
	t.Run("an HTTP-date Retry-After", func(t *testing.T) {
		now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		h := http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}
		if d := retryAfter(h, now); d != 90*time.Second {
			t.Fatalf("%s", d)
		}
		if d := retryAfter(http.Header{}, now); d != defaultRetryAfter {
			t.Fatalf("absent: %s", d)
		}
	})
}

func TestServerErrorsRetried(t *testing.T) {
	ctx := context.Background()
	t.Run("two 503s then success, growing pauses", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("a@x.com")
		e.fake.FailNext("GET /api/systemusers", 2, 503)
		if _, err := e.conn.UserByID(ctx, id); err != nil {
			t.Fatal(err)
		}
		reqs := e.fake.Requests()
		if len(reqs) != 3 || reqs[0].Status != 503 || reqs[1].Status != 503 || reqs[2].Status != 200 {
			t.Fatalf("requests %+v", reqs)
		}
		if d1, d2 := reqs[1].At.Sub(reqs[0].At), reqs[2].At.Sub(reqs[1].At); d1 <= 0 || d2 <= d1 {
			t.Fatalf("pauses %s, %s", d1, d2)
		}
	})
	t.Run("bounded: unavailable after the retries", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("a@x.com")
		e.fake.FailNext("/api/systemusers", 100, 502)
		_, err := e.conn.UserByID(ctx, id)
		if access.CodeOf(err) != access.CodeUnavailable || !strings.Contains(err.Error(), "read user "+id) {
			t.Fatalf("err = %v", err)
		}
		if n := len(e.fake.Requests()); n != 1+DefaultMaxRetries {
			t.Fatalf("%d requests, want %d", n, 1+DefaultMaxRetries)
		}
	})
	t.Run("a membership change is retried safely", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("a@x.com")
		gid := e.fake.AddGroup("app-a")
		e.fake.FailNext("POST /api/v2/usergroups", 1, 500)
		if _, err := e.conn.AddMember(ctx, "app-a", id); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.Members(gid); len(got) != 1 {
			t.Fatalf("members %v", got)
		}
	})
}

func TestCallPastItsDeadline(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	id := e.user("a@x.com")
	e.fake.Latency("GET /api/systemusers", time.Hour)
	start := time.Now()
	_, err := e.conn.UserByID(context.Background(), id)
	if access.CodeOf(err) != access.CodeUnavailable || !strings.Contains(err.Error(), "read user") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %s", el)
	}
	if n := len(e.fake.Requests()); n != 1 {
		t.Fatalf("%d attempts: a stalled call must end at its deadline, not retry into more stalls", n)
	}
	e.fake.Latency("GET /api/systemusers", 0)
	if _, err := e.conn.UserByID(context.Background(), id); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
	t.Run("the caller's context ends the waits", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := e.conn.UserByID(ctx, id); access.CodeOf(err) != access.CodeUnavailable {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestDroppedConnectionsRetriedThenUnavailable: a server that closes every
// connection without answering gets 1+MaxRetries attempts, not a tight
// loop, and the call ends unavailable.
func TestDroppedConnectionsRetriedThenUnavailable(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	var pauses []time.Duration
	c, err := New(Config{APIURL: srv.URL, APIKey: secretKey, Timeout: time.Second,
		Sleep: func(ctx context.Context, d time.Duration) error { pauses = append(pauses, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UserByID(context.Background(), "x1")
	noKey(t, err)
	if access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 1+DefaultMaxRetries || fmt.Sprint(pauses) != "[500ms 1s 2s]" {
		t.Fatalf("%d attempts, pauses %v", hits, pauses)
	}
}

func TestMalformedAnswers(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []struct {
		name string
		m    jumpcloudfake.Malformation
	}{{"html page", jumpcloudfake.HTMLPage}, {"truncated json", jumpcloudfake.TruncatedJSON}} {
		t.Run(kind.name+" persisting is an error naming the call", func(t *testing.T) {
			e := newEnv(t)
			gid := e.fake.AddGroup("app-a")
			id := e.user("a@x.com")
			_ = e.fake.AddMember(gid, id)
			e.fake.Malform("/api/", 100, kind.m)
			for call, fn := range map[string]func() error{
				"find user by email": func() error { _, err := e.conn.UserByEmail(ctx, "a@x.com"); return err },
				"read user":          func() error { _, err := e.conn.UserByID(ctx, id); return err },
				"find group app-a":   func() error { _, err := e.conn.GroupMembers(ctx, "app-a"); return err },
			} {
				err := fn()
				if access.CodeOf(err) != access.CodeUnavailable || !strings.Contains(err.Error(), call) {
					t.Fatalf("%s: %v", call, err)
				}
			}
			if _, err := e.conn.RemoveMember(ctx, "app-a", id); err == nil {
				t.Fatal("a removal went through a malformed group lookup")
			}
			if got := e.fake.Members(gid); len(got) != 1 {
				t.Fatalf("members %v: a malformed answer removed someone", got)
			}
		})
		t.Run(kind.name+" once is retried", func(t *testing.T) {
			e := newEnv(t)
			id := e.user("a@x.com")
			e.fake.Malform("/api/systemusers", 1, kind.m)
			if _, err := e.conn.UserByID(ctx, id); err != nil {
				t.Fatal(err)
			}
		})
	}
	bodies := []struct{ name, path, body string }{
		{"list without results", "/api/systemusers", `{"totalCount": 1}`},
		{"user without id", "/api/systemusers/x1", `{"email": "a@x.com"}`},
		{"manager is an object", "/api/systemusers/x1", `{"_id": "x1", "manager": {"id": 1}}`},
		{"group without id", "/api/v2/usergroups", `[{"name": "app-a"}]`},
		{"null list", "/api/v2/usergroups", `null`},
		{"edge without to", "/api/v2/usergroups/g1/members", `[{"from": {}}]`},
		{"list is an object", "/api/v2/usergroups", `{"results": []}`},
	}
	for _, b := range bodies {
		t.Run(b.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch {
				case r.URL.Path == b.path:
					_, _ = w.Write([]byte(b.body))
				case r.URL.Path == "/api/v2/usergroups":
					_, _ = w.Write([]byte(`[{"id": "g1", "name": "app-a"}]`))
				default:
					_, _ = w.Write([]byte(`{"totalCount": 0, "results": []}`))
				}
			}))
			defer srv.Close()
			c, err := New(Config{APIURL: srv.URL, APIKey: secretKey, MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			var callErr error
			switch {
			case strings.HasPrefix(b.path, "/api/systemusers/"):
				_, callErr = c.UserByID(ctx, "x1")
			case b.path == "/api/systemusers":
				_, callErr = c.UserByEmail(ctx, "a@x.com")
			default:
				_, callErr = c.GroupMembers(ctx, "app-a")
			}
			if access.CodeOf(callErr) != access.CodeUnavailable {
				t.Fatalf("err = %v (code %q)", callErr, access.CodeOf(callErr))
			}
		})
	}
}

// TestRedirectsNotFollowed: Go forwards custom headers such as x-api-key
// on a redirect, so following one could hand the key to another host.
func TestRedirectsNotFollowed(t *testing.T) {
	var mu sync.Mutex
	leaked := false
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = leaked || r.Header.Get("x-api-key") != ""
		mu.Unlock()
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	c, err := New(Config{APIURL: srv.URL, APIKey: secretKey, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserByID(context.Background(), "x1"); access.CodeOf(err) != access.CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if leaked {
		t.Fatal("the API key followed a redirect to another host")
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	gid := e.fake.AddGroup("app-a")
	var ids []string
	for i := range 8 {
		ids = append(ids, e.user(fmt.Sprintf("c%d@x.com", i)))
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

// TestProxyErrorPagesAreNotAnswers: a 4xx text/html page from a proxy in
// front of JumpCloud says nothing about the user or group. Read as
// JumpCloud's 404/409/400 it would make a live user "deleted" (and the
// holder sweep offboard them) or a remove that never happened "done".
func TestProxyErrorPagesAreNotAnswers(t *testing.T) {
	ctx := context.Background()
	for _, status := range []int{http.StatusNotFound, http.StatusConflict, http.StatusBadRequest} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t)
			gid := e.fake.AddGroup("app-a")
			id := e.user("a@x.com")
			other := e.user("b@x.com")
			_ = e.fake.AddMember(gid, id)
			if _, err := e.conn.GroupMembers(ctx, "app-a"); err != nil { // caches the group id
				t.Fatal(err)
			}
			e.fake.FailNextHTML("/api/", 100, status)
			if _, err := e.conn.UserByID(ctx, id); access.CodeOf(err) != access.CodeUnavailable {
				t.Fatalf("UserByID over a %d html page: err = %v (code %q), want unavailable", status, err, access.CodeOf(err))
			}
			if _, err := e.conn.RemoveMember(ctx, "app-a", id); access.CodeOf(err) != access.CodeUnavailable {
				t.Fatalf("RemoveMember over a %d html page: err = %v (code %q), want unavailable", status, err, access.CodeOf(err))
			}
			if _, err := e.conn.AddMember(ctx, "app-a", other); access.CodeOf(err) != access.CodeUnavailable {
				t.Fatalf("AddMember over a %d html page: err = %v (code %q), want unavailable", status, err, access.CodeOf(err))
			}
			if got := e.fake.Members(gid); len(got) != 1 || got[0] != id {
				t.Fatalf("members %v", got)
			}
		})
	}
	t.Run("once is retried", func(t *testing.T) {
		e := newEnv(t)
		id := e.user("a@x.com")
		e.fake.FailNextHTML("/api/systemusers", 1, http.StatusNotFound)
		if _, err := e.conn.UserByID(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("JumpCloud's own 404 still means not found", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.conn.UserByID(ctx, "5f0000000000000000000000"); access.CodeOf(err) != access.CodeNotFound {
			t.Fatalf("err = %v (code %q)", err, access.CodeOf(err))
		}
	})
}
