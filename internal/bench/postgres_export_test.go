package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/storetest"
	"keycard/store"
	"keycard/store/migrate"
	pgstore "keycard/store/postgres"
)

// pgExportBudgetRatio: the access export from PostgreSQL at ≥ 50% of the
// server's own COPY (SELECT …) TO STDOUT WITH CSV of the same rows (issue 13).
const pgExportBudgetRatio = 0.5

// pgCopy copies the bbolt fixture at path into a fresh database on the
// KEYCARD_TEST_DATABASE_URL server with keycard migrate's own COPY path
// (store/migrate), analyses it as autovacuum would on a live database, and
// opens it. Skipped without the variable.
func pgCopy(b *testing.B, path string) *pgstore.DB {
	b.Helper()
	url := storetest.FreshDatabase(b, storetest.PostgresURL(b))
	ctx := context.Background()
	db, err := pgstore.Open(ctx, url, pgstore.Options{MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	src, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	if _, err := migrate.Copy(ctx, src, db, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return db
}

// pgCopyCSV is the baseline: PostgreSQL itself writing the rows the export
// reads (every request created before the period's end, in the export's
// order, every stored column including the encoded request) as CSV, over
// the same pool, into w.
func pgCopyCSV(db *pgstore.DB, end time.Time, w io.Writer) (int64, error) {
	ctx := context.Background()
	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	tag, err := conn.Conn().PgConn().CopyTo(ctx, w, fmt.Sprintf(`COPY (SELECT id, created_ns, state, policy, requester, connector, grp, holds, due_ns, body
		FROM keycard_requests WHERE created_ns < %d ORDER BY created_ns, id) TO STDOUT WITH CSV`, end.UnixNano()))
	return tag.RowsAffected(), err
}

// BenchmarkPostgresExport streams the access export of the world store
// (cur.requests requests and cur.events events, copied into PostgreSQL by
// keycard migrate's path) through handlers.Service.ExportAccess over
// store/postgres, and compares it with the server's own COPY TO STDOUT WITH
// CSV of the same rows, interleaved. Peak heap is sampled during the export,
// at the full size and at a tenth of the rows: bounded memory means the two
// match. KEYCARD_BENCH_SCALE=small runs it over 50,000 rows.
func BenchmarkPostgresExport(b *testing.B) {
	storetest.PostgresURL(b) // skip before building the bbolt fixture
	db := pgCopy(b, world(b))
	set := policies(b)
	svc := handlers.New(adapt.Postgres(db), noConnectors{}, set, access.ClockFunc(func() time.Time { return fixtureNow }), handlers.Options{})
	p := fixtureParams()
	var exportRows, baseRows int
	var exportBytes, baseBytes int
	var exportDur, baseDur time.Duration
	var peak, peakTenth float64
	var allocPerRow float64
	for b.Loop() {
		var sink int
		start := time.Now()
		n, err := pgCopyCSV(db, p.To, countingDiscard(&sink))
		baseDur += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if int(n) != cur.requests {
			b.Fatalf("COPY wrote %d rows, want %d", n, cur.requests)
		}
		baseRows += int(n)
		baseBytes += sink

		tenth := p
		tenth.To = base.Add(history / 10)
		runtime.GC()
		h := startHeapSampler(time.Millisecond)
		if _, err := svc.ExportAccess(countingDiscard(new(int)), tenth); err != nil {
			b.Fatal(err)
		}
		peakTenth = max(peakTenth, h.Peak())

		sink = 0
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h = startHeapSampler(time.Millisecond)
		start = time.Now()
		res, err := svc.ExportAccess(countingDiscard(&sink), p)
		exportDur += time.Since(start)
		peak = max(peak, h.Peak())
		runtime.ReadMemStats(&after)
		if err != nil {
			b.Fatal(err)
		}
		if res.Rows != cur.requests {
			b.Fatalf("export wrote %d rows, want %d", res.Rows, cur.requests)
		}
		allocPerRow = float64(after.TotalAlloc-before.TotalAlloc) / float64(res.Rows)
		exportRows += res.Rows
		exportBytes += sink
	}
	rate := float64(exportRows) / exportDur.Seconds()
	baseRate := float64(baseRows) / baseDur.Seconds()
	ratio := rate / baseRate
	b.ReportMetric(peak, "peak-heap-MiB")
	b.ReportMetric(peakTenth, "peak-heap-tenth-MiB")
	b.ReportMetric(allocPerRow, "alloc-B/row")
	b.ReportMetric(peak*(1<<20)/float64(cur.requests), "peak-heap-B/row")
	report(b, verdict{
		Budget: fmt.Sprintf("≥ %.0f%% of PostgreSQL's COPY (SELECT …) TO STDOUT WITH CSV of the same rows; peak heap < %d MiB", pgExportBudgetRatio*100, exportBudgetHeapMiB),
		Figure: rate, Baseline: baseRate, Unit: "rows/s", Ratio: ratio,
		Met: ratio >= pgExportBudgetRatio && peak < exportBudgetHeapMiB,
		Note: fmt.Sprintf("%d rows, %d events; peak heap %.1f MiB (%.1f MiB at a tenth of the rows), %.0f B allocated a row; CSV %.0f B/row (COPY %.0f B/row)",
			cur.requests, cur.events, peak, peakTenth, allocPerRow, float64(exportBytes)/float64(exportRows), float64(baseBytes)/float64(baseRows)),
	})
}
