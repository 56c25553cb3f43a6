package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/storetest"
	pgstore "keycard/store/postgres"

	"github.com/jackc/pgx/v5"
)

// pgAppendBudgetRatio: a state change with its event on PostgreSQL at ≥ 50%
// of a raw pgx single-row INSERT + commit on the same server (issue 13).
const pgAppendBudgetRatio = 0.5

// BenchmarkPostgresStateChange compares one state change as handlers makes it
// (re-read, CAS put with its index rows, audit append under the chain-head
// lock, one SERIALIZABLE commit) with a raw pgx transaction inserting one
// request-sized row, interleaved on the same server (KEYCARD_TEST_DATABASE_URL;
// skipped without it).
func BenchmarkPostgresStateChange(b *testing.B) {
	url := storetest.FreshDatabase(b, storetest.PostgresURL(b))
	ctx := context.Background()
	db, err := pgstore.Open(ctx, url, pgstore.Options{MaxConns: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	pool := db.Pool()
	if _, err := pool.Exec(ctx, "CREATE TABLE bench_raw (k bigint PRIMARY KEY, v bytea NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	var fsync string
	_ = pool.QueryRow(ctx, "SHOW fsync").Scan(&fsync)
	req := fixtureRequest(0, 1)
	if err := db.Update(fixtureNow, func(tx *pgstore.Tx) error { return tx.PutRequest(req) }); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 600) // about a stored request
	var rawDur, storeDur time.Duration
	var n, key int
	for b.Loop() {
		for i := 0; i < appendRounds; i++ {
			key++
			start := time.Now()
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO bench_raw (k, v) VALUES ($1, $2)", key, value)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			mid := time.Now()
			if err := db.Update(fixtureNow, func(tx *pgstore.Tx) error { return pgStateChange(tx, req.ID, key) }); err != nil {
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
		Budget: fmt.Sprintf("≥ %.0f%% of raw pgx single-row INSERT + commit", pgAppendBudgetRatio*100),
		Figure: rate, Baseline: rawRate, Unit: "commits/s", Ratio: rate / rawRate,
		Met:  rate/rawRate >= pgAppendBudgetRatio,
		Note: fmt.Sprintf("%d commits each, server fsync=%s; state change = read + CAS update + waiting rows + head lock + event + head", n, fsync),
	})
}

// pgStateChange is stateChange through the PostgreSQL store.
func pgStateChange(tx *pgstore.Tx, id string, i int) error {
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
