package bench

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"keycard/access"
	"keycard/store"
)

// verifyBudget is the chain-verification floor, in events per second.
const verifyBudget = 1_000_000

// BenchmarkAuditVerify checks the whole audit chain of the world store
// (cur.events events) with store.DB.Verify. Its baseline is the least any
// verification must do: SHA-256 over the same stored bytes, read from memory.
func BenchmarkAuditVerify(b *testing.B) {
	db, err := store.Open(world(b), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// The baseline's input: every event's canonical bytes, copied out.
	var canon [][]byte
	err = db.View(func(tx *store.Tx) error {
		return tx.Events(0, func(e access.Event) error {
			canon = append(canon, e.Canonical())
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	var verifyDur, hashDur time.Duration
	var n int
	for b.Loop() {
		start := time.Now()
		res, err := db.Verify(1, nil)
		verifyDur += time.Since(start)
		if err != nil || !res.OK() || res.Count < uint64(cur.events) {
			b.Fatalf("verify: %+v %v", res, err)
		}
		start = time.Now()
		for _, c := range canon {
			sha256.Sum256(c)
		}
		hashDur += time.Since(start)
		n += len(canon)
	}
	rate := float64(n) / verifyDur.Seconds()
	hashRate := float64(n) / hashDur.Seconds()
	report(b, verdict{
		Budget: fmt.Sprintf("≥ %s events/s", fmtNum(verifyBudget)),
		Figure: rate, Baseline: hashRate, Unit: "events/s", Ratio: rate / hashRate,
		Met:  rate >= verifyBudget,
		Note: fmt.Sprintf("%d events; baseline = SHA-256 of the same bytes from memory", len(canon)),
	})
}
