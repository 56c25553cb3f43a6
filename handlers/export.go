package handlers

import (
	"io"
	"strconv"
	"time"

	"keycard/access"
	"keycard/csvw"
	"keycard/policy"
)

// AccessHeader is the access export's header, in SPEC order.
var AccessHeader = []string{"request_id", "user_name", "user_email", "app", "role", "policy", "requested_at",
	"justification", "requested_duration", "approval_chain", "approvers", "approved_at", "decision", "access_start",
	"access_end", "provisioned_at", "deprovisioned_at", "status", "revocation_reason", "revoked_by", "policy_version"}

// ExportParams select what an export covers: the half-open period
// [From, To) and optionally one policy.
type ExportParams struct {
	Policy   string
	From, To time.Time
	AsOf     time.Time // holders: the moment (zero: now)
	Campaign string    // campaign: its id
}

// ExportResult describes what an export wrote, for its summary and manifest.
type ExportResult struct {
	Rows     int
	ByStatus map[string]int
	FirstSeq uint64 // audit range covered (events export) or the chain head at generation
	LastSeq  uint64
	HeadSeq  uint64
	HeadHash string
	// Summary holds report-specific figures for the manifest.
	Summary map[string]any
	// Window is the seq range of the events in the period (events export).
	Window *SeqWindow
	// Records says how the rows' request records compared with the chain
	// (access export).
	Records *RecordCheck
}

// RecordCheck counts the access export's rows by how their request record
// was held to the audit chain (access.RecordCheck; the export.created event
// records it too).
type RecordCheck = access.RecordCheck

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// AccessInclusion states the access export's inclusion rule in words.
const AccessInclusion = "requests whose lifecycle overlaps [from, to): requested before `to` and not ended before `from`"

// ExportAccess streams the access export: one row per request whose
// lifecycle overlaps [From, To), in (requested_at, request_id) order, rows
// read one at a time from the store so memory stays bounded.
//
// Each row is built straight into the writer's record buffer (accessRow):
// the budget is half the throughput of raw encoding/csv writing finished
// strings from memory (issue 6), and a []string of freshly formatted cells
// cost a quarter of the export's time in allocations (internal/bench
// BenchmarkExportAccess profile).
func (s *Service) ExportAccess(out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}}
	w := csvw.NewWriter(out)
	if err := w.Write(AccessHeader); err != nil {
		return res, err
	}
	var rb accessRowBuilder
	err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		// The first event at or after To: requests first attested from
		// there on are not the export's to reach (complete).
		bound, err := firstSeqFrom(tx, p.To, res.HeadSeq)
		if err != nil {
			return err
		}
		chain, err := chainedRecords(tx, res.HeadSeq, bound)
		if err != nil {
			return err
		}
		res.Records = &RecordCheck{}
		err = tx.ForEachRequest(p.To, func(r *access.Request) error {
			chain.visit(r.ID)
			// Every record reached is held to its attestation, the ones
			// the filter leaves out too: else a record edited to fall
			// outside the filter (another policy, an earlier end) would
			// drop its row unnoticed.
			if err := chain.check(r, &rb.scratch, res.Records); err != nil {
				return err
			}
			if accessExcluded(r, p) {
				return nil
			}
			if r.ChangedSince(p.To) {
				// Something happened at or after the period's end: show the
				// request as it stood then, so a closed period's export never
				// changes (an auditor can re-perform it byte for byte).
				c := r.AsOf(p.To)
				r = &c
			}
			rb.row(w, r)
			res.Rows++
			res.ByStatus[r.ExportStatus()]++
			return w.EndRecord()
		})
		if err != nil {
			return err
		}
		// The creation index is not chained: every request the chain
		// attests in the period must have been reached.
		return chain.complete(p, &rb.scratch)
	})
	if err != nil {
		return res, err
	}
	return res, w.Flush()
}

// accessExcluded reports whether r is outside the access export's
// parameters: another policy, or a lifecycle that ended before the period.
func accessExcluded(r *access.Request, p ExportParams) bool {
	if p.Policy != "" && r.Policy != p.Policy {
		return true
	}
	end := r.LifecycleEnd()
	return !end.IsZero() && end.Before(p.From)
}

// accessRowBuilder holds what building rows reuses: a scratch buffer for
// the formatted cells and the last requested durations' text (a policy
// offers a handful of durations, and policy.FormatDuration goes through fmt).
type accessRowBuilder struct {
	scratch   []byte
	durations map[time.Duration]string
}

// maxCachedDurations bounds the duration cache: a store written by a policy
// file that offered arbitrary durations cannot grow it without bound.
const maxCachedDurations = 256

func (rb *accessRowBuilder) duration(d time.Duration) string {
	if s, ok := rb.durations[d]; ok {
		return s
	}
	s := policy.FormatDuration(d)
	if rb.durations == nil {
		rb.durations = map[time.Duration]string{}
	}
	if len(rb.durations) < maxCachedDurations {
		rb.durations[d] = s
	}
	return s
}

// row appends r's access-export cells (AccessHeader order) to w's record.
func (rb *accessRowBuilder) row(w *csvw.Writer, r *access.Request) {
	decision := ""
	approved := false
	switch {
	case r.Kind == access.KindReviewRemoval:
		decision = "review removal"
	case r.State == access.StateDenied:
		decision = "denied"
	case r.State == access.StatePending || r.State == access.StateCancelled || r.State == access.StateTimedOut:
	default:
		decision = "approved"
		approved = true
	}
	w.Cell(r.ID)
	w.Cell(r.Requester.Name)
	w.Cell(r.Requester.Email)
	w.Cell(r.App)
	w.Cell(r.Role)
	w.Cell(r.Policy)
	w.TimeCell(r.CreatedAt)
	w.Cell(r.Justification)
	w.Cell(rb.duration(r.Duration))
	rb.scratch = appendApprovalChain(rb.scratch[:0], r)
	w.CellBytes(rb.scratch)
	// The approvers' emails joined by ";", as r.Approvers would list them.
	rb.scratch = rb.scratch[:0]
	n := 0
	for i := range r.Steps {
		if st := &r.Steps[i]; st.Decision == access.DecisionApproved {
			if n > 0 {
				rb.scratch = append(rb.scratch, ';')
			}
			rb.scratch = append(rb.scratch, st.DecidedBy.Email...)
			n++
		}
	}
	w.CellBytes(rb.scratch)
	if approved {
		w.TimeCell(r.DecidedAt)
	} else {
		w.Cell("")
	}
	w.SafeCell(decision)
	w.TimeCell(r.AccessStart())
	w.TimeCell(r.AccessEnd())
	w.TimeCell(r.ProvisionedAt)
	w.TimeCell(r.DeprovisionedAt)
	w.Cell(r.ExportStatus())
	w.Cell(string(r.EndReason))
	if r.EndReason == access.ReasonRevoked {
		w.Cell(r.EndedBy.Email)
	} else {
		w.Cell("")
	}
	w.Cell(r.PolicyVersion)
}

// ApprovalChain renders every step: its rule, who was asked, who decided,
// the decision and when, e.g.
// "1. manager; asked: bob@x; approved by bob@x at 2026-01-02T03:04:05Z | 2. …".
func ApprovalChain(r *access.Request) string {
	return string(appendApprovalChain(nil, r))
}

// appendApprovalChain appends ApprovalChain(r) to b: the steps, then how
// the access started when it was not plainly confirmed by the IdP.
func appendApprovalChain(b []byte, r *access.Request) []byte {
	b = appendSteps(b, r)
	if r.StartAssumed {
		b = append(b, " | access start assumed: the first add attempt at "...)
		b = csvw.AppendTS(b, r.StartedAt)
		b = append(b, ", whose outcome keycard could not confirm"...)
	}
	if r.NotOwner {
		b = append(b, " | membership standing: already a member, not added or removed by keycard"...)
	}
	return b
}

// appendSteps appends the approval steps of ApprovalChain(r) to b.
func appendSteps(b []byte, r *access.Request) []byte {
	if r.Kind == access.KindReviewRemoval {
		b = append(b, "not a request: removal of a membership keycard did not grant, decided in an access review by "...)
		return append(b, r.EndedBy.Email...)
	}
	if len(r.Steps) == 0 {
		if r.State == access.StatePending {
			return append(b, "auto"...)
		}
		return append(b, "auto (no human step)"...)
	}
	for i := range r.Steps {
		st := &r.Steps[i]
		if i > 0 {
			b = append(b, " | "...)
		}
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, ". "...)
		b = append(b, st.Rule...)
		b = append(b, "; asked: "...)
		for j := range st.Candidates {
			if j > 0 {
				b = append(b, ", "...)
			}
			b = append(b, st.Candidates[j].Email...)
		}
		switch st.Decision {
		case access.DecisionNone:
			if i == r.Current && r.State == access.StatePending {
				b = append(b, "; waiting"...)
			} else {
				b = append(b, "; not decided"...)
			}
		default:
			b = append(b, "; "...)
			b = append(b, st.Decision...)
			b = append(b, " by "...)
			b = append(b, st.DecidedBy.Email...)
			if st.OnBehalfOf.Email != "" {
				// "bob@x for ann@x (delegation DLG-3 from ann@x to bob@x)"
				b = append(b, " for "...)
				b = append(b, st.OnBehalfOf.Email...)
				b = append(b, " (delegation "...)
				b = append(b, st.Delegation...)
				b = append(b, " from "...)
				b = append(b, st.OnBehalfOf.Email...)
				b = append(b, " to "...)
				b = append(b, st.DecidedBy.Email...)
				b = append(b, ')')
			}
			b = append(b, " at "...)
			b = csvw.AppendTS(b, st.DecidedAt)
			if st.Comment != "" {
				b = append(b, " ("...)
				b = append(b, st.Comment...)
				b = append(b, ')')
			}
			if st.MFAFactor != "" {
				b = append(b, "; MFA-verified ("...)
				b = append(b, st.MFAFactor...)
				b = append(b, ')')
			}
		}
		if st.MFA && st.MFAFactor == "" && st.Decision != access.DecisionDenied {
			b = append(b, "; MFA required"...)
		}
		if st.Escalated {
			b = append(b, "; escalated"...)
		}
	}
	return b
}

// DefaultPeriod is the export window when no dates are given (SPEC: the last
// 90 days).
const DefaultPeriod = 90 * 24 * time.Hour

// Period turns the user's dates (YYYY-MM-DD, both optional, `to` inclusive)
// into the half-open UTC interval [From, To). The default is the 90 days up to
// and including today.
func Period(from, to string, now time.Time) (ExportParams, error) {
	var p ExportParams
	today := now.UTC().Truncate(24 * time.Hour)
	p.To = today.Add(24 * time.Hour)
	if to != "" {
		t, err := time.Parse(time.DateOnly, to)
		if err != nil {
			return p, access.Errorf(access.CodeInvalid, "%q is not a date like 2026-01-31", to)
		}
		p.To = t.Add(24 * time.Hour)
	}
	p.From = p.To.Add(-DefaultPeriod)
	if from != "" {
		f, err := time.Parse(time.DateOnly, from)
		if err != nil {
			return p, access.Errorf(access.CodeInvalid, "%q is not a date like 2026-01-01", from)
		}
		p.From = f
	}
	if !p.From.Before(p.To) {
		return p, access.Errorf(access.CodeInvalid, "the period starts (%s) after it ends (%s)", p.From.Format(time.DateOnly), p.To.Add(-24*time.Hour).Format(time.DateOnly))
	}
	return p, nil
}
