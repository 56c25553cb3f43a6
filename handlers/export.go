package handlers

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"keycard/access"
	"keycard/policy"
)

// AccessHeader is the access export's header, in SPEC order.
var AccessHeader = []string{"request_id", "user_name", "user_email", "app", "role", "policy", "requested_at",
	"justification", "requested_duration", "approval_chain", "approvers", "approved_at", "decision", "access_start",
	"access_end", "provisioned_at", "deprovisioned_at", "status", "revocation_reason", "revoked_by", "policy_version"}

// EventsHeader is the events export's header, in SPEC order.
var EventsHeader = []string{"seq", "event_id", "occurred_at", "type", "actor_email", "user_email", "policy",
	"request_id", "detail", "prev_hash", "hash"}

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
	Rows      int
	ByStatus  map[string]int
	FirstSeq  uint64 // audit range covered (events export) or the chain head at generation
	LastSeq   uint64
	HeadSeq   uint64
	HeadHash  string
	Inclusion string
	// CountsColumn names the column ByStatus tallies (extra kinds).
	CountsColumn string
	// Summary holds report-specific figures for the manifest.
	Summary map[string]any
}

// Writer is an RFC 4180 CSV writer that neutralises formula cells: a cell
// beginning with =, +, -, @, tab or carriage return gets a leading ' so a
// spreadsheet shows it as text instead of running it (SPEC "Access export";
// OWASP "CSV Injection").
//
// Its bytes are exactly those of encoding/csv.Writer (comma, LF line ends)
// writing Neutralise(cell), but it neutralises and quotes in one pass over
// each cell into a reused record buffer: the export's budget is half the
// throughput of raw encoding/csv, and going through csv.Writer plus a
// neutralised copy of every row cost a third of the export's time
// (internal/bench BenchmarkExportAccess profile).
type Writer struct {
	w   *bufio.Writer
	rec []byte
}

// writerBuffer is the output buffer: large enough that a million-row export
// makes a few thousand writes, small enough to stay out of the heap budget.
const writerBuffer = 64 << 10

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, writerBuffer)} }

// Write writes one record, neutralising each cell.
func (w *Writer) Write(rec []string) error {
	b := w.rec[:0]
	for i, c := range rec {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCell(b, c)
	}
	b = append(b, '\n')
	w.rec = b
	_, err := w.w.Write(b)
	return err
}

// Flush flushes and reports any write error.
func (w *Writer) Flush() error { return w.w.Flush() }

// formulaStart reports whether a cell starting with c must be neutralised.
func formulaStart(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// appendCell appends Neutralise(c) as encoding/csv writes a field: quoted
// when it holds a comma, quote, CR or LF, starts with a space, or is `\.`;
// inside quotes a quote is doubled and everything else is copied.
func appendCell(b []byte, c string) []byte {
	prefix := c != "" && formulaStart(c[0])
	quote := c == `\.`
	for i := 0; i < len(c) && !quote; i++ {
		switch c[i] {
		case ',', '"', '\r', '\n':
			quote = true
		}
	}
	if !quote && !prefix && c != "" {
		r, _ := utf8.DecodeRuneInString(c)
		quote = unicode.IsSpace(r)
	}
	if !quote {
		if prefix {
			b = append(b, '\'')
		}
		return append(b, c...)
	}
	b = append(b, '"')
	if prefix {
		b = append(b, '\'')
	}
	for {
		i := strings.IndexByte(c, '"')
		if i < 0 {
			b = append(b, c...)
			break
		}
		b = append(b, c[:i+1]...)
		b = append(b, '"')
		c = c[i+1:]
	}
	return append(b, '"')
}

// Neutralise prefixes a formula-looking cell with '.
func Neutralise(c string) string {
	if c == "" {
		return c
	}
	switch c[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + c
	}
	return c
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// lifecycleEnd is when a request's lifecycle ended (zero while it goes on).
func lifecycleEnd(r *access.Request) time.Time {
	switch r.State {
	case access.StateExpired, access.StateRevoked:
		return r.DeprovisionedAt
	case access.StateDenied, access.StateCancelled, access.StateTimedOut:
		return r.DecidedAt
	case access.StateFailed:
		if !r.DecidedAt.IsZero() {
			return r.DecidedAt
		}
		return r.CreatedAt
	}
	return time.Time{}
}

// AccessInclusion states the access export's inclusion rule in words.
const AccessInclusion = "requests whose lifecycle overlaps [from, to): requested before `to` and not ended before `from`"

// ExportAccess streams the access export: one row per request whose
// lifecycle overlaps [From, To), in (requested_at, request_id) order, rows
// read one at a time from the store so memory stays bounded.
func (s *Service) ExportAccess(out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}, Inclusion: AccessInclusion}
	w := NewWriter(out)
	if err := w.Write(AccessHeader); err != nil {
		return res, err
	}
	row := make([]string, len(AccessHeader))
	err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		return tx.ForEachRequest(p.To, func(r *access.Request) error {
			if p.Policy != "" && r.Policy != p.Policy {
				return nil
			}
			if end := lifecycleEnd(r); !end.IsZero() && end.Before(p.From) {
				return nil
			}
			accessRow(r, row)
			res.Rows++
			res.ByStatus[row[17]]++
			return w.Write(row)
		})
	})
	if err != nil {
		return res, err
	}
	return res, w.Flush()
}

// accessRow fills row (len(AccessHeader)) for r.
func accessRow(r *access.Request, row []string) {
	// The approvers' emails joined by ";", as r.Approvers would list them,
	// without building the intermediate slices.
	var approvers strings.Builder
	n := 0
	for i := range r.Steps {
		if st := &r.Steps[i]; st.Decision == access.DecisionApproved {
			if n > 0 {
				approvers.WriteByte(';')
			}
			approvers.WriteString(st.DecidedBy.Email)
			n++
		}
	}
	decision := ""
	approvedAt := ""
	switch r.State {
	case access.StateDenied:
		decision = "denied"
	case access.StatePending, access.StateCancelled, access.StateTimedOut:
	default:
		decision = "approved"
		approvedAt = ts(r.DecidedAt)
	}
	revokedBy := ""
	if r.EndReason == access.ReasonRevoked {
		revokedBy = r.EndedBy.Email
	}
	row[0] = r.ID
	row[1] = r.Requester.Name
	row[2] = r.Requester.Email
	row[3] = r.App
	row[4] = r.Role
	row[5] = r.Policy
	row[6] = ts(r.CreatedAt)
	row[7] = r.Justification
	row[8] = policy.FormatDuration(r.Duration)
	row[9] = ApprovalChain(r)
	row[10] = approvers.String()
	row[11] = approvedAt
	row[12] = decision
	row[13] = ts(r.ProvisionedAt)
	row[14] = ts(r.EndsAt)
	row[15] = ts(r.ProvisionedAt)
	row[16] = ts(r.DeprovisionedAt)
	row[17] = r.ExportStatus()
	row[18] = string(r.EndReason)
	row[19] = revokedBy
	row[20] = r.PolicyVersion
}

// ApprovalChain renders every step: its rule, who was asked, who decided,
// the decision and when, e.g.
// "1. manager; asked: bob@x; approved by bob@x at 2026-01-02T03:04:05Z | 2. …".
func ApprovalChain(r *access.Request) string {
	if len(r.Steps) == 0 {
		if r.State == access.StatePending {
			return "auto"
		}
		return "auto (no human step)"
	}
	var b strings.Builder
	for i, st := range r.Steps {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(". ")
		b.WriteString(st.Rule)
		b.WriteString("; asked: ")
		for j, c := range st.Candidates {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c.Email)
		}
		switch st.Decision {
		case access.DecisionNone:
			if i == r.Current && r.State == access.StatePending {
				b.WriteString("; waiting")
			} else {
				b.WriteString("; not decided")
			}
		default:
			b.WriteString("; ")
			b.WriteString(string(st.Decision))
			b.WriteString(" by ")
			b.WriteString(st.DecidedBy.Email)
			b.WriteString(" at ")
			b.WriteString(ts(st.DecidedAt))
			if st.Comment != "" {
				b.WriteString(" (")
				b.WriteString(st.Comment)
				b.WriteString(")")
			}
		}
		if st.Escalated {
			b.WriteString("; escalated")
		}
	}
	return b.String()
}

// EventsInclusion states the events export's inclusion rule in words.
const EventsInclusion = "audit events whose occurred_at is in [from, to)"

// ExportEvents streams the audit events in [From, To) in sequence order.
func (s *Service) ExportEvents(out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}, Inclusion: EventsInclusion}
	w := NewWriter(out)
	if err := w.Write(EventsHeader); err != nil {
		return res, err
	}
	row := make([]string, len(EventsHeader))
	err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		return tx.EventsBetween(p.From, p.To, func(e access.Event) error {
			if p.Policy != "" && e.Policy != p.Policy {
				return nil
			}
			if res.FirstSeq == 0 {
				res.FirstSeq = e.Seq
			}
			res.LastSeq = e.Seq
			res.Rows++
			res.ByStatus[string(e.Type)]++
			row[0] = strconv.FormatUint(e.Seq, 10)
			row[1] = e.ID
			row[2] = e.Time.UTC().Format(time.RFC3339Nano)
			row[3] = string(e.Type)
			row[4] = e.Actor
			row[5] = e.Subject
			row[6] = e.Policy
			row[7] = e.RequestID
			row[8] = e.Detail
			row[9] = e.PrevHash
			row[10] = e.Hash
			return w.Write(row)
		})
	})
	if err != nil {
		return res, err
	}
	return res, w.Flush()
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
