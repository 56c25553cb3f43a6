package storetest

import (
	"reflect"
	"testing"
	"time"

	"keycard/access"
)

// The ported tests of the other records: the provisioning outbox, identity
// pins, Slack message refs, cursors, seen envelope keys, static
// memberships and documents.

func testOutbox(t *testing.T, open Opener) {
	db := open(t)
	a := &access.Op{Kind: access.OpAdd, RequestID: "REQ-1001", Group: "g", UserID: "u1"}
	b := &access.Op{Kind: access.OpRemove, RequestID: "REQ-1002", Group: "g", UserID: "u2", CreatedAt: t0.Add(-time.Hour)}
	update(t, db, t0, func(tx Tx) error {
		if depth, oldest, err := tx.OutboxStats(); depth != 0 || !oldest.IsZero() || err != nil {
			t.Errorf("empty stats = %d %v %v", depth, oldest, err)
		}
		if err := tx.Enqueue(a); err != nil {
			return err
		}
		return tx.Enqueue(b)
	})
	if a.ID == 0 || b.ID <= a.ID || !a.CreatedAt.Equal(t0) || !b.CreatedAt.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("enqueued %+v %+v", a, b)
	}
	// An add's durable send record (the clock start and Sent, issue 10)
	// round-trips: recovery and the pre-add standing check depend on it.
	update(t, db, t0, func(tx Tx) error {
		op, err := tx.Op(a.ID)
		if err != nil {
			return err
		}
		op.FirstAttemptAt, op.Sent = t0.Add(time.Second), true
		return tx.PutOp(op)
	})
	_ = db.View(func(tx Tx) error {
		op, err := tx.Op(a.ID)
		if err != nil || !op.Sent || !op.FirstAttemptAt.Equal(t0.Add(time.Second)) {
			t.Errorf("stored add = %+v, %v: want sent, first attempt at t0+1s", op, err)
		}
		return nil
	})
	steps := []struct {
		name   string
		change func(tx Tx) error
		ids    []uint64
		oldest time.Time
	}{
		{"both queued", func(tx Tx) error { return nil }, []uint64{a.ID, b.ID}, t0},
		{"retry bookkeeping", func(tx Tx) error {
			op, err := tx.Op(a.ID)
			if err != nil {
				return err
			}
			op.Attempts++
			op.NextAt = t0.Add(time.Minute)
			op.LastError = "429"
			return tx.PutOp(op)
		}, []uint64{a.ID, b.ID}, t0},
		{"first done", func(tx Tx) error { return tx.DeleteOp(a.ID) }, []uint64{b.ID}, t0.Add(-time.Hour)},
		{"deleting twice is fine", func(tx Tx) error { return tx.DeleteOp(a.ID) }, []uint64{b.ID}, t0.Add(-time.Hour)},
		{"all done", func(tx Tx) error { return tx.DeleteOp(b.ID) }, nil, time.Time{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			update(t, db, t0, st.change)
			_ = db.View(func(tx Tx) error {
				var got []uint64
				if err := tx.Ops(func(op access.Op) error { got = append(got, op.ID); return nil }); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, st.ids) {
					t.Errorf("Ops = %v, want %v", got, st.ids)
				}
				depth, oldest, err := tx.OutboxStats()
				if err != nil || depth != len(st.ids) || !oldest.Equal(st.oldest) {
					t.Errorf("stats = %d %v %v, want %d %v", depth, oldest, err, len(st.ids), st.oldest)
				}
				return nil
			})
		})
	}
	_ = db.View(func(tx Tx) error {
		if _, err := tx.Op(a.ID); access.CodeOf(err) != access.CodeNotFound {
			t.Errorf("Op of a deleted op: %v", err)
		}
		return nil
	})
	// A finished op is not resurrected by a late worker write.
	if err := db.Update(t0, func(tx Tx) error { return tx.PutOp(*a) }); access.CodeOf(err) != access.CodeNotFound {
		t.Errorf("PutOp of a deleted op: %v", err)
	}
}

func testPins(t *testing.T, open Opener) {
	db := open(t)
	update(t, db, t0, func(tx Tx) error {
		if _, ok, err := tx.Pin("U1"); ok || err != nil {
			t.Errorf("pin before put: %v %v", ok, err)
		}
		return tx.PutPin(access.Pin{SlackID: "U1", IdPID: "00u1", Email: "ann@x"})
	})
	_ = db.View(func(tx Tx) error {
		p, ok, err := tx.Pin("U1")
		want := access.Pin{SlackID: "U1", IdPID: "00u1", Email: "ann@x", PinnedAt: t0}
		if !ok || err != nil || p != want {
			t.Errorf("Pin = %+v %v %v", p, ok, err)
		}
		return nil
	})
	if err := db.Update(t0, func(tx Tx) error { return tx.PutPin(access.Pin{}) }); access.CodeOf(err) != access.CodeInvalid {
		t.Errorf("pin without id: %v", err)
	}
}

func testMessageRefs(t *testing.T, open Opener) {
	db := open(t)
	refs := []access.MessageRef{
		{RequestID: "REQ-1001", Kind: "approval", Step: 0, SlackUser: "U2", Channel: "D2", TS: "1.1"},
		{RequestID: "REQ-1001", Kind: "approval", Step: 0, SlackUser: "U3", Channel: "D3", TS: "1.2"},
		{RequestID: "REQ-1001", Kind: "requester", Channel: "D1", TS: "1.0"},
		{RequestID: "REQ-10011", Kind: "requester", Channel: "D9", TS: "9.0"},                         // shares a string prefix
		{RequestID: "REQ-1001", Kind: "approval", Step: 0, SlackUser: "U2", Channel: "D2", TS: "1.5"}, // replaces the first
	}
	update(t, db, t0, func(tx Tx) error {
		for _, r := range refs {
			if err := tx.PutMessageRef(r); err != nil {
				return err
			}
		}
		return nil
	})
	_ = db.View(func(tx Tx) error {
		got, err := tx.MessageRefs("REQ-1001")
		want := []access.MessageRef{refs[4], refs[1], refs[2]}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("MessageRefs = %+v %v, want %+v", got, err, want)
		}
		return nil
	})
}

func testCursors(t *testing.T, open Opener) {
	db := open(t)
	tests := []struct{ name, set, want string }{
		{"unset", "", ""},
		{"set", "2025-03-01T09:00:00Z", "2025-03-01T09:00:00Z"},
		{"clear", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			update(t, db, t0, func(tx Tx) error {
				if err := tx.SetCursor("okta.syslog", tt.set); err != nil {
					return err
				}
				got, err := tx.Cursor("okta.syslog")
				if got != tt.want || err != nil {
					t.Errorf("Cursor = %q %v, want %q", got, err, tt.want)
				}
				return nil
			})
		})
	}
}

func testSeen(t *testing.T, open Opener) {
	db := open(t)
	const ttl = 10 * time.Minute
	tests := []struct {
		name string
		key  string
		at   time.Time
		want bool
	}{
		{"first delivery", "env-1", t0, false},
		{"redelivery", "env-1", t0.Add(3 * time.Second), true},
		{"just inside ttl", "env-1", t0.Add(ttl - 1), true},
		{"other key", "env-2", t0.Add(time.Second), false},
		{"clock stepped back", "env-2", t0, true},
		{"after ttl", "env-1", t0.Add(ttl), false},
		{"recorded again after ttl", "env-1", t0.Add(ttl + time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			update(t, db, tt.at, func(tx Tx) error {
				got, err := tx.Seen(tt.key, ttl)
				if err != nil || got != tt.want {
					t.Errorf("Seen = %v %v, want %v", got, err, tt.want)
				}
				return nil
			})
		})
	}
}

func testStaticMembers(t *testing.T, open Opener) {
	db := open(t)
	steps := []struct {
		name   string
		user   string
		member bool
		want   []string
	}{
		{"add", "u2", true, []string{"u2"}},
		{"add another", "u1", true, []string{"u1", "u2"}},
		{"add twice", "u1", true, []string{"u1", "u2"}},
		{"remove", "u2", false, []string{"u1"}},
		{"remove a non-member", "u9", false, []string{"u1"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := db.SetStaticMember(t0, "lab", "app-x", st.user, st.member); err != nil {
				t.Fatal(err)
			}
			got, err := db.StaticMembers("lab", "app-x")
			if err != nil || !reflect.DeepEqual(got, st.want) {
				t.Errorf("members = %v %v, want %v", got, err, st.want)
			}
		})
	}
	if got, _ := db.StaticMembers("lab", "app"); len(got) != 0 {
		t.Errorf("group app sees app-x's members: %v", got)
	}
}

func testDocuments(t *testing.T, open Opener) {
	db := open(t)
	type doc struct{ N int }
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Reading before any write: nothing, no error.
	if err := db.View(func(tx Tx) error {
		var d doc
		ok, err := tx.Doc("campaign", "c1", &d)
		if ok || err != nil {
			t.Fatalf("empty store: %v %v", ok, err)
		}
		return tx.Docs("campaign", "", func(string, []byte) error { t.Fatal("a document in an empty store"); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(now, func(tx Tx) error {
		for _, id := range []string{"c2/i1", "c1/i2", "c1/i1", "c10/i1"} {
			if err := tx.PutDoc("item", id, doc{N: len(id)}); err != nil {
				return err
			}
		}
		return tx.PutDoc("campaign", "c1", doc{N: 7})
	}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := db.View(func(tx Tx) error {
		var d doc
		if ok, err := tx.Doc("campaign", "c1", &d); !ok || err != nil || d.N != 7 {
			t.Fatalf("campaign c1: %v %v %+v", ok, err, d)
		}
		return tx.Docs("item", "c1/", func(id string, _ []byte) error { ids = append(ids, id); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "c1/i1" || ids[1] != "c1/i2" {
		t.Fatalf("prefix scan %v", ids)
	}
	if err := db.Update(now, func(tx Tx) error { return tx.DeleteDoc("item", "c1/i1") }); err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx Tx) error {
		return tx.PutDoc("x", "y", 1)
	}); err == nil {
		t.Fatal("write in a read transaction accepted")
	}
}
