package bench

import (
	"fmt"
	"testing"
	"time"

	"keycard/access"
	"keycard/store"
)

// Expiry budget: with 10 grants due, a sweep finds them in under 1 ms,
// whatever the number of active grants.
const (
	expiryBudget = time.Millisecond
	// expiryFlat is how much slower the sweep over ten times the active
	// grants may be and still count as independent of the active count.
	expiryFlat = 1.5
)

// sweep is what the scheduler reads each tick: the due requests, decoded,
// in either store (view is its View).
func sweep[Tx interface {
	Due(time.Time, int) ([]access.Request, error)
}](b *testing.B, view func(func(Tx) error) error) {
	err := view(func(tx Tx) error {
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

// alternate runs low and high sweeps times each, alternately, per b.Loop
// iteration and returns the mean time of one sweep of each, in µs.
func alternate(b *testing.B, sweeps int, low, high func()) (lowPer, highPer float64) {
	var lowDur, highDur time.Duration
	var n int
	for b.Loop() {
		for i := 0; i < sweeps; i++ {
			start := time.Now()
			low()
			mid := time.Now()
			high()
			highDur += time.Since(mid)
			lowDur += mid.Sub(start)
			n++
		}
	}
	return float64(lowDur.Microseconds()) / float64(n), float64(highDur.Microseconds()) / float64(n)
}

// BenchmarkExpirySweep finds the 10 due grants among cur.expiryHigh active
// ones and, as its baseline, among ten times fewer, alternating between the
// two stores.
func BenchmarkExpirySweep(b *testing.B) {
	lowPath, highPath := expiryStores(b)
	open := func(path string) *store.DB {
		db, err := store.Open(path, store.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	}
	low, high := open(lowPath), open(highPath)
	basePer, per := alternate(b, 2000, func() { sweep(b, low.View) }, func() { sweep(b, high.View) })
	ratio := per / basePer
	report(b, verdict{
		Budget: fmt.Sprintf("< %d µs a sweep, flat in the active count (ratio ≤ %.1f)", expiryBudget.Microseconds(), expiryFlat),
		Figure: per, Baseline: basePer, Unit: "µs/sweep", Ratio: ratio,
		Met:  time.Duration(per*1000) < expiryBudget && ratio <= expiryFlat,
		Note: fmt.Sprintf("%d due among %d active (baseline: among %d); ratio = figure/baseline", dueCount, cur.expiryHigh, cur.expiryLow),
	})
}
