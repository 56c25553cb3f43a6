package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"keycard/access"
)

// The ported audit-log tests: sealing and chaining, reading events back by
// seq and by time, and verifying an intact chain.

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
