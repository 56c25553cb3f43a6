package static

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/fakeclock"
)

// memStore is an in-memory Memberships: what the store would keep.
type memStore struct {
	mu   sync.Mutex
	set  map[string]bool // connector/group/user
	fail error
}

func (m *memStore) StaticMembers(connector, group string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	var out []string
	prefix := connector + "/" + group + "/"
	for k := range m.set {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k[len(prefix):])
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *memStore) SetStaticMember(connector, group, userID string, member bool, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.set == nil {
		m.set = map[string]bool{}
	}
	k := connector + "/" + group + "/" + userID
	if member {
		m.set[k] = true
	} else {
		delete(m.set, k)
	}
	return nil
}

var clock = fakeclock.New(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))

func fixture() ([]User, []Group) {
	users := []User{
		{Email: "Ann@Example.com", Name: "Ann Lee", Manager: "bob@example.com", Attributes: map[string]string{"department": "Engineering"}},
		{Email: "bob@example.com", Name: "Bob Boss"},
		{Email: "cat@example.com", Manager: "BOB@example.com", Status: access.StatusActive, Attributes: map[string]string{"userType": "Contractor"}},
	}
	groups := []Group{
		{Name: "app-grafana-admins", Members: []string{"bob@example.com"}},
		{Name: "security-team", Members: []string{"Ann@example.com", "bob@example.com"}},
	}
	return users, groups
}

func newConn(t *testing.T, m Memberships) *Connector {
	t.Helper()
	users, groups := fixture()
	c, err := New("lab", users, groups, m, clock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewValidates(t *testing.T) {
	users, groups := fixture()
	tests := []struct {
		name   string
		users  []User
		groups []Group
		ok     bool
	}{
		{"fixture", users, groups, true},
		{"duplicate email ignoring case", append(users[:1:1], User{Email: "ANN@example.com"}), nil, false},
		{"no email", []User{{Name: "x"}}, nil, false},
		{"unknown manager", []User{{Email: "a@x.com", Manager: "ghost@x.com"}}, nil, false},
		{"unknown group member", users, []Group{{Name: "g", Members: []string{"ghost@x.com"}}}, false},
		{"duplicate group", users, []Group{{Name: "g"}, {Name: "g"}}, false},
		{"unnamed group", users, []Group{{Name: " "}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("lab", tc.users, tc.groups, &memStore{}, clock)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestDirectory(t *testing.T) {
	c := newConn(t, &memStore{})
	ctx := context.Background()
	tests := []struct {
		name   string
		lookup func() (access.User, error)
		want   string
		code   access.Code
	}{
		{"by email", func() (access.User, error) { return c.UserByEmail(ctx, "ann@example.com") }, "ann@example.com", ""},
		{"by email ignoring case", func() (access.User, error) { return c.UserByEmail(ctx, "ANN@EXAMPLE.COM") }, "ann@example.com", ""},
		{"by id", func() (access.User, error) { return c.UserByID(ctx, "bob@example.com") }, "bob@example.com", ""},
		{"unknown", func() (access.User, error) { return c.UserByEmail(ctx, "zed@example.com") }, "", access.CodeNotFound},
		{"manager", func() (access.User, error) {
			u, _ := c.UserByEmail(ctx, "ann@example.com")
			return c.Manager(ctx, u)
		}, "bob@example.com", ""},
		{"manager by mixed-case email", func() (access.User, error) {
			u, _ := c.UserByEmail(ctx, "cat@example.com")
			return c.Manager(ctx, u)
		}, "bob@example.com", ""},
		{"no manager", func() (access.User, error) {
			u, _ := c.UserByEmail(ctx, "bob@example.com")
			return c.Manager(ctx, u)
		}, "", access.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.lookup()
			if access.CodeOf(err) != tc.code || u.ID != tc.want {
				t.Fatalf("got %q, %v; want %q code %q", u.ID, err, tc.want, tc.code)
			}
		})
	}
	t.Run("mapping", func(t *testing.T) {
		u, _ := c.UserByEmail(ctx, "ann@example.com")
		if u.Email != "ann@example.com" || u.Name != "Ann Lee" || u.Status != access.StatusActive || u.Attributes["department"] != "Engineering" {
			t.Fatalf("%+v", u)
		}
		u.Attributes["department"] = "changed"
		again, _ := c.UserByEmail(ctx, "ann@example.com")
		if again.Attributes["department"] != "Engineering" {
			t.Fatal("caller mutated the directory")
		}
		cat, _ := c.UserByEmail(ctx, "cat@example.com")
		if cat.Name != "cat@example.com" {
			t.Errorf("nameless user's name = %q", cat.Name)
		}
	})
}

func TestMemberships(t *testing.T) {
	store := &memStore{}
	c := newConn(t, store)
	ctx := context.Background()
	members := func(group string) string {
		us, err := c.GroupMembers(ctx, group)
		if err != nil {
			return "error: " + err.Error()
		}
		var ids []string
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		return fmt.Sprint(ids)
	}
	const g = "app-grafana-admins"
	steps := []struct {
		name  string
		do    func() error
		code  access.Code
		want  string
		annIn bool
		bobIn bool
	}{
		{"file member only", func() error { return nil }, "", "[bob@example.com]", false, true},
		{"add", func() error { _, err := c.AddMember(ctx, g, "Ann@example.com"); return err }, "", "[ann@example.com bob@example.com]", true, true},
		{"add again", func() error { _, err := c.AddMember(ctx, g, "ann@example.com"); return err }, "", "[ann@example.com bob@example.com]", true, true},
		{"remove file member leaves standing access", func() error { _, err := c.RemoveMember(ctx, g, "bob@example.com"); return err }, "", "[ann@example.com bob@example.com]", true, true},
		{"remove granted member", func() error { _, err := c.RemoveMember(ctx, g, "ann@example.com"); return err }, "", "[bob@example.com]", false, true},
		{"remove again", func() error { _, err := c.RemoveMember(ctx, g, "ann@example.com"); return err }, "", "[bob@example.com]", false, true},
		{"unknown group", func() error { _, err := c.AddMember(ctx, "app-nope", "ann@example.com"); return err }, access.CodeNotFound, "[bob@example.com]", false, true},
		{"unknown user", func() error { _, err := c.AddMember(ctx, g, "zed@example.com"); return err }, access.CodeNotFound, "[bob@example.com]", false, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); access.CodeOf(err) != st.code {
				t.Fatalf("err = %v, want code %q", err, st.code)
			}
			if got := members(g); got != st.want {
				t.Fatalf("members = %s, want %s", got, st.want)
			}
			for email, want := range map[string]bool{"ann@example.com": st.annIn, "bob@example.com": st.bobIn} {
				if is, err := c.IsMember(ctx, g, email); err != nil || is != want {
					t.Fatalf("IsMember(%s) = %v, %v; want %v", email, is, err, want)
				}
			}
		})
	}
	t.Run("memberships survive a restart", func(t *testing.T) {
		if _, err := c.AddMember(ctx, g, "cat@example.com"); err != nil {
			t.Fatal(err)
		}
		again := newConn(t, store)
		if is, err := again.IsMember(ctx, g, "cat@example.com"); err != nil || !is {
			t.Fatalf("after restart IsMember = %v, %v", is, err)
		}
	})
	t.Run("store failure is wrapped", func(t *testing.T) {
		boom := errors.New("disk full")
		c := newConn(t, &memStore{fail: boom})
		if _, err := c.AddMember(ctx, g, "ann@example.com"); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		if _, err := c.GroupMembers(ctx, g); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSetStatusConcurrent(t *testing.T) {
	c := newConn(t, &memStore{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = c.SetStatus("cat@example.com", access.StatusSuspended)
		}()
		go func() {
			defer wg.Done()
			_, _ = c.UserByEmail(ctx, "cat@example.com")
			_, _ = c.GroupMembers(ctx, "security-team")
		}()
	}
	wg.Wait()
	u, _ := c.UserByEmail(ctx, "cat@example.com")
	if !u.Status.Offboarded() {
		t.Fatalf("status = %s", u.Status)
	}
	if err := c.SetStatus("zed@example.com", access.StatusSuspended); access.CodeOf(err) != access.CodeNotFound {
		t.Fatalf("err = %v", err)
	}
}
