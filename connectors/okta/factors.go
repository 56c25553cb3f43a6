package okta

// Step-up MFA through the Factors API: list the user's factors, push to
// Okta Verify, poll the transaction (approval_mfa, issue 15).

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"keycard/access"
)

// FactorPush is the factor name keycard records for an Okta Verify push.
const FactorPush = "okta:push"

var _ access.Challenger = (*Connector)(nil)

// factor is the part of Okta's UserFactor keycard reads.
type factor struct {
	ID         string `json:"id"`
	FactorType string `json:"factorType"`
	Provider   string `json:"provider"`
	Status     string `json:"status"`
}

// verifyResponse is Okta's answer to verify and to a transaction poll.
type verifyResponse struct {
	FactorResult string `json:"factorResult"`
	Links        struct {
		Poll struct {
			Href string `json:"href"`
		} `json:"poll"`
	} `json:"_links"`
}

// StartChallenge implements access.Challenger: GET /api/v1/users/{id}/factors,
// choose the active Okta Verify push factor, POST .../factors/{fid}/verify
// (Okta answers factorResult WAITING with a _links.poll to the
// transaction). The ref is "factorId/transactionId".
func (c *Connector) StartChallenge(ctx context.Context, userID string) (string, string, error) {
	if !pathSafe(userID) {
		return "", "", access.Errorf(access.CodeNotFound, "Okta has no user %q", userID)
	}
	var fs []factor
	if err := c.do(ctx, "GET", "/api/v1/users/"+url.PathEscape(userID)+"/factors", nil, &fs, "list the factors of user "+userID); err != nil {
		return "", "", err
	}
	var push *factor
	for i := range fs {
		if fs[i].FactorType == "push" && fs[i].Provider == "OKTA" && fs[i].Status == "ACTIVE" {
			push = &fs[i]
			break
		}
	}
	if push == nil || !pathSafe(push.ID) {
		return "", "", access.Errorf(access.CodeInvalid, "Okta user %s has no active Okta Verify push factor: enroll Okta Verify to approve this policy", userID)
	}
	var vr verifyResponse
	if err := c.do(ctx, "POST", "/api/v1/users/"+url.PathEscape(userID)+"/factors/"+url.PathEscape(push.ID)+"/verify", struct{}{}, &vr, "push to user "+userID); err != nil {
		return "", "", err
	}
	if vr.FactorResult != "WAITING" {
		return "", "", access.Errorf(access.CodeUnavailable, "Okta answered the push to user %s with factorResult %q, not WAITING", userID, vr.FactorResult)
	}
	tx, err := transactionOf(vr.Links.Poll.Href, userID, push.ID)
	if err != nil {
		return "", "", err
	}
	return FactorPush, push.ID + "/" + tx, nil
}

// transactionOf takes the transaction id from a poll link
// .../users/{uid}/factors/{fid}/transactions/{tid}, checking that it is the
// user's and the factor's.
func transactionOf(href, userID, factorID string) (string, error) {
	u, err := url.Parse(href)
	if err == nil {
		seg := strings.Split(strings.Trim(u.Path, "/"), "/")
		n := len(seg)
		if n >= 6 && seg[n-6] == "users" && seg[n-5] == userID && seg[n-4] == "factors" && seg[n-3] == factorID && seg[n-2] == "transactions" && pathSafe(seg[n-1]) {
			return seg[n-1], nil
		}
	}
	return "", access.Errorf(access.CodeUnavailable, "Okta's push to user %s has no usable _links.poll (%q)", userID, href)
}

// PollChallenge implements access.Challenger: GET
// /api/v1/users/{id}/factors/{fid}/transactions/{tid}.
func (c *Connector) PollChallenge(ctx context.Context, userID, ref string) (access.ChallengeResult, error) {
	fid, tx, ok := strings.Cut(ref, "/")
	if !ok || !pathSafe(userID) || !pathSafe(fid) || !pathSafe(tx) {
		return "", access.Errorf(access.CodeInvalid, "not an Okta push reference: %q", ref)
	}
	var vr verifyResponse
	p := "/api/v1/users/" + url.PathEscape(userID) + "/factors/" + url.PathEscape(fid) + "/transactions/" + url.PathEscape(tx)
	if err := c.do(ctx, "GET", p, nil, &vr, "poll the push to user "+userID); err != nil {
		return "", err
	}
	switch vr.FactorResult {
	case "WAITING":
		return access.ChallengeWaiting, nil
	case "SUCCESS":
		return access.ChallengeSuccess, nil
	case "REJECTED":
		return access.ChallengeRejected, nil
	case "TIMEOUT":
		return access.ChallengeTimeout, nil
	}
	return "", access.Errorf(access.CodeUnavailable, "Okta answered the poll of user %s's push with factorResult %q", userID, vr.FactorResult)
}

// do is one bounded call through the SDK's request executor (its timeouts,
// no cache, the 429 recorder), classified like every other Okta call.
func (c *Connector) do(ctx context.Context, method, path string, body, out any, what string) error {
	cl := c.begin(ctx)
	defer cl.cancel()
	rq := c.client.CloneRequestExecutor()
	req, err := rq.WithAccept("application/json").WithContentType("application/json").NewRequest(method, path, body)
	if err != nil {
		return access.Wrap(access.CodeInternal, fmt.Errorf("okta: %w", err), "build the Okta request (%s)", what)
	}
	resp, err := rq.Do(cl.ctx, req, out)
	return c.classify(cl, resp, err, what)
}
