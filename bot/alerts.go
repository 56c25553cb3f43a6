package bot

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// AlertCore is what triage and policy approval need from handlers;
// *handlers.Service satisfies it.
type AlertCore interface {
	Event(seq uint64) (access.Event, error)
	TriageAlert(ctx context.Context, slackID, email string, seq uint64, resolve bool, outcome string) (handlers.AlertState, error)
	AlertStateOf(seq uint64) (handlers.AlertState, error)
	Staged() (handlers.StagedPolicy, bool, error)
	ApprovePolicy(ctx context.Context, slackID, email, hash string, load func(path string) (*policy.Set, error)) (*policy.Set, error)
}

var _ AlertCore = (*handlers.Service)(nil)

// postAlert renders an alert with its (open) triage controls.
func (b *Bot) postAlert(ctx context.Context, e access.Event) error {
	st := handlers.AlertState{Seq: e.Seq, State: handlers.AlertOpen}
	if s, err := b.alerts.AlertStateOf(e.Seq); err == nil {
		st = s
	}
	return b.alertMessage(ctx, e, TriagedAlert(e, b.alertOf(e), st, time.UTC))
}

// postPolicyStaged shows the staged change with its Approve button.
func (b *Bot) postPolicyStaged(ctx context.Context, e access.Event) error {
	st, staged, err := b.alerts.Staged()
	if err != nil || !staged {
		return err // approved or replaced since: nothing to ask
	}
	return b.alertMessage(ctx, e, PolicyStagedMessage(e, st, "", time.UTC))
}

func (b *Bot) onAlertAck(ctx context.Context, in *inbound) {
	b.triage(ctx, in, in.action.Value, false, "", in.cb.Container.ChannelID, in.cb.Container.MessageTs)
}

func (b *Bot) onAlertResolveClick(ctx context.Context, in *inbound) {
	seq, err := strconv.ParseUint(in.action.Value, 10, 64)
	if err != nil {
		b.tell(ctx, in, "This button is malformed.")
		return
	}
	if _, err := b.api.OpenViewContext(ctx, in.cb.TriggerID, ResolveModal(seq, in.cb.Container.ChannelID, in.cb.Container.MessageTs)); err != nil {
		b.log.Error("views.open resolve modal", "err", err)
		b.tell(ctx, in, "Slack did not open the form ("+err.Error()+"); click Resolve again.")
	}
}

func (b *Bot) onResolveSubmit(ctx context.Context, in *inbound, ack func(any)) {
	parts := strings.SplitN(in.cb.View.PrivateMetadata, "|", 3)
	outcome := ""
	if a, ok := stateValue(&in.cb.View, blkOutcome, actOutcomeInput); ok {
		outcome = strings.TrimSpace(a.Value)
	}
	if outcome == "" {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkOutcome: "Say what the alert was and what was done."}))
		return
	}
	if len(outcome) > handlers.MaxOutcome || len(parts) != 3 {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkOutcome: "Please keep the outcome under 1000 characters."}))
		return
	}
	ack(slack.NewClearViewSubmissionResponse())
	b.triage(ctx, in, parts[0], true, outcome, parts[1], parts[2])
}

// triage records the decision (handlers checks the clicker is an admin and
// the alert exists) and re-renders the alert message from the audit log.
func (b *Bot) triage(ctx context.Context, in *inbound, seqText string, resolve bool, outcome, channel, ts string) {
	ac := b.alerts
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		b.tell(ctx, in, "This alert cannot be triaged here.")
		return
	}
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	st, err := ac.TriageAlert(ctx, in.user, pr.Email, seq, resolve, outcome)
	if err != nil {
		b.tellPrivately(ctx, in, channel, access.MessageOf(err))
		return
	}
	e, err := ac.Event(seq)
	if err != nil || channel == "" || ts == "" {
		return
	}
	m := TriagedAlert(e, b.alertOf(e), st, time.UTC)
	if _, _, _, err := b.api.UpdateMessageContext(ctx, channel, ts, m.options()...); err != nil {
		b.log.Warn("chat.update after triage", "err", err)
	}
}

func (b *Bot) onPolicyApprove(ctx context.Context, in *inbound) {
	ac := b.alerts
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	st, staged, _ := ac.Staged()
	if _, err := ac.ApprovePolicy(ctx, in.user, pr.Email, in.action.Value, policy.Load); err != nil {
		b.tellPrivately(ctx, in, in.cb.Container.ChannelID, access.MessageOf(err))
		return
	}
	if staged {
		m := PolicyStagedMessage(access.Event{}, st, pr.Email, time.UTC)
		if _, _, _, err := b.api.UpdateMessageContext(ctx, in.cb.Container.ChannelID, in.cb.Container.MessageTs, m.options()...); err != nil {
			b.log.Warn("chat.update after policy approval", "err", err)
		}
	}
}

// tellPrivately answers the clicker with an ephemeral message in the
// channel they clicked in.
func (b *Bot) tellPrivately(ctx context.Context, in *inbound, channel, text string) {
	if channel == "" {
		b.tell(ctx, in, text)
		return
	}
	if _, err := b.api.PostEphemeralContext(ctx, channel, in.user, slack.MsgOptionText(truncate(text, maxFallbackText), false)); err != nil {
		b.log.Warn("ephemeral answer", "err", err)
	}
}
