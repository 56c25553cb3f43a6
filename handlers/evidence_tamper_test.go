package handlers_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"keycard/access"
	"keycard/handlers"
	"keycard/store"
)

// tamper closes the env's store, runs fn on the raw bbolt file, as someone
// with write access to keycard.db would, and reopens it.
func (e *env) tamper(fn func(tx *bolt.Tx) error) {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	raw, err := bolt.Open(e.path, 0o600, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := raw.Update(fn); err != nil {
		e.t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// Deleting one key of the time index (not covered by the hash chain) hid
// an event from the events export while the chain still verified: 7 rows
// became 6 (issue 10, Medium). The export walks the chain itself.
func TestExportEventsIgnoresTimeIndex(t *testing.T) {
	e := exportWorld(t)
	p, _ := handlers.Period("2026-11-01", "2026-11-02", e.clock.Now())
	var before bytes.Buffer
	m1, err := e.svc.Export(t.Context(), &before, handlers.ExportRequest{Kind: handlers.KindEvents, Params: p, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if m1.RowCount < 3 {
		t.Fatalf("fixture has %d events", m1.RowCount)
	}
	e.tamper(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte("idx_event_time")).Cursor()
		c.First()
		k, _ := c.Next() // the second event of the log
		return tx.Bucket([]byte("idx_event_time")).Delete(k)
	})
	var after bytes.Buffer
	m2, err := e.svc.Export(t.Context(), &after, handlers.ExportRequest{Kind: handlers.KindEvents, Params: p, By: "erin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	// The rows up to the first export's head are the same rows.
	lines := strings.SplitAfter(after.String(), "\n")
	if got := strings.Join(lines[:1+m1.RowCount], ""); got != before.String() {
		t.Fatalf("events export changed after an index key was deleted (%d rows, then %d):\n%s\n---\n%s", m1.RowCount, m2.RowCount, before.String(), got)
	}
	if !strings.Contains(string(m2.Encode()), `"gapless": true`) {
		t.Errorf("the manifest does not state a gapless seq window:\n%s", m2.Encode())
	}
}

// Rewriting a request record in keycard.db (its justification, an approver)
// changed the access export while the chain still verified (issue 10,
// Medium). Each record is held to the digest its last chained event
// attests: the export fails, naming the request.
func TestExportAccessCrossChecksRecords(t *testing.T) {
	cases := []struct {
		name, old, new, request string
	}{
		{"justification", "+1 needed for @oncall", "+1 CTO said it's fine", "REQ-1002"},
		{"approver", "\x0fbob@example.com", "\x0fdan@example.com", "REQ-1001"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := exportWorld(t)
			p, _ := handlers.Period("2026-11-01", "2026-11-02", e.clock.Now())
			if _, err := e.svc.ExportAccess(io.Discard, p); err != nil {
				t.Fatalf("untouched store: %v", err)
			}
			key := make([]byte, 8)
			n, _ := strconv.ParseUint(strings.TrimPrefix(c.request, "REQ-"), 10, 64)
			binary.BigEndian.PutUint64(key, n)
			e.tamper(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("requests_by_number"))
				v := b.Get(key)
				if !bytes.Contains(v, []byte(c.old)) {
					t.Fatalf("%s's record does not hold %q", c.request, c.old)
				}
				return b.Put(key, bytes.ReplaceAll(v, []byte(c.old), []byte(c.new)))
			})
			// The store still reads the record, and the chain is untouched.
			var r access.Request
			err := e.db.View(func(tx *store.Tx) error {
				var err error
				r, err = tx.Request(c.request)
				return err
			})
			if err != nil || !strings.Contains(r.Justification+r.Steps[0].DecidedBy.Email, strings.TrimPrefix(c.new, "\x0f")) {
				t.Fatalf("tampered record reads as %+v, %v", r, err)
			}
			var out bytes.Buffer
			_, err = e.svc.Export(t.Context(), &out, handlers.ExportRequest{Kind: handlers.KindAccess, Params: p, By: "erin@example.com"})
			if err == nil {
				t.Fatalf("the export of a tampered record succeeded:\n%s", out.String())
			}
			if access.CodeOf(err) != access.Code("integrity") || !strings.Contains(err.Error(), c.request) {
				t.Fatalf("error %v (code %q), want an integrity error naming %s", err, access.CodeOf(err), c.request)
			}
			if want := fmt.Sprintf("event %d attests", e.lastAttesting(c.request)); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want it to name the last attesting event (%q)", err, want)
			}
			// The security channel hears of it.
			var last access.Event
			if err := e.db.View(func(tx *store.Tx) error {
				seq, _, _ := tx.Head()
				var err error
				last, err = tx.Event(seq)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if last.Type != access.EvAlert || !strings.Contains(last.Detail, c.request) {
				t.Fatalf("last event %s %s, want an alert naming %s", last.Type, last.Detail, c.request)
			}
		})
	}
}

// The digest covers what provisioning learnt, because the export shows it
// (access_start and the approval_chain's "assumed" and "standing" notes).
func TestRecordDigestCoversProvisioningFacts(t *testing.T) {
	base := access.Request{ID: "REQ-1", State: access.StateActive}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		edit func(r *access.Request)
	}{
		{"started at", func(r *access.Request) { r.StartedAt = at }},
		{"start assumed", func(r *access.Request) { r.StartAssumed = true }},
		{"not owner", func(r *access.Request) { r.NotOwner = true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base
			c.edit(&r)
			if handlers.RecordDigest(&r) == handlers.RecordDigest(&base) {
				t.Fatalf("changing %s leaves the record digest as it was", c.name)
			}
		})
	}
}

// The access export walks the creation index, which the chain does not
// cover: deleting one idx_created key, or a record and its key, dropped a
// row with no error (issue 10 review: rows 5 → 4). Every request the chain
// attests in the period must be reached; one that is not stops the export
// with an integrity error naming it, and the security channel hears of it.
func TestExportAccessNoticesDroppedRequest(t *testing.T) {
	const victim = "REQ-1002"
	cases := []struct {
		name, want string
		record     bool // delete the record too
	}{
		{"index key", "did not reach it", false},
		{"record and its key", "record is gone", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := exportWorld(t)
			p, _ := handlers.Period("2026-11-01", "2026-11-02", e.clock.Now())
			var before bytes.Buffer
			if _, err := e.svc.ExportAccess(&before, p); err != nil || !strings.Contains(before.String(), victim+",") {
				t.Fatalf("untouched store: %v, %s in the export: %t", err, victim, strings.Contains(before.String(), victim+","))
			}
			e.tamper(func(tx *bolt.Tx) error {
				idx := tx.Bucket([]byte("idx_created"))
				var key []byte
				_ = idx.ForEach(func(k, _ []byte) error {
					if string(k[8:]) == victim {
						key = bytes.Clone(k)
					}
					return nil
				})
				if key == nil {
					t.Fatalf("no idx_created key for %s", victim)
				}
				if err := idx.Delete(key); err != nil {
					return err
				}
				if !c.record {
					return nil
				}
				n, _ := strconv.ParseUint(strings.TrimPrefix(victim, "REQ-"), 10, 64)
				return tx.Bucket([]byte("requests_by_number")).Delete(binary.BigEndian.AppendUint64(nil, n))
			})
			var out bytes.Buffer
			_, err := e.svc.Export(t.Context(), &out, handlers.ExportRequest{Kind: handlers.KindAccess, Params: p, By: "erin@example.com"})
			if err == nil {
				t.Fatalf("the export without %s succeeded:\n%s", victim, out.String())
			}
			if access.CodeOf(err) != access.Code("integrity") || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v (code %q), want an integrity error naming %s (%q)", err, access.CodeOf(err), victim, c.want)
			}
			if want := fmt.Sprintf("(event %d)", e.lastAttesting(victim)); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want it to name the last attesting event %s", err, want)
			}
			var last access.Event
			if err := e.db.View(func(tx *store.Tx) error {
				seq, _, _ := tx.Head()
				var err error
				last, err = tx.Event(seq)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if last.Type != access.EvAlert || !strings.Contains(last.Detail, victim) {
				t.Fatalf("last event %s %s, want an alert naming %s", last.Type, last.Detail, victim)
			}
			// A period before the request was made still exports.
			earlier, _ := handlers.Period("2026-10-01", "2026-10-02", e.clock.Now())
			if _, err := e.svc.ExportAccess(io.Discard, earlier); err != nil {
				t.Fatalf("an earlier period: %v", err)
			}
		})
	}
}

// lastAttesting is the seq of the last chained event about request id that
// attests its record: the event the export's integrity errors name.
func (e *env) lastAttesting(id string) uint64 {
	e.t.Helper()
	var last uint64
	err := e.db.View(func(tx *store.Tx) error {
		head, _, _ := tx.Head()
		for seq := uint64(1); seq <= head; seq++ {
			ev, err := tx.Event(seq)
			if err != nil {
				return err
			}
			if ev.RequestID == id && strings.Contains(ev.Detail, `"record":"`) {
				last = seq
			}
		}
		return nil
	})
	if err != nil || last == 0 {
		e.t.Fatalf("no attesting event for %s: %v", id, err)
	}
	return last
}

// Requests the export's walk did not reach are judged in batches, one more
// walk of the chain per batch for the events they name (the index keeps no
// seq per request, for the export's memory): unreached requests another
// policy's export leaves out pass, across batch boundaries, and one it
// should have shown still stops it, naming its last attesting event.
func TestExportAccessJudgesUnreachedInBatches(t *testing.T) {
	for _, batch := range []int{1, 2, 4096} {
		t.Run(strconv.Itoa(batch), func(t *testing.T) {
			handlers.SetUnreachedBatch(t, batch)
			e := exportWorld(t)
			p, _ := handlers.Period("2026-11-01", "2026-11-02", e.clock.Now())
			p.Policy = "grafana-viewer"
			var before bytes.Buffer
			if _, err := e.svc.ExportAccess(&before, p); err != nil {
				t.Fatal(err)
			}
			drop := func(ids ...string) {
				e.tamper(func(tx *bolt.Tx) error {
					idx := tx.Bucket([]byte("idx_created"))
					var keys [][]byte
					_ = idx.ForEach(func(k, _ []byte) error {
						for _, id := range ids {
							if string(k[8:]) == id {
								keys = append(keys, bytes.Clone(k))
							}
						}
						return nil
					})
					if len(keys) != len(ids) {
						t.Fatalf("idx_created holds %d of %v", len(keys), ids)
					}
					for _, k := range keys {
						if err := idx.Delete(k); err != nil {
							return err
						}
					}
					return nil
				})
			}
			// prod-db-admin requests: outside this export either way.
			drop("REQ-1001", "REQ-1002", "REQ-1004")
			var after bytes.Buffer
			if _, err := e.svc.ExportAccess(&after, p); err != nil {
				t.Fatalf("unreached requests of another policy stopped the export: %v", err)
			}
			if after.String() != before.String() {
				t.Fatalf("export changed:\n%s\n---\n%s", before.String(), after.String())
			}
			drop("REQ-1005") // grafana-viewer: this export's
			_, err := e.svc.ExportAccess(io.Discard, p)
			want := fmt.Sprintf("REQ-1005: the audit chain attests this request (event %d)", e.lastAttesting("REQ-1005"))
			if access.CodeOf(err) != access.Code("integrity") || err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want an integrity error %q", err, want)
			}
		})
	}
}

// A record edited so that the export's filter leaves it out (another
// policy) is still held to its attestation: the export refuses instead of
// dropping the row unnoticed (review finding).
func TestExportAccessChecksRecordsTheFilterExcludes(t *testing.T) {
	e := exportWorld(t)
	p, _ := handlers.Period("2026-11-01", "2026-11-02", e.clock.Now())
	p.Policy = "grafana-viewer"
	var before bytes.Buffer
	if _, err := e.svc.ExportAccess(&before, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(before.Bytes(), []byte("REQ-1005")) {
		t.Fatalf("REQ-1005 not in the export:\n%s", before.String())
	}
	key := make([]byte, 8)
	binary.BigEndian.PutUint64(key, 1005)
	e.tamper(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("requests_by_number"))
		v := b.Get(key)
		if !bytes.Contains(v, []byte("grafana-viewer")) {
			t.Fatalf("record: %q", v)
		}
		return b.Put(key, bytes.ReplaceAll(v, []byte("grafana-viewer"), []byte("grafana-viewex")))
	})
	_, err := e.svc.ExportAccess(io.Discard, p)
	if access.CodeOf(err) != access.CodeIntegrity || !strings.Contains(access.MessageOf(err), "REQ-1005") {
		t.Fatalf("export after REQ-1005 was edited out of the filter: %v (code %s); want an integrity error naming it", err, access.CodeOf(err))
	}
}
