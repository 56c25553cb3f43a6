// Package adapt joins the store to the use cases: *store.DB's transactions
// satisfy handlers.Tx, but Go has no covariance for the callback types, so a
// thin adapter turns func(handlers.Tx) into func(*store.Tx). main and every
// test that boots a real Service use this one.
package adapt

import (
	"time"

	"keycard/access"
	"keycard/connectors/static"
	"keycard/handlers"
	"keycard/policy"
	"keycard/store"
	pgstore "keycard/store/postgres"
)

// Store returns db as a handlers.Store.
func Store(db *store.DB) handlers.Store { return adapter{db} }

type adapter struct{ db *store.DB }

func (a adapter) Update(now time.Time, fn func(handlers.Tx) error) error {
	return a.db.Update(now, func(tx *store.Tx) error { return fn(tx) })
}

func (a adapter) Batch(now time.Time, fn func(handlers.Tx) error) error {
	return a.db.Batch(now, func(tx *store.Tx) error { return fn(tx) })
}

func (a adapter) View(fn func(handlers.Tx) error) error {
	return a.db.View(func(tx *store.Tx) error { return fn(tx) })
}

// StaticStore is where the static connector keeps the memberships keycard
// made: *store.DB (bbolt) or *pgstore.DB.
type StaticStore interface {
	StaticMembers(connector, group string) ([]string, error)
	SetStaticMember(now time.Time, connector, group, userID string, member bool) error
}

// Memberships adapts the store to the static connector's port.
type Memberships struct{ DB StaticStore }

// StaticMembers lists the stored members of a static group.
func (m Memberships) StaticMembers(connector, group string) ([]string, error) {
	return m.DB.StaticMembers(connector, group)
}

// SetStaticMember records or removes a stored static membership.
func (m Memberships) SetStaticMember(connector, group, userID string, member bool, now time.Time) error {
	return m.DB.SetStaticMember(now, connector, group, userID, member)
}

// Static builds the static connector the policy file describes, its
// keycard-made memberships kept in db.
func Static(name string, c *policy.Connector, db StaticStore, clock access.Clock) (*static.Connector, error) {
	users := make([]static.User, 0, len(c.Users))
	for _, u := range c.Users {
		users = append(users, static.User{Email: u.Email, Name: u.Name, Manager: u.Manager, Status: u.Status, Attributes: u.Attributes})
	}
	groups := make([]static.Group, 0, len(c.Groups))
	for _, g := range c.Groups {
		groups = append(groups, static.Group{Name: g.Name, Members: g.Members})
	}
	return static.New(name, users, groups, Memberships{DB: db}, clock)
}

// Postgres returns a PostgreSQL store as a handlers.Store.
func Postgres(db *pgstore.DB) handlers.Store { return pgAdapter{db} }

type pgAdapter struct{ db *pgstore.DB }

func (a pgAdapter) Update(now time.Time, fn func(handlers.Tx) error) error {
	return a.db.Update(now, func(tx *pgstore.Tx) error { return fn(tx) })
}

func (a pgAdapter) Batch(now time.Time, fn func(handlers.Tx) error) error {
	return a.db.Batch(now, func(tx *pgstore.Tx) error { return fn(tx) })
}

func (a pgAdapter) View(fn func(handlers.Tx) error) error {
	return a.db.View(func(tx *pgstore.Tx) error { return fn(tx) })
}
