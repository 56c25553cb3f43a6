package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"keycard/policy"
	"keycard/store"
)

// startBudget is the start-up budget.
const startBudget = time.Second

// start is keycard serve up to "ready", as main.run does it, less the network:
// parse the policy file, open the store (fsync on), build the service, audit
// the policy in force, and run the scheduler's and the worker's first catch-up
// pass (what is due, what the outbox holds). It returns when keycard could
// take its first click.
func start(b *testing.B, path string, file []byte) time.Duration {
	b.Helper()
	begin := time.Now()
	set, err := policy.Parse("policy.yaml", file)
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	svc := service(db, set)
	if err := svc.RecordPolicyLoaded("keycard"); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Tick(context.Background()); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.RunOutbox(context.Background()); err != nil {
		b.Fatal(err)
	}
	ready := time.Since(begin)
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	return ready
}

// BenchmarkStart starts keycard on the world store (cur.events events,
// cur.requests requests of which cur.active active grants) and, as the
// baseline, on an empty store, alternating. Equal times mean start-up reads
// no data set.
func BenchmarkStart(b *testing.B) {
	full := world(b)
	empty := filepath.Join(b.TempDir(), "empty.db")
	file := policyFile(cur.policies)
	const starts = 5
	var fullDur, emptyDur time.Duration
	var worst time.Duration
	var n int
	for b.Loop() {
		for i := 0; i < starts; i++ {
			emptyDur += start(b, empty, file)
			d := start(b, full, file)
			fullDur += d
			worst = max(worst, d)
			n++
		}
	}
	per := fullDur.Seconds() * 1000 / float64(n)
	basePer := emptyDur.Seconds() * 1000 / float64(n)
	report(b, verdict{
		Budget: fmt.Sprintf("ready < %d ms", startBudget.Milliseconds()),
		Figure: per, Baseline: basePer, Unit: "ms", Ratio: per / basePer,
		Met: worst < startBudget,
		Note: fmt.Sprintf("%d events, %d requests (%d active), %d policies vs an empty store; slowest start %.1f ms; warm page cache",
			cur.events, cur.requests, cur.active, cur.policies, worst.Seconds()*1000),
	})
}
