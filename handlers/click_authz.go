package handlers

import (
	"context"
	"strings"

	"keycard/access"
)

// The checks below run at the click that opens a modal (Extend, review Keep,
// contractor extension), before the modal shows a grant or item: the same
// authorization the submission applies, so a forged id opens nothing and
// shows nobody else's access (issue 10). The submission checks again.

// MayExtend reports whether the Slack user may extend grant grantID: only its
// holder may, and the answer for another person's grant is the same as for
// no grant at all.
func (s *Service) MayExtend(ctx context.Context, grantID, slackID, email string) (access.Request, error) {
	u, err := s.Identify(ctx, slackID, email)
	if err != nil {
		return access.Request{}, err
	}
	g, err := s.Get(grantID)
	if err != nil || !strings.EqualFold(g.Requester.Email, u.Email) {
		return access.Request{}, access.Errorf(access.CodeNotFound, "You hold no grant %s.", grantID)
	}
	return g, nil
}

// MayReview reports whether the Slack user may decide review item itemID
// now (mayReview, as Review checks it).
func (s *Service) MayReview(ctx context.Context, itemID, slackID, email string) (CampaignItem, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return CampaignItem{}, err
	}
	actor := personOf(u, slackID)
	var it CampaignItem
	var c Campaign
	err = s.store.View(func(tx Tx) error {
		ok, err := tx.Doc(DocCampaignItem, itemID, &it)
		if err != nil {
			return err
		}
		if !ok {
			return access.Errorf(access.CodeNotFound, "There is no review item %s.", itemID)
		}
		_, err = tx.Doc(DocCampaign, it.Campaign, &c)
		return err
	})
	if err != nil {
		return CampaignItem{}, err
	}
	if err := mayReview(&it, &c, actor); err != nil {
		return CampaignItem{}, err
	}
	return it, nil
}

// MayAnswerContractor reports whether the Slack user may answer the
// contractor-expiry question about grantID (mayAnswer, as ContractorExtend
// checks it).
func (s *Service) MayAnswerContractor(ctx context.Context, grantID, slackID, email string) (ContractorAsk, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return ContractorAsk{}, err
	}
	a, err := s.ContractorAskOf(grantID)
	if err != nil {
		return ContractorAsk{}, err
	}
	if err := s.mayAnswer(ctx, a, u, personOf(u, slackID)); err != nil {
		return ContractorAsk{}, err
	}
	return a, nil
}
