package static

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"keycard/access"
)

// User is a person as the policy file describes them.
type User struct {
	Email      string
	Name       string
	Manager    string // the manager's email
	Status     access.UserStatus
	Attributes map[string]string
}

// Group is a group as the policy file describes it. Members are emails: the
// standing membership keycard never removes.
type Group struct {
	Name    string
	Members []string
}

// Memberships stores the memberships keycard granted, keyed by connector
// name, so they survive restarts. *store.DB satisfies it.
type Memberships interface {
	StaticMembers(connector, group string) ([]string, error)
	SetStaticMember(connector, group, userID string, member bool, now time.Time) error
}

// Connector is the static directory and provisioner. Safe for concurrent
// use.
type Connector struct {
	name  string
	m     Memberships
	clock access.Clock

	mu     sync.RWMutex
	users  map[string]access.User // by id (lower-cased email)
	groups map[string]map[string]bool
}

var _ access.Directory = (*Connector)(nil)
var _ access.Provisioner = (*Connector)(nil)

// ID returns the user id of an email: the email, trimmed and lower-cased
// (emails join people across systems, SPEC "People and roles").
func ID(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// New builds the connector named name. Emails must be unique ignoring case;
// managers and group members must be listed users.
func New(name string, users []User, groups []Group, m Memberships, clock access.Clock) (*Connector, error) {
	if m == nil {
		return nil, fmt.Errorf("static connector %s: no membership store", name)
	}
	if clock == nil {
		clock = access.SystemClock{}
	}
	c := &Connector{name: name, m: m, clock: clock, users: map[string]access.User{}, groups: map[string]map[string]bool{}}
	for i, u := range users {
		id := ID(u.Email)
		if id == "" || !strings.Contains(id, "@") {
			return nil, access.Errorf(access.CodeInvalid, "static connector %s: user %d has no valid email (%q)", name, i+1, u.Email)
		}
		if _, dup := c.users[id]; dup {
			return nil, access.Errorf(access.CodeInvalid, "static connector %s: user %s is listed twice", name, id)
		}
		attrs := make(map[string]string, len(u.Attributes))
		for k, v := range u.Attributes {
			attrs[k] = v
		}
		st := u.Status
		if st == "" {
			st = access.StatusActive
		}
		nm := strings.TrimSpace(u.Name)
		if nm == "" {
			nm = id
		}
		c.users[id] = access.User{ID: id, Login: id, Email: id, Name: nm, Status: st, ManagerRef: ID(u.Manager), Attributes: attrs}
	}
	for id, u := range c.users {
		if u.ManagerRef != "" {
			if _, ok := c.users[u.ManagerRef]; !ok {
				return nil, access.Errorf(access.CodeInvalid, "static connector %s: the manager of %s, %s, is not a listed user", name, id, u.ManagerRef)
			}
		}
	}
	for _, g := range groups {
		gn := strings.TrimSpace(g.Name)
		if gn == "" {
			return nil, access.Errorf(access.CodeInvalid, "static connector %s: a group has no name", name)
		}
		if _, dup := c.groups[gn]; dup {
			return nil, access.Errorf(access.CodeInvalid, "static connector %s: group %s is listed twice", name, gn)
		}
		set := map[string]bool{}
		for _, e := range g.Members {
			id := ID(e)
			if _, ok := c.users[id]; !ok {
				return nil, access.Errorf(access.CodeInvalid, "static connector %s: group %s lists %s, who is not a listed user", name, gn, e)
			}
			set[id] = true
		}
		c.groups[gn] = set
	}
	return c, nil
}

// Name is the connector's name in the policy.
func (c *Connector) Name() string { return c.name }

func (c *Connector) lookup(id string) (access.User, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	u, ok := c.users[ID(id)]
	if ok {
		u.Attributes = copyAttrs(u.Attributes)
	}
	return u, ok
}

func copyAttrs(a map[string]string) map[string]string {
	out := make(map[string]string, len(a))
	for k, v := range a {
		out[k] = v
	}
	return out
}

// UserByEmail finds a listed user, ignoring case.
func (c *Connector) UserByEmail(_ context.Context, email string) (access.User, error) {
	if u, ok := c.lookup(email); ok {
		return u, nil
	}
	return access.User{}, access.Errorf(access.CodeNotFound, "%s is not a user of connector %s", email, c.name)
}

// UserByID finds a listed user by id (the lower-cased email).
func (c *Connector) UserByID(ctx context.Context, id string) (access.User, error) {
	return c.UserByEmail(ctx, id)
}

// Manager returns the user named by u's manager email.
func (c *Connector) Manager(_ context.Context, u access.User) (access.User, error) {
	if u.ManagerRef == "" {
		return access.User{}, access.Errorf(access.CodeNotFound, "%s has no manager in connector %s", u.Email, c.name)
	}
	if m, ok := c.lookup(u.ManagerRef); ok {
		return m, nil
	}
	return access.User{}, access.Errorf(access.CodeNotFound, "the manager of %s (%s) is not a user of connector %s", u.Email, u.ManagerRef, c.name)
}

// members returns the file members ∪ stored members of group.
func (c *Connector) members(group string) (map[string]bool, error) {
	c.mu.RLock()
	file, ok := c.groups[group]
	set := make(map[string]bool, len(file))
	for id := range file {
		set[id] = true
	}
	c.mu.RUnlock()
	if !ok {
		return nil, access.Errorf(access.CodeNotFound, "connector %s has no group %s", c.name, group)
	}
	stored, err := c.m.StaticMembers(c.name, group)
	if err != nil {
		return nil, fmt.Errorf("static connector %s: read members of %s: %w", c.name, group, err)
	}
	for _, id := range stored {
		set[ID(id)] = true
	}
	return set, nil
}

// GroupMembers lists the file members and the stored (keycard-granted)
// members, sorted by email.
func (c *Connector) GroupMembers(_ context.Context, group string) ([]access.User, error) {
	set, err := c.members(group)
	if err != nil {
		return nil, err
	}
	out := make([]access.User, 0, len(set))
	for id := range set {
		if u, ok := c.lookup(id); ok {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (c *Connector) check(group, userID string) (string, error) {
	c.mu.RLock()
	_, gok := c.groups[group]
	_, uok := c.users[ID(userID)]
	c.mu.RUnlock()
	switch {
	case !gok:
		return "", access.Errorf(access.CodeNotFound, "connector %s has no group %s", c.name, group)
	case !uok:
		return "", access.Errorf(access.CodeNotFound, "%s is not a user of connector %s", userID, c.name)
	}
	return ID(userID), nil
}

// AddMember records a keycard-granted membership in the store. Idempotent.
func (c *Connector) AddMember(_ context.Context, group, userID string) (access.Change, error) {
	id, err := c.check(group, userID)
	if err != nil {
		return access.Change{}, err
	}
	if err := c.m.SetStaticMember(c.name, group, id, true, c.clock.Now()); err != nil {
		return access.Change{}, fmt.Errorf("static connector %s: add %s to %s: %w", c.name, id, group, err)
	}
	return access.Change{}, nil
}

// RemoveMember removes a keycard-granted membership from the store. A member
// listed in the file keeps the membership (standing access: keycard never
// removes access it did not grant), and the call still succeeds.
func (c *Connector) RemoveMember(_ context.Context, group, userID string) (access.Change, error) {
	id, err := c.check(group, userID)
	if err != nil {
		return access.Change{}, err
	}
	if err := c.m.SetStaticMember(c.name, group, id, false, c.clock.Now()); err != nil {
		return access.Change{}, fmt.Errorf("static connector %s: remove %s from %s: %w", c.name, id, group, err)
	}
	return access.Change{}, nil
}

// IsMember reports file or stored membership.
func (c *Connector) IsMember(_ context.Context, group, userID string) (bool, error) {
	set, err := c.members(group)
	if err != nil {
		return false, err
	}
	return set[ID(userID)], nil
}

// SetStatus changes a user's status, e.g. to SUSPENDED or DEPROVISIONED to
// play an offboarding in the demo and in tests.
func (c *Connector) SetStatus(email string, status access.UserStatus) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := ID(email)
	u, ok := c.users[id]
	if !ok {
		return access.Errorf(access.CodeNotFound, "%s is not a user of connector %s", email, c.name)
	}
	u.Status = status
	c.users[id] = u
	return nil
}
