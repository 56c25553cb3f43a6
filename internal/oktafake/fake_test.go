package oktafake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"keycard/internal/fakeclock"
)

func newSDK(t *testing.T, s *Server) *okta.Client {
	t.Helper()
	_, c, err := okta.NewClient(context.Background(),
		okta.WithOrgUrl(s.URL), okta.WithToken(s.Token()), okta.WithAuthorizationMode("SSWS"),
		okta.WithCache(false), okta.WithRateLimitMaxRetries(0), okta.WithRateLimitMaxBackOff(1),
		okta.WithRequestTimeout(5), okta.WithHttpClientPtr(&http.Client{Timeout: 5 * time.Second}),
		okta.WithTestingDisableHttpsCheck(true))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, s *Server, path, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "SSWS "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestLinkHeadersAreSeparate(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	for i := 0; i < 3; i++ {
		s.AddUser(map[string]any{"login": fmt.Sprintf("u%d@x.com", i)}, "")
	}
	tests := []struct {
		name      string
		path      string
		wantLinks int
	}{
		{"first page has self and next", "/api/v1/users?limit=2", 2},
		{"last page has only self", "/api/v1/users?limit=5", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, s, tc.path, s.Token())
			links := resp.Header["Link"]
			if len(links) != tc.wantLinks {
				t.Fatalf("Link headers = %q, want %d separate headers", links, tc.wantLinks)
			}
			for _, l := range links {
				if strings.Count(l, "rel=") != 1 || strings.Contains(l, ",") {
					t.Errorf("Link header %q joins relations", l)
				}
			}
			if !strings.Contains(links[0], `rel="self"`) {
				t.Errorf("first link %q is not self", links[0])
			}
			if tc.wantLinks == 2 && !strings.Contains(links[1], `rel="next"`) {
				t.Errorf("second link %q is not next", links[1])
			}
			for _, h := range []string{"Date", "X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("missing header %s", h)
				}
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestAuthAndErrors(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	tests := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"no token", "/api/v1/users", "", 401, "E0000011"},
		{"wrong token", "/api/v1/users", "nope", 401, "E0000011"},
		{"unknown user", "/api/v1/users/nobody", s.Token(), 404, "E0000007"},
		{"unknown group", "/api/v1/groups/00gnope", s.Token(), 404, "E0000007"},
		{"double slash is cleaned", "//api/v1/users", s.Token(), 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, s, tc.path, tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.code == "" {
				return
			}
			var e map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"} {
				if _, ok := e[k]; !ok {
					t.Errorf("error body lacks %s: %v", k, e)
				}
			}
			if e["errorCode"] != tc.code {
				t.Errorf("errorCode %v, want %s", e["errorCode"], tc.code)
			}
		})
	}
}

func TestSDKPaginatesGroupUsers(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	gid := s.AddGroup("app-x", "")
	for i := 0; i < 7; i++ {
		if err := s.AddMember(gid, s.AddUser(map[string]any{"login": fmt.Sprintf("u%d@x.com", i)}, "")); err != nil {
			t.Fatal(err)
		}
	}
	c := newSDK(t, s)
	ctx := context.Background()
	users, resp, err := c.Group.ListGroupUsers(ctx, gid, query.NewQueryParams(query.WithLimit(3)))
	pages := 1
	for err == nil && resp.HasNextPage() {
		var more []*okta.User
		if resp, err = resp.Next(ctx, &more); err == nil {
			users = append(users, more...)
			pages++
		}
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 7 || pages != 3 {
		t.Fatalf("got %d users in %d pages, want 7 in 3", len(users), pages)
	}
	afters := 0
	for _, r := range s.Requests() {
		if r.Query.Get("after") != "" {
			afters++
		}
	}
	if afters != 2 {
		t.Errorf("saw %d requests with after, want 2", afters)
	}
}

func TestUserQueries(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.AddUser(map[string]any{"login": "Ann@X.com", "email": "ann@x.com", "department": "Eng"}, "")
	s.AddUser(map[string]any{"login": "bob@x.com", "email": "bob@x.com", "department": "Sales"}, "")
	s.AddUser(map[string]any{"login": "gone@x.com", "email": "gone@x.com", "department": "Eng"}, "DEPROVISIONED")
	c := newSDK(t, s)
	tests := []struct {
		name string
		qp   *query.Params
		want int
	}{
		{"default list omits deprovisioned", nil, 2},
		{"filter email eq", query.NewQueryParams(query.WithFilter(`profile.email eq "ann@x.com"`)), 1},
		{"filter is case-sensitive", query.NewQueryParams(query.WithFilter(`profile.login eq "ann@x.com"`)), 0},
		{"search is case-insensitive", query.NewQueryParams(query.WithSearch(`profile.login eq "ann@x.com"`)), 1},
		{"search includes deprovisioned", query.NewQueryParams(query.WithSearch(`profile.department eq "eng"`)), 2},
		{"filter status", query.NewQueryParams(query.WithFilter(`status eq "DEPROVISIONED"`)), 1},
		{"filter or", query.NewQueryParams(query.WithFilter(`profile.email eq "ann@x.com" or profile.email eq "bob@x.com"`)), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, _, err := c.User.ListUsers(context.Background(), tc.qp)
			if err != nil {
				t.Fatal(err)
			}
			if len(users) != tc.want {
				t.Fatalf("got %d users, want %d", len(users), tc.want)
			}
		})
	}
	t.Run("get by login ignores case", func(t *testing.T) {
		u, _, err := c.User.GetUser(context.Background(), "ANN@x.com")
		if err != nil || (*u.Profile)["email"] != "ann@x.com" {
			t.Fatalf("GetUser = %v, %v", u, err)
		}
	})
}

func TestMembershipIdempotentAndLogged(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	uid := s.AddUser(map[string]any{"login": "a@x.com"}, "")
	gid := s.AddGroup("app-a", "OKTA_GROUP")
	appGroup := s.AddGroup("ad-imported", "APP_GROUP")
	c := newSDK(t, s)
	ctx := context.Background()
	steps := []struct {
		name   string
		do     func() (*okta.Response, error)
		status int
	}{
		{"add", func() (*okta.Response, error) { return c.Group.AddUserToGroup(ctx, gid, uid) }, 204},
		{"add again", func() (*okta.Response, error) { return c.Group.AddUserToGroup(ctx, gid, uid) }, 204},
		{"remove", func() (*okta.Response, error) { return c.Group.RemoveUserFromGroup(ctx, gid, uid) }, 204},
		{"remove non-member", func() (*okta.Response, error) { return c.Group.RemoveUserFromGroup(ctx, gid, uid) }, 204},
		{"unknown user", func() (*okta.Response, error) { return c.Group.AddUserToGroup(ctx, gid, "00unope") }, 404},
		{"app group", func() (*okta.Response, error) { return c.Group.AddUserToGroup(ctx, appGroup, uid) }, 403},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			resp, _ := st.do()
			if resp == nil || resp.StatusCode != st.status {
				t.Fatalf("resp %v, want status %d", resp, st.status)
			}
		})
	}
	var types []string
	for _, e := range s.Log() {
		types = append(types, e.EventType)
	}
	if got := strings.Join(types, ","); got != "group.user_membership.add,group.user_membership.remove" {
		t.Errorf("log = %s", got)
	}
}

func TestLogPollingAlwaysHasNext(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	s := New(Options{Clock: fakeclock.New(now).Now})
	defer s.Close()
	uid := s.AddUser(map[string]any{"login": "a@x.com"}, "")
	if err := s.SetStatus(uid, "SUSPENDED"); err != nil {
		t.Fatal(err)
	}
	c := newSDK(t, s)
	ctx := context.Background()
	events, resp, err := c.LogEvent.GetLogs(ctx, query.NewQueryParams(
		query.WithFilter(`eventType eq "user.lifecycle.suspend" or eventType eq "user.lifecycle.deactivate"`),
		query.WithSince(now.Add(-time.Hour).Format(time.RFC3339))))
	if err != nil || len(events) != 1 || !resp.HasNextPage() {
		t.Fatalf("first poll: %d events, next=%v, err=%v", len(events), resp != nil && resp.HasNextPage(), err)
	}
	var empty []*okta.LogEvent
	resp, err = resp.Next(ctx, &empty)
	if err != nil || len(empty) != 0 || !resp.HasNextPage() {
		t.Fatalf("second poll: %d events, next=%v, err=%v", len(empty), resp != nil && resp.HasNextPage(), err)
	}
	if ev := events[0]; ev.Target[0].Id != uid || ev.Published == nil || ev.Uuid == "" {
		t.Errorf("event = %+v", ev)
	}
}

func TestLatencyEndsWhenClientGivesUp(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.Latency("GET /api/v1/users", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := newSDK(t, s).User.GetUser(ctx, "x")
	if err == nil {
		t.Fatal("want a timeout")
	}
}

func TestGroupQueries(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.AddGroup("app-grafana-viewers", "OKTA_GROUP")
	s.AddGroup("app-grafana-admins", "OKTA_GROUP")
	s.AddGroup("App-Imported", "APP_GROUP")
	s.AddGroup("Everyone", "BUILT_IN")
	c := newSDK(t, s)
	tests := []struct {
		name string
		qp   *query.Params
		want int
	}{
		{"all", nil, 4},
		{"q is a case-insensitive name prefix", query.NewQueryParams(query.WithQ("app-")), 3},
		{"search name eq", query.NewQueryParams(query.WithSearch(`profile.name eq "app-grafana-admins"`)), 1},
		{"filter type", query.NewQueryParams(query.WithFilter(`type eq "OKTA_GROUP"`)), 2},
		{"filter type or", query.NewQueryParams(query.WithFilter(`type eq "APP_GROUP" or type eq "BUILT_IN"`)), 2},
		{"paged", query.NewQueryParams(query.WithLimit(1)), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gs, _, err := c.Group.ListGroups(context.Background(), tc.qp)
			if err != nil {
				t.Fatal(err)
			}
			if len(gs) != tc.want {
				t.Fatalf("got %d groups, want %d", len(gs), tc.want)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	s := New(Options{Clock: fakeclock.New(now).Now})
	defer s.Close()
	t.Run("rate limit carries reset and date", func(t *testing.T) {
		s.RateLimitNext(1, 42*time.Second)
		resp := get(t, s, "/api/v1/users", s.Token())
		if resp.StatusCode != 429 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("X-Rate-Limit-Reset"); got != fmt.Sprint(now.Add(42*time.Second).Unix()) {
			t.Errorf("reset %s", got)
		}
		if got := resp.Header.Get("Date"); got != now.Format(http.TimeFormat) {
			t.Errorf("date %s", got)
		}
		if resp := get(t, s, "/api/v1/users", s.Token()); resp.StatusCode != 200 {
			t.Errorf("second request status %d", resp.StatusCode)
		}
	})
	t.Run("fail next matches method and glob", func(t *testing.T) {
		s.FailNext("GET /api/v1/groups/*", 1, 503)
		if resp := get(t, s, "/api/v1/users", s.Token()); resp.StatusCode != 200 {
			t.Errorf("unmatched request status %d", resp.StatusCode)
		}
		if resp := get(t, s, "/api/v1/groups/00gx", s.Token()); resp.StatusCode != 503 {
			t.Errorf("matched request status %d", resp.StatusCode)
		}
		if resp := get(t, s, "/api/v1/groups/00gx", s.Token()); resp.StatusCode != 404 {
			t.Errorf("after the fault status %d", resp.StatusCode)
		}
	})
}
