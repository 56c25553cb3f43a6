package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"keycard/access"
)

func TestOutbox(t *testing.T) {
	db := openTest(t)
	a := &access.Op{Kind: access.OpAdd, RequestID: "REQ-1001", Group: "g", UserID: "u1"}
	b := &access.Op{Kind: access.OpRemove, RequestID: "REQ-1002", Group: "g", UserID: "u2", CreatedAt: t0.Add(-time.Hour)}
	update(t, db, t0, func(tx *Tx) error {
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
	steps := []struct {
		name   string
		change func(tx *Tx) error
		ids    []uint64
		oldest time.Time
	}{
		{"both queued", func(tx *Tx) error { return nil }, []uint64{a.ID, b.ID}, t0},
		{"retry bookkeeping", func(tx *Tx) error {
			op, err := tx.Op(a.ID)
			if err != nil {
				return err
			}
			op.Attempts++
			op.NextAt = t0.Add(time.Minute)
			op.LastError = "429"
			return tx.PutOp(op)
		}, []uint64{a.ID, b.ID}, t0},
		{"first done", func(tx *Tx) error { return tx.DeleteOp(a.ID) }, []uint64{b.ID}, t0.Add(-time.Hour)},
		{"deleting twice is fine", func(tx *Tx) error { return tx.DeleteOp(a.ID) }, []uint64{b.ID}, t0.Add(-time.Hour)},
		{"all done", func(tx *Tx) error { return tx.DeleteOp(b.ID) }, nil, time.Time{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			update(t, db, t0, st.change)
			_ = db.View(func(tx *Tx) error {
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
	_ = db.View(func(tx *Tx) error {
		if _, err := tx.Op(a.ID); access.CodeOf(err) != access.CodeNotFound {
			t.Errorf("Op of a deleted op: %v", err)
		}
		return nil
	})
	// A finished op is not resurrected by a late worker write.
	if err := db.Update(t0, func(tx *Tx) error { return tx.PutOp(*a) }); access.CodeOf(err) != access.CodeNotFound {
		t.Errorf("PutOp of a deleted op: %v", err)
	}
}

func TestPins(t *testing.T) {
	db := openTest(t)
	update(t, db, t0, func(tx *Tx) error {
		if _, ok, err := tx.Pin("U1"); ok || err != nil {
			t.Errorf("pin before put: %v %v", ok, err)
		}
		return tx.PutPin(access.Pin{SlackID: "U1", IdPID: "00u1", Email: "ann@x"})
	})
	_ = db.View(func(tx *Tx) error {
		p, ok, err := tx.Pin("U1")
		want := access.Pin{SlackID: "U1", IdPID: "00u1", Email: "ann@x", PinnedAt: t0}
		if !ok || err != nil || p != want {
			t.Errorf("Pin = %+v %v %v", p, ok, err)
		}
		return nil
	})
	if err := db.Update(t0, func(tx *Tx) error { return tx.PutPin(access.Pin{}) }); access.CodeOf(err) != access.CodeInvalid {
		t.Errorf("pin without id: %v", err)
	}
}

func TestMessageRefs(t *testing.T) {
	db := openTest(t)
	refs := []access.MessageRef{
		{RequestID: "REQ-1001", Kind: "approval", Step: 0, SlackUser: "U2", Channel: "D2", TS: "1.1"},
		{RequestID: "REQ-1001", Kind: "approval", Step: 0, SlackUser: "U3", Channel: "D3", TS: "1.2"},
		{RequestID: "REQ-1001", Kind: "requester", Channel: "D1", TS: "1.0"},
		{RequestID: "REQ-10011", Kind: "requester", Channel: "D9", TS: "9.0"},                         // shares a string prefix
		{RequestID: "REQ-1001", Kind: "approval", Step: 0, SlackUser: "U2", Channel: "D2", TS: "1.5"}, // replaces the first
	}
	update(t, db, t0, func(tx *Tx) error {
		for _, r := range refs {
			if err := tx.PutMessageRef(r); err != nil {
				return err
			}
		}
		return nil
	})
	_ = db.View(func(tx *Tx) error {
		got, err := tx.MessageRefs("REQ-1001")
		want := []access.MessageRef{refs[4], refs[1], refs[2]}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("MessageRefs = %+v %v, want %+v", got, err, want)
		}
		return nil
	})
}

func TestCursors(t *testing.T) {
	db := openTest(t)
	tests := []struct{ name, set, want string }{
		{"unset", "", ""},
		{"set", "2025-03-01T09:00:00Z", "2025-03-01T09:00:00Z"},
		{"clear", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			update(t, db, t0, func(tx *Tx) error {
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

func TestSeen(t *testing.T) {
	db := openTest(t)
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
			update(t, db, tt.at, func(tx *Tx) error {
				got, err := tx.Seen(tt.key, ttl)
				if err != nil || got != tt.want {
					t.Errorf("Seen = %v %v, want %v", got, err, tt.want)
				}
				return nil
			})
		})
	}
}

func TestSeenPrunesExpiredKeys(t *testing.T) {
	db := openTest(t)
	const n = 100
	update(t, db, t0, func(tx *Tx) error {
		for i := 0; i < n; i++ {
			if _, err := tx.Seen(fmt.Sprint("k", i), time.Minute); err != nil {
				return err
			}
		}
		return nil
	})
	count := func() (int, int) {
		var a, b int
		_ = db.View(func(tx *Tx) error {
			a = tx.tx.Bucket(bSeen).Stats().KeyN
			b = tx.tx.Bucket(bIdxSeenExp).Stats().KeyN
			return nil
		})
		return a, b
	}
	if a, b := count(); a != n || b != n {
		t.Fatalf("recorded %d/%d", a, b)
	}
	// Each later call prunes a bounded number of expired keys.
	calls := 0
	for a, _ := count(); a > 1; a, _ = count() {
		update(t, db, t0.Add(time.Hour), func(tx *Tx) error { _, err := tx.Seen("fresh", time.Minute); return err })
		calls++
		if calls > n {
			t.Fatal("pruning makes no progress")
		}
	}
	if calls < n/seenPrunePerCall {
		t.Errorf("pruned %d keys in %d calls: more than %d per call", n, calls, seenPrunePerCall)
	}
	if a, b := count(); a != 1 || b != 1 {
		t.Errorf("after pruning %d/%d keys left, want only the fresh one", a, b)
	}
}

func TestStaticMembers(t *testing.T) {
	db := openTest(t)
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
