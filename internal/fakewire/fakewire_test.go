package fakewire

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, method, path string
		want                  bool
	}{
		{"/api/v1/", "GET", "/api/v1/users", true},
		{"PUT /api/v1/groups/", "PUT", "/api/v1/groups/g1/users/u1", true},
		{"PUT /api/v1/groups/", "DELETE", "/api/v1/groups/g1/users/u1", false},
		{"post /v1.0/groups/", "POST", "/v1.0/groups/x/members/$ref", true},
		{"/v1.0/users/*", "GET", "/v1.0/users/abc", true},
		{"/v1.0/users/*", "GET", "/v1.0/users/abc/manager", false},
		{"/api/v2/", "GET", "/api/systemusers", false},
	}
	for _, c := range cases {
		m, p := Split(c.pattern)
		if got := Match(m, p, c.method, c.path); got != c.want {
			t.Errorf("%q on %s %s = %v, want %v", c.pattern, c.method, c.path, got, c.want)
		}
	}
}
