package bot

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

func TestRenderReview(t *testing.T) {
	ann := access.Person{Email: "ann@example.com", Name: "Ann Lee", SlackID: "U0ANN"}
	bob := access.Person{Email: "bob@example.com", Name: "Bob Stone", SlackID: "U0BOB"}
	grant := access.Request{ID: "REQ-1001", App: "Production Database", Role: "Admin", Requester: ann, ProvisionedAt: t0, EndsAt: t0.Add(4 * time.Hour),
		Steps: []access.Step{{Decision: access.DecisionApproved, DecidedBy: bob}}}
	many := make([]access.Request, 40)
	for i := range many {
		many[i] = grant
	}
	camp := handlers.Campaign{ID: "CAMP-20260303-0900", OpenedAt: t0, SnapshotAt: t0, DueAt: t0.Add(7 * 24 * time.Hour), OnTimeout: "revoke",
		PopulationSHA256: strings.Repeat("ab", 32), ClosedAt: t0.Add(7 * 24 * time.Hour), Counts: map[string]int{"items": 3, "keep": 1, "revoke": 1}}
	item := handlers.CampaignItem{ID: "CAMP-20260303-0900/00001", Campaign: camp.ID, Holder: ann, App: "Production Database", Role: "Admin",
		Group: "prod-db-admins", Source: handlers.SourceKeycard, GrantID: "REQ-1001", Privileged: true, Reviewers: []access.Person{bob}, ReviewerRule: "manager"}
	decided := item
	decided.Decision, decided.DecidedBy, decided.DecidedAt, decided.Comment = access.ReviewKeep, bob, t0.Add(time.Hour), "on-call DBA"
	ask := handlers.ContractorAsk{GrantID: "REQ-1002", Holder: ann, Manager: bob, Policy: "grafana-viewer", App: "Grafana", Role: "Viewer", EndsAt: t0.Add(48 * time.Hour)}
	pol := &policy.Policy{Name: "grafana-viewer", App: "Grafana", Role: "Viewer", DefaultDuration: 72 * time.Hour, MaxDuration: 30 * 24 * time.Hour}
	cases := []struct {
		name string
		v    any
	}{
		{"report_admin", AdminReportMessage(handlers.AdminReport{At: t0, Groups: []handlers.GrantGroup{{App: "Production Database", Role: "Admin", Grants: []access.Request{grant}}},
			Unmanaged: []handlers.HolderRow{{Email: "dave@example.com", Group: "prod-db-admins", Source: handlers.SourceStanding}},
			Sync:      handlers.PolicySync{Uncovered: []handlers.ConnectorGroup{{Connector: "okta", Group: "app-legacy"}}}, Rows: 2}, berlin)},
		{"report_admin_conflicts", AdminReportMessage(handlers.AdminReport{At: t0, Groups: []handlers.GrantGroup{{App: "Production Database", Role: "Admin", Grants: []access.Request{grant}}},
			Conflicts: []handlers.ConflictHolder{
				{Email: "dave@example.com", Name: "Dave Sec", Conflict: "payments-admin + payments-auditor",
					Through: []string{"payments-admin: standing membership of pay-admins", "payments-auditor: keycard grant REQ-1007"}},
				{Email: "erin@example.com", Name: "Erin Audit", Conflict: "payments-admin + payments-auditor",
					Through: []string{"payments-admin: keycard grant REQ-1009", "payments-auditor: unmanaged membership of pay-auditors"}},
				{Email: "ann@example.com", Name: "Ann Lee", Conflict: "deploy-approver + prod-deployer",
					Through: []string{"deploy-approver: keycard grant REQ-1001", "prod-deployer: standing membership of prod-deployers"}},
			}, Rows: 2}, berlin)},
		{"report_admin_capped", AdminReportMessage(handlers.AdminReport{At: t0, Groups: []handlers.GrantGroup{{App: "Production Database", Role: "Admin", Grants: many}}, Rows: 40}, time.UTC)},
		{"report_compliance", ComplianceMessage(handlers.ComplianceReport{From: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
			AccessRows: 12, EventRows: 80, HeadSeq: 80, HeadHash: strings.Repeat("cd", 32), PolicyHash: strings.Repeat("ef", 32), ChainChecked: true})},
		{"report_campaign", CampaignSummaryMessage(handlers.CampaignSummary{Campaign: camp, Unreviewed: []handlers.CampaignItem{func() handlers.CampaignItem {
			it := item
			it.TimeoutOutcome = access.TimeoutRevoked
			return it
		}()}}, time.UTC)},
		{"review_item_open", ReviewItemMessage(item, camp, berlin)},
		{"review_item_decided", ReviewItemMessage(decided, camp, berlin)},
		{"contractor_ask", ContractorAskMessage(ask, time.UTC)},
		{"contractor_ask_extension_pending", ContractorAskMessage(extAsk(ask, access.StatePending), time.UTC)},
		{"contractor_ask_extension_approved", ContractorAskMessage(extAsk(ask, access.StateActive), time.UTC)},
		{"contractor_ask_extension_denied", ContractorAskMessage(extAsk(ask, access.StateDenied), time.UTC)},
		{"modal_review_keep", ReviewKeepModal(item)},
		{"modal_contractor_extend", ContractorExtendModal(ask, pol)},
		{"modal_contractor_extend_privileged", ContractorExtendModal(extAsk(ask, ""), func() *policy.Policy { p := *pol; p.Privileged = true; return &p }())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { golden(t, c.name, c.v) })
	}
}

func TestRenderAdminReportWithinLimits(t *testing.T) {
	long := strings.Repeat("x", 500)
	var groups []handlers.GrantGroup
	for i := range 80 {
		groups = append(groups, handlers.GrantGroup{App: long, Role: string(rune('A' + i%26)), Grants: []access.Request{{Requester: access.Person{Email: long}}}})
	}
	m := AdminReportMessage(handlers.AdminReport{At: t0, Groups: groups}, time.UTC)
	if len(m.Blocks) > maxMessageBlocks {
		t.Fatalf("%d blocks", len(m.Blocks))
	}
	// With conflicts, unmanaged members and a sync problem all present, the
	// conflicts still fit and are shown.
	var conflicts []handlers.ConflictHolder
	for i := range 200 {
		conflicts = append(conflicts, handlers.ConflictHolder{Email: fmt.Sprintf("p%d@example.com", i), Conflict: "a + b", Through: []string{long}})
	}
	m = AdminReportMessage(handlers.AdminReport{At: t0, Groups: groups, Conflicts: conflicts,
		Unmanaged: []handlers.HolderRow{{Email: "x@example.com", Group: "g", Source: handlers.SourceStanding}},
		Sync:      handlers.PolicySync{Unchecked: []string{"okta"}}}, time.UTC)
	if len(m.Blocks) > maxMessageBlocks {
		t.Fatalf("%d blocks with conflicts", len(m.Blocks))
	}
	b, _ := json.Marshal(m.Blocks)
	if !strings.Contains(string(b), "Separation of duties") || !strings.Contains(string(b), "Policies and the identity provider disagree") {
		t.Fatal("a section was squeezed out")
	}
}

// extAsk is ask answered with a privileged extension through the chain,
// whose request is now in state st.
func extAsk(a handlers.ContractorAsk, st access.State) handlers.ContractorAsk {
	a.Policy, a.App, a.Role = "prod-db-admin", "Production Database", "Admin"
	a.Decision, a.DecidedBy, a.DecidedAt = handlers.AskExtensionRequested, a.Manager, a.EndsAt.Add(-24*time.Hour)
	a.Extension, a.Duration, a.ExtensionState = "REQ-1003", 4*time.Hour, st
	return a
}
