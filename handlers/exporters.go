package handlers

import (
	"context"
	"io"
)

// Report kinds (SPEC "Other exports"; the scheduled jobs add theirs).
const (
	KindAccess   = "access"
	KindEvents   = "events"
	KindHolders  = "holders"
	KindPolicies = "policies"
	KindJobs     = "jobs"
	KindCampaign = "campaign"

	// KindPrivileged is the admin access report's CSV: the holders
	// snapshot's columns restricted to privileged policies' groups.
	KindPrivileged = "privileged"
)

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
	KindAccess:      {write: (*Service).exportAccess, columns: AccessHeader, countsColumn: "status", inclusion: AccessInclusion, restated: true},
	KindEvents:      {write: (*Service).exportEvents, columns: EventsHeader, countsColumn: "type", inclusion: EventsInclusion, restated: true},
	KindHolders:     {write: (*Service).exportHolders, columns: HoldersHeader, countsColumn: "source", inclusion: holdersInclusion},
	KindPrivileged:  {write: (*Service).exportPrivileged, columns: HoldersHeader, countsColumn: "source", inclusion: privilegedInclusion},
	KindPolicies:    {write: (*Service).exportPolicies, columns: PoliciesHeader, countsColumn: "in_force_to", inclusion: policiesInclusion},
	KindJobs:        {write: (*Service).exportJobs, columns: JobsHeader, countsColumn: "outcome", inclusion: jobsInclusion},
	KindCampaign:    {write: (*Service).exportCampaign, columns: CampaignHeader, countsColumn: "decision", inclusion: campaignInclusion},
	KindWhoCan:      {write: (*Service).exportWhoCan, columns: WhoCanHeader, countsColumn: "eligible", inclusion: whoCanInclusion},              // whocan.go
	KindDelegations: {write: (*Service).exportDelegations, columns: DelegationsHeader, countsColumn: "status", inclusion: delegationsInclusion}, // delegation_export.go
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

// inclusionOf is the inclusion rule VerifyManifest restates for a report
// kind whose export.created event did not record one, "" when the kind's
// rule is not a constant.
func inclusionOf(kind string) string {
	if k := exportKinds[kind]; k.restated {
		return k.inclusion
	}
	return ""
}
