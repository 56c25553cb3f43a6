package bench

import (
	"fmt"
	"testing"

	"keycard/internal/storetest"
)

// BenchmarkPostgresExpirySweep is BenchmarkExpirySweep on PostgreSQL: the
// same two fixtures (10 due among cur.expiryHigh active grants, and among
// ten times fewer), copied into two databases by keycard migrate's path,
// swept alternately. O(due) means the ratio stays near 1.
func BenchmarkPostgresExpirySweep(b *testing.B) {
	storetest.PostgresURL(b) // skip before building the bbolt fixtures
	lowPath, highPath := expiryStores(b)
	low, high := pgCopy(b, lowPath), pgCopy(b, highPath)
	basePer, per := alternate(b, 500, func() { sweep(b, low.View) }, func() { sweep(b, high.View) })
	ratio := per / basePer
	report(b, verdict{
		Budget: fmt.Sprintf("flat in the active count (ratio ≤ %.1f)", expiryFlat),
		Figure: per, Baseline: basePer, Unit: "µs/sweep", Ratio: ratio,
		Met:  ratio <= expiryFlat,
		Note: fmt.Sprintf("%d due among %d active (baseline: among %d), one read-only transaction each; ratio = figure/baseline", dueCount, cur.expiryHigh, cur.expiryLow),
	})
}
