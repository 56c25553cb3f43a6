package bot

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"keycard/access"
)

// profile is what keycard needs of a Slack user: the email that joins
// them to the identity provider and the time zone times are shown in.
type profile struct {
	ID    string
	Email string
	Name  string
	Loc   *time.Location
}

type cached[T any] struct {
	v  T
	at time.Time
}

// people caches users.info and users.lookupByEmail answers for a TTL on
// the injected clock (SPEC "People and roles": joined by email).
type people struct {
	api   *slack.Client
	clock access.Clock
	ttl   time.Duration

	mu      sync.Mutex
	byID    map[string]cached[profile]
	byEmail map[string]cached[string]
}

func newPeople(api *slack.Client, clock access.Clock, ttl time.Duration) *people {
	return &people{api: api, clock: clock, ttl: ttl, byID: map[string]cached[profile]{}, byEmail: map[string]cached[string]{}}
}

func (p *people) fresh(at time.Time) bool {
	d := p.clock.Now().Sub(at)
	return d >= 0 && d < p.ttl
}

// profile returns a Slack user's profile (users.info), cached.
func (p *people) profile(ctx context.Context, slackID string) (profile, error) {
	p.mu.Lock()
	c, ok := p.byID[slackID]
	p.mu.Unlock()
	if ok && p.fresh(c.at) {
		return c.v, nil
	}
	u, err := p.api.GetUserInfoContext(ctx, slackID)
	if err != nil {
		return profile{}, access.Wrap(slackCode(err), err, "Slack did not tell keycard who you are (users.info failed); try again in a minute.")
	}
	switch {
	case u.Deleted:
		return profile{}, access.Errorf(access.CodeForbidden, "This Slack account is deactivated.")
	case u.IsBot:
		return profile{}, access.Errorf(access.CodeForbidden, "Bots cannot use keycard.")
	case u.IsRestricted || u.IsUltraRestricted || u.IsStranger:
		// Guests and people from other organisations (Slack Connect) are not
		// employees: their profile email is not proof of an identity keycard
		// may act for, even if it matches an IdP user.
		return profile{}, access.Errorf(access.CodeForbidden, "Guests and people from other organisations cannot use keycard.")
	}
	pr := profile{ID: u.ID, Email: strings.TrimSpace(u.Profile.Email), Name: u.RealName, Loc: time.UTC}
	if u.TZ != "" {
		if loc, err := time.LoadLocation(u.TZ); err == nil {
			pr.Loc = loc
		}
	}
	p.mu.Lock()
	p.byID[slackID] = cached[profile]{pr, p.clock.Now()}
	if pr.Email != "" {
		p.byEmail[strings.ToLower(pr.Email)] = cached[string]{pr.ID, p.clock.Now()}
	}
	p.mu.Unlock()
	return pr, nil
}

// forget drops what is cached about a Slack user, so the next look-up asks
// Slack again (their profile changed: user_change).
func (p *people) forget(slackID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.byID, slackID)
	for k, c := range p.byEmail {
		if c.v == slackID {
			delete(p.byEmail, k)
		}
	}
}

// onUserChange handles Slack's user_change: the cached profile is dropped at
// once and a pinned person's identity is re-checked against the new email,
// so a changed email is refused and reported to the security channel within
// seconds, not when the profile cache runs out (issue 10).
func (b *Bot) onUserChange(ctx context.Context, in *inbound) {
	e, ok := in.event.InnerEvent.Data.(*slackevents.UserChangeEvent)
	if !ok || e.User.ID == "" {
		return
	}
	b.people.forget(e.User.ID)
	pr, err := b.people.profile(ctx, e.User.ID)
	if err != nil || pr.Email == "" {
		// Deactivated, a guest now, or no email: every use is refused at
		// the next look-up anyway.
		return
	}
	if err := b.core.Recheck(ctx, e.User.ID, pr.Email); err != nil {
		b.log.Warn("slack user_change: identity re-check refused", "user", e.User.ID, "code", access.CodeOf(err))
	}
	b.nudge()
}

// slackID finds the Slack user with this email (users.lookupByEmail),
// cached; "" with a not_found error when Slack has nobody with it.
func (p *people) slackID(ctx context.Context, email string) (string, error) {
	key := strings.ToLower(strings.TrimSpace(email))
	p.mu.Lock()
	c, ok := p.byEmail[key]
	p.mu.Unlock()
	if ok && p.fresh(c.at) {
		if c.v == "" {
			return "", access.Errorf(access.CodeNotFound, "No Slack user has the email %s.", email)
		}
		return c.v, nil
	}
	u, err := p.api.GetUserByEmailContext(ctx, email)
	if err != nil {
		if slackCode(err) == access.CodeNotFound {
			p.mu.Lock()
			p.byEmail[key] = cached[string]{"", p.clock.Now()}
			p.mu.Unlock()
			return "", access.Wrap(access.CodeNotFound, err, "No Slack user has the email %s.", email)
		}
		return "", access.Wrap(slackCode(err), err, "Slack lookup of %s failed.", email)
	}
	p.mu.Lock()
	p.byEmail[key] = cached[string]{u.ID, p.clock.Now()}
	p.mu.Unlock()
	return u.ID, nil
}

// loc is a Slack user's time zone, UTC when unknown.
func (p *people) loc(ctx context.Context, slackID string) *time.Location {
	if slackID == "" {
		return time.UTC
	}
	pr, err := p.profile(ctx, slackID)
	if err != nil || pr.Loc == nil {
		return time.UTC
	}
	return pr.Loc
}

// who is a Slack user joined to the identity provider.
type who struct {
	profile
	user access.User
}

// identify joins a Slack user to their IdP user: users.info for the email,
// then Core.Identify (which pins the pair). The error is person-safe: no
// email, unknown to the IdP, identity mismatch.
func (b *Bot) identify(ctx context.Context, slackID string) (who, error) {
	pr, err := b.people.profile(ctx, slackID)
	if err != nil {
		return who{}, err
	}
	if pr.Email == "" {
		return who{profile: pr}, access.Errorf(access.CodeNoEmail,
			"Your Slack profile has no email address, so keycard cannot find you in the identity provider. Ask a Slack admin to add one.")
	}
	u, err := b.core.Identify(ctx, slackID, pr.Email)
	if err != nil {
		return who{profile: pr}, err
	}
	return who{profile: pr, user: u}, nil
}

// slackCode maps a Slack API failure to an access code: rate limits and
// transport errors are retryable, a missing user is not found.
func slackCode(err error) access.Code {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return access.CodeRateLimited
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "user_not_found", "users_not_found", "channel_not_found":
			return access.CodeNotFound
		case "ratelimited":
			return access.CodeRateLimited
		}
		return access.CodeInvalid
	}
	return access.CodeUnavailable
}
