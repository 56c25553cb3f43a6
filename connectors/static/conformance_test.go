package static_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/connectors/connectortest"
	"keycard/connectors/static"
	"keycard/internal/fakeclock"
)

// harness runs the conformance suite against the static connector. The
// policy file's users and groups are fixed when the connector is built, so
// setup calls rebuild it (over the same membership store) before use. It
// has no wire (Faults nil) and no leaver feed (the holder sweep reads
// statuses).
type harness struct {
	t      *testing.T
	clock  *fakeclock.Clock
	store  *memberships
	users  []static.User
	groups []static.Group
	conn   *static.Connector
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, clock: fakeclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)), store: &memberships{set: map[string]bool{}}}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Harness { return newHarness(t) })
}

func (h *harness) Connector() connectortest.Connector {
	if h.conn == nil {
		c, err := static.New("idp", h.users, h.groups, h.store, h.clock)
		if err != nil {
			h.t.Fatal(err)
		}
		h.conn = c
	}
	return h.conn
}

func (h *harness) Clock() access.Clock               { return h.clock }
func (h *harness) PageSize() int                     { return 0 }
func (h *harness) UnknownID() string                 { return "nobody-at-all@example.com" }
func (h *harness) Faults() connectortest.Faults      { return nil }
func (h *harness) Leavers() connectortest.LeaverFeed { return nil }
func (h *harness) Delete(string) bool                { return false }

func (h *harness) AddUser(p connectortest.Person) string {
	u := static.User{Email: p.Email, Name: p.Name, Status: access.StatusActive, Manager: p.ManagerID}
	if p.Department != "" {
		u.Attributes = map[string]string{"department": p.Department}
	}
	h.users = append(h.users, u)
	h.conn = nil
	return static.ID(p.Email)
}

func (h *harness) Deactivate(id string) {
	for i := range h.users {
		if static.ID(h.users[i].Email) == id {
			h.users[i].Status = access.StatusSuspended
		}
	}
	h.conn = nil
}

func (h *harness) AddGroup(name string) {
	h.groups = append(h.groups, static.Group{Name: name})
	h.conn = nil
}

func (h *harness) AddStandingMember(group, id string) {
	for i := range h.groups {
		if h.groups[i].Name == group {
			h.groups[i].Members = append(h.groups[i].Members, id)
		}
	}
	h.conn = nil
}

// Members is the file's members and the stored (keycard-granted) ones.
func (h *harness) Members(group string) []string {
	var out []string
	for _, g := range h.groups {
		if g.Name == group {
			out = append(out, g.Members...)
		}
	}
	stored, _ := h.store.StaticMembers("idp", group)
	for _, m := range stored {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// memberships is an in-memory static.Memberships.
type memberships struct {
	mu  sync.Mutex
	set map[string]bool
}

func (m *memberships) StaticMembers(connector, group string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.set {
		if rest, ok := strings.CutPrefix(k, connector+"/"+group+"/"); ok {
			out = append(out, rest)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (m *memberships) SetStaticMember(connector, group, userID string, member bool, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := connector + "/" + group + "/" + userID
	if member {
		m.set[k] = true
	} else {
		delete(m.set, k)
	}
	return nil
}
