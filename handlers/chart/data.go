package chart

import (
	"sort"
	"time"

	"keycard/access"
)

// AccessHours is how long one person held privileged access under one
// policy within the period.
type AccessHours struct {
	Person string // the requester's email (or display name)
	Policy string
	Hours  float64
}

// Decision is one request's wait from submission to its final decision.
type Decision struct {
	Policy string
	Wait   time.Duration
}

// Data is everything Report draws.
type Data struct {
	Title    string    // e.g. "Privileged access, 2026-02-23 to 2026-03-02"
	From, To time.Time // the period, shown in the subtitles (UTC dates)
	Hours    []AccessHours
	Waits    []Decision
}

// FromRequests derives the chart data for [from, to) from requests (the
// admin report's grants, or every request the compliance package covers):
//
//   - hours: each privileged grant's time with access, from the IdP
//     confirming the add (ProvisionedAt) to the IdP confirming the removal
//     (DeprovisionedAt; else EndedAt; else EndsAt; else still held: to),
//     clipped to the period;
//   - waits: each request decided inside the period by a person (approved or
//     denied after at least one approval step; not cancelled, timed out or
//     auto-approved), from CreatedAt to DecidedAt.
//
// Review-removal records (Kind != "") are not requests and count for neither.
func FromRequests(reqs []access.Request, from, to time.Time) Data {
	hours := map[[2]string]float64{}
	var d Data
	d.From, d.To = from, to
	for i := range reqs {
		r := &reqs[i]
		if r.Kind != "" {
			continue
		}
		if r.Privileged && !r.ProvisionedAt.IsZero() {
			end := to
			for _, t := range []time.Time{r.DeprovisionedAt, r.EndedAt, r.EndsAt} {
				if !t.IsZero() {
					end = t
					break
				}
			}
			start := r.ProvisionedAt
			if start.Before(from) {
				start = from
			}
			if end.After(to) {
				end = to
			}
			if end.After(start) {
				hours[[2]string{r.Requester.Email, r.Policy}] += end.Sub(start).Hours()
			}
		}
		if humanDecision(r) && !r.DecidedAt.Before(from) && r.DecidedAt.Before(to) {
			d.Waits = append(d.Waits, Decision{Policy: r.Policy, Wait: r.DecidedAt.Sub(r.CreatedAt)})
		}
	}
	for k, h := range hours {
		d.Hours = append(d.Hours, AccessHours{Person: k[0], Policy: k[1], Hours: h})
	}
	sort.Slice(d.Hours, func(i, j int) bool {
		a, b := d.Hours[i], d.Hours[j]
		if a.Person != b.Person {
			return a.Person < b.Person
		}
		return a.Policy < b.Policy
	})
	return d
}

// humanDecision: a person approved or denied the request.
func humanDecision(r *access.Request) bool {
	if r.DecidedAt.IsZero() || len(r.Steps) == 0 {
		return false
	}
	switch r.State {
	case access.StateCancelled, access.StateTimedOut, access.StatePending:
		return false
	}
	return true
}

// quantile is the q-quantile of sorted values by linear interpolation
// between closest ranks (Hyndman & Fan type 7, numpy's default).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(pos)
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (pos-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// PolicyWait is the median and p90 wait of one policy's decisions.
type PolicyWait struct {
	Policy      string
	N           int
	Median, P90 time.Duration
}

// Summarize computes each policy's median and p90 wait, by policy name.
func Summarize(waits []Decision) []PolicyWait {
	by := map[string][]float64{}
	for _, w := range waits {
		by[w.Policy] = append(by[w.Policy], float64(w.Wait))
	}
	out := make([]PolicyWait, 0, len(by))
	for p, vs := range by {
		sort.Float64s(vs)
		out = append(out, PolicyWait{Policy: p, N: len(vs),
			Median: time.Duration(quantile(vs, 0.5)), P90: time.Duration(quantile(vs, 0.9))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Policy < out[j].Policy })
	return out
}
