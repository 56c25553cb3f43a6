package handlers_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image/color"
	pngpkg "image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/policy"
)

const reviewsYAML = `reviews:
  timezone: Europe/Berlin
  admin_access_report:
    schedule: "0 9 * * MON"
    channel: "#security-reviews"
  certification:
    schedule: "0 9 1 */3 *"
    policies: {privileged: true}
    reviewer: {user: ann@example.com}
    due: 7d
    on_timeout: keep-and-flag
`

// fakePublisher records posts and, like the bot, posts a key once.
type fakePublisher struct {
	mu    sync.Mutex
	posts []handlers.Report
	seen  map[string]bool
	fail  error
	sent  chan string
}

func (p *fakePublisher) Publish(_ context.Context, r handlers.Report) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[r.Key] {
		return nil
	}
	p.seen[r.Key] = true
	p.posts = append(p.posts, r)
	if p.sent != nil {
		p.sent <- r.Key
	}
	return nil
}

func (p *fakePublisher) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.posts) }

// withReviews swaps in the test policy plus review jobs.
func withReviews(t *testing.T, e *env) {
	t.Helper()
	set, err := policy.Parse("policy.yaml", []byte(testPolicy+reviewsYAML))
	if err != nil {
		t.Fatal(err)
	}
	e.set = set
	e.restart()
}

func outcomes(t *testing.T, svc *handlers.Service, job string) string {
	t.Helper()
	runs, err := svc.JobRuns(job)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range runs {
		out = append(out, r.Outcome)
	}
	return strings.Join(out, ",")
}

func TestReviewSchedule(t *testing.T) {
	ctx := context.Background()
	// t0 is Monday 2 Nov 2026 09:00 UTC = 10:00 in Berlin: the 09:00
	// Berlin slot of that day has passed.
	cases := []struct {
		name  string
		steps func(t *testing.T, e *env, pub *fakePublisher)
		posts int
		runs  string
	}{
		{"first start catches nothing up", func(t *testing.T, e *env, pub *fakePublisher) {}, 0, ""},
		{"a due slot runs once", func(t *testing.T, e *env, pub *fakePublisher) {
			e.clock.Advance(7 * 24 * time.Hour)
			tick(t, e, pub)
			tick(t, e, pub)
		}, 1, "ok"},
		{"after downtime only the latest slot runs", func(t *testing.T, e *env, pub *fakePublisher) {
			e.clock.Advance(3 * 7 * 24 * time.Hour)
			tick(t, e, pub)
		}, 1, "missed,missed,ok"},
		{"a restart never posts the same report twice", func(t *testing.T, e *env, pub *fakePublisher) {
			e.clock.Advance(7 * 24 * time.Hour)
			tick(t, e, pub)
			e.restart()
			tick(t, e, pub)
		}, 1, "ok"},
		{"a failed run is retried", func(t *testing.T, e *env, pub *fakePublisher) {
			pub.fail = errors.New("slack is down")
			e.clock.Advance(7 * 24 * time.Hour)
			tick(t, e, pub)
			pub.fail = nil
			e.clock.Advance(10 * time.Minute)
			tick(t, e, pub)
		}, 1, "ok"},
		{"a run that keeps failing is recorded failed after three tries", func(t *testing.T, e *env, pub *fakePublisher) {
			pub.fail = errors.New("slack is down")
			e.clock.Advance(7 * 24 * time.Hour)
			for i := 0; i < 3; i++ {
				tick(t, e, pub)
				e.clock.Advance(10 * time.Minute)
			}
			pub.fail = nil
			tick(t, e, pub)
		}, 0, "failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			withReviews(t, e)
			pub := &fakePublisher{}
			if _, err := e.svc.ReviewTick(ctx, pub); err != nil {
				t.Fatal(err)
			}
			c.steps(t, e, pub)
			if got := pub.count(); got != c.posts {
				t.Errorf("%d posts, want %d", got, c.posts)
			}
			if got := outcomes(t, e.svc, handlers.JobAdminReport); got != c.runs {
				t.Errorf("ledger %q, want %q", got, c.runs)
			}
			for _, r := range pub.posts {
				if r.Admin == nil || len(r.Files) != 3 || !strings.HasSuffix(r.Files[1].Name, ".manifest.json") || !strings.HasSuffix(r.Files[2].Name, ".png") {
					t.Errorf("report files %v, want the CSV, its manifest and the chart", fileNames(r.Files))
				} else {
					checkChart(t, r.Files[1].Content, r.Files[2])
				}
				if h := r.Slot.In(e.set.Reviews.Timezone).Hour(); h != 9 {
					t.Errorf("slot %s is not 09:00 in the policy's time zone", r.Slot)
				}
			}
		})
	}
}

func tick(t *testing.T, e *env, pub handlers.Publisher) {
	t.Helper()
	if _, err := e.svc.ReviewTick(context.Background(), pub); err != nil && !strings.Contains(err.Error(), "slack is down") {
		t.Fatal(err)
	}
}

// TestRunReviewsSleepsOnTheClock drives the loop with a fake clock: it
// posts when the clock reaches the slot, without any real waiting.
func TestRunReviewsSleepsOnTheClock(t *testing.T) {
	e := newEnv(t)
	withReviews(t, e)
	fc := fakeclock.New(t0)
	svc := handlers.New(adapt.Store(e.db), conns{e.idp}, e.set, fc, handlers.Options{})
	pub := &fakePublisher{sent: make(chan string, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.RunReviews(ctx, pub) }()
	for fc.Waiters() == 0 { // the first pass (no catch-up) has gone to sleep
		select {
		case <-ctx.Done():
			t.Fatal("the loop never slept")
		default:
		}
	}
	fc.Advance(7 * 24 * time.Hour) // the sleeping loop's timer fires; the slot of 9 Nov is due
	select {
	case key := <-pub.sent:
		if key != handlers.JobAdminReport+"/2026-11-09T08:00:00Z" {
			t.Errorf("posted %s", key)
		}
	case <-ctx.Done():
		t.Fatal("no report after the clock passed the slot")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCampaignRules(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	withReviews(t, e)
	// ann holds prod-db-admin through keycard; mallory is a standing member.
	e.idp.setMember("prod-db-admins", "mallory@example.com", true)
	r, err := e.submit("ann@example.com", "prod-db-admin", 4*time.Hour, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.decide(r.ID, 0, "bob@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.decide(r.ID, 1, "carol@example.com", true, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RunOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.OpenCampaign(ctx, access.ActorScheduler, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.OpenCampaign(ctx, access.ActorScheduler, nil, t0)
	if err != nil || again.ID != c.ID {
		t.Fatalf("second open of the same slot: %v %v", again.ID, err)
	}
	_, items, err := e.svc.CampaignOf(c.ID)
	if err != nil || len(items) != 2 {
		t.Fatalf("items %+v %v", items, err)
	}
	var annItem, malItem handlers.CampaignItem
	for _, it := range items {
		switch it.Holder.Email {
		case "ann@example.com":
			annItem = it
		case "mallory@example.com":
			malItem = it
		}
	}
	// The rule names ann: for her own item she is the subject, so it goes
	// to her manager; mallory's item goes to ann.
	if !annItem.ReviewerIsSubject || annItem.ReassignedTo != "manager" || annItem.Reviewers[0].Email != "bob@example.com" {
		t.Errorf("ann's item %+v", annItem)
	}
	if malItem.Source != handlers.SourceStanding || malItem.Reviewers[0].Email != "ann@example.com" {
		t.Errorf("mallory's item %+v", malItem)
	}
	review := func(item, email string, decision access.ReviewDecision, comment string) error {
		_, err := e.svc.Review(ctx, handlers.ReviewInput{ItemID: item, SlackID: slackID(email), Email: email, Decision: decision, Comment: comment})
		return err
	}
	cases := []struct {
		name      string
		item, who string
		dec       access.ReviewDecision
		comment   string
		want      access.Code
	}{
		{"the holder cannot review their own access", annItem.ID, "ann@example.com", access.ReviewKeep, "mine", access.CodeForbidden},
		{"someone who is not a reviewer is refused", annItem.ID, "carol@example.com", access.ReviewRevoke, "", access.CodeForbidden},
		{"keeping privileged access needs a comment", malItem.ID, "ann@example.com", access.ReviewKeep, "", access.CodeInvalid},
		{"keep with a comment", malItem.ID, "ann@example.com", access.ReviewKeep, "DBA on call", ""},
		{"a second decision loses", malItem.ID, "ann@example.com", access.ReviewRevoke, "", access.CodeConflict},
		{"the manager revokes", annItem.ID, "bob@example.com", access.ReviewRevoke, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := access.CodeOf(review(tc.item, tc.who, tc.dec, tc.comment)); got != tc.want {
				t.Errorf("code %q, want %q", got, tc.want)
			}
		})
	}
	if got, _ := e.svc.Get(r.ID); got.State != access.StateDeprovisioning || got.EndedBy.Email != "bob@example.com" {
		t.Errorf("ann's grant %s ended by %s", got.State, got.EndedBy.Email)
	}
	if _, err := e.svc.RunOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if e.idp.isMember("prod-db-admins", "ann@example.com") {
		t.Error("ann is still a member")
	}
	pub := &fakePublisher{}
	if _, err := e.svc.ReviewTick(ctx, pub); err != nil { // every item decided: the campaign closes and posts once
		t.Fatal(err)
	}
	if _, err := e.svc.ReviewTick(ctx, pub); err != nil {
		t.Fatal(err)
	}
	c, items, _ = e.svc.CampaignOf(c.ID)
	if c.State != access.CampaignClosed || !c.SummaryPosted || pub.count() != 1 || pub.posts[0].Campaign == nil {
		t.Fatalf("campaign %+v, %d posts", c, pub.count())
	}
	for _, it := range items {
		if it.Holder.Email == "ann@example.com" && it.RemediatedAt.IsZero() {
			t.Error("ann's removal not recorded as remediated")
		}
	}
	if got := outcomes(t, e.svc, handlers.JobCampaignClose); got != "ok" {
		t.Errorf("close ledger %q", got)
	}
}

func TestComparePolicyGroups(t *testing.T) {
	set, err := policy.Parse("policy.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name               string
		groups             map[string][]string
		uncovered, missing string
	}{
		{"in sync", map[string][]string{"okta": {"prod-db-admins", "app-grafana-viewers", "prod-root", "app-lonely", "auditors"}}, "", ""},
		{"uncovered in-scope group; out-of-scope ignored", map[string][]string{"okta": {"prod-db-admins", "app-grafana-viewers", "prod-root", "app-lonely", "app-legacy", "hr-all"}}, "app-legacy", ""},
		{"policy group missing", map[string][]string{"okta": {"prod-db-admins", "app-grafana-viewers", "app-lonely"}}, "", "prod-root"},
		{"connector not listed is not judged", map[string][]string{}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := handlers.ComparePolicyGroups(set, c.groups)
			var u, m []string
			for _, g := range s.Uncovered {
				u = append(u, g.Group)
			}
			for _, g := range s.Missing {
				m = append(m, g.Group)
			}
			if strings.Join(u, ",") != c.uncovered || strings.Join(m, ",") != c.missing {
				t.Errorf("uncovered %v missing %v", u, m)
			}
		})
	}
}

func fileNames(fs []handlers.ReportFile) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

// checkChart: the chart is a real PNG, not blank, and the manifest beside
// the CSV names it with its SHA-256 (issue 14 item 6).
func checkChart(t *testing.T, manifest []byte, png handlers.ReportFile) {
	t.Helper()
	img, err := pngpkg.Decode(bytes.NewReader(png.Content))
	if err != nil {
		t.Fatalf("%s: %v", png.Name, err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 400 {
		t.Errorf("%s is %dx%d", png.Name, b.Dx(), b.Dy())
	}
	colours := map[color.Color]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y && len(colours) < 3; y += 7 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 7 {
			colours[img.At(x, y)] = true
		}
	}
	if len(colours) < 3 {
		t.Errorf("%s looks blank (%d colours)", png.Name, len(colours))
	}
	var m handlers.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(png.Content)
	if len(m.Attachments) != 1 || m.Attachments[0].Name != png.Name || m.Attachments[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest attachments %+v, want %s with its hash", m.Attachments, png.Name)
	}
}

// A report's chart is anchored in the audit chain: report.posted records
// each file's hash, and export verify holds the manifest's attachments to it
// (issue 14 review: a swapped chart with an edited manifest passed).
func TestChartAttachmentVerifiesAgainstTheChain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	withReviews(t, e)
	pub := &fakePublisher{}
	if _, err := e.svc.ReviewTick(ctx, pub); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(7 * 24 * time.Hour)
	if _, err := e.svc.ReviewTick(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if pub.count() != 1 {
		t.Fatalf("%d posts", pub.count())
	}
	r := pub.posts[0]
	var m handlers.Manifest
	if err := json.Unmarshal(r.Files[1].Content, &m); err != nil {
		t.Fatal(err)
	}
	verify := func(m handlers.Manifest) []string {
		probs, err := handlers.VerifyManifest(m, bytes.NewReader(r.Files[0].Content), nil, e.svc.Recorded)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range probs {
			if strings.Contains(p, "attachment") {
				out = append(out, p)
			}
		}
		return out
	}
	if probs := verify(m); len(probs) != 0 {
		t.Fatalf("the report as posted: %v", probs)
	}
	swapped := m
	swapped.Attachments = []handlers.FileRef{{Name: m.Attachments[0].Name, SHA256: strings.Repeat("0", 64), Bytes: 1}}
	if probs := verify(swapped); len(probs) != 1 || !strings.Contains(probs[0], "the audit log recorded") {
		t.Fatalf("a swapped chart: %v", probs)
	}
	renamed := m
	renamed.Attachments = []handlers.FileRef{{Name: "other.png", SHA256: m.Attachments[0].SHA256}}
	if probs := verify(renamed); len(probs) != 1 || !strings.Contains(probs[0], "not among the files") {
		t.Fatalf("an attachment the report never had: %v", probs)
	}
}
