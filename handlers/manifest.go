package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"keycard/access"
)

// ManifestSchema is the version of the manifest.json layout.
const ManifestSchema = 1

// Manifest is the evidence manifest written beside every export
// (manifest.json): where the report came from, with which parameters, when,
// by whom, how many rows, and the audit chain it reflects — what an auditor
// needs to accept system-generated evidence (notes/soc2.md §2). The CSV
// stays plain RFC 4180.
//
// Content fields depend only on the stored data and the parameters, so a
// re-run over a closed period reproduces them; Generation fields say who ran
// it and when.
type Manifest struct {
	Report        string `json:"report"`
	SchemaVersion int    `json:"schema_version"`
	ReportSchema  int    `json:"report_schema_version"`

	Source     Source     `json:"source"`
	Generation Generation `json:"generation"`

	Parameters    Parameters     `json:"parameters"`
	InclusionRule string         `json:"inclusion_rule"`
	Columns       []string       `json:"columns"`
	RowCount      int            `json:"row_count"`
	Counts        map[string]int `json:"counts"`        // by status (access), type (events), source (holders), ...
	CountsColumn  string         `json:"counts_column"` // the CSV column Counts tallies
	Summary       map[string]any `json:"summary,omitempty"`
	Audit         AuditRef       `json:"audit"`
	CSV           FileRef        `json:"csv"`
	// Attachments are files posted beside the CSV (a scheduled report's
	// chart), each with its hash.
	Attachments []FileRef `json:"attachments,omitempty"`
}

// Source names the systems the report was drawn from.
type Source struct {
	Instance   string   `json:"instance,omitempty"`
	IdP        []string `json:"idp"`                  // "okta https://acme.okta.com", "static lab"
	SlackTeam  string   `json:"slack_team,omitempty"` // team id, when known
	PolicyHash string   `json:"policy_hash"`          // policy version in force at generation
}

// Generation says who produced the report, when, and how.
type Generation struct {
	KeycardVersion string    `json:"keycard_version"`
	GeneratedAt    time.Time `json:"generated_at"`
	GeneratedBy    string    `json:"generated_by"` // email of the person, or "scheduler"
	Invocation     string    `json:"invocation"`   // the exact command or /export text
}

// Parameters are the report's inputs; the export.created event records
// them as they are.
type Parameters = access.ExportParameters

// AuditRef ties the report to the audit chain.
type AuditRef struct {
	FirstSeq      uint64 `json:"first_seq,omitempty"` // of the rows (events export)
	LastSeq       uint64 `json:"last_seq,omitempty"`
	HeadSeq       uint64 `json:"head_seq"`  // chain head the report reflects
	HeadHash      string `json:"head_hash"` // hash of event HeadSeq
	ChainVerified bool   `json:"chain_verified"`
	VerifyProblem string `json:"verify_problem,omitempty"`
	// Window is the seq range of every event in the period, walked from the
	// chain without a gap (events export).
	Window *SeqWindow `json:"window,omitempty"`
	// Records says how the access export's rows were held to the chain.
	Records *RecordCheck `json:"records,omitempty"`
}

// FileRef names the CSV the manifest describes.
type FileRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Instance describes this keycard for manifests; main fills it in.
type Instance struct {
	Version   string
	Name      string
	IdP       []string
	SlackTeam string
}

// ChainVerifier walks the audit chain from the start up to event upTo:
// events verified, the last hash, and the first problem ("" when it
// verifies). Stopping at the report's head keeps the manifest's claim about
// exactly the chain the report reflects.
type ChainVerifier func(upTo uint64) (count uint64, head string, problem string, err error)

// ExportRequest is one export as someone asked for it.
type ExportRequest struct {
	Kind       string
	Params     ExportParams
	By         string // email, or access.ActorScheduler
	Invocation string
	FileName   string // the CSV's name as delivered
}

// ErrUnknownKind is returned for an export kind keycard does not produce.
var ErrUnknownKind = errors.New("unknown export kind")

// Export writes one report's CSV to w and returns its manifest: the kind's
// exporter from exportKinds writes the rows, ctx bounds its reads. The export
// itself is audited (export.created: who, what, parameters, rows, hash).
func (s *Service) Export(ctx context.Context, w io.Writer, req ExportRequest) (Manifest, error) {
	m := Manifest{Report: req.Kind, SchemaVersion: ManifestSchema, ReportSchema: 1, Counts: map[string]int{}}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	p := req.Params
	kind, ok := exportKinds[req.Kind]
	if !ok {
		return m, access.Wrap(access.CodeInvalid, ErrUnknownKind, "There is no %q export; kinds: access, events, holders, policies, jobs, campaign, who-can, delegations.", req.Kind)
	}
	m.Columns, m.CountsColumn = kind.columns, kind.countsColumn
	res, err := kind.write(s, ctx, cw, p)
	if access.CodeOf(err) == access.CodeIntegrity {
		// Stored evidence differs from what the chain attests: someone
		// edited keycard.db. The security channel must see it, not only the
		// person who asked for the export.
		if aerr := s.Alert("evidence_integrity", req.By, access.MessageOf(err), nil); aerr != nil {
			s.log.Error("could not record the integrity alert", "err", aerr)
		}
	}
	if err != nil {
		return m, err
	}
	m.RowCount = res.Rows
	m.Counts = res.ByStatus
	m.InclusionRule = kind.inclusion
	m.Summary = res.Summary
	m.Parameters = Parameters{Policy: p.Policy, Timezone: "UTC", Campaign: p.Campaign}
	if !p.From.IsZero() {
		m.Parameters.From = p.From.UTC().Format(time.RFC3339)
	}
	if !p.To.IsZero() {
		m.Parameters.To = p.To.UTC().Format(time.RFC3339)
	}
	if !p.AsOf.IsZero() {
		m.Parameters.AsOf = p.AsOf.UTC().Format(time.RFC3339)
	}
	m.Audit = AuditRef{FirstSeq: res.FirstSeq, LastSeq: res.LastSeq, HeadSeq: res.HeadSeq, HeadHash: res.HeadHash, Window: res.Window, Records: res.Records}
	if s.opt.Verify != nil {
		_, _, problem, verr := s.opt.Verify(m.Audit.HeadSeq)
		switch {
		case verr != nil:
			m.Audit.VerifyProblem = "could not verify: " + verr.Error()
		case problem != "":
			m.Audit.VerifyProblem = problem
		default:
			m.Audit.ChainVerified = true
		}
	}
	m.CSV = FileRef{Name: req.FileName, SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: cw.n}
	if m.CSV.Name == "" {
		m.CSV.Name = DefaultFileName(req.Kind, p)
	}
	in := s.opt.Instance
	set := s.Policy()
	m.Source = Source{Instance: in.Name, IdP: in.IdP, SlackTeam: in.SlackTeam}
	if t, ok := s.slackTeam.Load().(string); ok && t != "" {
		m.Source.SlackTeam = t
	}
	if set != nil {
		m.Source.PolicyHash = set.Hash
	}
	if m.Source.IdP == nil {
		m.Source.IdP = []string{}
	}
	m.Generation = Generation{KeycardVersion: in.Version, GeneratedAt: s.clock.Now().UTC(), GeneratedBy: req.By, Invocation: req.Invocation}
	if m.Generation.KeycardVersion == "" {
		m.Generation.KeycardVersion = "dev"
	}
	actor := req.By
	if actor == "" {
		actor = access.ActorKeycard
	}
	err = s.audit(access.Event{Type: access.EvExportCreated, Actor: actor, Subject: actor, Policy: p.Policy,
		Detail: encodeDetail(access.ExportCreated{Report: req.Kind, Parameters: m.Parameters, InclusionRule: m.InclusionRule,
			Rows: m.RowCount, Counts: m.Counts, CountsColumn: m.CountsColumn, CSVSHA256: m.CSV.SHA256,
			HeadSeq: m.Audit.HeadSeq, Invocation: req.Invocation, GeneratedBy: req.By, GeneratedAt: &m.Generation.GeneratedAt,
			FirstSeq: m.Audit.FirstSeq, LastSeq: m.Audit.LastSeq, Window: m.Audit.Window, Records: m.Audit.Records})})
	return m, err
}

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

// SetSlackTeam records the Slack workspace keycard serves (from auth.test)
// for manifests' source.
func (s *Service) SetSlackTeam(id string) { s.slackTeam.Store(id) }

// DefaultFileName is the CSV name for a report, e.g.
// keycard-access-2026-01-01_2026-12-31.csv.
func DefaultFileName(kind string, p ExportParams) string {
	name := "keycard-" + kind
	if p.Policy != "" {
		name += "-" + p.Policy
	}
	if p.Campaign != "" {
		name += "-" + p.Campaign
	}
	if !p.From.IsZero() && !p.To.IsZero() {
		name += "-" + p.From.UTC().Format(time.DateOnly) + "_" + p.To.Add(-time.Nanosecond).UTC().Format(time.DateOnly)
	}
	if !p.AsOf.IsZero() {
		name += "-asof-" + p.AsOf.UTC().Format("20060102T150405Z")
	}
	return name + ".csv"
}

// Encode renders the manifest as indented JSON with a trailing newline;
// struct fields and map keys come out in a fixed order.
func (m Manifest) Encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// ContentKey is the manifest without its generation fields and the chain
// head at generation: what a re-run over a closed period must reproduce.
func (m Manifest) ContentKey() []byte {
	m.Generation = Generation{}
	m.Audit.HeadSeq, m.Audit.HeadHash = 0, ""
	m.Audit.ChainVerified, m.Audit.VerifyProblem = false, ""
	m.Source.PolicyHash = ""
	return m.Encode()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
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
	var rec RecordedExport
	found := false
	err := s.store.View(func(tx Tx) error {
		return tx.Events(after, func(e access.Event) error {
			if e.Type != access.EvExportCreated {
				return nil
			}
			var d RecordedExport
			if err := access.DecodeDetail(e, &d.ExportCreated); err != nil {
				s.log.Warn("an export.created event's detail could not be read; it is not taken as the record of an export", "seq", e.Seq, "err", err)
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
	err = s.store.View(func(tx Tx) error {
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
