package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"keycard/access"
)

// Verifying an export: VerifyManifest holds a manifest and its CSV to the
// audit chain and to the export.created event that recorded the CSV
// (Recorded finds it); keycard export verify runs it.

// RecordedExport is an export.created event as VerifyManifest reads it:
// its detail (access.ExportCreated), the authority a manifest is held to,
// and who recorded it when.
//
// For events written before issue 10, which carry only report,
// parameters, rows, csv_sha256, head_seq and invocation, VerifyManifest
// checks generated_by against the event's actor, generated_at against the
// event's time (at or before it, within recordSlack), restates the
// inclusion rule from the report kind (access, events; the other kinds'
// rule follows from kind and parameters, both checked) and relies on the
// recorded CSV hash for the counts (tallied from the CSV itself).
type RecordedExport struct {
	access.ExportCreated

	// Actor, Seq and At are the event's actor, sequence number and time
	// (not part of the detail).
	Actor string    `json:"-"`
	Seq   uint64    `json:"-"`
	At    time.Time `json:"-"`
	// Posted are the files of the scheduled report that carried this CSV
	// (its report.posted event), by name with their SHA-256; nil when the
	// export was not posted as a report.
	Posted map[string]string `json:"-"`
}

// ChainCheck reads the audit chain for VerifyManifest: the hash of event
// seq (false when absent) and the first problem of the chain up to it.
type ChainCheck func(seq uint64) (hash string, ok bool, problem string, err error)

// ExportRecorded finds, in the audit log after event `after`, the
// export.created event of a CSV with this SHA-256 and returns what it
// recorded (false when there is none): the manifest's own hash could be
// recomputed by whoever edited the CSV, the chain's cannot.
type ExportRecorded func(sha256 string, after uint64) (RecordedExport, bool, error)

// Recorded looks for the export.created event of a CSV after seq `after`,
// decoding each export.created event's detail (never a substring match: a
// detail that merely mentions the hash, in an invocation say, is not the
// record of that CSV).
func (s *Service) Recorded(sha string, after uint64) (RecordedExport, bool, error) {
	return findRecorded(s.store, s.log, sha, after)
}

// RecordedIn is Recorded over a store alone, for a command that verifies
// a manifest without running keycard (`keycard export verify`); an
// unreadable event detail is reported to log.
func RecordedIn(st Store, log *slog.Logger) ExportRecorded {
	return func(sha string, after uint64) (RecordedExport, bool, error) { return findRecorded(st, log, sha, after) }
}

func findRecorded(st Store, log *slog.Logger, sha string, after uint64) (RecordedExport, bool, error) {
	var rec RecordedExport
	found := false
	err := st.View(func(tx Tx) error {
		return tx.Events(after, func(e access.Event) error {
			if e.Type != access.EvExportCreated {
				return nil
			}
			var d RecordedExport
			if err := access.DecodeDetail(e, &d.ExportCreated); err != nil {
				log.Warn("an export.created event's detail could not be read; it is not taken as the record of an export", "seq", e.Seq, "err", err)
				return nil
			}
			if d.CSVSHA256 != sha {
				return nil
			}
			d.Actor, d.Seq, d.At = e.Actor, e.Seq, e.Time
			if d.GeneratedBy == "" && e.Actor != access.ActorKeycard {
				d.GeneratedBy = e.Actor // older events: the actor is who ran it
			}
			rec, found = d, true
			return errStopEvents
		})
	})
	if err == errStopEvents {
		err = nil
	}
	if err != nil || !found {
		return rec, found, err
	}
	// The report that posted this CSV, if any: its files and their hashes.
	err = st.View(func(tx Tx) error {
		return tx.Events(rec.Seq, func(e access.Event) error {
			if e.Type != access.EvReportPosted {
				return nil
			}
			var d struct {
				Files map[string]string `json:"file_sha256"`
			}
			if err := access.DecodeDetail(e, &d); err != nil {
				return nil
			}
			for _, h := range d.Files {
				if h == sha {
					rec.Posted = d.Files
					return errStopEvents
				}
			}
			return nil
		})
	})
	if err == errStopEvents {
		err = nil
	}
	return rec, found, err
}

var errStopEvents = errors.New("stop")

// VerifyManifest re-checks an export against its manifest: the CSV's
// SHA-256 and size, its header, its row count and counts, and that the
// audit chain up to the manifest's head still verifies and ends in the same
// hash. It returns one sentence per mismatch; none means the evidence is as
// generated.
func VerifyManifest(m Manifest, csvData io.Reader, chain ChainCheck, recorded ExportRecorded) ([]string, error) {
	var problems []string
	h := sha256.New()
	data, err := io.ReadAll(io.TeeReader(csvData, h))
	if err != nil {
		return nil, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.CSV.SHA256 {
		problems = append(problems, fmt.Sprintf("CSV SHA-256 is %s, the manifest says %s: the file was changed after it was generated", got, m.CSV.SHA256))
	}
	if int64(len(data)) != m.CSV.Bytes {
		problems = append(problems, fmt.Sprintf("CSV is %d bytes, the manifest says %d", len(data), m.CSV.Bytes))
	}
	rows, counts, header, perr := tally(data, m.CountsColumn)
	switch {
	case perr != nil:
		problems = append(problems, "CSV does not parse as RFC 4180: "+perr.Error())
	default:
		if strings.Join(header, ",") != strings.Join(m.Columns, ",") {
			problems = append(problems, fmt.Sprintf("CSV header is %q, the manifest says %q", strings.Join(header, ","), strings.Join(m.Columns, ",")))
		}
		if rows != m.RowCount {
			problems = append(problems, fmt.Sprintf("CSV has %d rows, the manifest says %d", rows, m.RowCount))
		}
		if m.CountsColumn != "" {
			for _, k := range unionKeys(counts, m.Counts) {
				if counts[k] != m.Counts[k] {
					problems = append(problems, fmt.Sprintf("%d rows have %s %q, the manifest says %d", counts[k], m.CountsColumn, k, m.Counts[k]))
				}
			}
		}
	}
	// The export.created event is the authority for the head too: a
	// manifest edited to head_seq 0 skipped the chain check (issue 10
	// review). So the record is found first, the chain is checked up to
	// the head it recorded, and on through the record's own event.
	var rec RecordedExport
	found := false
	if recorded != nil {
		rec, found, err = recorded(m.CSV.SHA256, m.Audit.HeadSeq)
		if err != nil {
			return problems, err
		}
		if !found {
			problems = append(problems, fmt.Sprintf("the audit log records no export of a CSV with SHA-256 %s after event %d: this manifest and CSV are not what keycard generated", m.CSV.SHA256, m.Audit.HeadSeq))
		}
	}
	if chain != nil {
		head := m.Audit.HeadSeq
		if found {
			head = rec.HeadSeq
		}
		problem := ""
		if head > 0 {
			hash, ok, p, err := chain(head)
			switch {
			case err != nil:
				return problems, err
			case !ok:
				problems = append(problems, fmt.Sprintf("the audit log has no event %d (the chain head the export recorded): it was truncated", head))
			case hash != m.Audit.HeadHash:
				problems = append(problems, fmt.Sprintf("audit event %d has hash %s, the manifest says %s: the chain was rewritten", head, hash, m.Audit.HeadHash))
			}
			problem = p
		}
		if problem == "" && found && rec.Seq > head {
			// The record itself must stand in a chain that verifies.
			_, _, p, err := chain(rec.Seq)
			if err != nil {
				return problems, err
			}
			problem = p
		}
		if problem != "" {
			problems = append(problems, "the audit chain does not verify: "+problem)
		}
	}
	if found {
		problems = append(problems, compareRecorded(m, rec)...)
		problems = append(problems, compareAttachments(m, rec)...)
	}
	return problems, nil
}

// compareRecorded holds the manifest's description of the report to the
// export.created event: kind, parameters, inclusion rule, who and when, row
// count and counts. A CSV filtered to one policy then relabelled "every
// policy" fails here, naming the field.
// compareAttachments holds a manifest's attachments (a report's chart) to
// the hashes the report.posted event chained for the same files.
func compareAttachments(m Manifest, rec RecordedExport) []string {
	var problems []string
	for _, a := range m.Attachments {
		switch h, ok := rec.Posted[a.Name]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("attachment %s is not among the files the audit log records for this report", a.Name))
		case h != a.SHA256:
			problems = append(problems, fmt.Sprintf("attachment %s: the manifest says sha256 %s, the audit log recorded %s", a.Name, a.SHA256, h))
		}
	}
	return problems
}

func compareRecorded(m Manifest, rec RecordedExport) []string {
	var problems []string
	differs := func(field, manifest, recorded string) {
		if manifest != recorded {
			problems = append(problems, fmt.Sprintf("the manifest's %s is %q, the audit log (event %d) recorded %q: the manifest was relabelled", field, manifest, rec.Seq, recorded))
		}
	}
	differs("report", m.Report, rec.Report)
	differs("parameters.policy", m.Parameters.Policy, rec.Parameters.Policy)
	differs("parameters.from", m.Parameters.From, rec.Parameters.From)
	differs("parameters.to", m.Parameters.To, rec.Parameters.To)
	differs("parameters.as_of", m.Parameters.AsOf, rec.Parameters.AsOf)
	differs("parameters.campaign", m.Parameters.Campaign, rec.Parameters.Campaign)
	differs("parameters.timezone", m.Parameters.Timezone, rec.Parameters.Timezone)
	differs("generation.invocation", m.Generation.Invocation, rec.Invocation)
	// The audit section: the head the export reflects (always recorded),
	// and what newer events record of the seq ranges and the record check.
	if m.Audit.HeadSeq != rec.HeadSeq {
		problems = append(problems, fmt.Sprintf("the manifest's audit.head_seq is %d, the audit log (event %d) recorded %d", m.Audit.HeadSeq, rec.Seq, rec.HeadSeq))
	}
	if rec.FirstSeq != 0 || rec.LastSeq != 0 || rec.Window != nil || rec.Records != nil {
		if m.Audit.FirstSeq != rec.FirstSeq || m.Audit.LastSeq != rec.LastSeq {
			problems = append(problems, fmt.Sprintf("the manifest's audit rows are events %d to %d, the audit log (event %d) recorded %d to %d", m.Audit.FirstSeq, m.Audit.LastSeq, rec.Seq, rec.FirstSeq, rec.LastSeq))
		}
		if w, r := jsonOf(m.Audit.Window), jsonOf(rec.Window); w != r {
			problems = append(problems, fmt.Sprintf("the manifest's audit.window is %s, the audit log (event %d) recorded %s", w, rec.Seq, r))
		}
		if w, r := jsonOf(m.Audit.Records), jsonOf(rec.Records); w != r {
			problems = append(problems, fmt.Sprintf("the manifest's audit.records is %s, the audit log (event %d) recorded %s", w, rec.Seq, r))
		}
	}
	if rec.Rows != m.RowCount {
		problems = append(problems, fmt.Sprintf("the manifest's row_count is %d, the audit log (event %d) recorded %d", m.RowCount, rec.Seq, rec.Rows))
	}
	// The inclusion rule is restated from what keycard recorded: the rule
	// of the event, or for older events the fixed rule of the report kind.
	rule := rec.InclusionRule
	if rule == "" {
		rule = inclusionOf(rec.Report)
	}
	if rule != "" {
		differs("inclusion_rule", m.InclusionRule, rule)
	}
	if rec.GeneratedBy != "" {
		differs("generation.generated_by", m.Generation.GeneratedBy, rec.GeneratedBy)
	}
	at := m.Generation.GeneratedAt
	switch {
	case rec.GeneratedAt != nil && !rec.GeneratedAt.Equal(at):
		problems = append(problems, fmt.Sprintf("the manifest's generation.generated_at is %s, the audit log (event %d) recorded %s", at.UTC().Format(time.RFC3339Nano), rec.Seq, rec.GeneratedAt.UTC().Format(time.RFC3339Nano)))
	case rec.GeneratedAt == nil && !rec.At.IsZero() && (at.After(rec.At) || rec.At.Sub(at) > recordSlack):
		problems = append(problems, fmt.Sprintf("the manifest's generation.generated_at is %s, but the audit log recorded the export (event %d) at %s", at.UTC().Format(time.RFC3339Nano), rec.Seq, rec.At.UTC().Format(time.RFC3339Nano)))
	}
	if rec.Counts != nil || rec.CountsColumn != "" {
		differs("counts_column", m.CountsColumn, rec.CountsColumn)
		for _, k := range unionKeys(m.Counts, rec.Counts) {
			if m.Counts[k] != rec.Counts[k] {
				problems = append(problems, fmt.Sprintf("the manifest's counts[%q] is %d, the audit log (event %d) recorded %d", k, m.Counts[k], rec.Seq, rec.Counts[k]))
			}
		}
	}
	return problems
}

// jsonOf renders v for a sentence ("null" when absent).
func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// recordSlack bounds how long before its export.created event an export
// written by an older keycard may say it was generated (the export streams
// its rows between the two).
const recordSlack = 10 * time.Minute

// InclusionStatement restates a report's inclusion rule with its
// parameters, for `keycard export verify` to print: what the CSV holds,
// according to the audit log.
func InclusionStatement(rec RecordedExport) string {
	rule := rec.InclusionRule
	if rule == "" {
		rule = inclusionOf(rec.Report)
	}
	p := rec.Parameters
	s := rec.Report + " report: " + rule
	if p.From != "" || p.To != "" {
		s += fmt.Sprintf("; from %s (inclusive) to %s (exclusive)", p.From, p.To)
	}
	if p.AsOf != "" {
		s += "; as of " + p.AsOf
	}
	if p.Policy != "" {
		s += "; policy " + p.Policy + " only"
	} else {
		s += "; every policy"
	}
	if p.Campaign != "" {
		s += "; campaign " + p.Campaign
	}
	return s
}

func tally(data []byte, column string) (rows int, counts map[string]int, header []string, err error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err = r.Read()
	if err != nil {
		return 0, nil, nil, err
	}
	col := -1
	for i, h := range header {
		if h == column {
			col = i
		}
	}
	counts = map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rows, counts, header, err
		}
		rows++
		if col >= 0 && col < len(rec) {
			counts[strings.TrimPrefix(rec[col], "'")]++
		}
	}
	return rows, counts, header, nil
}

func unionKeys(a, b map[string]int) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]int{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
