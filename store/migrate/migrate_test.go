package migrate_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/storetest"
	"keycard/store"
	"keycard/store/migrate"
	pgstore "keycard/store/postgres"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func openBolt(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openPG(t *testing.T, url string) *pgstore.DB {
	t.Helper()
	db, err := pgstore.Open(context.Background(), url, pgstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// seed writes a store with requests in several states (each with its audit
// event and, for grants, outbox ops), some ops finished (so the op counter
// is ahead of the outbox), pins, message refs, cursors, dedupe keys,
// documents of two kinds and static memberships.
func seed(t *testing.T, db *store.DB, n int) {
	t.Helper()
	s := adapt.Store(db)
	states := []access.State{access.StatePending, access.StateActive, access.StateExpired, access.StateDenied, access.StateProvisioning}
	for i := 0; i < n; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		err := s.Update(at, func(tx handlers.Tx) error {
			st := states[i%len(states)]
			r := &access.Request{
				Policy: fmt.Sprint("p", i%3), Connector: "okta", Group: fmt.Sprint("app-", i%4),
				Requester: access.Person{Email: fmt.Sprintf("User%d@X.example", i%7), Name: "U"},
				Duration:  time.Hour, Justification: fmt.Sprint("ticket ", i), State: st,
				Steps: []access.Step{{Rule: "manager", Candidates: []access.Person{{Email: fmt.Sprintf("boss%d@x", i%2)}, {Email: "carol@x"}}}},
			}
			switch st {
			case access.StatePending:
				r.ExpiresAt, r.RemindAt = at.Add(24*time.Hour), at.Add(time.Hour)
			case access.StateActive:
				r.ProvisionedAt, r.EndsAt, r.WarnAt = at, at.Add(time.Hour), at.Add(50*time.Minute)
			case access.StateExpired:
				r.ProvisionedAt, r.EndsAt, r.EndedAt, r.DeprovisionedAt = at, at.Add(time.Hour), at.Add(time.Hour), at.Add(time.Hour)
			}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			if _, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, Actor: r.Requester.Email, Subject: r.Requester.Email,
				Policy: r.Policy, RequestID: r.ID, Detail: fmt.Sprintf(`{"i":%d}`, i)}); err != nil {
				return err
			}
			op := &access.Op{Kind: access.OpAdd, RequestID: r.ID, Connector: r.Connector, Group: r.Group}
			if err := tx.Enqueue(op); err != nil {
				return err
			}
			if i%3 == 0 {
				if err := tx.DeleteOp(op.ID); err != nil {
					return err
				}
			}
			if err := tx.PutPin(access.Pin{SlackID: fmt.Sprint("U", i%7), IdPID: fmt.Sprint("00u", i%7), Email: r.Requester.Email}); err != nil {
				return err
			}
			if err := tx.PutMessageRef(access.MessageRef{RequestID: r.ID, Kind: "approval", Step: 0, SlackUser: "UB", Channel: "D1", TS: fmt.Sprint(i, ".1")}); err != nil {
				return err
			}
			if _, err := tx.Seen(fmt.Sprint("env-", i), time.Hour); err != nil {
				return err
			}
			if err := tx.PutDoc("campaign", fmt.Sprintf("C-%03d", i), map[string]any{"i": i, "name": "Q1 review"}); err != nil {
				return err
			}
			if i%5 == 0 {
				if err := tx.PutDoc("jobrun", fmt.Sprint("expiry/", i), map[string]int{"n": i}); err != nil {
					return err
				}
			}
			return tx.SetCursor("okta.leavers", at.Format(time.RFC3339))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetStaticMember(t0, "lab", "app-grafana", "ann@x", true); err != nil {
		t.Fatal(err)
	}
	if err := db.SetStaticMember(t0, "lab", "app-grafana", "bob@x", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t0, func(tx handlers.Tx) error { return tx.SetCursor("slack.team", "T1") }); err != nil {
		t.Fatal(err)
	}
}

// snapshot is what the handlers read from a store: the conformance suite's
// reads, over everything seeded.
type snapshot struct {
	Requests                 []access.Request
	Due, Active              []string
	OfUser, Holders, Waiting map[string][]string
	Counts                   map[access.State]map[string]int
	Events                   []access.Event
	Between                  int
	HeadSeq                  uint64
	HeadHash                 string
	Ops                      []access.Op
	Depth                    int
	Oldest                   time.Time
	Pins                     []access.Pin
	Refs                     [][]access.MessageRef
	Cursors                  []string
	Docs                     map[string][]string
	Next                     time.Time
	StaticMembers            []string
}

func read(t *testing.T, s handlers.Store, static func(c, g string) ([]string, error)) snapshot {
	t.Helper()
	var sn snapshot
	ids := func(rs []access.Request, err error) []string {
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	err := s.View(func(tx handlers.Tx) error {
		if err := tx.ForEachRequest(t0.Add(1000*time.Hour), func(r *access.Request) error {
			sn.Requests = append(sn.Requests, *r)
			return nil
		}); err != nil {
			return err
		}
		sn.Due = ids(tx.Due(t0.Add(3*time.Hour), 0))
		sn.Active = ids(tx.InState(access.StateActive, access.StatePending))
		sn.Next, _ = tx.NextDue()
		sn.OfUser, sn.Holders, sn.Waiting = map[string][]string{}, map[string][]string{}, map[string][]string{}
		for i := 0; i < 7; i++ {
			sn.OfUser[fmt.Sprint(i)] = ids(tx.RequestsOfUser(fmt.Sprintf("user%d@x.example", i)))
		}
		for i := 0; i < 4; i++ {
			sn.Holders[fmt.Sprint(i)] = ids(tx.Holders("okta", fmt.Sprint("app-", i)))
		}
		for _, e := range []string{"boss0@x", "boss1@x", "CAROL@x"} {
			sn.Waiting[e] = ids(tx.WaitingOn(e))
		}
		sn.Counts = map[access.State]map[string]int{}
		for _, st := range []access.State{access.StatePending, access.StateActive, access.StateExpired} {
			c, err := tx.CountInState(st)
			if err != nil {
				return err
			}
			sn.Counts[st] = c
		}
		if err := tx.Events(0, func(e access.Event) error { sn.Events = append(sn.Events, e); return nil }); err != nil {
			return err
		}
		if err := tx.EventsBetween(t0.Add(10*time.Minute), t0.Add(20*time.Minute), func(access.Event) error { sn.Between++; return nil }); err != nil {
			return err
		}
		sn.HeadSeq, sn.HeadHash, _ = tx.Head()
		if err := tx.Ops(func(op access.Op) error { sn.Ops = append(sn.Ops, op); return nil }); err != nil {
			return err
		}
		var err error
		if sn.Depth, sn.Oldest, err = tx.OutboxStats(); err != nil {
			return err
		}
		for i := 0; i < 7; i++ {
			p, ok, err := tx.Pin(fmt.Sprint("U", i))
			if err != nil || !ok {
				return fmt.Errorf("pin U%d: %v %v", i, ok, err)
			}
			sn.Pins = append(sn.Pins, p)
		}
		for _, r := range sn.Requests {
			refs, err := tx.MessageRefs(r.ID)
			if err != nil {
				return err
			}
			sn.Refs = append(sn.Refs, refs)
		}
		for _, c := range []string{"okta.leavers", "slack.team"} {
			v, err := tx.Cursor(c)
			if err != nil {
				return err
			}
			sn.Cursors = append(sn.Cursors, v)
		}
		sn.Docs = map[string][]string{}
		for _, kind := range []string{"campaign", "jobrun"} {
			if err := tx.Docs(kind, "", func(id string, data []byte) error {
				sn.Docs[kind] = append(sn.Docs[kind], id+"="+string(data))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := static("lab", "app-grafana")
	if err != nil {
		t.Fatal(err)
	}
	sn.StaticMembers = m
	return sn
}

// TestCopy: a seeded bbolt store copied into PostgreSQL reads the same
// through the handlers' port, verifies with the same count and head,
// continues numbering where the file stopped, dedupes the same envelopes,
// and a second copy into the same database is refused.
func TestCopy(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	src := openBolt(t, filepath.Join(t.TempDir(), "keycard.db"))
	defer src.Close()
	seed(t, src, 60)
	dst := openPG(t, url)

	var calls []int64
	var total int64
	rep, err := migrate.Copy(context.Background(), src, dst, func(done, tot int64) { calls = append(calls, done); total = tot })
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 || calls[0] != 0 || calls[len(calls)-1] != total || total != rep.Source.Total() {
		t.Errorf("progress calls %v of %d, want 0 … %d", calls, total, rep.Source.Total())
	}
	if rep.Source != rep.Dest || rep.Source.Requests != 60 || rep.Source.Events != 60 || rep.Source.Ops != 40 ||
		rep.Source.Docs != 72 || rep.Source.Static != 2 || rep.Source.Cursors != 2 || rep.Source.Seen != 60 {
		t.Errorf("counts: source %+v dest %+v", rep.Source, rep.Dest)
	}
	for _, k := range rep.Kinds() {
		if k.Source != k.Dest {
			t.Errorf("kind %s: %d vs %d", k.Kind, k.Source, k.Dest)
		}
	}
	vb, _ := src.Verify(1, nil)
	vp, err := dst.Verify(1, nil)
	if err != nil || vb != vp || rep.Events != 60 || rep.Head != vb.Head {
		t.Errorf("verify: bbolt %+v postgres %+v (%v), report %d %s", vb, vp, err, rep.Events, rep.Head)
	}

	bs, ps := adapt.Store(src), adapt.Postgres(dst)
	want, got := read(t, bs, src.StaticMembers), read(t, ps, dst.StaticMembers)
	if !reflect.DeepEqual(want, got) {
		wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
		for i := 0; i < wv.NumField(); i++ {
			if !reflect.DeepEqual(wv.Field(i).Interface(), gv.Field(i).Interface()) {
				t.Errorf("%s differs:\nbbolt    %+v\npostgres %+v", wv.Type().Field(i).Name, wv.Field(i).Interface(), gv.Field(i).Interface())
			}
		}
	}
	if len(want.Requests) != 60 || len(want.Due) == 0 || len(want.Waiting["CAROL@x"]) == 0 || len(want.Docs["jobrun"]) != 12 {
		t.Fatalf("seed too thin to compare: %d requests, %d due, waiting %v", len(want.Requests), len(want.Due), want.Waiting)
	}

	// Both continue the same way: the next request, op, event and envelope.
	next := func(s handlers.Store) (string, uint64, access.Event, bool) {
		var id string
		var opID uint64
		var ev access.Event
		var dup bool
		err := s.Update(t0.Add(100*time.Hour), func(tx handlers.Tx) error {
			r := &access.Request{Policy: "p0", State: access.StatePending}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			op := &access.Op{Kind: access.OpAdd, RequestID: r.ID}
			if err := tx.Enqueue(op); err != nil {
				return err
			}
			var err error
			if ev, err = tx.Append(access.Event{Type: access.EvRequestSubmitted, RequestID: r.ID}); err != nil {
				return err
			}
			id, opID = r.ID, op.ID
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Update(t0.Add(59*time.Minute), func(tx handlers.Tx) error {
			var err error
			dup, err = tx.Seen("env-59", time.Hour)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return id, opID, ev, dup
	}
	bid, bop, bev, bdup := next(bs)
	pid, pop, pev, pdup := next(ps)
	if bid != pid || bop != pop || bev != pev || !bdup || !pdup || bid != "REQ-1061" || bop != 61 {
		t.Errorf("after the copy: bbolt %s op %d dup %v, postgres %s op %d dup %v; events equal %v",
			bid, bop, bdup, pid, pop, pdup, bev == pev)
	}

	_, err = migrate.Copy(context.Background(), src, dst, nil)
	if access.CodeOf(err) != access.CodeConflict || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second copy: %v (code %s), want conflict: not empty", err, access.CodeOf(err))
	}
}

// TestCopyRefusesATamperedSource: an event altered in the file fails the
// copy with CodeIntegrity naming the event, and nothing is written.
func TestCopyRefusesATamperedSource(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	path := filepath.Join(t.TempDir(), "keycard.db")
	src := openBolt(t, path)
	seed(t, src, 10)
	_ = src.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("events"))
		k := binary.BigEndian.AppendUint64(nil, 4)
		v := append([]byte(nil), b.Get(k)...)
		i := strings.Index(string(v), `{"i":3}`)
		if i < 0 {
			return errors.New("event 4's detail not found")
		}
		v[i+5] = '9' // {"i":9}: the event says something else now
		return b.Put(k, v)
	})
	_ = bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	src = openBolt(t, path)
	defer src.Close()
	dst := openPG(t, url)
	_, err = migrate.Copy(context.Background(), src, dst, nil)
	if access.CodeOf(err) != access.CodeIntegrity || !errors.Is(err, store.ErrChainBroken) || !strings.Contains(err.Error(), "event 4 was altered") {
		t.Fatalf("copy of a tampered file: %v (code %s)", err, access.CodeOf(err))
	}
	c, err := dst.Counts(context.Background())
	if err != nil || c.Total() != 0 {
		t.Errorf("destination after a refused copy: %+v %v", c, err)
	}
}

// TestCopyLargeReportsProgress: a file of tens of thousands of rows is
// copied with progress reported along the way, rising to the total.
func TestCopyLargeReportsProgress(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	src := openBolt(t, filepath.Join(t.TempDir(), "keycard.db"))
	defer src.Close()
	const n = 12000
	for b := 0; b < n/2000; b++ {
		err := src.Update(t0.Add(time.Duration(b)*time.Hour), func(tx *store.Tx) error {
			for i := 0; i < 2000; i++ {
				r := &access.Request{Policy: "p", Connector: "okta", Group: "app-x", State: access.StateExpired,
					Requester: access.Person{Email: fmt.Sprintf("u%d@x", i%50)}}
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				if _, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, RequestID: r.ID}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	dst := openPG(t, url)
	var calls []int64
	rep, err := migrate.Copy(context.Background(), src, dst, func(done, total int64) {
		if total != 2*n {
			t.Errorf("total %d, want %d", total, 2*n)
		}
		calls = append(calls, done)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dest.Requests != n || rep.Dest.Events != n || rep.Events != n {
		t.Errorf("report %+v", rep)
	}
	if len(calls) < 4 || calls[len(calls)-1] != 2*n {
		t.Errorf("progress %v", calls)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] < calls[i-1] {
			t.Errorf("progress went back: %v", calls)
		}
	}
}
