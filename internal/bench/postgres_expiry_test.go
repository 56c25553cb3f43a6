package bench

import (
	"fmt"
	"testing"
	"time"

	"keycard/internal/storetest"
	pgstore "keycard/store/postgres"
)

// pgSweep is the scheduler's read on PostgreSQL: the due requests, decoded.
func pgSweep(b *testing.B, db *pgstore.DB) {
	err := db.View(func(tx *pgstore.Tx) error {
		due, err := tx.Due(fixtureNow, 256)
		if err == nil && len(due) != dueCount {
			err = fmt.Errorf("due = %d, want %d", len(due), dueCount)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPostgresExpirySweep is BenchmarkExpirySweep on PostgreSQL: the
// same two fixtures (10 due among cur.expiryHigh active grants, and among
// ten times fewer), copied into two databases by keycard migrate's path,
// swept alternately. O(due) means the ratio stays near 1.
func BenchmarkPostgresExpirySweep(b *testing.B) {
	storetest.PostgresURL(b) // skip before building the bbolt fixtures
	lowPath, highPath := expiryStores(b)
	low, high := pgCopy(b, lowPath), pgCopy(b, highPath)
	const sweeps = 500
	var lowDur, highDur time.Duration
	var n int
	for b.Loop() {
		for i := 0; i < sweeps; i++ {
			start := time.Now()
			pgSweep(b, low)
			mid := time.Now()
			pgSweep(b, high)
			highDur += time.Since(mid)
			lowDur += mid.Sub(start)
			n++
		}
	}
	per := float64(highDur.Microseconds()) / float64(n)
	basePer := float64(lowDur.Microseconds()) / float64(n)
	ratio := per / basePer
	report(b, verdict{
		Budget: fmt.Sprintf("flat in the active count (ratio ≤ %.1f)", expiryFlat),
		Figure: per, Baseline: basePer, Unit: "µs/sweep", Ratio: ratio,
		Met:  ratio <= expiryFlat,
		Note: fmt.Sprintf("%d due among %d active (baseline: among %d), one read-only transaction each; ratio = figure/baseline", dueCount, cur.expiryHigh, cur.expiryLow),
	})
}
