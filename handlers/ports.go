package handlers

import (
	"time"

	"keycard/access"
)

// Store is the transactional storage keycard needs (package store satisfies
// it through a thin adapter in main).
type Store interface {
	// Update runs fn in one read-write transaction whose time is now.
	Update(now time.Time, fn func(Tx) error) error
	// Batch is Update for small independent writes from many goroutines:
	// concurrent calls share one commit (one fsync). fn may run more than
	// once, so it must be idempotent.
	Batch(now time.Time, fn func(Tx) error) error
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
}

// Tx is one store transaction. Reads copy out; writes commit together.
type Tx interface {
	Now() time.Time

	Request(id string) (access.Request, error)
	PutRequest(r *access.Request) error
	Due(now time.Time, limit int) ([]access.Request, error)
	NextDue() (time.Time, bool)
	RequestsOfUser(email string) ([]access.Request, error)
	Holders(connector, group string) ([]access.Request, error)
	WaitingOn(email string) ([]access.Request, error)
	InState(states ...access.State) ([]access.Request, error)
	ForEachRequest(createdBefore time.Time, fn func(*access.Request) error) error

	Append(e access.Event) (access.Event, error)
	Event(seq uint64) (access.Event, error)
	Head() (seq uint64, hash string, at time.Time)
	Events(after uint64, fn func(access.Event) error) error
	EventsBetween(from, to time.Time, fn func(access.Event) error) error
	// EventDetails walks events 1..upTo by seq giving only the request id
	// and detail (views valid during fn); a missing seq is an error.
	EventDetails(upTo uint64, fn func(seq uint64, requestID, detail []byte) error) error

	Enqueue(op *access.Op) error
	Op(id uint64) (access.Op, error)
	PutOp(op access.Op) error
	DeleteOp(id uint64) error
	Ops(fn func(access.Op) error) error
	OutboxStats() (depth int, oldest time.Time, err error)
	CountInState(state access.State) (map[string]int, error)

	Pin(slackID string) (access.Pin, bool, error)
	PutPin(p access.Pin) error
	Cursor(name string) (string, error)
	SetCursor(name, value string) error
	Seen(key string, ttl time.Duration) (bool, error)
	PutMessageRef(ref access.MessageRef) error
	MessageRefs(requestID string) ([]access.MessageRef, error)

	PutDoc(kind, id string, v any) error
	Doc(kind, id string, v any) (bool, error)
	Docs(kind, prefix string, fn func(id string, data []byte) error) error
	DeleteDoc(kind, id string) error
}

// Connectors hands out each connector's directory and (scope-checked)
// provisioner by name.
type Connectors interface {
	Directory(name string) (access.Directory, bool)
	Provisioner(name string) (access.Provisioner, bool)
}
