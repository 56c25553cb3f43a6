package handlers

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"keycard/access"
)

// Buckets (seconds) of the latency histograms: from a click to hours.
var latencyBuckets = []float64{0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// Histogram is a fixed-bucket latency histogram (Prometheus semantics:
// cumulative buckets, sum and count).
type Histogram struct {
	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func newHistogram() *Histogram { return &Histogram{counts: make([]uint64, len(latencyBuckets)+1)} }

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	v := d.Seconds()
	i := sort.SearchFloat64s(latencyBuckets, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.n++
	h.mu.Unlock()
}

// HistogramSnapshot is a histogram's state: upper bounds with cumulative
// counts (the last bound is +Inf), the sum and the count.
type HistogramSnapshot struct {
	Bounds     []float64
	Cumulative []uint64
	Sum        float64
	Count      uint64
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := HistogramSnapshot{Bounds: latencyBuckets, Sum: h.sum, Count: h.n}
	var c uint64
	for _, n := range h.counts {
		c += n
		s.Cumulative = append(s.Cumulative, c)
	}
	return s
}

// Metrics are the service's operational counters.
type Metrics struct {
	mu        sync.Mutex
	outcomes  map[string]uint64 // submissions by outcome: submitted or the refusal code
	IdPErrors atomic.Uint64
	Approval  *Histogram // request submitted -> final approval
	Provision *Histogram // final approval -> IdP confirmed
	lastIdPOK atomic.Int64
}

func newMetrics() *Metrics {
	return &Metrics{outcomes: map[string]uint64{}, Approval: newHistogram(), Provision: newHistogram()}
}

func (m *Metrics) outcome(o string) {
	m.mu.Lock()
	m.outcomes[o]++
	m.mu.Unlock()
}

// Outcomes copies the submission counters by outcome.
func (m *Metrics) Outcomes() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, len(m.outcomes))
	for k, v := range m.outcomes {
		out[k] = v
	}
	return out
}

// IdPAnswered records a successful IdP call at t (for readiness).
func (m *Metrics) IdPAnswered(t time.Time) { m.lastIdPOK.Store(t.UnixNano()) }

// LastIdPAnswer is when the IdP last answered successfully (zero: never).
func (m *Metrics) LastIdPAnswer() time.Time {
	if n := m.lastIdPOK.Load(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Time{}
}

// Metrics returns the service's counters.
func (s *Service) Metrics() *Metrics { return s.metrics }

// Gauges are values read from the store at scrape time.
type Gauges struct {
	OutboxDepth     int
	OutboxOldest    time.Time
	ActiveByPolicy  map[string]int
	PendingByPolicy map[string]int
	AuditHead       uint64
	Jobs            map[string]time.Time // last success of each scheduled job
}

// ReadGauges reads the gauges in one read transaction (index reads only).
func (s *Service) ReadGauges(jobs []string) (Gauges, error) {
	g := Gauges{Jobs: map[string]time.Time{}}
	err := s.store.View(func(tx Tx) error {
		var err error
		if g.OutboxDepth, g.OutboxOldest, err = tx.OutboxStats(); err != nil {
			return err
		}
		if g.ActiveByPolicy, err = tx.CountInState(access.StateActive); err != nil {
			return err
		}
		if g.PendingByPolicy, err = tx.CountInState(access.StatePending); err != nil {
			return err
		}
		g.AuditHead, _, _ = tx.Head()
		for _, j := range jobs {
			v, err := tx.Cursor("job." + j + ".success")
			if err != nil {
				return err
			}
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				g.Jobs[j] = t
			}
		}
		return nil
	})
	return g, err
}
