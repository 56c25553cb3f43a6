package bot_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fixture"
	"keycard/internal/slackemu"
)

// reviewOrg is the lab's directory for the review jobs: without gus, dave
// a standing member of prod-db-admins, hank and ivy contractors (ivy
// without a manager), and app-legacy inside the scope with no policy.
var reviewOrg = fixture.Lab().Without("gus").With(fixture.Hank, fixture.Ivy).
	WithGroup("prod-db-admins", "dave@example.com").WithGroup("app-legacy")

// reviewPolicy is the lab's policy file on reviewOrg, with reviewRules.
var reviewPolicy = fixture.Directory("lab", "static", reviewOrg).Append(reviewRules).String()

// reviewRules are reviewPolicy's rules: the lab's prod-db-admin, a
// grafana-viewer for engineers (3d of 30d), and the review jobs.
const reviewRules = `profiles:
  engineers:
    where: {department: [Engineering, SRE]}
policies:
  - name: prod-db-admin
    app: Production Database
    role: Admin
    group: prod-db-admins
    privileged: true
    eligible: [engineers]
    approval:
      - manager
      - group: security-team
    duration: {default: 4h, max: 8h}
    justification: required
  - name: grafana-viewer
    app: Grafana
    role: Viewer
    group: app-grafana-viewers
    eligible: [engineers]
    approval: auto
    duration: {default: 3d, max: 30d}
    justification: optional
auditors: {group: auditors}
admins: {group: keycard-admins}
alerts: {channel: "#security-alerts"}
reviews:
  timezone: UTC
  admin_access_report:
    schedule: "0 9 * * MON"
    channel: "#security-reviews"
  contractor_expiry:
    schedule: "0 9 * * MON"
    within: 7d
    contractors: {userType: Contractor}
  compliance_package:
    schedule: "0 6 1 * *"
    channel: "#compliance"
  certification:
    schedule: "0 9 1 */3 *"
    policies: {privileged: true}
    reviewer: manager
    channel: "#security-reviews"
    due: 7d
    on_timeout: revoke
`

type reviewEnv struct {
	*env
	mem adapt.Memberships
}

// newReviewEnv boots keycard with reviewPolicy and takes the groups'
// baselines (dave is standing in prod-db-admins).
func newReviewEnv(t *testing.T) *reviewEnv {
	t.Helper()
	e := boot(t, world{policy: reviewPolicy})
	if err := e.svc.TakeBaselines(e.ctx); err != nil {
		t.Fatal(err)
	}
	return &reviewEnv{env: e, mem: adapt.Memberships{DB: e.db}}
}

// grantDB gives ann an active prod-db-admin grant approved by bob and carol.
func (e *reviewEnv) grantDB() access.Request {
	e.t.Helper()
	r, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: uAnn, Email: "ann@example.com", Policy: "prod-db-admin", Duration: 8 * time.Hour, Justification: "INC-7"})
	if err != nil {
		e.t.Fatal(err)
	}
	for i, who := range [][2]string{{uBob, "bob@example.com"}, {uCarol, "carol@example.com"}} {
		if _, err := e.svc.Decide(e.ctx, handlers.DecideInput{RequestID: r.ID, Step: i, SlackID: who[0], Email: who[1], Approve: true}); err != nil {
			e.t.Fatal(err)
		}
	}
	e.provision()
	if st := e.state(r.ID); st != access.StateActive {
		e.t.Fatalf("grant %s", st)
	}
	g, _ := e.svc.Get(r.ID)
	return g
}

// addOutOfBand adds a member to a group behind keycard's back (after the
// baseline): unmanaged access.
func (e *reviewEnv) addOutOfBand(group, email string) {
	e.t.Helper()
	if err := e.mem.SetStaticMember("lab", group, email, true, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *reviewEnv) channelText(name string) string {
	var sb strings.Builder
	for _, m := range e.emu.Messages(e.channelID(name)) {
		sb.WriteString(m.PlainText())
		sb.WriteString("\n")
	}
	return sb.String()
}

func (e *reviewEnv) channelID(name string) string { return e.chans[name] }

func filesIn(s *slackemu.Server, channel string) []slackemu.File {
	var out []slackemu.File
	for _, f := range s.Files() {
		if f.Channel == channel {
			out = append(out, f)
		}
	}
	return out
}

// topLevel counts a channel's messages that are not thread replies.
func topLevel(s *slackemu.Server, channel string) int {
	n := 0
	for _, m := range s.Messages(channel) {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			n++
		}
	}
	return n
}

func csvRows(t *testing.T, data []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func column(rows [][]string, name string) int {
	for i, h := range rows[0] {
		if h == name {
			return i
		}
	}
	return -1
}

func TestE2EAdminAccessReport(t *testing.T) {
	e := newReviewEnv(t)
	g := e.grantDB()
	e.addOutOfBand("prod-db-admins", "erin@example.com")

	if err := e.svc.RunJobNow(e.ctx, e.bot, handlers.JobAdminReport, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	ch := e.channelID("security-reviews")
	var files []slackemu.File
	e.waitFor("report CSV, manifest and chart", func(s *slackemu.Server) bool { files = filesIn(s, ch); return len(files) == 3 })
	if !strings.HasSuffix(files[2].Name, ".png") || !bytes.HasPrefix(files[2].Content, []byte("\x89PNG")) {
		t.Errorf("third file %s is not the chart", files[2].Name)
	}
	text := e.channelText("security-reviews")
	for _, want := range []string{"Privileged access report", "Production Database · Admin", "Ann Lee", "approved by Bob Stone, Carol Diaz",
		"dave@example.com — standing", "erin@example.com — unmanaged", "app-legacy", "3 rows"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	rows := csvRows(t, files[0].Content)
	src, email, grant := column(rows, "source"), column(rows, "user_email"), column(rows, "grant_id")
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[email]] = r[src] + " " + r[grant]
	}
	want := map[string]string{"ann@example.com": "keycard " + g.ID, "dave@example.com": "standing ", "erin@example.com": "unmanaged "}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("CSV %s: %q, want %q (rows %q)", k, got[k], v, rows)
		}
	}
	var m handlers.Manifest
	if err := json.Unmarshal(files[1].Content, &m); err != nil || m.RowCount != 3 || m.Generation.GeneratedBy != access.ActorScheduler {
		t.Errorf("manifest %+v: %v", m, err)
	}
	if probs, err := handlers.VerifyManifest(m, strings.NewReader(string(files[0].Content)), nil, e.svc.Recorded); err != nil || len(probs) > 0 {
		t.Errorf("manifest does not verify: %v %v", probs, err)
	}
	if runs, _ := e.svc.JobRuns(handlers.JobAdminReport); len(runs) != 1 || runs[0].Outcome != handlers.RunOK || runs[0].Artefact == "" {
		t.Errorf("ledger: %+v", runs)
	}
}

func TestE2EContractorExpiry(t *testing.T) {
	e := newReviewEnv(t)
	hank, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: uHank, Email: "hank@example.com", Policy: "grafana-viewer", Duration: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ivy, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: uIvy, Email: "ivy@example.com", Policy: "grafana-viewer", Duration: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ann, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: uAnn, Email: "ann@example.com", Policy: "grafana-viewer", Duration: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.provision()
	if err := e.svc.RunJobNow(e.ctx, e.bot, handlers.JobContractor, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.events(access.EvContractorAsked)); n != 2 {
		t.Fatalf("%d questions, want 2 (hank and ivy, not ann the employee %s)", n, ann.ID)
	}

	// Hank's manager Bob extends by 7d.
	var ask slackemu.Message
	e.waitFor("bob's question about hank", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uBob, "Hank Cole")
		ask = m
		return ok && hasButton(m, "keycard_contractor_extend")
	})
	e.click(uBob, ask, "keycard_contractor_extend")
	var v slackemu.View
	e.waitFor("extend modal", func(s *slackemu.Server) bool {
		vs := s.OpenViews(uBob)
		if len(vs) == 0 {
			return false
		}
		v = vs[len(vs)-1]
		return v.CallbackID == "keycard_contractor_extend"
	})
	ack, err := e.emu.SubmitView(e.ctx, uBob, v.ID, slackemu.Values{"duration:grafana-viewer": {"keycard_duration": {Selected: "1w"}}})
	if err != nil || len(ack.Errors()) > 0 {
		t.Fatalf("extend: %v %v", ack.Errors(), err)
	}
	e.provision()
	old, _ := e.svc.Get(hank.ID)
	if old.ExtendedBy == "" {
		t.Fatal("hank's grant was not extended")
	}
	ext, _ := e.svc.Get(old.ExtendedBy)
	if ext.State != access.StateActive || !ext.EndsAt.Equal(old.EndsAt.Add(7*24*time.Hour)) || ext.Steps[0].DecidedBy.Email != "bob@example.com" {
		t.Errorf("extension %s ends %s approved by %+v", ext.State, ext.EndsAt, ext.Steps)
	}
	e.waitFor("bob's question closed", func(s *slackemu.Server) bool {
		m, ok := s.Message(ask.Channel, ask.TS)
		return ok && !hasButton(m, "keycard_contractor_extend") && strings.Contains(m.PlainText(), "Extended")
	})

	// Ivy has no manager: the question goes to the security channel; a
	// non-admin's click is refused, the admin lets it expire.
	alerts := e.channelID("security-alerts")
	var q slackemu.Message
	e.waitFor("ivy's question in the security channel", func(s *slackemu.Server) bool {
		for _, m := range s.Messages(alerts) {
			if strings.Contains(m.PlainText(), "Ivy Moss") && hasButton(m, "keycard_contractor_expire") {
				q = m
				return true
			}
		}
		return false
	})
	e.click(uCarol, q, "keycard_contractor_expire")
	e.waitFor("carol refused", func(s *slackemu.Server) bool { return ephemeralContains(s, uCarol, "keycard admin") })
	e.click(uFrank, q, "keycard_contractor_expire")
	e.waitFor("ivy's question closed", func(s *slackemu.Server) bool {
		m, ok := s.Message(q.Channel, q.TS)
		return ok && strings.Contains(m.PlainText(), "Left to expire")
	})
	if a, err := e.svc.ContractorAskOf(ivy.ID); err != nil || a.Decision != handlers.AskLetExpire || a.DecidedBy.Email != "frank@example.com" {
		t.Errorf("ivy's question: %+v %v", a, err)
	}
	if len(e.events(access.EvContractorExtended)) != 1 || len(e.events(access.EvContractorLetExpire)) != 1 {
		t.Error("decisions not audited")
	}
	// A second run asks nothing new (each grant is asked once; hank's
	// extension ends beyond the window).
	e.clock.Advance(time.Hour)
	if err := e.svc.RunJobNow(e.ctx, e.bot, handlers.JobContractor, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.events(access.EvContractorAsked)); n != 2 {
		t.Errorf("%d questions after a second run", n)
	}
}

// A privileged contractor extension goes through the policy's approval
// chain: bob's question says "Extension requested", pending approval, and
// becomes "Extended" only when carol approves the second step (issue 10
// follow-up: it said "Extended" while the chain was still pending).
func TestE2EContractorPrivilegedExtensionPending(t *testing.T) {
	e := newReviewEnv(t)
	hank, err := e.svc.Submit(e.ctx, handlers.SubmitInput{SlackID: uHank, Email: "hank@example.com", Policy: "prod-db-admin", Duration: 4 * time.Hour, Justification: "INC-8"})
	if err != nil {
		t.Fatal(err)
	}
	for i, who := range [][2]string{{uBob, "bob@example.com"}, {uCarol, "carol@example.com"}} {
		if _, err := e.svc.Decide(e.ctx, handlers.DecideInput{RequestID: hank.ID, Step: i, SlackID: who[0], Email: who[1], Approve: true}); err != nil {
			t.Fatal(err)
		}
	}
	e.provision()
	if err := e.svc.RunJobNow(e.ctx, e.bot, handlers.JobContractor, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	var ask slackemu.Message
	e.waitFor("bob's question about hank", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uBob, "Hank Cole")
		ask = m
		return ok && hasButton(m, "keycard_contractor_extend")
	})
	e.click(uBob, ask, "keycard_contractor_extend")
	var v slackemu.View
	e.waitFor("extend modal", func(s *slackemu.Server) bool {
		vs := s.OpenViews(uBob)
		if len(vs) == 0 {
			return false
		}
		v = vs[len(vs)-1]
		return v.CallbackID == "keycard_contractor_extend"
	})
	ack, err := e.emu.SubmitView(e.ctx, uBob, v.ID, slackemu.Values{"duration:prod-db-admin": {"keycard_duration": {Selected: "4h"}}})
	if err != nil || len(ack.Errors()) > 0 {
		t.Fatalf("extend: %v %v", ack.Errors(), err)
	}
	a, err := e.svc.ContractorAskOf(hank.ID)
	if err != nil || a.Extension == "" || a.ExtensionState != access.StatePending {
		t.Fatalf("question %+v: %v", a, err)
	}
	e.waitFor("bob's question says pending", func(s *slackemu.Server) bool {
		m, ok := s.Message(ask.Channel, ask.TS)
		return ok && !hasButton(m, "keycard_contractor_extend") && strings.Contains(m.PlainText(), "Extension requested") &&
			strings.Contains(m.PlainText(), "pending approval") && !strings.Contains(m.PlainText(), "Extended")
	})
	if _, err := e.svc.Decide(e.ctx, handlers.DecideInput{RequestID: a.Extension, Step: 1, SlackID: uCarol, Email: "carol@example.com", Approve: true}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("bob's question says extended", func(s *slackemu.Server) bool {
		m, ok := s.Message(ask.Channel, ask.TS)
		return ok && strings.Contains(m.PlainText(), "Extended") && !strings.Contains(m.PlainText(), "pending approval")
	})
}

func TestE2ECampaign(t *testing.T) {
	e := newReviewEnv(t)
	g := e.grantDB()
	e.addOutOfBand("prod-db-admins", "erin@example.com")

	// Only admins may start a review.
	if _, err := e.emu.SlashCommand(e.ctx, uAnn, "/access", "review start"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("ann refused", func(s *slackemu.Server) bool { return ephemeralContains(s, uAnn, "Only keycard admins") })
	if _, err := e.emu.SlashCommand(e.ctx, uFrank, "/access", "review start prod-db-admin"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("frank told", func(s *slackemu.Server) bool { return ephemeralContains(s, uFrank, "Access review CAMP-") })
	cs, err := e.svc.Campaigns()
	if err != nil || len(cs) != 1 {
		t.Fatalf("campaigns %v %v", cs, err)
	}
	c := cs[0]
	if c.Items != 3 || c.PopulationSHA256 == "" || !c.SnapshotAt.Equal(e.clock.Now()) {
		t.Fatalf("campaign %+v", c)
	}

	// Bob (manager of ann and dave) gets one DM per item; erin has no
	// manager, so her item goes to the admins.
	var annItem, daveItem slackemu.Message
	e.waitFor("bob's item DMs", func(s *slackemu.Server) bool {
		a, ok1 := findDM(s, uBob, "does Ann Lee")
		d, ok2 := findDM(s, uBob, "does Dave Kim")
		annItem, daveItem = a, d
		return ok1 && ok2 && hasButton(a, "keycard_review_revoke")
	})
	e.waitFor("frank's item DM for erin", func(s *slackemu.Server) bool {
		m, ok := findDM(s, uFrank, "does Erin Park")
		return ok && strings.Contains(m.PlainText(), "admins")
	})

	// Revoke ann's keycard grant: removed through the outbox, audited.
	e.click(uBob, annItem, "keycard_review_revoke")
	e.waitFor("ann's item closed", func(s *slackemu.Server) bool {
		m, ok := s.Message(annItem.Channel, annItem.TS)
		return ok && !hasButton(m, "keycard_review_revoke") && strings.Contains(m.PlainText(), "Revoke")
	})
	e.provision()
	if r, _ := e.svc.Get(g.ID); r.State != access.StateRevoked || r.EndedBy.Email != "bob@example.com" || r.EndReason != access.ReasonRevoked {
		t.Fatalf("ann's grant after revoke: %s by %s (%s)", r.State, r.EndedBy.Email, r.EndReason)
	}

	// Keep dave's privileged standing access: a reason is required.
	e.click(uBob, daveItem, "keycard_review_keep")
	var v slackemu.View
	e.waitFor("keep modal", func(s *slackemu.Server) bool {
		vs := s.OpenViews(uBob)
		if len(vs) == 0 {
			return false
		}
		v = vs[len(vs)-1]
		return v.CallbackID == "keycard_review_keep"
	})
	ack, err := e.emu.SubmitView(e.ctx, uBob, v.ID, slackemu.Values{"comment": {"keycard_review_comment": {Text: "on-call DBA"}}})
	if err != nil || len(ack.Errors()) > 0 {
		t.Fatalf("keep: %v %v", ack.Errors(), err)
	}

	// A daily reminder reaches frank, then the due date: erin's unreviewed
	// item is revoked (on_timeout: revoke), the summary is posted.
	e.clock.Advance(25 * time.Hour)
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil {
		t.Fatal(err)
	}
	e.waitFor("frank reminded", func(s *slackemu.Server) bool { _, ok := findDM(s, uFrank, "still wait for you"); return ok })
	e.clock.Advance(7 * 24 * time.Hour)
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil {
		t.Fatal(err)
	}
	e.provision()
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil { // records the IdP's confirmation
		t.Fatal(err)
	}
	if ok, _ := (adapt.Memberships{DB: e.db}).StaticMembers("lab", "prod-db-admins"); strings.Contains(strings.Join(ok, ","), "erin") {
		t.Errorf("erin still in prod-db-admins: %v", ok)
	}
	ch := e.channelID("security-reviews")
	var files []slackemu.File
	e.waitFor("campaign summary with CSV", func(s *slackemu.Server) bool {
		files = nil
		for _, f := range filesIn(s, ch) {
			if strings.HasPrefix(f.Name, "keycard-campaign-") {
				files = append(files, f)
			}
		}
		return len(files) == 2
	})
	if text := e.channelText("security-reviews"); !strings.Contains(text, "closed") || !strings.Contains(text, "erin@example.com") {
		t.Errorf("summary:\n%s", text)
	}
	rows := csvRows(t, files[0].Content)
	if len(rows) != 4 || strings.Join(rows[0], ",") != strings.Join(handlers.CampaignHeader, ",") {
		t.Fatalf("campaign CSV %q", rows)
	}
	byHolder := map[string][]string{}
	for _, r := range rows[1:] {
		byHolder[r[3]] = r
	}
	col := func(holder, name string) string { return byHolder[holder][column(rows, name)] }
	if col("ann@example.com", "decision") != "revoke" || col("ann@example.com", "source") != "keycard" || col("ann@example.com", "remediated_at") == "" ||
		col("ann@example.com", "reviewer_email") != "bob@example.com" || col("ann@example.com", "grant_id") != g.ID {
		t.Errorf("ann's row %q", byHolder["ann@example.com"])
	}
	if col("dave@example.com", "decision") != "keep" || col("dave@example.com", "comment") != "on-call DBA" || col("dave@example.com", "source") != "standing" {
		t.Errorf("dave's row %q", byHolder["dave@example.com"])
	}
	if col("erin@example.com", "timeout_outcome") != string(access.TimeoutRevoked) || col("erin@example.com", "source") != "unmanaged" {
		t.Errorf("erin's row %q", byHolder["erin@example.com"])
	}
	for _, typ := range []access.EventType{access.EvCampaignOpened, access.EvCampaignItemDecided, access.EvCampaignItemTimedOut,
		access.EvCampaignReminded, access.EvCampaignClosed, access.EvCampaignItemRemediated} {
		if len(e.events(typ)) == 0 {
			t.Errorf("no %s event", typ)
		}
	}
	// The auditor exports the campaign from Slack.
	if _, err := e.emu.SlashCommand(e.ctx, uErin, "/export", "campaign "+c.ID); err != nil {
		t.Fatal(err)
	}
	var exp []slackemu.File
	e.waitFor("campaign export in erin's DM", func(s *slackemu.Server) bool { exp = filesIn(s, s.DMChannel(uErin)); return len(exp) == 2 })
	// By now the IdP has confirmed the timed-out item's removal too.
	rows = csvRows(t, exp[0].Content)
	for _, r := range rows[1:] {
		if r[3] == "erin@example.com" && r[column(rows, "remediated_at")] == "" {
			t.Errorf("erin's removal not confirmed in the export: %q", r)
		}
	}
}

func TestE2EMissedRunsAndRestart(t *testing.T) {
	e := newReviewEnv(t)
	// First start: nothing is caught up.
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil {
		t.Fatal(err)
	}
	if n := len(e.events(access.EvReportPosted)); n != 0 {
		t.Fatalf("first start posted %d reports", n)
	}
	// keycard is down for three Monday slots: one report, two missed.
	e.clock.Advance(3 * 7 * 24 * time.Hour)
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil {
		t.Fatal(err)
	}
	runs, _ := e.svc.JobRuns(handlers.JobAdminReport)
	var outcomes []string
	for _, r := range runs {
		outcomes = append(outcomes, r.Outcome)
	}
	if strings.Join(outcomes, ",") != "missed,missed,ok" {
		t.Fatalf("ledger %v", outcomes)
	}
	ch := e.channelID("security-reviews")
	e.waitFor("one report", func(s *slackemu.Server) bool { return topLevel(s, ch) == 1 })
	missedAlert := false
	for _, ev := range e.events(access.EvAlert) {
		missedAlert = missedAlert || strings.Contains(ev.Detail, "job_missed")
	}
	if !missedAlert {
		t.Error("missed runs not alerted")
	}

	// A restart (keycard stopped and started again on the same database)
	// posts nothing again.
	e.restart()
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the run (ledger still running, cursor not
	// moved): the slot runs again at start, and the post is not repeated.
	last := runs[len(runs)-1]
	last.Outcome = handlers.RunRunning
	if err := e.svc.RecordJobRun(last); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetCursor("job.last_slot."+handlers.JobAdminReport, last.Slot.Add(-7*24*time.Hour).Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil {
		t.Fatal(err)
	}
	if runs, _ := e.svc.JobRuns(handlers.JobAdminReport); runs[len(runs)-1].Outcome != handlers.RunOK {
		t.Errorf("re-run slot: %+v", runs[len(runs)-1])
	}
	if n := topLevel(e.emu, ch); n != 1 {
		t.Errorf("%d reports after restart, want 1", n)
	}

	// Crossing the 1st of April runs the compliance package for March.
	e.clock.Advance(24*24*time.Hour - 3*time.Hour) // 2026-04-15 06:00 → past 04-01 06:00
	if _, err := e.svc.ReviewTick(e.ctx, e.bot); err != nil {
		t.Fatal(err)
	}
	comp := e.channelID("compliance")
	var files []slackemu.File
	e.waitFor("compliance package", func(s *slackemu.Server) bool { files = filesIn(s, comp); return len(files) == 5 })
	if files[0].Name != "keycard-access-2026-03.csv" || files[2].Name != "keycard-access-2026-03.png" || files[3].Name != "keycard-events-2026-03.csv" {
		t.Errorf("files %s %s %s", files[0].Name, files[2].Name, files[3].Name)
	}
	if text := e.channelText("compliance"); !strings.Contains(text, "Compliance package — March 2026") || !strings.Contains(text, e.set.Hash) {
		t.Errorf("compliance post:\n%s", text)
	}
}
