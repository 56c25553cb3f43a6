package bot

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the render functions")

// golden compares v's indented JSON with testdata/name.golden.json.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // golden diffs should read like the payload Slack shows
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bot -run TestRender -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update and review the diff):\n%s", path, got)
	}
}

var (
	t0     = time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)
	berlin = mustLoad("Europe/Berlin")
)

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func testPolicies() []*policy.Policy {
	return []*policy.Policy{
		{Name: "grafana-viewer", App: "Grafana", Role: "Viewer", Auto: true, DefaultDuration: 30 * 24 * time.Hour, MaxDuration: 90 * 24 * time.Hour},
		{Name: "prod-db-admin", App: "Production Database", Role: "Admin", Privileged: true, JustificationRequired: true,
			Approval:        []policy.Rule{{Kind: policy.RuleManager}, {Kind: policy.RuleGroup, Group: "security-team"}},
			DefaultDuration: 4 * time.Hour, MaxDuration: 8 * time.Hour},
		{Name: "prod-db-read", App: "Production Database", Role: "Read", Approval: []policy.Rule{{Kind: policy.RuleManager}},
			DefaultDuration: 8 * time.Hour, MaxDuration: 3 * 24 * time.Hour},
	}
}

var (
	ann   = access.Person{Email: "ann@example.com", Name: "Ann Lee", SlackID: "U0ANN", IdPID: "00u-ann"}
	bob   = access.Person{Email: "bob@example.com", Name: "Bob Boss", IdPID: "00u-bob"}
	carol = access.Person{Email: "carol@example.com", Name: "Carol Sec", IdPID: "00u-carol"}
	dave  = access.Person{Email: "dave@example.com", Name: "Dave Sec", IdPID: "00u-dave"}
)

// testDelegation is bob's delegation to dave, with hostile text.
func testDelegation() access.Delegation {
	return access.Delegation{ID: "DLG-7", From: bob, To: dave, Reason: "Parental leave <b>&</b>", CreatedAt: t0, Until: time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC)}
}

func testRequest() access.Request {
	return access.Request{ID: "REQ-0001", Policy: "prod-db-admin", PolicyVersion: "abc", App: "Production Database", Role: "Admin",
		Privileged: true, Requester: ann, Duration: 4 * time.Hour, Justification: "INC-42: <script> & on-call fix",
		Steps: []access.Step{
			{Rule: "manager", Candidates: []access.Person{bob}},
			{Rule: "group:security-team", Candidates: []access.Person{carol, dave}},
		},
		State: access.StatePending, CreatedAt: t0}
}

func TestRenderModals(t *testing.T) {
	ps := testPolicies()
	many := make([]*policy.Policy, 0, 120)
	for i := range 120 {
		many = append(many, &policy.Policy{Name: fmt.Sprintf("app-%03d", i), App: fmt.Sprintf("App %d", i/10), Role: "User",
			Approval: []policy.Rule{{Kind: policy.RuleManager}}, DefaultDuration: time.Hour, MaxDuration: 4 * time.Hour})
	}
	breakGlass := *ps[1]
	breakGlass.Name, breakGlass.Role, breakGlass.BreakGlass, breakGlass.MaxDuration = "prod-db-emergency", "Emergency admin", true, 4*time.Hour
	r := testRequest()
	active := r
	active.State, active.ProvisionedAt, active.EndsAt = access.StateActive, t0, t0.Add(4*time.Hour)
	schedulable := *ps[1]
	schedulable.ScheduleAhead = 14 * 24 * time.Hour
	scheduled := r
	scheduled.StartAt = time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC) // Saturday 02:00 in Berlin
	cases := []struct {
		name string
		view slack.ModalViewRequest
	}{
		{"modal_request", RequestModal(RequestForm{Policies: ps, Selected: ps[1]})},
		{"modal_request_optional_justification", RequestModal(RequestForm{Policies: ps, Selected: ps[0]})},
		{"modal_request_problem", RequestModal(RequestForm{Policies: ps, Selected: ps[1], Problem: "You already hold Production Database Admin."})},
		{"modal_request_nothing_eligible", RequestModal(RequestForm{})},
		{"modal_request_search", RequestModal(RequestForm{Policies: many})},
		{"modal_request_break_glass", RequestModal(RequestForm{Policies: append(ps[:2:2], &breakGlass), Selected: &breakGlass})},
		{"modal_loading", LoadingModal("Request access")},
		{"modal_submitted", SubmittedModal(r, berlin)},
		{"modal_request_schedulable", RequestModal(RequestForm{Policies: ps, Selected: &schedulable, Loc: berlin})},
		{"modal_submitted_scheduled", SubmittedModal(scheduled, berlin)},
		{"modal_deny", DenyModal(r, 1)},
		{"modal_extend", ExtendModal(active, ps[1], "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := len(c.view.Blocks.BlockSet); n > maxViewBlocks {
				t.Fatalf("%d blocks", n)
			}
			if !slack.ValidateUniqueBlockID(c.view) {
				t.Fatal("duplicate input block ids")
			}
			if len([]rune(c.view.Title.Text)) > maxTitleText {
				t.Fatalf("title too long: %q", c.view.Title.Text)
			}
			golden(t, c.name, c.view)
		})
	}
}

func TestRenderMessages(t *testing.T) {
	r := testRequest()
	info := RequesterInfo{Manager: "Bob Boss", Department: "Engineering"}
	step1 := r
	step1.Steps = append([]access.Step(nil), r.Steps...)
	step1.Steps[0].Decision, step1.Steps[0].DecidedBy, step1.Steps[0].DecidedAt = access.DecisionApproved, bob, t0.Add(5*time.Minute)
	step1.Current = 1
	denied := step1
	denied.Steps = append([]access.Step(nil), step1.Steps...)
	denied.Steps[1].Decision, denied.Steps[1].DecidedBy, denied.Steps[1].DecidedAt, denied.Steps[1].Comment = access.DecisionDenied, carol, t0.Add(10*time.Minute), "Use the read role"
	denied.State = access.StateDenied
	active := step1
	active.State, active.ProvisionedAt, active.EndsAt = access.StateActive, t0.Add(11*time.Minute), t0.Add(4*time.Hour+11*time.Minute)
	expired := active
	expired.State, expired.EndReason = access.StateExpired, access.ReasonExpired
	revoked := active
	revoked.State, revoked.EndReason, revoked.EndedBy, revoked.EndedAt = access.StateRevoked, access.ReasonRevoked, dave, t0.Add(time.Hour)
	// approval_mfa: a step that needs MFA, one with a push in flight, one
	// whose push was rejected, and an MFA-verified approval.
	mfa := r
	mfa.Steps = append([]access.Step(nil), r.Steps...)
	mfa.Steps[0].MFA = true
	mfaWaiting := mfa
	mfaWaiting.Steps = append([]access.Step(nil), mfa.Steps...)
	mfaWaiting.Steps[0].Challenge = &access.Challenge{Approver: bob, Factor: "okta:push", SentAt: t0.Add(2 * time.Minute), Deadline: t0.Add(8 * time.Minute)}
	mfaRejected := mfa
	mfaRejected.Steps = append([]access.Step(nil), mfa.Steps...)
	mfaRejected.Steps[0].MFANote = "The MFA push to Bob Boss was rejected on the phone."
	mfaDone := step1
	mfaDone.Steps = append([]access.Step(nil), step1.Steps...)
	mfaDone.Steps[0].MFA, mfaDone.Steps[0].MFAFactor = true, "okta:push"
	delegated := step1
	delegated.Steps = append([]access.Step(nil), step1.Steps...)
	delegated.Steps[0].DecidedBy, delegated.Steps[0].OnBehalfOf, delegated.Steps[0].Delegation = dave, bob, "DLG-7"
	long := r
	long.Justification = strings.Repeat("very long reason ", 400)
	// Scheduled access: asked at t0 to start Saturday 02:00 Berlin time.
	sched := r
	sched.StartAt = time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC)
	schedApproved := sched
	schedApproved.Steps = []access.Step{{Rule: "manager", Candidates: []access.Person{bob}, Decision: access.DecisionApproved, DecidedBy: bob, DecidedAt: t0.Add(10 * time.Minute)}}
	schedApproved.Current, schedApproved.State, schedApproved.DecidedAt = 1, access.StateScheduled, t0.Add(10*time.Minute)
	schedActive := schedApproved
	schedActive.State, schedActive.ProvisionedAt, schedActive.EndsAt = access.StateActive, sched.StartAt, sched.StartAt.Add(4*time.Hour)
	schedRefused := schedApproved
	schedRefused.State, schedRefused.EndedAt = access.StateFailed, sched.StartAt
	schedRefused.FailReason = "at its scheduled start, ann@example.com is no longer eligible for policy prod-db-admin (allows: engineers)"
	schedWithdrawn := schedApproved
	schedWithdrawn.State, schedWithdrawn.EndReason, schedWithdrawn.EndedBy, schedWithdrawn.EndedAt = access.StateRevoked, access.ReasonRevoked, ann, t0.Add(time.Hour)
	mismatch := access.Event{Seq: 9, Time: t0, Type: access.EvIdentityMismatch, Subject: "ann@example.com",
		Detail: `{"message":"The Slack user's email now points to a different identity-provider account than the one pinned."}`}
	mismatchAlert, err := access.AlertOf(mismatch)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		msg  Message
	}{
		{"approval_step1_pending", ApprovalMessage(r, 0, info, berlin)},
		{"approval_step1_decided", ApprovalMessage(step1, 0, info, berlin)},
		{"approval_step2_pending", ApprovalMessage(step1, 1, info, time.UTC)},
		{"approval_step2_denied", ApprovalMessage(denied, 1, info, time.UTC)},
		{"approval_long_justification", ApprovalMessage(long, 0, RequesterInfo{}, time.UTC)},
		{"approval_mfa_needed", ApprovalMessage(mfa, 0, info, berlin)},
		{"approval_mfa_check_phone", ApprovalMessage(mfaWaiting, 0, info, berlin)},
		{"approval_mfa_rejected", ApprovalMessage(mfaRejected, 0, info, berlin)},
		{"approval_mfa_verified", ApprovalMessage(mfaDone, 0, info, berlin)},
		{"notice_submitted", RequesterNotice(NoticeSubmitted, r, t0, berlin)},
		{"notice_step_approved", RequesterNotice(NoticeStepApproved, step1, t0, berlin)},
		{"notice_denied", RequesterNotice(NoticeDenied, denied, t0, berlin)},
		{"notice_active", RequesterNotice(NoticeActive, active, active.ProvisionedAt, berlin)},
		{"notice_expiring", RequesterNotice(NoticeExpiring, active, active.EndsAt.Add(-15*time.Minute), berlin)},
		{"notice_expired", RequesterNotice(NoticeEnded, expired, expired.EndsAt, berlin)},
		{"notice_revoked", RequesterNotice(NoticeEnded, revoked, revoked.EndedAt, berlin)},
		{"notice_failed", RequesterNotice(NoticeFailed, active, t0, berlin)},
		{"approval_scheduled_pending", ApprovalMessage(sched, 0, info, berlin)},
		{"notice_submitted_scheduled", RequesterNotice(NoticeSubmitted, sched, t0, berlin)},
		{"notice_approved_scheduled", RequesterNotice(NoticeApproved, schedApproved, t0.Add(10*time.Minute), berlin)},
		{"notice_active_scheduled", RequesterNotice(NoticeActive, schedActive, schedActive.ProvisionedAt, berlin)},
		{"notice_scheduled_refused_at_start", RequesterNotice(NoticeFailed, schedRefused, sched.StartAt, berlin)},
		{"notice_scheduled_cancelled", RequesterNotice(NoticeEnded, schedWithdrawn, schedWithdrawn.EndedAt, berlin)},
		{"alert_identity_mismatch", AlertMessage(mismatch, mismatchAlert, time.UTC)},
		{"break_glass", BreakGlassNotice(r, time.UTC)},
		{"list", ListMessage([]access.Request{active, r, expired}, active.ProvisionedAt, berlin)},
		{"list_empty", ListMessage(nil, t0, time.UTC)},
		{"list_scheduled", ListMessage([]access.Request{schedApproved}, t0.Add(10*time.Minute), berlin)},
		{"help_unknown", HelpMessage("Unknown subcommand “frobnicate”.")},
		{"approval_delegate_pending", DelegateApprovalMessage(r, 0, info, berlin, testDelegation())},
		{"approval_step1_delegated", ApprovalMessage(delegated, 0, info, berlin)},
		{"notice_step_approved_delegated", RequesterNotice(NoticeStepApproved, delegated, t0, berlin)},
		{"delegation_created", DelegationCreatedMessage(testDelegation(), berlin)},
		{"delegation_off", DelegationOffMessage(testDelegation())},
		{"delegate_notice_created", DelegateNotice(access.EvDelegationCreated, testDelegation().DetailOf(), bob, berlin)},
		{"delegate_notice_ended", DelegateNotice(access.EvDelegationEnded, access.DelegationDetail{Delegation: "DLG-7", From: bob.Email, To: dave.Email,
			Until: testDelegation().Until, EndedAt: t0.Add(time.Hour), EndReason: access.DelegationEndOff}, bob, berlin)},
		{"delegator_notice_offboarded", DelegatorOffboardedNotice(access.DelegationDetail{Delegation: "DLG-7", From: bob.Email, To: dave.Email,
			Until: testDelegation().Until, EndedAt: t0.Add(time.Hour), EndReason: access.DelegationEndOffboarded}, dave)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := len(c.msg.Blocks); n > maxMessageBlocks {
				t.Fatalf("%d blocks", n)
			}
			golden(t, c.name, struct {
				Text   string        `json:"text"`
				Blocks []slack.Block `json:"blocks"`
			}{c.msg.Text, c.msg.Blocks})
		})
	}
}

func TestRenderHome(t *testing.T) {
	r := testRequest()
	active := r
	active.ID, active.State, active.ProvisionedAt, active.EndsAt = "REQ-0002", access.StateActive, t0, t0.Add(3*time.Hour)
	waiting := r
	waiting.ID, waiting.Requester = "REQ-0003", carol
	scheduled := r
	scheduled.ID, scheduled.State, scheduled.DecidedAt, scheduled.Current = "REQ-0004", access.StateScheduled, t0, 2
	scheduled.StartAt = time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC)
	var many []access.Request
	for i := range 40 {
		x := active
		x.ID = fmt.Sprintf("REQ-%04d", 100+i)
		many = append(many, x)
	}
	cases := []struct {
		name string
		home Home
	}{
		{"home_empty", Home{Now: t0, Loc: berlin}},
		{"home_full", Home{Now: t0.Add(time.Hour), Loc: berlin, Mine: []access.Request{active, r}, Waiting: []access.Request{waiting},
			Admin: true, AllPrivileged: []access.Request{active}, Delegations: []access.Delegation{testDelegation()}}},
		{"home_delegate", Home{Now: t0, Loc: berlin, Delegations: []access.Delegation{testDelegation()}}},
		{"home_capped", Home{Now: t0, Loc: time.UTC, Mine: many, Admin: true, AllPrivileged: many}},
		{"home_problem", Home{Now: t0, Problem: "Your Slack profile has no email address."}},
		{"home_scheduled", Home{Now: t0, Loc: berlin, Mine: []access.Request{scheduled}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := HomeView(c.home)
			if n := len(v.Blocks.BlockSet); n > maxViewBlocks {
				t.Fatalf("%d blocks", n)
			}
			golden(t, c.name, v)
		})
	}
}

func TestExportSummary(t *testing.T) {
	m := handlers.Manifest{Report: "access", RowCount: 3, Counts: map[string]int{"active": 1, "expired": 2},
		Parameters:    handlers.Parameters{From: "2026-03-03T00:00:00Z", To: "2026-03-04T00:00:00Z"},
		Audit:         handlers.AuditRef{HeadSeq: 12, HeadHash: "deadbeef", ChainVerified: true},
		CSV:           handlers.FileRef{SHA256: "c0ffee"},
		InclusionRule: handlers.AccessInclusion}
	got := ExportSummary(m)
	for _, want := range []string{"Rows: 3", "active 1, expired 2", "#12 `deadbeef`", "2026-03-03 to 2026-03-04", "chain verified", "`c0ffee`", "keycard export verify"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"cut", "abcdef", 5, "abcd…"},
		{"multibyte", "ééééé", 3, "éé…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := truncate(c.in, c.n); got != c.want {
				t.Fatalf("truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
			}
		})
	}
}
