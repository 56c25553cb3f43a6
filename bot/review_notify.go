package bot

import (
	"context"
	"strconv"
	"strings"

	"keycard/access"
	"keycard/handlers"
)

// notifyReview delivers the review events: a campaign item's DM to each
// reviewer (updated once decided), the daily reminders, and a contractor
// question to the manager or the security channel (updated once answered).
// It reports false for events that are not about reviews.
func (b *Bot) notifyReview(ctx context.Context, e access.Event) (bool, error) {
	switch e.Type {
	case access.EvCampaignItemAssigned, access.EvCampaignItemDecided, access.EvCampaignItemTimedOut,
		access.EvCampaignReminded, access.EvContractorAsked, access.EvContractorExtended, access.EvContractorLetExpire,
		access.EvContractorExtensionRequested, access.EvCampaignOpened, access.EvCampaignClosed, access.EvCampaignItemRemediated, access.EvReportPosted:
	default:
		return false, nil
	}
	rc := b.rev
	switch e.Type {
	case access.EvCampaignItemAssigned, access.EvCampaignItemDecided, access.EvCampaignItemTimedOut:
		var d access.CampaignItemRef
		if err := access.DecodeDetail(e, &d); err != nil {
			b.log.Error("a campaign item event's detail could not be decoded; its reviewers' messages are not sent or updated", "seq", e.Seq, "type", e.Type, "err", err)
			return true, nil
		}
		if e.Type == access.EvCampaignItemAssigned {
			return true, b.sendItem(ctx, rc, d.Item)
		}
		return true, b.updateItem(ctx, rc, d.Item)
	case access.EvCampaignReminded:
		var d access.CampaignReminded
		if err := access.DecodeDetail(e, &d); err != nil {
			b.log.Error("a campaign reminder's detail could not be decoded; its reviewers are not reminded", "seq", e.Seq, "err", err)
			return true, nil
		}
		return true, b.remindReviewers(ctx, rc, e, d.Campaign, d.Waiting)
	case access.EvContractorAsked:
		return true, b.sendAsk(ctx, rc, e.RequestID)
	case access.EvContractorExtended, access.EvContractorLetExpire, access.EvContractorExtensionRequested:
		return true, b.updateAsk(ctx, rc, e.RequestID)
	}
	return true, nil
}

// extensionDecided updates the contractor question whose privileged
// extension r is, once r's approval chain has decided it (approved, denied,
// cancelled or timed out): the question stops saying "pending approval".
func (b *Bot) extensionDecided(ctx context.Context, r access.Request) error {
	rc := b.rev
	if r.Extends == "" {
		return nil
	}
	a, err := rc.ContractorAskOf(r.Extends)
	if err != nil || a.Extension != r.ID {
		return nil
	}
	return b.updateAsk(ctx, rc, r.Extends)
}

func (b *Bot) sendItem(ctx context.Context, rc ReviewCore, id string) error {
	it, err := rc.CampaignItemOf(id)
	if access.CodeOf(err) == access.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	c, refs, err := b.itemContext(rc, it, id)
	if err != nil {
		return err
	}
	for _, r := range it.Reviewers {
		sid, err := b.slackIDOf(ctx, r)
		if access.CodeOf(err) == access.CodeNotFound {
			b.log.Warn("reviewer has no Slack account", "email", r.Email, "item", id)
			continue
		}
		if err != nil {
			return err
		}
		if hasRef(refs, refReviewItem, sid) {
			continue
		}
		if err := b.dmRecorded(ctx, access.MessageRef{RequestID: itemRefKey(id), Kind: refReviewItem, SlackUser: sid}, ReviewItemMessage(it, c, b.people.loc(ctx, sid))); err != nil {
			return err
		}
	}
	return nil
}

// updateItem replaces the buttons of every DM about the item with its outcome.
func (b *Bot) updateItem(ctx context.Context, rc ReviewCore, id string) error {
	it, err := rc.CampaignItemOf(id)
	if err != nil {
		return nil
	}
	c, refs, err := b.itemContext(rc, it, id)
	if err != nil {
		return err
	}
	return b.updateRefs(ctx, refs, refReviewItem, func(ref access.MessageRef) Message {
		return ReviewItemMessage(it, c, b.people.loc(ctx, ref.SlackUser))
	})
}

// itemContext is what a campaign item's DMs need besides the item: its
// campaign, and the refs of the DMs already sent about it.
func (b *Bot) itemContext(rc ReviewCore, it handlers.CampaignItem, id string) (handlers.Campaign, []access.MessageRef, error) {
	c, _, err := rc.CampaignOf(it.Campaign)
	if err != nil {
		return handlers.Campaign{}, nil, err
	}
	refs, err := b.core.Messages(itemRefKey(id))
	return c, refs, err
}

// updateRefs re-renders every recorded message of kind in place (buttons
// replaced by an outcome). A message that can no longer be updated
// (deleted, channel gone) is skipped; a ref without a timestamp is not a
// message.
func (b *Bot) updateRefs(ctx context.Context, refs []access.MessageRef, kind string, render func(access.MessageRef) Message) error {
	for _, ref := range refs {
		if ref.Kind != kind || strings.TrimSpace(ref.TS) == "" {
			continue
		}
		m := render(ref)
		if _, _, _, err := b.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, m.options()...); err != nil && !permanent(err) {
			return err
		}
	}
	return nil
}

func (b *Bot) remindReviewers(ctx context.Context, rc ReviewCore, e access.Event, campaign string, waiting map[string]int) error {
	c, _, err := rc.CampaignOf(campaign)
	if err != nil {
		return nil
	}
	key := "review:" + campaign
	refs, err := b.core.Messages(key)
	if err != nil {
		return err
	}
	kind := "remind:" + strconv.FormatUint(e.Seq, 10)
	for email, n := range waiting {
		sid, err := b.people.slackID(ctx, email)
		if err != nil || hasRef(refs, kind, sid) {
			continue
		}
		if err := b.dmRecorded(ctx, access.MessageRef{RequestID: key, Kind: kind, SlackUser: sid}, ReviewReminderMessage(c.ID, n, c.DueAt, b.people.loc(ctx, sid))); err != nil {
			return err
		}
	}
	return nil
}

// sendAsk DMs the contractor's manager, or posts to the security channel
// when the directory names none.
func (b *Bot) sendAsk(ctx context.Context, rc ReviewCore, grant string) error {
	a, err := rc.ContractorAskOf(grant)
	if access.CodeOf(err) == access.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	refs, err := b.core.Messages(askRefKey(grant))
	if err != nil {
		return err
	}
	for _, r := range refs {
		if r.Kind == refAsk {
			return nil
		}
	}
	var ch, ts, sid string
	if a.Manager.Email != "" {
		if sid, err = b.slackIDOf(ctx, a.Manager); err != nil {
			return err
		}
		ch, ts, err = b.dm(ctx, sid, ContractorAskMessage(a, b.people.loc(ctx, sid)))
	} else {
		name := b.core.Policy().Alerts.Channel
		if name == "" {
			return access.Errorf(access.CodeInvalid, "contractor %s has no manager and the policy has no alerts channel", a.Holder.Email)
		}
		if ch, err = b.resolveChannel(ctx, name); err == nil {
			m := ContractorAskMessage(a, nil)
			ch, ts, err = b.api.PostMessageContext(ctx, ch, m.options()...)
		}
	}
	if err != nil {
		return err
	}
	return b.core.RecordMessage(access.MessageRef{RequestID: askRefKey(grant), Kind: refAsk, SlackUser: sid, Channel: ch, TS: ts})
}

func (b *Bot) updateAsk(ctx context.Context, rc ReviewCore, grant string) error {
	a, err := rc.ContractorAskOf(grant)
	if err != nil {
		return nil
	}
	refs, err := b.core.Messages(askRefKey(grant))
	if err != nil {
		return err
	}
	return b.updateRefs(ctx, refs, refAsk, func(ref access.MessageRef) Message {
		return ContractorAskMessage(a, b.people.loc(ctx, ref.SlackUser))
	})
}
