package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"keycard/access"
	"keycard/handlers"
)

// onApprove records an approval. Who may decide is checked by handlers
// against the store; the button only says which request.
func (b *Bot) onApprove(ctx context.Context, in *inbound) {
	id, step := parseDecisionValue(in.action.Value)
	b.decide(ctx, in, id, step, true, "")
}

func (b *Bot) decide(ctx context.Context, in *inbound, id string, step int, approve bool, comment string) error {
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return err
	}
	_, err = b.core.Decide(ctx, handlers.DecideInput{RequestID: id, Step: step, SlackID: in.user, Email: pr.Email, Approve: approve, Comment: comment})
	if err != nil {
		b.log.Info("decision refused", "request", id, "user", in.user, "code", access.CodeOf(err))
		b.tell(ctx, in, access.MessageOf(err))
		return err
	}
	b.nudge()
	return nil
}

// onDenyClick opens the deny-reason modal at once (the trigger_id is
// short-lived). A clicker whose email is not among the step's candidates
// is told so instead; handlers checks again when the reason is submitted.
func (b *Bot) onDenyClick(ctx context.Context, in *inbound) {
	id, step := parseDecisionValue(in.action.Value)
	r, err := b.core.Get(id)
	if b.told(ctx, in, err) {
		return
	}
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	if r.State != access.StatePending || step != r.Current || !b.mayAsk(r, access.Person{Email: pr.Email}) {
		// Let handlers say exactly why (and audit a refused click).
		b.enqueue("deny refused", func(ctx context.Context) { _ = b.decide(ctx, in, id, step, false, "") })
		return
	}
	if _, err := b.api.OpenViewContext(ctx, in.cb.TriggerID, DenyModal(r, step)); err != nil {
		b.log.Error("views.open deny modal", "err", err)
		b.tell(ctx, in, "Slack did not open the deny form ("+err.Error()+"); click Deny again.")
	}
}

// mayAsk reports whether p is asked to decide r's current step: a
// candidate, or a candidate's delegate by a delegation in force. It only
// chooses between the deny-reason modal and handlers' refusal; handlers
// checks again against the store.
func (b *Bot) mayAsk(r access.Request, p access.Person) bool {
	st := r.Step()
	if st == nil {
		return false
	}
	if st.IsCandidate(p) {
		return true
	}
	dels, err := b.core.DelegationsInForce()
	if err != nil {
		return false
	}
	for _, d := range dels {
		if d.To.Same(p) && st.IsCandidate(d.From) {
			return true
		}
	}
	return false
}

// onCancel withdraws the clicker's own pending request.
func (b *Bot) onCancel(ctx context.Context, in *inbound) {
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	r, err := b.core.Cancel(ctx, in.action.Value, in.user, pr.Email)
	if b.told(ctx, in, err) {
		return
	}
	b.nudge()
	if r.NeverStarted() {
		b.tell(ctx, in, fmt.Sprintf("Cancelled %s (%s) before its scheduled start: nothing had been granted, so nothing is removed.", r.ID, what(&r)))
		return
	}
	b.tell(ctx, in, fmt.Sprintf("Cancelled your request %s for %s.", r.ID, what(&r)))
}

// onGiveUp ends the clicker's own grant early.
func (b *Bot) onGiveUp(ctx context.Context, in *inbound) { b.revoke(ctx, in, in.action.Value) }

// onAdminRevoke is an admin's Revoke on the App Home; handlers checks the
// clicker is an admin (or the holder).
func (b *Bot) onAdminRevoke(ctx context.Context, in *inbound) { b.revoke(ctx, in, in.action.Value) }

// onExtendClick opens the Extend modal for a grant, for its holder only
// (the submission's check, at the click: a forged id shows nothing).
func (b *Bot) onExtendClick(ctx context.Context, in *inbound) {
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	g, err := b.core.MayExtend(ctx, in.action.Value, in.user, pr.Email)
	if b.told(ctx, in, err) {
		return
	}
	p, ok := b.core.Policy().Policy(g.Policy)
	if !ok {
		b.tell(ctx, in, fmt.Sprintf("Policy %s no longer exists, so %s cannot be extended.", g.Policy, g.ID))
		return
	}
	if g.State != access.StateActive {
		b.tell(ctx, in, fmt.Sprintf("%s is %s, so it cannot be extended.", g.ID, stateWords(&g)))
		return
	}
	if _, err := b.api.OpenViewContext(ctx, in.cb.TriggerID, ExtendModal(g, p, "")); err != nil {
		b.log.Error("views.open extend modal", "err", err)
	}
}

// onOpenForm is the App Home's "Request access" button.
func (b *Bot) onOpenForm(ctx context.Context, in *inbound) {
	b.openRequestForm(ctx, in, in.cb.TriggerID)
}

// onHomeOpened publishes the App Home when someone opens it.
func (b *Bot) onHomeOpened(ctx context.Context, in *inbound) {
	if e, ok := in.event.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); ok && e.Tab != "" && e.Tab != "home" {
		return
	}
	b.publishHomeFor(ctx, in.user)
}

// publishHomeFor renders and publishes one Slack user's App Home.
func (b *Bot) publishHomeFor(ctx context.Context, slackID string) {
	w, err := b.identify(ctx, slackID)
	h := Home{Now: b.cfg.Clock.Now(), Loc: w.Loc}
	if err != nil {
		h.Problem = access.MessageOf(err)
	} else {
		h = b.homeData(ctx, w.user.Email, w.user, w.Loc)
	}
	b.publish(ctx, slackID, h)
}

func (b *Bot) homeData(ctx context.Context, email string, u access.User, loc *time.Location) Home {
	h := Home{Now: b.cfg.Clock.Now(), Loc: loc}
	var err error
	if h.Mine, err = b.core.Mine(email); err != nil {
		b.log.Error("home: my requests", "err", err)
	}
	if h.Waiting, err = b.core.WaitingOn(email); err != nil {
		b.log.Error("home: waiting", "err", err)
	}
	admin, err := b.core.IsAdmin(ctx, u)
	if err == nil && admin {
		h.Admin = true
		if h.AllPrivileged, err = b.core.Active(true); err != nil {
			b.log.Error("home: privileged grants", "err", err)
		}
	}
	b.homeDelegations(&h, email)
	return h
}

func (b *Bot) publish(ctx context.Context, slackID string, h Home) {
	if _, err := b.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: slackID, View: HomeView(h)}); err != nil {
		b.log.Warn("views.publish failed", "user", slackID, "err", err)
	}
}
