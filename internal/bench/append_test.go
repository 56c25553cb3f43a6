package bench

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/store"

	bolt "go.etcd.io/bbolt"
)

// Audit append budgets: a state change with its event at ≥ 80% of raw bbolt
// single-put throughput (both with fsync), and 32 concurrent writers through
// Batch at ≥ 5× the single-writer rate.
const (
	appendBudgetRatio = 0.8
	batchBudgetRatio  = 5
	batchWriters      = 32
)

// appendRounds is how many commits each side makes per benchmark iteration;
// with fsync each takes about a millisecond, so a round is under a second.
const appendRounds = 300

func openSynced(b *testing.B, dir string) *store.DB {
	b.Helper()
	db, err := store.Open(filepath.Join(dir, "keycard.db"), store.Options{}) // fsync on every commit, as in production
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// stateChange is one lifecycle step as handlers makes it: re-read the
// request, compare-and-swap it with a new deadline, and append its event, in
// one transaction.
func stateChange(tx *store.Tx, id string, i int) error {
	r, err := tx.Request(id)
	if err != nil {
		return err
	}
	r.RemindAt = fixtureNow.Add(time.Duration(i) * time.Second)
	if err := tx.PutRequest(&r); err != nil {
		return err
	}
	_, err = tx.Append(access.Event{Type: access.EvRequestReminded, Actor: access.ActorScheduler,
		Subject: r.Requester.Email, Policy: r.Policy, RequestID: r.ID})
	return err
}

// BenchmarkAuditAppend compares one state change plus its audit event (one
// Update, one fsync) with a raw bbolt Update putting one request-sized value,
// interleaved so both see the same disk.
func BenchmarkAuditAppend(b *testing.B) {
	dir := b.TempDir()
	db := openSynced(b, dir)
	raw, err := bolt.Open(filepath.Join(dir, "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		b.Fatal(err)
	}
	req := fixtureRequest(0, 1)
	if err := db.Update(fixtureNow, func(tx *store.Tx) error { return tx.PutRequest(req) }); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 600) // about a stored request
	var rawDur, storeDur time.Duration
	var n, key int
	for b.Loop() {
		for i := 0; i < appendRounds; i++ {
			key++
			start := time.Now()
			err := raw.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("b")).Put([]byte(fmt.Sprintf("%016d", key)), value)
			})
			if err != nil {
				b.Fatal(err)
			}
			mid := time.Now()
			if err := db.Update(fixtureNow, func(tx *store.Tx) error { return stateChange(tx, req.ID, key) }); err != nil {
				b.Fatal(err)
			}
			storeDur += time.Since(mid)
			rawDur += mid.Sub(start)
			n++
		}
	}
	rate := float64(n) / storeDur.Seconds()
	rawRate := float64(n) / rawDur.Seconds()
	report(b, verdict{
		Budget: fmt.Sprintf("≥ %.0f%% of raw bbolt single put (fsync each)", appendBudgetRatio*100),
		Figure: rate, Baseline: rawRate, Unit: "commits/s", Ratio: rate / rawRate,
		Met:  rate/rawRate >= appendBudgetRatio,
		Note: fmt.Sprintf("%d commits each; state change = read + CAS put + 5 index moves + event + time index + head", n),
	})
}

// BenchmarkAuditAppendBatch32 compares 32 concurrent writers, each making a
// state change plus event through DB.Batch (shared commits, each one still
// fsynced before any caller returns), with one writer doing the same through
// Update: the figure is the aggregate rate, the baseline the single rate.
func BenchmarkAuditAppendBatch32(b *testing.B) {
	db := openSynced(b, b.TempDir())
	ids := make([]string, batchWriters)
	err := db.Update(fixtureNow, func(tx *store.Tx) error {
		for w := range ids {
			r := fixtureRequest(w*100, batchWriters*100)
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			ids[w] = r.ID
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var singleDur, batchDur time.Duration
	var singleN, batchN int
	for b.Loop() {
		start := time.Now()
		for i := 0; i < appendRounds; i++ {
			if err := db.Update(fixtureNow, func(tx *store.Tx) error { return stateChange(tx, ids[0], i) }); err != nil {
				b.Fatal(err)
			}
		}
		singleDur += time.Since(start)
		singleN += appendRounds

		perWriter := appendRounds / 2
		var wg sync.WaitGroup
		errs := make(chan error, batchWriters)
		start = time.Now()
		for w := 0; w < batchWriters; w++ {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				for i := 0; i < perWriter; i++ {
					if err := db.Batch(fixtureNow, func(tx *store.Tx) error { return stateChange(tx, id, i) }); err != nil {
						errs <- err
						return
					}
				}
			}(ids[w])
		}
		wg.Wait()
		batchDur += time.Since(start)
		batchN += batchWriters * perWriter
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() {
		b.Fatalf("audit chain after concurrent appends: %+v %v", res, err)
	}
	rate := float64(batchN) / batchDur.Seconds()
	single := float64(singleN) / singleDur.Seconds()
	report(b, verdict{
		Budget: fmt.Sprintf("%d writers via Batch ≥ %d× one writer (fsync each commit)", batchWriters, batchBudgetRatio),
		Figure: rate, Baseline: single, Unit: "changes/s", Ratio: rate / single,
		Met:  rate/single >= batchBudgetRatio,
		Note: fmt.Sprintf("%d batched, %d single; chain verified after", batchN, singleN),
	})
}
