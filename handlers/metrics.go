package handlers

import (
	"maps"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"keycard/access"
)

// Buckets (seconds) of the latency histograms: from a click to hours.
var latencyBuckets = []float64{0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// Metrics are the service's operational instruments, registered in a
// registry the Service owns: tests run several services in one process, so
// nothing goes in client_golang's global default registry.
type Metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec // submissions by outcome: submitted or the refusal code
	IdPErrors prometheus.Counter
	Approval  prometheus.Histogram // request submitted -> final approval (seconds)
	Provision prometheus.Histogram // final approval -> IdP confirmed (seconds)
	lastIdPOK atomic.Int64
}

func newMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keycard_requests_total",
			Help: "Access requests submitted, by outcome (submitted or the refusal code)."}, []string{"outcome"}),
		IdPErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "keycard_idp_errors_total",
			Help: "Failed identity-provider calls by the provisioning worker."}),
		Approval: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "keycard_approval_seconds",
			Help: "Time from submission to the final human approval.", Buckets: latencyBuckets}),
		Provision: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "keycard_provisioning_seconds",
			Help: "Time from final approval to the IdP confirming the membership.", Buckets: latencyBuckets}),
	}
	// "submitted" exists from the start, so rate() has a series before the
	// first request.
	m.requests.WithLabelValues("submitted")
	m.registry.MustRegister(m.requests, m.IdPErrors, m.Approval, m.Provision,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) outcome(o string) { m.requests.WithLabelValues(o).Inc() }

// observation is a value a transaction body measured for a histogram,
// recorded only once the transaction commits: the body clears it first, so
// an attempt the store rolls back and runs again (a PostgreSQL
// serialization retry) is not counted, and a retried one is counted once.
type observation struct {
	v   float64
	set bool
}

func (o *observation) observe(v float64) { o.v, o.set = v, true }

// record observes the value in h when the transaction committed (err nil).
func (o *observation) record(h prometheus.Observer, err error) {
	if err == nil && o.set {
		h.Observe(o.v)
	}
}

// Registry is the service's Prometheus registry: the counters, histograms
// and the Go runtime and process collectors. The store's values are added
// per scrape by MetricsHandler.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

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

// MetricsHandler serves /metrics: the service's registry plus the values
// ScrapeCollector reads at scrape time. jobs are the scheduled jobs whose
// last success is reported (the "job.NAME.success" cursors); connected is
// the Slack socket's state (nil: keycard runs without a socket, and the
// gauge is left out).
func (s *Service) MetricsHandler(jobs []string, connected func() bool) http.Handler {
	scrape := prometheus.NewRegistry()
	scrape.MustRegister(s.ScrapeCollector(jobs, connected))
	g := prometheus.Gatherers{s.metrics.registry, scrape}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

// ScrapeCollector reads the store's gauges in one read transaction per
// scrape (index reads only), so a scrape every 15–60 s costs nothing
// noticeable.
func (s *Service) ScrapeCollector(jobs []string, connected func() bool) prometheus.Collector {
	return &scrapeCollector{s: s, jobs: jobs, connected: connected}
}

var (
	descOutboxDepth = prometheus.NewDesc("keycard_outbox_depth", "Provisioning operations waiting in the outbox.", nil, nil)
	descOutboxAge   = prometheus.NewDesc("keycard_outbox_oldest_age_seconds", "Age of the oldest queued provisioning operation (0 when empty).", nil, nil)
	descActive      = prometheus.NewDesc("keycard_active_grants", "Active grants by policy.", []string{"policy"}, nil)
	descPending     = prometheus.NewDesc("keycard_pending_requests", "Requests waiting for a decision, by policy.", []string{"policy"}, nil)
	descAuditHead   = prometheus.NewDesc("keycard_audit_events", "Sequence number of the newest audit event.", nil, nil)
	descJob         = prometheus.NewDesc("keycard_job_last_success_timestamp_seconds", "Unix time of each scheduled job's last success.", []string{"job"}, nil)
	descExpiryLag   = prometheus.NewDesc("keycard_expiry_lag_seconds", "How far past its end the most overdue active grant is (0 when none).", nil, nil)
	descSocket      = prometheus.NewDesc("keycard_slack_socket_connected", "1 while the Slack Socket Mode connection is up, else 0.", nil, nil)
	descStreamLag   = prometheus.NewDesc("keycard_audit_stream_lag_events", "Audit events the SIEM receiver has not acknowledged yet (only with KEYCARD_AUDIT_STREAM_URL).", nil, nil)
	descStreamAge   = prometheus.NewDesc("keycard_audit_stream_oldest_undelivered_age_seconds", "Age of the oldest audit event not yet delivered to the SIEM (0 when caught up).", nil, nil)
	descLeader      = prometheus.NewDesc("keycard_leader", "1 while this replica leads (runs the scheduler, the outbox worker, the notifier and the other singleton work), 0 on a standby; always 1 with bbolt.", nil, nil)
	descLeaseAge    = prometheus.NewDesc("keycard_lease_age_seconds", "Seconds since this replica last read or renewed the leader lease in PostgreSQL (grows while the database is unreachable; 0 with bbolt).", nil, nil)
	descStreamFail  = prometheus.NewDesc("keycard_audit_stream_failures_total", "Failed deliveries to the SIEM receiver since start.", nil, nil)
)

// expiryLagScan bounds the Due index entries read per scrape for the
// expiry lag: the index is ordered by due time, so the first entries hold
// the most overdue grants, and a scrape stays cheap however far behind
// the expiry worker is.
const expiryLagScan = 256

type scrapeCollector struct {
	s         *Service
	jobs      []string
	connected func() bool
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOutboxDepth, descOutboxAge, descActive, descPending, descAuditHead, descJob, descExpiryLag, descLeader, descLeaseAge} {
		ch <- d
	}
	if c.connected != nil {
		ch <- descSocket
	}
	for _, d := range []*prometheus.Desc{descStreamLag, descStreamAge, descStreamFail} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.connected != nil {
		up := 0.0
		if c.connected() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descSocket, prometheus.GaugeValue, up)
	}
	// The role comes from the lease's clock, not the store: it is reported
	// even when the database is not.
	lead := 0.0
	if c.s.lead.IsLeader() {
		lead = 1
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, lead)
	ch <- prometheus.MustNewConstMetric(descLeaseAge, prometheus.GaugeValue, c.s.lead.Age().Seconds())
	g, err := c.s.readGauges(c.jobs)
	if err != nil {
		// The scrape fails (HTTP 500) rather than report zeros that look healthy.
		ch <- prometheus.NewInvalidMetric(descOutboxDepth, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descOutboxDepth, float64(g.outboxDepth))
	age := 0.0
	if g.outboxDepth > 0 && !g.outboxOldest.IsZero() {
		age = g.now.Sub(g.outboxOldest).Seconds()
	}
	gauge(descOutboxAge, age)
	for _, k := range slices.Sorted(maps.Keys(g.activeByPolicy)) {
		gauge(descActive, float64(g.activeByPolicy[k]), k)
	}
	for _, k := range slices.Sorted(maps.Keys(g.pendingByPolicy)) {
		gauge(descPending, float64(g.pendingByPolicy[k]), k)
	}
	gauge(descAuditHead, float64(g.auditHead))
	for _, k := range slices.Sorted(maps.Keys(g.jobs)) {
		gauge(descJob, float64(g.jobs[k].Unix()), k)
	}
	gauge(descExpiryLag, g.expiryLag.Seconds())
	if lag, ok, err := c.s.StreamLag(); ok {
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descStreamLag, err)
			return
		}
		gauge(descStreamLag, float64(lag.Events))
		gauge(descStreamAge, lag.Oldest.Seconds())
		ch <- prometheus.MustNewConstMetric(descStreamFail, prometheus.CounterValue, float64(lag.Failures))
	}
}

// gauges are values read from the store at scrape time.
type gauges struct {
	now             time.Time
	outboxDepth     int
	outboxOldest    time.Time
	activeByPolicy  map[string]int
	pendingByPolicy map[string]int
	auditHead       uint64
	jobs            map[string]time.Time // last success of each scheduled job
	expiryLag       time.Duration
}

// readGauges reads the gauges in one read transaction (index reads only).
func (s *Service) readGauges(jobs []string) (gauges, error) {
	g := gauges{now: s.clock.Now(), jobs: map[string]time.Time{}}
	err := s.store.View(func(tx Tx) error {
		var err error
		if g.outboxDepth, g.outboxOldest, err = tx.OutboxStats(); err != nil {
			return err
		}
		if g.activeByPolicy, err = tx.CountInState(access.StateActive); err != nil {
			return err
		}
		if g.pendingByPolicy, err = tx.CountInState(access.StatePending); err != nil {
			return err
		}
		g.auditHead, _, _ = tx.Head()
		for _, j := range jobs {
			v, err := tx.Cursor("job." + j + ".success")
			if err != nil {
				return err
			}
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				g.jobs[j] = t
			}
		}
		// An active grant's due time is at or before its end, so every
		// grant past its end is in Due(now).
		due, err := tx.Due(g.now, expiryLagScan)
		if err != nil {
			return err
		}
		for _, r := range due {
			if r.State == access.StateActive && !r.EndsAt.IsZero() && r.EndsAt.Before(g.now) {
				g.expiryLag = max(g.expiryLag, g.now.Sub(r.EndsAt))
			}
		}
		return nil
	})
	return g, err
}
