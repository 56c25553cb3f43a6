package bench

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"keycard/handlers"
	"keycard/policy"
	"keycard/store"
)

// exportBudgetRatio and exportBudgetHeapMiB are the export budget:
// at least half the throughput of raw encoding/csv, peak heap under 64 MiB.
const (
	exportBudgetRatio   = 0.5
	exportBudgetHeapMiB = 64
)

// fixtureParams covers the whole fixture history.
func fixtureParams() handlers.ExportParams {
	return handlers.ExportParams{From: base, To: fixtureNow.Add(24 * time.Hour)}
}

// countingDiscard discards what is written and counts CSV rows (newlines are
// an upper bound: quoted cells may hold some; the benchmarks only use it as a
// sink and take the row count from the export's result).
type discard struct{ n *int }

func (d discard) Write(p []byte) (int, error) { *d.n += len(p); return len(p), nil }

func countingDiscard(n *int) io.Writer { return discard{n} }

// exportAccess runs the real access export (handlers.Service.ExportAccess over
// the real store) into w and returns the number of rows.
func exportAccess(db *store.DB, set *policy.Set, p handlers.ExportParams, w io.Writer) (int, error) {
	res, err := service(db, set).ExportAccess(w, p)
	return res.Rows, err
}

var errEnough = errors.New("enough rows")

// memoryRows returns the first limit data rows of the access export exactly
// as the export writes them (read back through encoding/csv), so that the
// baseline writes the same rows from memory.
func memoryRows(db *store.DB, set *policy.Set, limit int) ([][]string, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := exportAccess(db, set, fixtureParams(), pw)
		pw.CloseWithError(err)
		done <- err
	}()
	r := csv.NewReader(pr)
	r.ReuseRecord = false
	if _, err := r.Read(); err != nil { // header
		return nil, err
	}
	var rows [][]string
	for len(rows) < limit {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, rec)
	}
	pr.CloseWithError(errEnough)
	if err := <-done; err != nil && !errors.Is(err, errEnough) && !errors.Is(err, io.ErrClosedPipe) {
		return nil, err
	}
	return rows, nil
}

// rawCSV writes n rows cycling through rows with encoding/csv: the floor an
// export cannot beat.
func rawCSV(w io.Writer, rows [][]string, n int) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(handlers.AccessHeader); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := cw.Write(rows[i%len(rows)]); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// heapSampler records the peak of the heap in use (runtime/metrics: heap
// objects plus unused heap spans, which is MemStats.HeapInuse without a
// stop-the-world) while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan uint64
}

var heapMetrics = []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes"}

func heapInUse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

func startHeapSampler(every time.Duration) *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan uint64, 1)}
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		peak := heapInUse(s)
		for {
			select {
			case <-h.stop:
				h.done <- max(peak, heapInUse(s))
				return
			case <-t.C:
				peak = max(peak, heapInUse(s))
			}
		}
	}()
	return h
}

// Peak stops the sampler and returns the peak in MiB.
func (h *heapSampler) Peak() float64 {
	close(h.stop)
	return float64(<-h.done) / (1 << 20)
}

// BenchmarkExportAccess streams the access export of the whole world store
// (cur.requests rows) through handlers.Service.ExportAccess and compares its
// throughput with raw encoding/csv writing the same rows from memory. Peak
// heap is sampled during the export after the baseline's rows are dropped,
// at the full size and at a tenth of it: bounded memory means the two match.
func BenchmarkExportAccess(b *testing.B) {
	path := world(b)
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	set := policies(b)
	var exportRows, baseRows int
	var exportDur, baseDur time.Duration
	var peak, peakTenth float64
	for b.Loop() {
		rows, err := memoryRows(db, set, min(cur.requests, 100_000))
		if err != nil {
			b.Fatal(err)
		}
		var sink int
		start := time.Now()
		if err := rawCSV(countingDiscard(&sink), rows, cur.requests); err != nil {
			b.Fatal(err)
		}
		baseDur += time.Since(start)
		baseRows += cur.requests
		rows = nil
		_ = rows

		tenth := fixtureParams()
		tenth.To = base.Add(history / 10)
		runtime.GC()
		h := startHeapSampler(time.Millisecond)
		if _, err := exportAccess(db, set, tenth, countingDiscard(&sink)); err != nil {
			b.Fatal(err)
		}
		peakTenth = max(peakTenth, h.Peak())

		runtime.GC()
		h = startHeapSampler(time.Millisecond)
		start = time.Now()
		n, err := exportAccess(db, set, fixtureParams(), countingDiscard(&sink))
		exportDur += time.Since(start)
		peak = max(peak, h.Peak())
		if err != nil {
			b.Fatal(err)
		}
		if n != cur.requests {
			b.Fatalf("export wrote %d rows, want %d", n, cur.requests)
		}
		exportRows += n
	}
	rate := float64(exportRows) / exportDur.Seconds()
	baseRate := float64(baseRows) / baseDur.Seconds()
	ratio := rate / baseRate
	b.ReportMetric(peak, "peak-heap-MiB")
	b.ReportMetric(peakTenth, "peak-heap-tenth-MiB")
	report(b, verdict{
		Budget: fmt.Sprintf("≥ %.0f%% of raw encoding/csv; peak heap < %d MiB", exportBudgetRatio*100, exportBudgetHeapMiB),
		Figure: rate, Baseline: baseRate, Unit: "rows/s", Ratio: ratio,
		Met:  ratio >= exportBudgetRatio && peak < exportBudgetHeapMiB,
		Note: fmt.Sprintf("%d rows; peak heap %.1f MiB (%.1f MiB at a tenth of the rows)", cur.requests, peak, peakTenth),
	})
}
