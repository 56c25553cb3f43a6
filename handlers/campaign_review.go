package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"keycard/access"
	"keycard/policy"
)

// ReviewInput is a reviewer's Keep / Revoke / Flag on one item. ItemID
// comes from the button and is only a pointer.
type ReviewInput struct {
	ItemID   string
	SlackID  string
	Email    string
	Decision access.ReviewDecision
	Comment  string
}

// ErrCommentRequired is the code-carrying refusal of a Keep on privileged
// access without a comment.
var ErrCommentRequired = access.Errorf(access.CodeInvalid, "Keeping privileged access needs a comment saying why it is still needed.")

// Review records one reviewer's decision on one item. Only a reviewer of
// the item may decide, never the holder; one decision wins (CAS in the
// store); Keep of privileged access needs a comment; Revoke removes the
// access through the provisioning outbox; Flag raises a follow-up in the
// security channel.
func (s *Service) Review(ctx context.Context, in ReviewInput) (CampaignItem, error) {
	comment := strings.TrimSpace(in.Comment)
	if len(comment) > MaxComment {
		return CampaignItem{}, access.Errorf(access.CodeInvalid, "The comment is %d characters long; the limit is %d.", len(comment), MaxComment)
	}
	if !in.Decision.Valid() {
		return CampaignItem{}, access.Errorf(access.CodeInvalid, "Unknown review decision %q.", in.Decision)
	}
	u, err := s.identifyActor(ctx, in.SlackID, in.Email)
	if err != nil {
		return CampaignItem{}, err
	}
	actor := personOf(u, in.SlackID)
	// Re-check the reviewer at the click, outside the transaction: the
	// item's reviewer rule, resolved against the IdP now (the holder's
	// manager now, the group's members now), must still name the clicker.
	var recheck error
	if seen, err := s.CampaignItemOf(in.ItemID); err == nil && seen.Open() && seen.IsReviewer(actor) && !actor.Same(seen.Holder) {
		if err := s.stillReviewer(ctx, &seen, actor); err != nil {
			if access.CodeOf(err) != access.CodeForbidden {
				return CampaignItem{}, err
			}
			recheck = err
		}
	}
	var it CampaignItem
	var refusal error
	var ticket refusalTicket // the refusal's audit admission, decided once
	err = s.updateTicketed(&ticket, func(tx Tx) error {
		// A retried attempt (PostgreSQL serialization failure) decides
		// afresh: it too, as decoding the stored item over the rolled-back
		// attempt's leaves its decision in place (the stored item omits an
		// empty one), which would read as "already reviewed".
		refusal, it = nil, CampaignItem{}
		ok, err := tx.Doc(DocCampaignItem, in.ItemID, &it)
		if err != nil {
			return err
		}
		if !ok {
			return access.Errorf(access.CodeNotFound, "There is no review item %s.", in.ItemID)
		}
		var c Campaign
		if _, err := tx.Doc(DocCampaign, it.Campaign, &c); err != nil {
			return err
		}
		why := mayReview(&it, &c, actor)
		if why == nil {
			why = recheck
		}
		if why == nil && in.Decision == access.ReviewKeep && it.Privileged && comment == "" {
			return ErrCommentRequired
		}
		if why != nil {
			if access.CodeOf(why) != access.CodeForbidden {
				return why
			}
			refusal = why
			return s.appendRefusal(tx, &ticket, access.Event{Type: access.EvDecisionRefused, Actor: actor.Email, Subject: it.Holder.Email, Policy: it.Policy,
				RequestID: it.GrantID, Detail: encodeDetail(map[string]string{"why": access.MessageOf(why), "campaign": it.Campaign, "item": it.ID})})
		}
		now := tx.Now()
		it.Decision, it.DecidedBy, it.DecidedAt, it.Comment = in.Decision, actor, now, comment
		if _, err := tx.Append(access.Event{Type: access.EvCampaignItemDecided, Actor: actor.Email, Subject: it.Holder.Email, Policy: it.Policy,
			RequestID: it.GrantID, Detail: encodeDetail(map[string]any{"campaign": it.Campaign, "item": it.ID, "decision": in.Decision,
				"comment": comment, "source": it.Source, "group": it.Group, "latency_seconds": int64(now.Sub(c.OpenedAt) / time.Second)})}); err != nil {
			return err
		}
		switch in.Decision {
		case access.ReviewRevoke:
			if err := s.remediate(tx, &it, actor, actor.Email); err != nil {
				return err
			}
		case access.ReviewFlag:
			if _, err := tx.Append(access.Event{Type: access.EvAlert, Actor: actor.Email, Subject: it.Holder.Email, Policy: it.Policy, RequestID: it.GrantID,
				Detail: encodeDetail(map[string]string{"kind": "review_flag", "campaign": it.Campaign, "item": it.ID,
					"message": fmt.Sprintf("%s flagged %s's access to %s (%s) in campaign %s for follow-up: %s", actor.Email, it.Holder.Email, it.Group, it.Source, it.Campaign, orDash(comment))})}); err != nil {
				return err
			}
		}
		return tx.PutDoc(DocCampaignItem, it.ID, it)
	})
	if err != nil {
		return it, err
	}
	if refusal != nil {
		return it, refusal
	}
	return it, nil
}

// stillReviewer re-resolves the item's reviewer rule for its holder now.
// A refusal has CodeForbidden; an IdP failure asks the person to try again.
func (s *Service) stillReviewer(ctx context.Context, it *CampaignItem, actor access.Person) error {
	rule, ok := policy.RuleOf(it.ReviewerRule)
	if !ok {
		return access.Errorf(access.CodeForbidden, "The reviewer rule %q of this item cannot be checked now.", it.ReviewerRule)
	}
	retry := func(err error) error {
		return access.Wrap(access.CodeUnavailable, err, "Could not confirm with the identity provider that you are still a reviewer of this item; nothing was recorded. Try again in a minute.")
	}
	dir, err := s.directory()
	if err != nil {
		return retry(err)
	}
	holder, err := userOf(ctx, dir, it.Holder)
	if access.CodeOf(err) == access.CodeNotFound {
		holder, err = access.User{ID: it.Holder.IdPID, Email: it.Holder.Email, Name: it.Holder.Name}, nil
	}
	if err != nil {
		return retry(err)
	}
	people, _, _, err := s.reviewersFor(ctx, rule, holder, dir)
	if err != nil {
		return retry(err)
	}
	for _, p := range people {
		if p.Same(actor) {
			return nil
		}
	}
	if rule.Kind == policy.RuleManager {
		return access.Errorf(access.CodeForbidden, "The identity provider no longer lists you as %s's manager, so you cannot review this access.", it.Holder.Label())
	}
	return access.Errorf(access.CodeForbidden, "The reviewer rule %s no longer names you, so you cannot review this access.", it.ReviewerRule)
}

func orDash(s string) string {
	if s == "" {
		return "(no comment)"
	}
	return s
}

func mayReview(it *CampaignItem, c *Campaign, actor access.Person) error {
	switch {
	case it.Decision != "":
		return access.Errorf(access.CodeConflict, "This item was already reviewed: %s by %s.", it.Decision, it.DecidedBy.Label())
	case it.TimeoutOutcome != "":
		return access.Errorf(access.CodeConflict, "The review closed before a decision; the outcome was %s.", strings.ReplaceAll(string(it.TimeoutOutcome), "_", " "))
	case c.State != access.CampaignOpen:
		return access.Errorf(access.CodeConflict, "Campaign %s is closed.", c.ID)
	case actor.Same(it.Holder):
		return access.Errorf(access.CodeForbidden, "You cannot review your own access.")
	case !it.IsReviewer(actor):
		return access.Errorf(access.CodeForbidden, "You are not a reviewer of this item.")
	}
	return nil
}

// remediate carries out a Revoke in tx: a keycard grant ends through the
// usual path (reason revoked, ended by the reviewer); a standing or
// unmanaged membership gets a removal record and an outbox op, only when
// the group is inside the connector's scope — otherwise nothing is
// changed, the item says why, and the security channel is alerted. A
// standing membership a keycard grant rode on (NotOwner, it.GrantID set)
// is removed the same way, and that grant ends with it (its own removal
// touches nothing).
func (s *Service) remediate(tx Tx, it *CampaignItem, by access.Person, actor string) error {
	if it.Source == SourceKeycard && it.GrantID != "" {
		r, err := tx.Request(it.GrantID)
		if err != nil {
			return err
		}
		ended, err := endAccess(tx, &r, access.ReasonRevoked, by, actor)
		switch {
		case errors.Is(err, errStale):
			it.Remediation = r.ID
			it.RemediationErr = "the grant had already ended (" + r.ExportStatus() + ") and nothing else of theirs held the group"
			if !r.DeprovisionedAt.IsZero() {
				it.RemediatedAt = r.DeprovisionedAt
			}
			return nil
		case err != nil:
			return err
		}
		// Track the removal that actually takes the membership away: when the
		// reviewed grant had already ended, that is a sibling's (its extension).
		it.Remediation = ended[len(ended)-1]
		return nil
	}
	set := s.Policy()
	conn := set.Connectors[it.Connector]
	if !conn.InScope(it.Group) {
		it.RemediationErr = fmt.Sprintf("not removed: %s is outside connector %s's scope, so keycard may not change it", it.Group, it.Connector)
		_, err := tx.Append(access.Event{Type: access.EvAlert, Actor: access.ActorKeycard, Subject: it.Holder.Email, Policy: it.Policy,
			Detail: encodeDetail(map[string]string{"kind": "review_revoke_out_of_scope", "campaign": it.Campaign, "item": it.ID,
				"message": fmt.Sprintf("Campaign %s: revoke of %s's %s membership of %s cannot be carried out by keycard (outside the connector's scope); remove it by hand.", it.Campaign, it.Holder.Email, it.Source, it.Group)})})
		return err
	}
	if it.Source == SourceStanding && it.GrantID != "" {
		r, err := tx.Request(it.GrantID)
		if err != nil {
			return err
		}
		if _, err := endAccess(tx, &r, access.ReasonRevoked, by, actor); err != nil && !errors.Is(err, errStale) {
			return err
		}
	}
	now := tx.Now()
	pol := strings.Split(it.Policy, ";")[0]
	r := access.Request{Policy: pol, PolicyVersion: set.Hash, App: it.App, Role: it.Role, Connector: it.Connector, Group: it.Group,
		Privileged: it.Privileged, Requester: it.Holder, State: access.StateDeprovisioning, CreatedAt: now, DecidedAt: now,
		Justification: fmt.Sprintf("Access review %s: remove %s membership (item %s)", it.Campaign, it.Source, it.ID),
		EndReason:     access.ReasonRevoked, EndedBy: by, EndedAt: now, EndsAt: now, Kind: access.KindReviewRemoval}
	if err := tx.PutRequest(&r); err != nil {
		return err
	}
	detail := map[string]string{"reason": string(access.ReasonRevoked), "campaign": it.Campaign, "item": it.ID, "source": it.Source}
	if by.Email != "" {
		detail["by"] = by.Email
	}
	if _, err := tx.Append(event(access.EvGrantEnding, actor, &r, detail)); err != nil {
		return err
	}
	it.Remediation = r.ID
	return tx.Enqueue(&access.Op{Kind: access.OpRemove, RequestID: r.ID, Connector: r.Connector, Group: r.Group,
		UserID: r.Requester.IdPID, Email: r.Requester.Email, NextAt: now})
}
