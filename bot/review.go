package bot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// ReviewCore is what the review surfaces (campaign items, contractor
// expiry questions, scheduled reports) need from keycard. *handlers.Service
// satisfies it; a Core without it simply has no review buttons.
type ReviewCore interface {
	StartCampaign(ctx context.Context, slackID, email string, names []string) (handlers.Campaign, error)
	Review(ctx context.Context, in handlers.ReviewInput) (handlers.CampaignItem, error)
	CampaignItemOf(id string) (handlers.CampaignItem, error)
	// MayReview and MayAnswerContractor are the submissions' authorization,
	// applied at the click before a modal shows the item.
	MayReview(ctx context.Context, itemID, slackID, email string) (handlers.CampaignItem, error)
	MayAnswerContractor(ctx context.Context, grantID, slackID, email string) (handlers.ContractorAsk, error)
	CampaignOf(id string) (handlers.Campaign, []handlers.CampaignItem, error)
	ContractorAskOf(grantID string) (handlers.ContractorAsk, error)
	ContractorExtend(ctx context.Context, grantID, slackID, email string, d time.Duration) (access.Request, error)
	ContractorLetExpire(ctx context.Context, grantID, slackID, email string) (handlers.ContractorAsk, error)
	Export(ctx context.Context, w io.Writer, req handlers.ExportRequest) (handlers.Manifest, error)
}

var _ ReviewCore = (*handlers.Service)(nil)

var _ handlers.Publisher = (*Bot)(nil)

func itemRefKey(id string) string   { return "review:" + id }
func askRefKey(grant string) string { return "contractor:" + grant }

// accessReview serves `/access review start [policy…]`, a subcommand of
// /access (commands.go dispatches to it).
func (b *Bot) accessReview(ctx context.Context, in *inbound, f []string) {
	if len(f) < 2 || !strings.EqualFold(f[1], "start") {
		b.tell(ctx, in, "Usage: /access review start [policy…] (keycard admins only)")
		return
	}
	names := f[2:]
	b.enqueue("review start", func(ctx context.Context) { b.startReview(ctx, in, names) })
}

func (b *Bot) startReview(ctx context.Context, in *inbound, names []string) {
	rc := b.rev
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	c, err := rc.StartCampaign(ctx, in.user, pr.Email, names)
	if b.told(ctx, in, err) {
		return
	}
	b.nudge()
	b.tell(ctx, in, fmt.Sprintf("Access review %s started: %d items sent to their reviewers, due %s.", c.ID, c.Items, when(c.DueAt, b.people.loc(ctx, in.user))))
}

// exportCampaign serves `/export campaign <id>` for an auditor w (export.go
// checked the auditors group and dispatches to it).
func (b *Bot) exportCampaign(ctx context.Context, in *inbound, w who, f []string) {
	rc := b.rev
	if len(f) != 2 {
		b.tell(ctx, in, "Usage: /export campaign <campaign-id>")
		return
	}
	var buf bytes.Buffer
	m, err := rc.Export(ctx, &buf, handlers.ExportRequest{Kind: handlers.KindCampaign, Params: handlers.ExportParams{Campaign: f[1]},
		By: w.user.Email, Invocation: "/export " + in.cmd.Text})
	if b.told(ctx, in, err) {
		return
	}
	ch, err := b.dmChannel(ctx, in.user)
	if err != nil {
		b.tell(ctx, in, "Could not open your DM: "+err.Error())
		return
	}
	files := []handlers.ReportFile{{Name: m.CSV.Name, Content: buf.Bytes()},
		{Name: strings.TrimSuffix(m.CSV.Name, ".csv") + ".manifest.json", Content: m.Encode()}}
	for i, file := range files {
		comment := ""
		if i == 0 {
			comment = fmt.Sprintf("Campaign %s: %d items.", f[1], m.RowCount)
		}
		if err := b.upload(ctx, ch, "", file, comment); err != nil {
			b.tell(ctx, in, "The upload failed: "+err.Error())
			return
		}
	}
}

func (b *Bot) upload(ctx context.Context, channel, thread string, f handlers.ReportFile, comment string) error {
	if len(f.Content) == 0 {
		return nil
	}
	_, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{Reader: bytes.NewReader(f.Content), FileSize: len(f.Content),
		Filename: f.Name, Title: f.Name, Channel: channel, ThreadTimestamp: thread, InitialComment: comment})
	return err
}

// review runs one Keep / Revoke / Flag.
func (b *Bot) review(ctx context.Context, in *inbound, itemID string, decision access.ReviewDecision, comment string) error {
	rc := b.rev
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return err
	}
	if _, err := rc.Review(ctx, handlers.ReviewInput{ItemID: itemID, SlackID: in.user, Email: pr.Email, Decision: decision, Comment: comment}); err != nil {
		b.log.Info("review refused", "item", itemID, "user", in.user, "code", access.CodeOf(err))
		b.tell(ctx, in, access.MessageOf(err))
		return err
	}
	b.nudge()
	return nil
}

func (b *Bot) onReviewRevoke(ctx context.Context, in *inbound) {
	_ = b.review(ctx, in, in.action.Value, access.ReviewRevoke, "")
}

func (b *Bot) onReviewFlag(ctx context.Context, in *inbound) {
	_ = b.review(ctx, in, in.action.Value, access.ReviewFlag, "")
}

// onReviewKeep keeps non-privileged access at once; privileged access
// opens a modal whose comment is required (no rubber-stamping).
func (b *Bot) onReviewKeep(ctx context.Context, in *inbound) {
	rc := b.rev
	it, err := rc.CampaignItemOf(in.action.Value)
	if b.told(ctx, in, err) {
		return
	}
	if it.Privileged && it.Open() {
		// The modal shows the item: only its reviewer may open it.
		pr, err := b.people.profile(ctx, in.user)
		if err == nil {
			it, err = rc.MayReview(ctx, it.ID, in.user, pr.Email)
		}
		if b.told(ctx, in, err) {
			return
		}
	}
	if !it.Privileged || !it.Open() {
		b.enqueue("review keep", func(ctx context.Context) { _ = b.review(ctx, in, it.ID, access.ReviewKeep, "") })
		return
	}
	if _, err := b.api.OpenViewContext(ctx, in.cb.TriggerID, ReviewKeepModal(it)); err != nil {
		b.log.Error("views.open keep modal", "err", err)
		b.tell(ctx, in, "Slack did not open the comment form ("+err.Error()+"); click Keep again.")
	}
}

func (b *Bot) onReviewKeepSubmit(ctx context.Context, in *inbound, ack func(any)) {
	v := &in.cb.View
	comment := ""
	if a, ok := stateValue(v, blkComment, actComment); ok {
		comment = strings.TrimSpace(a.Value)
	}
	if comment == "" {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkComment: "Say why this access is still needed."}))
		return
	}
	rc := b.rev
	pr, err := b.people.profile(ctx, in.user)
	if err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkComment: access.MessageOf(err)}))
		return
	}
	if _, err := rc.Review(ctx, handlers.ReviewInput{ItemID: v.PrivateMetadata, SlackID: in.user, Email: pr.Email, Decision: access.ReviewKeep, Comment: comment}); err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkComment: truncate(access.MessageOf(err), 2000)}))
		return
	}
	b.nudge()
	ack(slack.NewClearViewSubmissionResponse())
}

// onAskExtendClick opens the contractor extension modal (durations up to
// the policy's max).
func (b *Bot) onAskExtendClick(ctx context.Context, in *inbound) {
	rc := b.rev
	// The modal shows the contractor's grant: only who may answer opens it.
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	a, err := rc.MayAnswerContractor(ctx, in.action.Value, in.user, pr.Email)
	if b.told(ctx, in, err) {
		return
	}
	p, ok := b.core.Policy().Policy(a.Policy)
	if !ok {
		b.tell(ctx, in, "Policy "+a.Policy+" no longer exists.")
		return
	}
	if _, err := b.api.OpenViewContext(ctx, in.cb.TriggerID, ContractorExtendModal(a, p)); err != nil {
		b.log.Error("views.open contractor extend", "err", err)
	}
}

func (b *Bot) onAskExtendSubmit(ctx context.Context, in *inbound, ack func(any)) {
	v := &in.cb.View
	rc := b.rev
	a, err := rc.ContractorAskOf(v.PrivateMetadata)
	if err != nil {
		ack(NoticeUpdate("Extend access", access.MessageOf(err)))
		return
	}
	block := durationBlockID(a.Policy)
	d := time.Duration(0)
	if s, ok := stateValue(v, block, actDuration); ok && s.SelectedOption.Value != "" {
		d, err = policy.ParseDuration(s.SelectedOption.Value)
		if err != nil {
			ack(slack.NewErrorsViewSubmissionResponse(map[string]string{block: err.Error()}))
			return
		}
	}
	pr, err := b.people.profile(ctx, in.user)
	if err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{block: access.MessageOf(err)}))
		return
	}
	if _, err := rc.ContractorExtend(ctx, a.GrantID, in.user, pr.Email, d); err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{block: truncate(access.MessageOf(err), 2000)}))
		return
	}
	b.nudge()
	ack(slack.NewClearViewSubmissionResponse())
}

func (b *Bot) onAskExpire(ctx context.Context, in *inbound) {
	rc := b.rev
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	if _, err := rc.ContractorLetExpire(ctx, in.action.Value, in.user, pr.Email); b.told(ctx, in, err) {
		return
	}
	b.nudge()
}

// Publish posts a scheduled report to its channel (the security channel
// when it names none): the message, then each file in its thread. A
// report whose key was already posted is not posted again.
func (b *Bot) Publish(ctx context.Context, r handlers.Report) error {
	key := "report:" + r.Key
	refs, err := b.core.Messages(key)
	if err != nil {
		return err
	}
	// The message and each file are recorded as soon as Slack has them, so a
	// retry after a failed upload adds only what is missing, in the same
	// thread, instead of posting the report again.
	var ch, ts string
	for _, ref := range refs {
		if ref.Kind == refReport {
			ch, ts = ref.Channel, ref.TS
		}
	}
	uploaded := map[string]bool{}
	for _, ref := range refs {
		if ref.Kind == refReportFile {
			uploaded[ref.SlackUser] = true // the file's name
		}
	}
	if ts != "" {
		return b.uploadMissing(ctx, key, ch, ts, r.Files, uploaded)
	}
	name := r.Channel
	if name == "" {
		name = b.core.Policy().Alerts.Channel
	}
	if name == "" {
		return access.Errorf(access.CodeInvalid, "report %s names no channel and the policy has no alerts channel", r.Job)
	}
	ch, err = b.resolveChannel(ctx, name)
	if err != nil {
		return err
	}
	m := ReportMessage(r, time.UTC)
	ch, ts, err = b.api.PostMessageContext(ctx, ch, m.options()...)
	if err != nil {
		return err
	}
	if err := b.core.RecordMessage(access.MessageRef{RequestID: key, Kind: refReport, Channel: ch, TS: ts}); err != nil {
		return err
	}
	return b.uploadMissing(ctx, key, ch, ts, r.Files, uploaded)
}

// refReportFile records one uploaded report file (SlackUser holds its name).
const refReportFile = "report-file"

// uploadMissing uploads the report's files not yet recorded, into the
// report message's thread, recording each as it lands.
func (b *Bot) uploadMissing(ctx context.Context, key, ch, ts string, files []handlers.ReportFile, uploaded map[string]bool) error {
	for _, f := range files {
		if uploaded[f.Name] {
			continue
		}
		if err := b.upload(ctx, ch, ts, f, ""); err != nil {
			return err
		}
		if err := b.core.RecordMessage(access.MessageRef{RequestID: key, Kind: refReportFile, SlackUser: f.Name, Channel: ch, TS: ts}); err != nil {
			return err
		}
	}
	return nil
}
