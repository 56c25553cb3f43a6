// Package adapt joins the store to the use cases: *store.DB's transactions
// satisfy handlers.Tx, but Go has no covariance for the callback types, so a
// thin adapter turns func(handlers.Tx) into func(*store.Tx). main and every
// test that boots a real Service use this one.
package adapt

import (
	"time"

	"keycard/handlers"
	"keycard/store"
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

// Memberships adapts the store to the static connector's port.
type Memberships struct{ DB *store.DB }

// StaticMembers lists the stored members of a static group.
func (m Memberships) StaticMembers(connector, group string) ([]string, error) {
	return m.DB.StaticMembers(connector, group)
}

// SetStaticMember records or removes a stored static membership.
func (m Memberships) SetStaticMember(connector, group, userID string, member bool, now time.Time) error {
	return m.DB.SetStaticMember(now, connector, group, userID, member)
}
