package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"time"

	"keycard/access"
)

// Report kinds (SPEC "Other exports"; the scheduled jobs add theirs).
const (
	KindAccess   = "access"
	KindEvents   = "events"
	KindHolders  = "holders"
	KindPolicies = "policies"
	KindJobs     = "jobs"
	KindCampaign = "campaign"
)

// KindPrivileged is the admin access report's CSV: the holders snapshot's
// columns restricted to privileged policies' groups.
const KindPrivileged = "privileged"

// exportKind is one report keycard produces: the exporter that writes its
// rows, and what its manifest says about them.
type exportKind struct {
	write        func(s *Service, ctx context.Context, w io.Writer, p ExportParams) (ExportResult, error)
	columns      []string // the CSV header
	countsColumn string   // the column the manifest's counts tally
	inclusion    string   // the inclusion rule, in words
	// restated: export.created events written before issue 10 did not
	// record the inclusion rule; for these kinds it is a constant that
	// VerifyManifest restates (the other kinds' rule follows from kind and
	// parameters, both checked).
	restated bool
}

// exportKinds is every export keycard produces, by kind: the CLI, /export,
// the scheduled reports and a campaign's close all go through Export and
// this table.
var exportKinds = map[string]exportKind{
	KindAccess:     {write: (*Service).exportAccess, columns: AccessHeader, countsColumn: "status", inclusion: AccessInclusion, restated: true},
	KindEvents:     {write: (*Service).exportEvents, columns: EventsHeader, countsColumn: "type", inclusion: EventsInclusion, restated: true},
	KindHolders:    {write: (*Service).exportHolders, columns: HoldersHeader, countsColumn: "source", inclusion: holdersInclusion},
	KindPrivileged: {write: (*Service).exportPrivileged, columns: HoldersHeader, countsColumn: "source", inclusion: privilegedInclusion},
	KindPolicies:   {write: (*Service).exportPolicies, columns: PoliciesHeader, countsColumn: "in_force_to", inclusion: policiesInclusion},
	KindJobs:       {write: (*Service).exportJobs, columns: JobsHeader, countsColumn: "outcome", inclusion: jobsInclusion},
	KindCampaign:   {write: (*Service).exportCampaign, columns: CampaignHeader, countsColumn: "decision", inclusion: campaignInclusion},
}

// exportAccess is the access report: the rows, and the period's
// offboarding summary for its manifest.
func (s *Service) exportAccess(_ context.Context, w io.Writer, p ExportParams) (ExportResult, error) {
	res, err := s.ExportAccess(w, p)
	if err == nil {
		res.Summary, err = s.OffboardingSummary(p.From, p.To)
	}
	return res, err
}

func (s *Service) exportEvents(_ context.Context, w io.Writer, p ExportParams) (ExportResult, error) {
	return s.ExportEvents(w, p)
}

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
		return m, access.Wrap(access.CodeInvalid, ErrUnknownKind, "There is no %q export; kinds: access, events, holders, policies, jobs, campaign.", req.Kind)
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
		Detail: encodeDetail(RecordedExport{Report: req.Kind, Parameters: m.Parameters, InclusionRule: m.InclusionRule,
			Rows: m.RowCount, Counts: m.Counts, CountsColumn: m.CountsColumn, CSVSHA256: m.CSV.SHA256,
			HeadSeq: m.Audit.HeadSeq, Invocation: req.Invocation, GeneratedBy: req.By, GeneratedAt: &m.Generation.GeneratedAt})})
	return m, err
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

// inclusionOf is the inclusion rule VerifyManifest restates for a report
// kind whose export.created event did not record one, "" when the kind's
// rule is not a constant.
func inclusionOf(kind string) string {
	if k := exportKinds[kind]; k.restated {
		return k.inclusion
	}
	return ""
}
