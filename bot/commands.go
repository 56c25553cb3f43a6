package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/policy"
)

// ackAccessCommand answers what needs no lookup in the ack itself: help and
// usage for an unknown subcommand.
func (b *Bot) ackAccessCommand(in *inbound) any {
	fields := strings.Fields(in.cmd.Text)
	if len(fields) == 0 {
		return nil
	}
	switch strings.ToLower(fields[0]) {
	case "list", "revoke", "review", "delegate":
		return nil
	case "help":
		return ephemeralPayload(HelpMessage(""))
	}
	return ephemeralPayload(HelpMessage(fmt.Sprintf("Unknown subcommand %q.", fields[0])))
}

func ephemeralPayload(m Message) map[string]any {
	return map[string]any{"response_type": "ephemeral", "text": truncate(m.Text, maxFallbackText),
		"blocks": capBlocks(m.Blocks, maxMessageBlocks, moreLine)}
}

// onAccessCommand runs /access, /access list, /access revoke <id>,
// /access review start [policy…] and /access delegate.
func (b *Bot) onAccessCommand(ctx context.Context, in *inbound) {
	fields := strings.Fields(in.cmd.Text)
	if len(fields) == 0 {
		b.openRequestForm(ctx, in, in.cmd.TriggerID)
		return
	}
	switch strings.ToLower(fields[0]) {
	case "list":
		b.enqueue("access list", func(ctx context.Context) { b.accessList(ctx, in) })
	case "revoke":
		if len(fields) != 2 {
			b.tellMessage(ctx, in, HelpMessage("Usage: /access revoke <grant-id>"))
			return
		}
		b.enqueue("access revoke", func(ctx context.Context) { b.revoke(ctx, in, fields[1]) })
	case "review":
		b.accessReview(ctx, in, fields)
	case "delegate": // delegate.go
		b.enqueue("access delegate", func(ctx context.Context) { b.accessDelegate(ctx, in) })
	}
}

func (b *Bot) accessList(ctx context.Context, in *inbound) {
	w, err := b.identify(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	mine, err := b.core.Mine(w.user.Email)
	if err != nil {
		b.log.Error("list grants", "err", err)
		b.tell(ctx, in, access.MessageOf(err))
		return
	}
	b.tellMessage(ctx, in, ListMessage(mine, b.cfg.Clock.Now(), w.Loc))
}

func (b *Bot) revoke(ctx context.Context, in *inbound, id string) {
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	r, err := b.core.Revoke(ctx, id, in.user, pr.Email)
	if b.told(ctx, in, err) {
		return
	}
	b.nudge()
	if r.NeverStarted() {
		b.tell(ctx, in, fmt.Sprintf("Revoked %s (%s) before its scheduled start: nothing had been granted, so nothing is removed.", r.ID, what(&r)))
		return
	}
	b.tell(ctx, in, fmt.Sprintf("Revoking %s (%s): the access is being removed; the holder will be told when the identity provider confirms.", r.ID, what(&r)))
}

// openRequestForm opens the /access modal at once with the trigger_id
// (valid about 3 s), then fills it after the identity-provider lookups.
func (b *Bot) openRequestForm(ctx context.Context, in *inbound, trigger string) {
	v, err := b.api.OpenViewContext(ctx, trigger, LoadingModal("Request access"))
	if err != nil {
		b.log.Error("views.open failed", "err", err)
		b.tell(ctx, in, "Slack did not let keycard open the form ("+err.Error()+"); try /access again.")
		return
	}
	b.enqueue("fill request form", func(ctx context.Context) {
		form := b.requestForm(ctx, in.user, "")
		b.updateView(ctx, v.ID, RequestModal(form))
	})
}

// requestForm builds the form for a Slack user: the roles they may
// request, the first preselected so its durations show.
func (b *Bot) requestForm(ctx context.Context, slackID, selected string) RequestForm {
	w, err := b.identify(ctx, slackID)
	if err != nil {
		return RequestForm{Problem: access.MessageOf(err)}
	}
	ps := b.core.Requestable(w.user)
	f := RequestForm{Policies: ps, Loc: w.Loc}
	for _, p := range ps {
		if p.Name == selected {
			f.Selected = p
		}
	}
	if f.Selected == nil && len(ps) > 0 && len(ps) <= maxOptions {
		f.Selected = ps[0]
	}
	return f
}

func (b *Bot) updateView(ctx context.Context, viewID string, v slack.ModalViewRequest) {
	if _, err := b.api.UpdateViewContext(ctx, v, "", "", viewID); err != nil {
		b.log.Error("views.update failed", "view", viewID, "err", err)
	}
}

// onRoleChosen re-renders the request modal for the chosen role: its
// durations (default preselected) and whether a justification is required.
func (b *Bot) onRoleChosen(ctx context.Context, in *inbound) {
	name := in.action.SelectedOption.Value
	f := b.requestForm(ctx, in.user, name)
	if _, err := b.api.UpdateViewContext(ctx, RequestModal(f), "", in.cb.View.Hash, in.cb.View.ID); err != nil {
		b.log.Warn("views.update after role choice", "err", err)
	}
}

// onRoleSearch answers the role search box (external_select, used when a
// person may request more than 100 roles) with matching roles by app.
func (b *Bot) onRoleSearch(ctx context.Context, in *inbound, ack func(any)) {
	w, err := b.identify(ctx, in.user)
	if err != nil {
		ack(slack.OptionsResponse{Options: []*slack.OptionBlockObject{}})
		return
	}
	q := strings.ToLower(strings.TrimSpace(in.cb.Value))
	var match []*policy.Policy
	for _, p := range b.core.Requestable(w.user) {
		if q == "" || strings.Contains(strings.ToLower(p.App+" "+p.Role+" "+p.Name), q) {
			match = append(match, p)
		}
		if len(match) == maxOptions {
			break
		}
	}
	ack(slack.OptionGroupsResponse{OptionGroups: roleGroups(match)})
}
