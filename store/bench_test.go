package store

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"keycard/access"

	bolt "go.etcd.io/bbolt"
)

// fillActive stores n active requests ending far in the future and due
// requests ending before t0.
func fillActive(b *testing.B, db *DB, n, due int) {
	b.Helper()
	const perTx = 10000
	for done := 0; done < n; done += perTx {
		update(b, db, t0, func(tx *Tx) error {
			for i := done; i < n && i < done+perTx; i++ {
				r := pendingRequest(fmt.Sprintf("u%d@x", i), "p")
				r.State = access.StateActive
				r.EndsAt = t0.Add(time.Duration(i+1) * time.Hour)
				if err := tx.PutRequest(r); err != nil {
					return err
				}
			}
			return nil
		})
	}
	update(b, db, t0, func(tx *Tx) error {
		for i := 0; i < due; i++ {
			r := pendingRequest("due@x", "p")
			r.State = access.StateActive
			r.EndsAt = t0.Add(-time.Duration(i+1) * time.Minute)
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkDue shows Due costs O(due): the time per call is flat from 10k
// to 100k active requests with 10 due.
func BenchmarkDue(b *testing.B) {
	for _, active := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("active=%d/due=10", active), func(b *testing.B) {
			db := openTest(b)
			fillActive(b, db, active, 10)
			for b.Loop() {
				err := db.View(func(tx *Tx) error {
					rs, err := tx.Due(t0, 0)
					if err == nil && len(rs) != 10 {
						err = fmt.Errorf("due = %d", len(rs))
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppend compares one state change with its audit event (one
// Update: PutRequest + Append) with the floor, a raw bbolt Update with a
// single put, and reports the ratio. With fsync the commit dominates both.
func BenchmarkAppend(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			dir := b.TempDir()
			db, err := Open(filepath.Join(dir, "keycard.db"), Options{NoSync: noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			raw, err := bolt.Open(filepath.Join(dir, "raw.db"), 0o600, &bolt.Options{NoSync: noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			if err := raw.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
				b.Fatal(err)
			}
			r := pendingRequest("ann@x", "db", "carol@x")
			update(b, db, t0, func(tx *Tx) error { return tx.PutRequest(r) })
			value := make([]byte, 600) // about a request's JSON
			var rawDur, storeDur time.Duration
			var i uint64
			b.ResetTimer()
			for b.Loop() {
				i++
				start := time.Now()
				if err := raw.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(be(i), value) }); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				err := db.Update(t0, func(tx *Tx) error {
					r.RemindAt = t0.Add(time.Duration(i) * time.Second)
					if err := tx.PutRequest(r); err != nil {
						return err
					}
					_, err := tx.Append(access.Event{Type: access.EvRequestReminded, Actor: access.ActorScheduler, Subject: "ann@x", Policy: "db", RequestID: r.ID})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				storeDur += time.Since(mid)
				rawDur += mid.Sub(start)
			}
			n := float64(i)
			b.ReportMetric(float64(storeDur.Nanoseconds())/n, "store-ns/op")
			b.ReportMetric(float64(rawDur.Nanoseconds())/n, "raw-ns/op")
			b.ReportMetric(float64(storeDur)/float64(rawDur), "x-raw")
		})
	}
}

// BenchmarkAppendBatch32 runs 32 goroutines each creating a request and its
// event through Batch, with fsync: they share commits.
func BenchmarkAppendBatch32(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "keycard.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := db.Batch(t0, func(tx *Tx) error {
				r := pendingRequest("ann@x", "db", "carol@x")
				if err := tx.PutRequest(r); err != nil {
					return err
				}
				_, err := tx.Append(access.Event{Type: access.EvRequestSubmitted, Subject: "ann@x", RequestID: r.ID})
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	res, err := db.Verify(1, nil)
	if err != nil || !res.OK() {
		b.Fatalf("%+v %v", res, err)
	}
}

// BenchmarkVerify reports the chain check's speed in events per second
// (target: at least one million).
func BenchmarkVerify(b *testing.B) {
	const n = 200_000
	db := openTest(b)
	fillEvents(b, db, n)
	b.ResetTimer()
	for b.Loop() {
		res, err := db.Verify(1, nil)
		if err != nil || !res.OK() || res.Count != n {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOpen shows opening does not scan the data: it reads meta only.
func BenchmarkOpen(b *testing.B) {
	db := openTest(b)
	fillEvents(b, db, 200_000)
	path := db.Path()
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		db, err := Open(path, Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func fillEvents(b *testing.B, db *DB, n int) {
	b.Helper()
	const perTx = 20000
	for done := 0; done < n; done += perTx {
		update(b, db, t0.Add(time.Duration(done)*time.Second), func(tx *Tx) error {
			for i := done; i < n && i < done+perTx; i++ {
				_, err := tx.Append(access.Event{Type: access.EvGrantActive, Actor: "keycard", Subject: "ann@example.com",
					Policy: "prod-db-admin", RequestID: fmt.Sprintf("REQ-%d", 1001+i), Detail: `{"group":"prod-db-admins","idp_event_id":"abc"}`})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
}
