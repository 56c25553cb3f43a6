package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
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
