package storetest

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"keycard/access"

	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/store"
	pgstore "keycard/store/postgres"
)

// TestPostgres runs the suite against a real PostgreSQL server, each test in
// a fresh database dropped at cleanup. .ci/run starts a throwaway cluster and
// sets KEYCARD_TEST_DATABASE_URL.
func TestPostgres(t *testing.T) {
	admin := PostgresURL(t)
	Run(t, func(t *testing.T) *DB {
		u := FreshDatabase(t, admin)
		open := func(t *testing.T) *pgstore.DB {
			db, err := pgstore.Open(context.Background(), u, pgstore.Options{MaxConns: 8})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		}
		db := open(t)
		return &DB{
			Store: adapt.Postgres(db), VerifyFn: db.Verify, Static: db,
			Replica: func(t *testing.T) handlers.Store { return adapt.Postgres(open(t)) },
		}
	})
}

// TestSameChainOnBothBackends appends the same events at the same times to
// bbolt and PostgreSQL: ids, hashes and the stored requests are identical,
// so verify and the events export cannot tell the backends apart.
func TestSameChainOnBothBackends(t *testing.T) {
	admin := PostgresURL(t)
	bdb, err := store.Open(filepath.Join(t.TempDir(), "keycard.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	pdb, err := pgstore.Open(context.Background(), FreshDatabase(t, admin), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	backends := []handlers.Store{adapt.Store(bdb), adapt.Postgres(pdb)}
	var events [2][]access.Event
	var reqs [2][]access.Request
	for b, s := range backends {
		for i := 0; i < 20; i++ {
			at := t0.Add(time.Duration(i) * 1234567 * time.Nanosecond)
			if i == 10 {
				at = t0 // the clock stepped back: both keep the log's time monotonic
			}
			r := pendingRequest(fmt.Sprintf("u%d@x", i), "db", "carol@x")
			update(t, &DB{Store: s}, at, func(tx Tx) error {
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				_, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, Actor: r.Requester.Email, RequestID: r.ID, Detail: `{"n":` + fmt.Sprint(i) + `}`})
				return err
			})
		}
		_ = s.View(func(tx Tx) error {
			if err := tx.Events(0, func(e access.Event) error { events[b] = append(events[b], e); return nil }); err != nil {
				t.Fatal(err)
			}
			return tx.ForEachRequest(t0.Add(time.Hour), func(r *access.Request) error { reqs[b] = append(reqs[b], *r); return nil })
		})
	}
	if len(events[0]) != 20 || !reflect.DeepEqual(events[0], events[1]) {
		t.Errorf("events differ:\nbbolt %+v\npostgres %+v", events[0], events[1])
	}
	if !reflect.DeepEqual(reqs[0], reqs[1]) {
		t.Errorf("requests differ")
	}
	rb, err1 := bdb.Verify(1, nil)
	rp, err2 := pdb.Verify(1, nil)
	if err1 != nil || err2 != nil || !rb.OK() || rb != rp {
		t.Errorf("verify: bbolt %+v %v; postgres %+v %v", rb, err1, rp, err2)
	}
}
