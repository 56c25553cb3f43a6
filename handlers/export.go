package handlers

import (
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

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
	// Window is the seq range of the events in the period (events export).
	Window *SeqWindow
	// Records says how the rows' request records compared with the chain
	// (access export).
	Records *RecordCheck
}

// RecordCheck counts the access export's rows by how their request record
// was held to the audit chain: Checked rows equal the record the last
// chained event about the request attested; Unattested rows' requests have
// no event carrying a record digest (written by a keycard before issue 10),
// so only the chain's own events vouch for them. A record that differs from
// its attestation is never counted: the export fails, naming the request.
type RecordCheck struct {
	Checked    int `json:"checked"`
	Unattested int `json:"unattested"`
}

// SeqWindow is the range of audit seqs an events export walked: every event
// from FirstSeq to LastSeq, each following the previous one (Gapless), is
// in the period; the rows are those of them that pass the policy filter.
type SeqWindow struct {
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Gapless  bool   `json:"gapless"`
}

// Writer is an RFC 4180 CSV writer that neutralises formula cells: a cell
// beginning with =, +, -, @, tab or carriage return gets a leading ' so a
// spreadsheet shows it as text instead of running it (SPEC "Access export";
// OWASP "CSV Injection").
//
// Its bytes are exactly those of encoding/csv.Writer (comma, LF line ends)
// writing Neutralise(cell), but it neutralises and quotes in one pass over
// each cell, straight into its output buffer: the export's budget is half the
// throughput of raw encoding/csv (issue 6), and going through csv.Writer plus
// a neutralised copy of every row cost a third of the export's time
// (internal/bench BenchmarkExportAccess profile).
type Writer struct {
	out   io.Writer
	buf   []byte // output not yet written; the record being built is at its end
	cells int    // cells of the record being built
	err   error  // the first write error: every later call returns it
}

// writerBuffer is when the output buffer is written out: large enough that
// a million-row export makes a few thousand writes, small enough to stay out
// of the heap budget.
const writerBuffer = 64 << 10

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{out: w, buf: make([]byte, 0, writerBuffer+4<<10)}
}

// Write writes one record, neutralising each cell.
func (w *Writer) Write(rec []string) error {
	for _, c := range rec {
		w.cell(c)
	}
	return w.endRecord()
}

// Flush writes what is buffered and reports any write error.
func (w *Writer) Flush() error {
	if w.err == nil && len(w.buf) > 0 {
		_, w.err = w.out.Write(w.buf)
	}
	w.buf = w.buf[:0]
	return w.err
}

// cell appends one cell to the record being built (a comma first unless it
// is the record's first); endRecord ends the record. The access export
// builds its rows with these, straight from the request, so a row costs no
// []string and no string per formatted cell.
func (w *Writer) cell(c string) {
	w.comma()
	w.buf = appendCell(w.buf, bytesOf(c))
}

// cellBytes is cell for a cell formatted into a scratch buffer.
func (w *Writer) cellBytes(c []byte) {
	w.comma()
	w.buf = appendCell(w.buf, c)
}

// safeCell appends a cell the caller built and knows needs neither quotes nor
// neutralising (digits, letters and the punctuation of RFC 3339).
func (w *Writer) safeCell(c string) {
	w.comma()
	w.buf = append(w.buf, c...)
}

func (w *Writer) comma() {
	if w.cells++; w.cells > 1 {
		w.buf = append(w.buf, ',')
	}
}

// endRecord ends the record being built and writes out the buffer once it
// holds writerBuffer bytes.
func (w *Writer) endRecord() error {
	w.buf = append(w.buf, '\n')
	w.cells = 0
	if len(w.buf) >= writerBuffer {
		return w.Flush()
	}
	return w.err
}

// bytesOf views s as bytes without copying; the bytes are only read.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// formulaStart reports whether a cell starting with c must be neutralised.
func formulaStart(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// SWAR constants: one byte repeated in each of a word's eight bytes.
const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasByte reports whether any byte of x is c (the "has zero byte" test of
// x XOR c repeated: exact as a yes/no answer).
func hasByte(x uint64, c byte) bool {
	y := x ^ (lows * uint64(c))
	return (y-lows)&^y&highs != 0
}

// needsQuotes reports whether c holds a comma, quote, CR or LF, eight bytes
// at a time: this scan runs over every byte of a million-row export.
func needsQuotes(c []byte) bool {
	i := 0
	for ; i+8 <= len(c); i += 8 {
		x := binary.LittleEndian.Uint64(c[i:])
		if hasByte(x, ',') || hasByte(x, '"') || hasByte(x, '\r') || hasByte(x, '\n') {
			return true
		}
	}
	for ; i < len(c); i++ {
		switch c[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}

// appendCell appends Neutralise(c) as encoding/csv writes a field: quoted
// when it holds a comma, quote, CR or LF, starts with a space (unicode.IsSpace),
// or is `\.`; inside quotes a quote is doubled and everything else is copied.
func appendCell(b, c []byte) []byte {
	if len(c) == 0 {
		return b
	}
	prefix := formulaStart(c[0])
	quote := (len(c) == 2 && c[0] == '\\' && c[1] == '.') || needsQuotes(c)
	if !quote && !prefix {
		if c[0] < utf8.RuneSelf {
			quote = c[0] == ' ' || c[0] == '\t' || c[0] == '\n' || c[0] == '\v' || c[0] == '\f' || c[0] == '\r'
		} else {
			r, _ := utf8.DecodeRune(c)
			quote = unicode.IsSpace(r)
		}
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
		i := bytes.IndexByte(c, '"')
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

// appendTS appends ts(t) to b without allocating. Years 1 to 9999 take a
// direct path from the Unix seconds (civil-from-days, H. Hinnant, "chrono-
// compatible low-level date algorithms"): time.Format's general layout
// interpreter was a tenth of the export's time for its seven timestamps a
// row. Others go through AppendFormat.
func appendTS(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	const (
		unixToYear1 = 62135596800 // seconds from 0001-01-01 to 1970-01-01
		unixToY10k  = 253402300800
	)
	sec := t.Unix()
	if sec < -unixToYear1 || sec >= unixToY10k {
		return t.UTC().AppendFormat(b, time.RFC3339)
	}
	days, rem := sec/86400, sec%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	// Days since 0000-03-01, in 400-year eras of 146097 days (non-negative
	// here: year 1 is in era 0).
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T')
	h, mi, s := rem/3600, rem/60%60, rem%60
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), 'Z')
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
	res := ExportResult{ByStatus: map[string]int{}, Inclusion: AccessInclusion}
	w := NewWriter(out)
	if err := w.Write(AccessHeader); err != nil {
		return res, err
	}
	var rb accessRowBuilder
	err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		chain, err := chainedRecords(tx, res.HeadSeq)
		if err != nil {
			return err
		}
		res.Records = &RecordCheck{}
		return tx.ForEachRequest(p.To, func(r *access.Request) error {
			if p.Policy != "" && r.Policy != p.Policy {
				return nil
			}
			if end := r.LifecycleEnd(); !end.IsZero() && end.Before(p.From) {
				return nil
			}
			if err := chain.check(r, &rb.scratch, res.Records); err != nil {
				return err
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
			return w.endRecord()
		})
	})
	if err != nil {
		return res, err
	}
	return res, w.Flush()
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

// tsCell appends ts(t) as a cell. RFC 3339 in UTC holds no comma, quote or
// line break and starts with a digit from year 1 to 9999: written straight
// to the output. Other years (a leading '-' is a formula start) go through
// the neutralising path.
func (rb *accessRowBuilder) tsCell(w *Writer, t time.Time) {
	w.comma()
	start := len(w.buf)
	w.buf = appendTS(w.buf, t)
	if len(w.buf) > start && (w.buf[start] < '0' || w.buf[start] > '9') {
		rb.scratch = append(rb.scratch[:0], w.buf[start:]...)
		w.buf = appendCell(w.buf[:start], rb.scratch)
	}
}

// row appends r's access-export cells (AccessHeader order) to w's record.
func (rb *accessRowBuilder) row(w *Writer, r *access.Request) {
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
	w.cell(r.ID)
	w.cell(r.Requester.Name)
	w.cell(r.Requester.Email)
	w.cell(r.App)
	w.cell(r.Role)
	w.cell(r.Policy)
	rb.tsCell(w, r.CreatedAt)
	w.cell(r.Justification)
	w.cell(rb.duration(r.Duration))
	rb.scratch = appendApprovalChain(rb.scratch[:0], r)
	w.cellBytes(rb.scratch)
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
	w.cellBytes(rb.scratch)
	if approved {
		rb.tsCell(w, r.DecidedAt)
	} else {
		w.cell("")
	}
	w.safeCell(decision)
	rb.tsCell(w, r.AccessStart())
	rb.tsCell(w, r.AccessEnd())
	rb.tsCell(w, r.ProvisionedAt)
	rb.tsCell(w, r.DeprovisionedAt)
	w.cell(r.ExportStatus())
	w.cell(string(r.EndReason))
	if r.EndReason == access.ReasonRevoked {
		w.cell(r.EndedBy.Email)
	} else {
		w.cell("")
	}
	w.cell(r.PolicyVersion)
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
		b = appendTS(b, r.StartedAt)
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
			b = append(b, " at "...)
			b = appendTS(b, st.DecidedAt)
			if st.Comment != "" {
				b = append(b, " ("...)
				b = append(b, st.Comment...)
				b = append(b, ')')
			}
		}
		if st.Escalated {
			b = append(b, "; escalated"...)
		}
	}
	return b
}

// EventsInclusion states the events export's inclusion rule in words.
const EventsInclusion = "audit events whose occurred_at is in [from, to), read from the hash chain in seq order"

// ExportEvents streams the audit events in [From, To) in sequence order.
// The store walks the chained events themselves (Tx.EventsBetween), and the
// export checks again that the window's seqs follow one another: the
// manifest states the window's seq range and that it has no gap, the
// "gaps in sequence" test of an auditor (notes/soc2.md §2).
func (s *Service) ExportEvents(out io.Writer, p ExportParams) (ExportResult, error) {
	res := ExportResult{ByStatus: map[string]int{}, Inclusion: EventsInclusion}
	w := NewWriter(out)
	if err := w.Write(EventsHeader); err != nil {
		return res, err
	}
	row := make([]string, len(EventsHeader))
	err := s.store.View(func(tx Tx) error {
		res.HeadSeq, res.HeadHash, _ = tx.Head()
		res.Window = &SeqWindow{Gapless: true}
		return tx.EventsBetween(p.From, p.To, func(e access.Event) error {
			win := res.Window
			if win.FirstSeq != 0 && e.Seq != win.LastSeq+1 {
				return access.Errorf(access.CodeInternal, "The audit log has no event %d between %d and %d: the export stops rather than leave it out (run `keycard audit verify`).", win.LastSeq+1, win.LastSeq, e.Seq)
			}
			if win.FirstSeq == 0 {
				win.FirstSeq = e.Seq
			}
			win.LastSeq = e.Seq
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
