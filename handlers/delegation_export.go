package handlers

import (
	"context"
	"io"
	"strings"

	"keycard/access"
	"keycard/csvw"
)

// KindDelegations is the delegations export's kind (`/export delegations
// [from] [to]`, `keycard export --kind delegations`): every delegation,
// who handed their approvals to whom, from when until when, how it ended,
// and which decisions the delegate took under it (SOC 2 CC6.2/CC6.3: who
// decided for whom).
const KindDelegations = "delegations"

// DelegationsHeader is the delegations export's header.
var DelegationsHeader = []string{"delegation_id", "delegator_email", "delegator_name", "delegate_email", "delegate_name", "reason",
	"created_at", "until", "ended_at", "end_reason", "ended_by", "status", "decisions"}

// delegationsInclusion states the delegations export's inclusion rule.
const delegationsInclusion = "delegations in force at some moment of [from, to) (the whole history without dates): created before `to` and not ended before `from`, " +
	"in creation order; status (in_force or ended) and ended_at as recorded when the export was generated, an expiry recorded at the delegation's end date"

func (s *Service) exportDelegations(_ context.Context, out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}}
	now := s.clock.Now()
	var all []access.Delegation
	if err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		var err error
		all, err = allDelegations(tx)
		return err
	}); err != nil {
		return res, err
	}
	w := csvw.NewWriter(out)
	if err := w.Write(DelegationsHeader); err != nil {
		return res, err
	}
	for i := range all {
		d := &all[i]
		if !p.To.IsZero() && !d.CreatedAt.Before(p.To) {
			continue
		}
		if !p.From.IsZero() && d.End().Before(p.From) {
			continue
		}
		if p.Policy != "" {
			continue // delegations belong to no policy
		}
		status := d.Status(now)
		res.Rows++
		res.ByStatus[status]++
		ended := ""
		if !d.EndedAt.IsZero() {
			ended = ts(d.EndedAt)
		}
		if err := w.Write([]string{d.ID, d.From.Email, d.From.Name, d.To.Email, d.To.Name, d.Reason,
			ts(d.CreatedAt), ts(d.Until), ended, d.EndReason, d.EndedBy, status, strings.Join(d.Decisions, "; ")}); err != nil {
			return res, err
		}
	}
	return res, w.Flush()
}
