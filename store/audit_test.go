package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"keycard/access"

	bolt "go.etcd.io/bbolt"
)

// appendEvents appends n events, one transaction each, a second apart.
func appendEvents(t testing.TB, db *DB, n int) []access.Event {
	t.Helper()
	var out []access.Event
	for i := 0; i < n; i++ {
		update(t, db, t0.Add(time.Duration(i)*time.Second), func(tx *Tx) error {
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

func TestEventID(t *testing.T) {
	a := eventID(1, t0, access.EvAlert, "REQ-1")
	tests := []struct {
		name string
		id   string
		same bool
	}{
		{"deterministic", eventID(1, t0, access.EvAlert, "REQ-1"), true},
		{"seq", eventID(2, t0, access.EvAlert, "REQ-1"), false},
		{"time", eventID(1, t0.Add(1), access.EvAlert, "REQ-1"), false},
		{"type", eventID(1, t0, access.EvGrantActive, "REQ-1"), false},
		{"request", eventID(1, t0, access.EvAlert, "REQ-2"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.id == a) != tt.same {
				t.Errorf("%s vs %s", tt.id, a)
			}
		})
	}
}

// TestVerifyDetectsTampering edits the file under the store with raw bbolt
// writes, as an attacker with access to the file would.
func TestVerifyDetectsTampering(t *testing.T) {
	const n = 20
	tests := []struct {
		name    string
		tamper  func(t *testing.T, tx *bolt.Tx)
		badSeq  uint64
		problem string
	}{
		{"flip a byte of the detail", func(t *testing.T, tx *bolt.Tx) { flipByte(t, tx, 7, -hashLen-3) }, 7, "event 7 was altered"},
		{"flip a byte of the time", func(t *testing.T, tx *bolt.Tx) { flipByte(t, tx, 3, 12) }, 3, "event 3 was altered"},
		{"flip a byte of the first event", func(t *testing.T, tx *bolt.Tx) { flipByte(t, tx, 1, 20) }, 1, "event 1 was altered"},
		{"flip a byte of the stored hash", func(t *testing.T, tx *bolt.Tx) { flipByte(t, tx, 12, -1) }, 12, "event 12 was altered"},
		{"delete an event", func(t *testing.T, tx *bolt.Tx) { must(t, tx.Bucket(bEvents).Delete(be(9))) }, 9, "event 9 is missing"},
		{"delete the first event", func(t *testing.T, tx *bolt.Tx) { must(t, tx.Bucket(bEvents).Delete(be(1))) }, 1, "event 1 is missing"},
		{"truncate the log", func(t *testing.T, tx *bolt.Tx) { must(t, tx.Bucket(bEvents).Delete(be(n))) }, n, "event 20 is missing: the head says"},
		{"rewrite an event and its hash", func(t *testing.T, tx *bolt.Tx) {
			// Re-hashing the altered event hides it from its own check; the
			// next event's prev_hash still names the original.
			e := readEvent(t, tx, 5)
			e.Actor = "mallory@x"
			canon := e.Canonical()
			sum := sha256.Sum256(canon)
			must(t, tx.Bucket(bEvents).Put(be(5), append(canon, sum[:]...)))
		}, 6, "event 6 does not link to event 5"},
		{"rewrite the last event and its hash", func(t *testing.T, tx *bolt.Tx) {
			e := readEvent(t, tx, n)
			e.Detail = "{}"
			canon := e.Canonical()
			sum := sha256.Sum256(canon)
			must(t, tx.Bucket(bEvents).Put(be(n), append(canon, sum[:]...)))
		}, n, "event 20 does not match the head"},
		{"head moved back", func(t *testing.T, tx *bolt.Tx) {
			v := append([]byte(nil), tx.Bucket(bMeta).Get(keyHead)...)
			copy(v, be(n-1))
			must(t, tx.Bucket(bMeta).Put(keyHead, v))
		}, n, "event 20 is past the head"},
		{"head hash altered", func(t *testing.T, tx *bolt.Tx) {
			v := append([]byte(nil), tx.Bucket(bMeta).Get(keyHead)...)
			v[10] ^= 1
			must(t, tx.Bucket(bMeta).Put(keyHead, v))
		}, n, "event 20 does not match the head"},
		{"event stored under another seq", func(t *testing.T, tx *bolt.Tx) {
			v := append([]byte(nil), tx.Bucket(bEvents).Get(be(n))...)
			must(t, tx.Bucket(bEvents).Delete(be(n)))
			must(t, tx.Bucket(bEvents).Put(be(n-1), v))
		}, n - 1, "event 19 is stored under seq 19 but its content says seq 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			appendEvents(t, db, n)
			if err := db.bolt.Update(func(tx *bolt.Tx) error { tt.tamper(t, tx); return nil }); err != nil {
				t.Fatal(err)
			}
			var delivered []uint64
			res, err := db.Verify(1, func(e access.Event) error { delivered = append(delivered, e.Seq); return nil })
			if err != nil {
				t.Fatalf("Verify error: %v", err)
			}
			if res.OK() || res.BadSeq != tt.badSeq || !strings.Contains(res.Problem, tt.problem) {
				t.Fatalf("result %+v, want bad seq %d with %q", res, tt.badSeq, tt.problem)
			}
			if !errors.Is(res.Err(), ErrChainBroken) {
				t.Errorf("Err() = %v", res.Err())
			}
			for _, s := range delivered {
				if s >= tt.badSeq {
					t.Errorf("fn saw event %d at or after the break", s)
				}
			}
		})
	}
}

func TestVerifyAcrossChunks(t *testing.T) {
	db := openTest(t)
	total := verifyChunk + 10
	update(t, db, t0, func(tx *Tx) error {
		for i := 0; i < total; i++ {
			if _, err := tx.Append(access.Event{Type: access.EvAlert}); err != nil {
				return err
			}
		}
		return nil
	})
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() || res.Count != uint64(total) || res.Last != uint64(total) {
		t.Fatalf("%+v %v", res, err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { flipByte(t, tx, uint64(verifyChunk+5), 20); return nil }); err != nil {
		t.Fatal(err)
	}
	res, err = db.Verify(1, nil)
	if err != nil || res.BadSeq != uint64(verifyChunk+5) {
		t.Fatalf("%+v %v", res, err)
	}
}

// flipByte flips one byte of event seq's stored value; a negative offset
// counts from the end.
func flipByte(t *testing.T, tx *bolt.Tx, seq uint64, off int) {
	t.Helper()
	v := append([]byte(nil), tx.Bucket(bEvents).Get(be(seq))...)
	if off < 0 {
		off += len(v)
	}
	v[off] ^= 0x01
	must(t, tx.Bucket(bEvents).Put(be(seq), v))
}

func readEvent(t *testing.T, tx *bolt.Tx, seq uint64) access.Event {
	t.Helper()
	e, err := decodeEvent(tx.Bucket(bEvents).Get(be(seq)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The event walks the exports use read the chained events bucket, not the
// time index: deleting an index key hides nothing, deleting an event is an
// error naming it (issue 10).
func TestEventWalksIgnoreIndexAndStopAtGaps(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(tx *bolt.Tx) error
		wantErr string
	}{
		{"index key deleted", func(tx *bolt.Tx) error {
			c := tx.Bucket(bIdxEventTime).Cursor()
			c.First()
			k, _ := c.Next()
			return tx.Bucket(bIdxEventTime).Delete(k)
		}, ""},
		{"event deleted", func(tx *bolt.Tx) error { return tx.Bucket(bEvents).Delete(be(4)) }, "event 4 is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			appendEvents(t, db, 6)
			must(t, db.bolt.Update(tt.tamper))
			var between, details []uint64
			err1 := db.View(func(tx *Tx) error {
				return tx.EventsBetween(time.Time{}, t0.Add(time.Hour), func(e access.Event) error {
					between = append(between, e.Seq)
					return nil
				})
			})
			err2 := db.View(func(tx *Tx) error {
				return tx.EventDetails(6, func(seq uint64, _, _ []byte) error {
					details = append(details, seq)
					return nil
				})
			})
			for _, err := range []error{err1, err2} {
				if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			}
			if tt.wantErr == "" && (len(between) != 6 || len(details) != 6) {
				t.Fatalf("walked %v and %v, want all 6 events", between, details)
			}
		})
	}
}
