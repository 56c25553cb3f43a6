// Code ported from the bbolt store's own tests (store/*_test.go), so that
// both backends are held to the semantics bbolt already had. Keep them in
// step: a behaviour the bbolt tests pin belongs here too.

package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"keycard/access"
)

func ids(rs []access.Request) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func pendingRequest(requester, policy string, approvers ...string) *access.Request {
	var cands []access.Person
	for _, a := range approvers {
		cands = append(cands, access.Person{Email: a})
	}
	return &access.Request{
		Policy: policy, Connector: "okta", Group: "app-" + policy,
		Requester: access.Person{Email: requester},
		Steps:     []access.Step{{Rule: "users", Candidates: cands}},
		State:     access.StatePending,
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// appendEvents appends n events, one transaction each, a second apart.
func appendEvents(t testing.TB, db *DB, n int) []access.Event {
	t.Helper()
	var out []access.Event
	for i := 0; i < n; i++ {
		update(t, db, t0.Add(time.Duration(i)*time.Second), func(tx Tx) error {
			e, err := tx.Append(access.Event{
				Type: access.EvRequestSubmitted, Actor: "ann@x", Subject: "ann@x",
				Policy: "db", RequestID: fmt.Sprintf("REQ-%d", 1001+i), Detail: `{"i":` + fmt.Sprint(i) + `}`,
			})
			out = append(out, e)
			return err
		})
	}
	return out
}

func testPutRequestCreateAndCAS(t *testing.T, open Opener) {
	db := open(t)
	r := pendingRequest("ann@x", "db", "carol@x")
	update(t, db, t0, func(tx Tx) error { return tx.PutRequest(r) })
	if r.ID != "REQ-1001" || r.Rev != 1 || !r.CreatedAt.Equal(t0) {
		t.Fatalf("created %s rev %d at %v", r.ID, r.Rev, r.CreatedAt)
	}
	stale := *r

	tests := []struct {
		name string
		put  *access.Request
		code access.Code
		rev  uint64
	}{
		{"update with the stored rev", r, "", 2},
		{"stale rev is a conflict", &stale, access.CodeConflict, 1},
		{"unknown id is not found", &access.Request{ID: "REQ-9", Rev: 1}, access.CodeNotFound, 1},
		{"next update with the new rev", r, "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.put.Justification = tt.name
			err := db.Update(t0, func(tx Tx) error { return tx.PutRequest(tt.put) })
			if access.CodeOf(err) != tt.code {
				t.Fatalf("err = %v, want code %q", err, tt.code)
			}
			if tt.put.Rev != tt.rev {
				t.Errorf("rev = %d, want %d", tt.put.Rev, tt.rev)
			}
		})
	}
	_ = db.View(func(tx Tx) error {
		got, err := tx.Request(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rev != 3 || got.Justification != "next update with the new rev" {
			t.Errorf("stored rev %d justification %q", got.Rev, got.Justification)
		}
		if _, err := tx.Request("REQ-404"); access.CodeOf(err) != access.CodeNotFound {
			t.Errorf("missing request: %v", err)
		}
		return nil
	})
	if access.MessageOf(db.Update(t0, func(tx Tx) error { return tx.PutRequest(&stale) })) == "" {
		t.Error("conflict has no safe message")
	}
}

// TestIndexesFollowLifecycle moves one request through its whole life and
// checks every index after each transition.
func testIndexesFollowLifecycle(t *testing.T, open Opener) {
	db := open(t)
	r := pendingRequest("Ann@X", "db", "carol@x", "dave@x")
	r.ExpiresAt = t0.Add(24 * time.Hour)
	r.RemindAt = t0.Add(time.Hour)
	update(t, db, t0, func(tx Tx) error { return tx.PutRequest(r) })
	// A second, unrelated request keeps the indexes honest.
	other := pendingRequest("bob@x", "db", "dave@x")
	other.ExpiresAt = t0.Add(48 * time.Hour)
	update(t, db, t0.Add(time.Second), func(tx Tx) error { return tx.PutRequest(other) })

	type want struct {
		state   access.State
		waiting []string // WaitingOn("CAROL@x")
		holders []string // Holders("okta", "app-db")
		due     []string // Due(dueAt)
		dueAt   time.Time
		next    time.Time // NextDue; other's ExpiresAt when r has nothing due
	}
	none := []string{}
	id := []string{"REQ-1001"}
	steps := []struct {
		name   string
		change func(r *access.Request)
		want   want
	}{
		{"pending", func(r *access.Request) {}, want{access.StatePending, id, none, id, t0.Add(time.Hour), t0.Add(time.Hour)}},
		{"pending, not yet due", func(r *access.Request) {}, want{access.StatePending, id, none, none, t0.Add(59 * time.Minute), t0.Add(time.Hour)}},
		// Approved for a later start: due (and found by Due) at the start only.
		{"scheduled", func(r *access.Request) {
			r.Steps[0].Decision = access.DecisionApproved
			r.Current = 1
			r.State = access.StateScheduled
			r.StartAt = t0.Add(3 * time.Hour)
		}, want{access.StateScheduled, none, none, id, t0.Add(3 * time.Hour), t0.Add(3 * time.Hour)}},
		{"scheduled, not yet due", func(r *access.Request) {}, want{access.StateScheduled, none, none, none, t0.Add(3*time.Hour - time.Minute), t0.Add(3 * time.Hour)}},
		{"scheduled, start retried", func(r *access.Request) { r.StartRetryAt = t0.Add(3*time.Hour + time.Minute) },
			want{access.StateScheduled, none, none, none, t0.Add(3 * time.Hour), t0.Add(3*time.Hour + time.Minute)}},
		{"provisioning", func(r *access.Request) {
			r.StartRetryAt = time.Time{}
			r.Steps[0].Decision = access.DecisionApproved
			r.Current = 1
			r.State = access.StateProvisioning
		}, want{access.StateProvisioning, none, id, none, t0.Add(100 * time.Hour), t0.Add(48 * time.Hour)}},
		{"active", func(r *access.Request) {
			r.State = access.StateActive
			r.ProvisionedAt = t0.Add(2 * time.Hour)
			r.EndsAt = t0.Add(6 * time.Hour)
			r.WarnAt = t0.Add(6*time.Hour - 15*time.Minute)
		}, want{access.StateActive, none, id, id, t0.Add(6 * time.Hour), t0.Add(6*time.Hour - 15*time.Minute)}},
		{"active, warned", func(r *access.Request) { r.WarnAt = time.Time{} },
			want{access.StateActive, none, id, none, t0.Add(5 * time.Hour), t0.Add(6 * time.Hour)}},
		{"deprovisioning", func(r *access.Request) {
			r.State = access.StateDeprovisioning
			r.EndedAt = t0.Add(6 * time.Hour)
			r.EndReason = access.ReasonExpired
		}, want{access.StateDeprovisioning, none, id, none, t0.Add(100 * time.Hour), t0.Add(48 * time.Hour)}},
		{"expired", func(r *access.Request) {
			r.State = access.StateExpired
			r.DeprovisionedAt = t0.Add(6 * time.Hour)
		}, want{access.StateExpired, none, none, none, t0.Add(100 * time.Hour), t0.Add(48 * time.Hour)}},
	}
	all := []access.State{access.StatePending, access.StateScheduled, access.StateProvisioning, access.StateActive, access.StateDeprovisioning, access.StateExpired}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.change(r)
			update(t, db, t0, func(tx Tx) error { return tx.PutRequest(r) })
			_ = db.View(func(tx Tx) error {
				check := func(what string, got []access.Request, err error, want []string) {
					t.Helper()
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					if g := ids(got); !reflect.DeepEqual(g, want) {
						t.Errorf("%s = %v, want %v", what, g, want)
					}
				}
				got, err := tx.WaitingOn("CAROL@x")
				check("WaitingOn(carol)", got, err, st.want.waiting)
				got, err = tx.Holders("okta", "app-db")
				check("Holders", got, err, st.want.holders)
				got, err = tx.Due(st.want.dueAt, 0)
				if st.want.dueAt.After(t0.Add(48 * time.Hour)) {
					// other's expiry is due too
					check("Due", got, err, append(append([]string{}, st.want.due...), "REQ-1002"))
				} else {
					check("Due", got, err, st.want.due)
				}
				got, err = tx.RequestsOfUser("ann@x")
				check("RequestsOfUser", got, err, id)
				for _, s := range all {
					got, err := tx.InState(s)
					want := none
					if s == st.want.state {
						want = id
					}
					if s == access.StatePending {
						want = append(append([]string{}, want...), "REQ-1002")
					}
					check("InState("+string(s)+")", got, err, want)
				}
				counts, err := tx.CountInState(st.want.state)
				if err != nil || counts["db"] != 1+boolInt(st.want.state == access.StatePending) {
					t.Errorf("CountInState(%s) = %v, %v", st.want.state, counts, err)
				}
				next, ok := tx.NextDue()
				if !ok || !next.Equal(st.want.next) {
					t.Errorf("NextDue = %v %v, want %v", next, ok, st.want.next)
				}
				got, err = tx.WaitingOn("dave@x")
				if st.want.state == access.StatePending {
					check("WaitingOn(dave)", got, err, []string{"REQ-1001", "REQ-1002"})
				} else {
					check("WaitingOn(dave)", got, err, []string{"REQ-1002"})
				}
				return nil
			})
		})
	}
	_ = db.View(func(tx Tx) error {
		got, err := tx.InState(access.StateExpired, access.StatePending, access.StateExpired)
		if err != nil || !reflect.DeepEqual(ids(got), []string{"REQ-1001", "REQ-1002"}) {
			t.Errorf("InState(expired, pending) = %v %v", ids(got), err)
		}
		return nil
	})
}

// TestDueIsOrderedAndBounded: many requests far in the future, a few due;
// only the due ones come back, earliest first, and limit caps them.
func testDueIsOrderedAndBounded(t *testing.T, open Opener) {
	db := open(t)
	update(t, db, t0, func(tx Tx) error {
		for i := 0; i < 2000; i++ {
			r := &access.Request{Policy: "p", State: access.StateActive, EndsAt: t0.Add(time.Duration(i+1) * time.Hour)}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		for i := 5; i > 0; i-- { // created in reverse due order
			r := &access.Request{Policy: "p", State: access.StateActive, EndsAt: t0.Add(-time.Duration(i) * time.Minute)}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		name  string
		now   time.Time
		limit int
		want  []string
	}{
		{"all due", t0, 0, []string{"REQ-3001", "REQ-3002", "REQ-3003", "REQ-3004", "REQ-3005"}},
		{"limit", t0, 2, []string{"REQ-3001", "REQ-3002"}},
		{"boundary is inclusive", t0.Add(-3 * time.Minute), 0, []string{"REQ-3001", "REQ-3002", "REQ-3003"}},
		{"nothing due", t0.Add(-time.Hour), 0, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = db.View(func(tx Tx) error {
				got, err := tx.Due(tt.now, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if g := ids(got); !reflect.DeepEqual(g, tt.want) {
					t.Errorf("Due = %v, want %v", g, tt.want)
				}
				return nil
			})
		})
	}
}

func testForEachRequest(t *testing.T, open Opener) {
	db := open(t)
	for i := 0; i < 5; i++ {
		// Created in one transaction each, a minute apart; two share a time.
		at := t0.Add(time.Duration(i) * time.Minute)
		if i == 4 {
			at = t0.Add(3 * time.Minute)
		}
		update(t, db, at, func(tx Tx) error {
			return tx.PutRequest(&access.Request{Policy: "p", State: access.StatePending})
		})
	}
	tests := []struct {
		name   string
		before time.Time
		stopAt string
		want   []string
	}{
		{"all", t0.Add(time.Hour), "", []string{"REQ-1001", "REQ-1002", "REQ-1003", "REQ-1004", "REQ-1005"}},
		{"created before is exclusive", t0.Add(2 * time.Minute), "", []string{"REQ-1001", "REQ-1002"}},
		{"ErrStop stops", t0.Add(time.Hour), "REQ-1002", []string{"REQ-1001", "REQ-1002"}},
		{"none", t0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := db.View(func(tx Tx) error {
				return tx.ForEachRequest(tt.before, func(r *access.Request) error {
					got = append(got, r.ID)
					if r.ID == tt.stopAt {
						return ErrStop
					}
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	err := db.View(func(tx Tx) error {
		return tx.ForEachRequest(t0.Add(time.Hour), func(*access.Request) error { return errBoom })
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("callback error = %v", err)
	}
}

func testRequestsOfUserCaseInsensitive(t *testing.T, open Opener) {
	db := open(t)
	update(t, db, t0, func(tx Tx) error {
		for i, email := range []string{"Ann@X.com", "bob@x.com", "ann@x.COM"} {
			r := &access.Request{Policy: fmt.Sprint(i), State: access.StatePending, Requester: access.Person{Email: email}}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	_ = db.View(func(tx Tx) error {
		got, err := tx.RequestsOfUser("ANN@x.com")
		if err != nil || !reflect.DeepEqual(ids(got), []string{"REQ-1001", "REQ-1003"}) {
			t.Errorf("RequestsOfUser = %v %v", ids(got), err)
		}
		return nil
	})
}

// TestForEachRequestOrderAndCopies walks requests whose creation order
// disagrees with their key order (explicit earlier CreatedAt, several in one
// instant) and keeps value copies of every request it is handed: the walk
// is in (CreatedAt, ID) order, and each copy still equals the stored request
// after the walk moved on (the decoder never reuses a copy's memory).
func testForEachRequestOrderAndCopies(t *testing.T, open Opener) {
	db := open(t)
	created := []time.Duration{3, 1, 2, 0, 2, 5, 4, 4} // minutes after t0, in id order
	update(t, db, t0, func(tx Tx) error {
		for i, m := range created {
			r := pendingRequest(fmt.Sprintf("u%d@x", i), "db", "carol@x", "dave@x")
			r.CreatedAt = t0.Add(m * time.Minute)
			r.Justification = fmt.Sprintf("reason %d", i)
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		name   string
		before time.Time
		want   []string
	}{
		{"all", t0.Add(time.Hour), []string{"REQ-1004", "REQ-1002", "REQ-1003", "REQ-1005", "REQ-1001", "REQ-1007", "REQ-1008", "REQ-1006"}},
		{"up to an out-of-order request", t0.Add(2 * time.Minute), []string{"REQ-1004", "REQ-1002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kept []access.Request
			err := db.View(func(tx Tx) error {
				return tx.ForEachRequest(tt.before, func(r *access.Request) error {
					kept = append(kept, *r)
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(kept); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
			for _, k := range kept {
				var stored access.Request
				err := db.View(func(tx Tx) error {
					var err error
					stored, err = tx.Request(k.ID)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(k, stored) {
					t.Errorf("kept copy of %s changed after the walk:\n got %+v\nwant %+v", k.ID, k, stored)
				}
			}
		})
	}
}

// TestRequestNonCanonicalIDNotFound: "REQ-01001" names the number of
// REQ-1001 but is not its id.
func testRequestNonCanonicalIDNotFound(t *testing.T, open Opener) {
	db := open(t)
	update(t, db, t0, func(tx Tx) error { return tx.PutRequest(pendingRequest("ann@x", "db", "carol@x")) })
	for _, id := range []string{"REQ-01001", "REQ-+1001", "1001", "REQ-1002"} {
		t.Run(id, func(t *testing.T) {
			err := db.View(func(tx Tx) error { _, err := tx.Request(id); return err })
			if access.CodeOf(err) != access.CodeNotFound {
				t.Errorf("Request(%q) = %v, want not found", id, err)
			}
			err = db.Update(t0, func(tx Tx) error { return tx.PutRequest(&access.Request{ID: id, Rev: 1}) })
			if access.CodeOf(err) != access.CodeNotFound {
				t.Errorf("PutRequest(%q) = %v, want not found", id, err)
			}
		})
	}
}

func testAppendSealsAndChains(t *testing.T, open Opener) {
	db := open(t)
	_ = db.View(func(tx Tx) error {
		seq, hash, at := tx.Head()
		if seq != 0 || hash != access.GenesisHash || !at.IsZero() {
			t.Errorf("empty head = %d %s %v", seq, hash, at)
		}
		return nil
	})
	evs := appendEvents(t, db, 3)
	prev := access.GenesisHash
	for i, e := range evs {
		if e.Seq != uint64(i+1) || e.PrevHash != prev || e.Hash != e.ComputeHash() || len(e.ID) != 32 {
			t.Errorf("event %d: %+v", i, e)
		}
		if err := e.Verify(prev, e.Seq); err != nil {
			t.Error(err)
		}
		prev = e.Hash
	}
	// The clock stepping back does not make the log go back in time.
	var back access.Event
	update(t, db, t0.Add(-time.Hour), func(tx Tx) error {
		var err error
		back, err = tx.Append(access.Event{Type: access.EvAlert})
		return err
	})
	if !back.Time.Equal(evs[2].Time) {
		t.Errorf("time after a clock step back = %v, want %v", back.Time, evs[2].Time)
	}
	if err := db.Update(t0, func(tx Tx) error { _, err := tx.Append(access.Event{}); return err }); access.CodeOf(err) != access.CodeInvalid {
		t.Errorf("event without type: %v", err)
	}

	_ = db.View(func(tx Tx) error {
		got, err := tx.Event(2)
		if err != nil || !reflect.DeepEqual(got, evs[1]) {
			t.Errorf("Event(2) = %+v, %v; want %+v", got, err, evs[1])
		}
		if _, err := tx.Event(99); access.CodeOf(err) != access.CodeNotFound {
			t.Errorf("Event(99): %v", err)
		}
		seq, hash, at := tx.Head()
		if seq != 4 || hash != back.Hash || !at.Equal(back.Time) {
			t.Errorf("head = %d %s %v", seq, hash, at)
		}
		return nil
	})
}

func testEventsAndEventsBetween(t *testing.T, open Opener) {
	db := open(t)
	appendEvents(t, db, 10) // times t0 .. t0+9s
	seqs := func(walk func(tx Tx, fn func(access.Event) error) error, stopAt uint64) []uint64 {
		var out []uint64
		err := db.View(func(tx Tx) error {
			return walk(tx, func(e access.Event) error {
				out = append(out, e.Seq)
				if e.Seq == stopAt {
					return ErrStop
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name   string
		walk   func(tx Tx, fn func(access.Event) error) error
		stopAt uint64
		want   []uint64
	}{
		{"after 7", func(tx Tx, fn func(access.Event) error) error { return tx.Events(7, fn) }, 0, []uint64{8, 9, 10}},
		{"after 0 stops", func(tx Tx, fn func(access.Event) error) error { return tx.Events(0, fn) }, 2, []uint64{1, 2}},
		{"after the end", func(tx Tx, fn func(access.Event) error) error { return tx.Events(10, fn) }, 0, nil},
		{"after max", func(tx Tx, fn func(access.Event) error) error { return tx.Events(^uint64(0), fn) }, 0, nil},
		{"between [2s, 5s)", func(tx Tx, fn func(access.Event) error) error {
			return tx.EventsBetween(t0.Add(2*time.Second), t0.Add(5*time.Second), fn)
		}, 0, []uint64{3, 4, 5}},
		{"between everything", func(tx Tx, fn func(access.Event) error) error {
			return tx.EventsBetween(time.Time{}, t0.Add(time.Hour), fn)
		}, 9, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"between empty", func(tx Tx, fn func(access.Event) error) error {
			return tx.EventsBetween(t0.Add(time.Hour), t0.Add(2*time.Hour), fn)
		}, 0, nil},
		{"details up to 4", func(tx Tx, fn func(access.Event) error) error {
			return tx.EventDetails(4, func(seq uint64, _, _ []byte) error { return fn(access.Event{Seq: seq}) })
		}, 0, []uint64{1, 2, 3, 4}},
		{"details stop", func(tx Tx, fn func(access.Event) error) error {
			return tx.EventDetails(10, func(seq uint64, _, _ []byte) error { return fn(access.Event{Seq: seq}) })
		}, 2, []uint64{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqs(tt.walk, tt.stopAt); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func testVerifyIntactChain(t *testing.T, open Opener) {
	db := open(t)
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != 0 || res.Head != access.GenesisHash {
		t.Fatalf("empty log: %+v %v", res, err)
	}
	evs := appendEvents(t, db, 50)
	tests := []struct {
		name        string
		from        uint64
		count       uint64
		first, last uint64
	}{
		{"whole log from 0", 0, 50, 1, 50},
		{"whole log from 1", 1, 50, 1, 50},
		{"from the middle", 31, 20, 31, 50},
		{"from the last", 50, 1, 50, 50},
		{"nothing new", 51, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []access.Event
			res, err := db.Verify(tt.from, func(e access.Event) error { seen = append(seen, e); return nil })
			if err != nil || !res.OK() || res.Err() != nil {
				t.Fatalf("%+v %v", res, err)
			}
			if res.Count != tt.count || res.First != tt.first || res.Last != tt.last || res.Head != evs[49].Hash {
				t.Errorf("result %+v", res)
			}
			if uint64(len(seen)) != tt.count {
				t.Fatalf("fn saw %d events", len(seen))
			}
			if tt.count > 0 && !reflect.DeepEqual(seen[0], evs[tt.first-1]) {
				t.Errorf("fn got %+v, want %+v", seen[0], evs[tt.first-1])
			}
		})
	}
	var n int
	res, err = db.Verify(1, func(access.Event) error { n++; return ErrStop })
	if err != nil || n != 1 {
		t.Errorf("ErrStop: %+v %v n=%d", res, err, n)
	}
	if _, err := db.Verify(1, func(access.Event) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("fn error = %v", err)
	}
}

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

func testUpdateRollsBackStateAndEvent(t *testing.T, open Opener) {
	db := open(t)
	r := &access.Request{Policy: "p", State: access.StatePending, Requester: access.Person{Email: "ann@x"}}
	update(t, db, t0, func(tx Tx) error { return tx.PutRequest(r) })

	// A transition (state change + its event + its op) that fails half way
	// must leave no trace, and the caller's value must be retryable as is.
	r.State = access.StateProvisioning
	err := db.Update(t0.Add(time.Minute), func(tx Tx) error {
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		if _, err := tx.Append(access.Event{Type: access.EvRequestApproved, RequestID: r.ID}); err != nil {
			return err
		}
		if err := tx.Enqueue(&access.Op{Kind: access.OpAdd, RequestID: r.ID}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if r.Rev != 1 {
		t.Errorf("caller's Rev = %d after rollback, want 1 restored", r.Rev)
	}
	update(t, db, t0, func(tx Tx) error {
		got, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if got.State != access.StatePending || got.Rev != 1 {
			t.Errorf("stored = %s rev %d, want pending rev 1", got.State, got.Rev)
		}
		if seq, _, _ := tx.Head(); seq != 0 {
			t.Errorf("head seq = %d, want 0", seq)
		}
		if depth, _, _ := tx.OutboxStats(); depth != 0 {
			t.Errorf("outbox depth = %d", depth)
		}
		if hs, _ := tx.Holders("", ""); len(hs) != 0 {
			t.Errorf("holders index kept %d entries", len(hs))
		}
		// The restored value goes through on retry.
		return tx.PutRequest(r)
	})
	if r.Rev != 2 {
		t.Errorf("retry rev = %d", r.Rev)
	}

	// Creation rolled back: the id is cleared again.
	n := &access.Request{Policy: "p", State: access.StatePending}
	_ = db.Update(t0, func(tx Tx) error {
		if err := tx.PutRequest(n); err != nil {
			return err
		}
		return errBoom
	})
	if n.ID != "" || n.Rev != 0 || !n.CreatedAt.IsZero() {
		t.Errorf("rolled back create left %q rev %d created %v", n.ID, n.Rev, n.CreatedAt)
	}
}

func testBatchRetriesKeepCAS(t *testing.T, open Opener) {
	db := open(t)
	const n = 16
	reqs := make([]*access.Request, n)
	update(t, db, t0, func(tx Tx) error {
		for i := range reqs {
			reqs[i] = &access.Request{Policy: "p", State: access.StatePending}
			if err := tx.PutRequest(reqs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	// Half the callers fail: bbolt then re-runs the rest of the batch, and
	// the store must undo the Rev it bumped in the discarded run.
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		r := reqs[i]
		go func() {
			errs <- db.Batch(t0, func(tx Tx) error {
				r.State = access.StateProvisioning
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				_, err := tx.Append(access.Event{Type: access.EvRequestApproved, RequestID: r.ID})
				return err
			})
		}()
		go func() {
			errs <- db.Batch(t0, func(tx Tx) error { return errBoom })
		}()
	}
	var ok, boom int
	for i := 0; i < 2*n; i++ {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, errBoom):
			boom++
		default:
			t.Errorf("batch: %v", err)
		}
	}
	if ok != n || boom != n {
		t.Fatalf("ok %d boom %d, want %d each", ok, boom, n)
	}
	for _, r := range reqs {
		if r.Rev != 2 {
			t.Errorf("%s rev = %d, want 2", r.ID, r.Rev)
		}
	}
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != n {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

func testReadOnlyTxRefusesWrites(t *testing.T, open Opener) {
	db := open(t)
	err := db.View(func(tx Tx) error {
		return tx.PutRequest(&access.Request{Policy: "p"})
	})
	if err == nil {
		t.Fatal("PutRequest in View succeeded")
	}
}

// ported lists the ported tests by name, for Run.
var ported = []struct {
	name string
	run  func(*testing.T, Opener)
}{
	{"PutRequestCreateAndCAS", testPutRequestCreateAndCAS},
	{"IndexesFollowLifecycle", testIndexesFollowLifecycle},
	{"DueIsOrderedAndBounded", testDueIsOrderedAndBounded},
	{"ForEachRequest", testForEachRequest},
	{"RequestsOfUserCaseInsensitive", testRequestsOfUserCaseInsensitive},
	{"ForEachRequestOrderAndCopies", testForEachRequestOrderAndCopies},
	{"RequestNonCanonicalIDNotFound", testRequestNonCanonicalIDNotFound},
	{"AppendSealsAndChains", testAppendSealsAndChains},
	{"EventsAndEventsBetween", testEventsAndEventsBetween},
	{"VerifyIntactChain", testVerifyIntactChain},
	{"Outbox", testOutbox},
	{"Pins", testPins},
	{"MessageRefs", testMessageRefs},
	{"Cursors", testCursors},
	{"Seen", testSeen},
	{"StaticMembers", testStaticMembers},
	{"Documents", testDocuments},
	{"UpdateRollsBackStateAndEvent", testUpdateRollsBackStateAndEvent},
	{"BatchRetriesKeepCAS", testBatchRetriesKeepCAS},
	{"ReadOnlyTxRefusesWrites", testReadOnlyTxRefusesWrites},
}
