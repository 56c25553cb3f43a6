package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"keycard/access"
)

// The ported request tests: create and compare-and-swap, the indexes
// through a whole lifecycle, Due, the walks and lookups by person and id.

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
