package jumpcloudfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/internal/fakeclock"
)

func do(t *testing.T, s *Server, method, path, key, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestWireFormat(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	k := s.APIKey()
	boss := s.AddUser(User{Email: "boss@x.com", Firstname: "Bo", Lastname: "Boss"})
	ann := s.AddUser(User{Email: "Ann@X.com", Manager: boss, Department: "Eng", Attributes: map[string]string{"team": "core"}})
	sus := s.AddUser(User{Email: "sus@x.com"})
	if err := s.Suspend(sus); err != nil {
		t.Fatal(err)
	}
	gid := s.AddGroup("app-a")
	s.AddGroup("app-b")

	tests := []struct {
		name, method, path, key, body string
		status                        int
		contains                      []string
	}{
		{"no key", "GET", "/api/systemusers", "", "", 401, []string{`"message":"Unauthorized"`}},
		{"wrong key v2", "GET", "/api/v2/usergroups", "nope", "", 401, []string{`"code":401`, `"message":"Unauthorized"`}},
		{"filter email exact", "GET", "/api/systemusers?filter=" + url.QueryEscape("email:$eq:Ann@X.com"), k, "", 200, []string{`"totalCount":1`, `"_id":"` + ann + `"`, `"manager":"` + boss + `"`, `{"name":"team","value":"core"}`}},
		{"filter email is case-sensitive", "GET", "/api/systemusers?filter=" + url.QueryEscape("email:$eq:ann@x.com"), k, "", 200, []string{`"totalCount":0`, `"results":[]`}},
		{"fields projection", "GET", "/api/systemusers?fields=email&limit=1", k, "", 200, []string{`"totalCount":3`, `"email":"boss@x.com"`}},
		{"limit over 100", "GET", "/api/systemusers?limit=101", k, "", 400, nil},
		{"bad filter", "GET", "/api/systemusers?filter=email", k, "", 400, nil},
		{"user by id suspended", "GET", "/api/systemusers/" + sus, k, "", 200, []string{`"state":"SUSPENDED"`, `"suspended":true`}},
		{"unknown user", "GET", "/api/systemusers/" + UnknownID, k, "", 404, []string{`"message":"Not Found"`}},
		{"search ignores case", "POST", "/api/search/systemusers", k, `{"searchFilter":{"searchTerm":"ann@x.COM","fields":["email"]}}`, 200, []string{`"totalCount":1`, ann}},
		{"groups by name", "GET", "/api/v2/usergroups?filter=" + url.QueryEscape("name:eq:app-a"), k, "", 200, []string{`"id":"` + gid + `"`, `"type":"user_group"`}},
		{"add", "POST", "/api/v2/usergroups/" + gid + "/members", k, `{"op":"add","type":"user","id":"` + ann + `"}`, 204, nil},
		{"add again", "POST", "/api/v2/usergroups/" + gid + "/members", k, `{"op":"add","type":"user","id":"` + ann + `"}`, 409, []string{"Already Exists"}},
		{"members edges", "GET", "/api/v2/usergroups/" + gid + "/members", k, "", 200, []string{`"to":{"attributes":null,"id":"` + ann + `","type":"user"}`}},
		{"remove", "POST", "/api/v2/usergroups/" + gid + "/members", k, `{"op":"remove","type":"user","id":"` + ann + `"}`, 204, nil},
		{"remove a non-member", "POST", "/api/v2/usergroups/" + gid + "/members", k, `{"op":"remove","type":"user","id":"` + ann + `"}`, 404, nil},
		{"unknown user add", "POST", "/api/v2/usergroups/" + gid + "/members", k, `{"op":"add","type":"user","id":"` + UnknownID + `"}`, 404, nil},
		{"bad op", "POST", "/api/v2/usergroups/" + gid + "/members", k, `{"op":"update","type":"user","id":"` + ann + `"}`, 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, s, tc.method, tc.path, tc.key, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			for _, c := range tc.contains {
				if !strings.Contains(body, c) {
					t.Errorf("body lacks %s: %s", c, body)
				}
			}
		})
	}
}

func TestPagingAndFaults(t *testing.T) {
	clk := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s := New(Options{APIKey: "k", OrgID: "org1", Clock: fakeclock.New(clk).Now})
	defer s.Close()
	gid := s.AddGroup("g")
	for i := range 25 {
		_ = s.AddMember(gid, s.AddUser(User{Email: fmt.Sprintf("u%02d@x.com", i)}))
	}
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("x-api-key", "k")
		req.Header.Set("x-org-id", "org1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	t.Run("org id checked", func(t *testing.T) {
		if resp, _ := do(t, s, "GET", "/api/systemusers", "k", ""); resp.StatusCode != 401 {
			t.Fatalf("status %d without x-org-id", resp.StatusCode)
		}
	})
	t.Run("skip pages members", func(t *testing.T) {
		seen := map[string]bool{}
		for skip := 0; ; skip += 10 {
			_, body := get(fmt.Sprintf("/api/v2/usergroups/%s/members?limit=10&skip=%d", gid, skip))
			var page []struct{ To struct{ ID string } }
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				seen[e.To.ID] = true
			}
			if len(page) < 10 {
				break
			}
		}
		if len(seen) != 25 {
			t.Fatalf("saw %d members", len(seen))
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		s.RateLimitNext(1, 1500*time.Millisecond)
		resp, _ := get("/api/systemusers")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if resp, _ := get("/api/systemusers"); resp.StatusCode != 200 {
			t.Fatalf("after: %d", resp.StatusCode)
		}
	})
	t.Run("5xx, html, truncated, loop", func(t *testing.T) {
		s.FailNext("GET /api/systemusers", 1, 503)
		if resp, _ := get("/api/systemusers"); resp.StatusCode != 503 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		s.Malform("/api/systemusers", 1, HTMLPage)
		if resp, body := get("/api/systemusers"); resp.StatusCode != 200 || !strings.HasPrefix(body, "<!DOCTYPE") {
			t.Fatalf("html: %d %s", resp.StatusCode, body)
		}
		s.Malform("/api/systemusers", 1, TruncatedJSON)
		if _, body := get("/api/systemusers"); json.Valid([]byte(body)) {
			t.Fatalf("truncated body is valid JSON: %s", body)
		}
		s.PageLoop("/api/v2/usergroups/*/members")
		_, a := get("/api/v2/usergroups/" + gid + "/members?limit=10&skip=0")
		_, b := get("/api/v2/usergroups/" + gid + "/members?limit=10&skip=10")
		if a != b {
			t.Fatal("page loop did not repeat the first page")
		}
		s.ResetFaults()
		_, b = get("/api/v2/usergroups/" + gid + "/members?limit=10&skip=10")
		if a == b {
			t.Fatal("ResetFaults kept the loop")
		}
	})
	t.Run("requests record status and time", func(t *testing.T) {
		reqs := s.Requests()
		last := reqs[len(reqs)-1]
		if last.Status != 200 || !last.At.Equal(clk) || last.Query.Get("skip") != "10" {
			t.Fatalf("%+v", last)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	gid := s.AddGroup("g")
	send := func(method, path, body string) error {
		req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("x-api-key", s.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id := s.AddUser(User{Email: fmt.Sprintf("c%d@x.com", i)})
			errs <- send("POST", "/api/v2/usergroups/"+gid+"/members", `{"op":"add","type":"user","id":"`+id+`"}`)
		}()
		go func() {
			defer wg.Done()
			errs <- send("GET", "/api/v2/usergroups/"+gid+"/members", "")
			_ = s.Members(gid)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Members(gid)); n != 8 {
		t.Fatalf("members %d", n)
	}
}
