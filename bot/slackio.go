package bot

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
)

// dmChannel opens (or reuses) the DM with a Slack user (conversations.open,
// Tier 3; cached).
func (b *Bot) dmChannel(ctx context.Context, slackID string) (string, error) {
	b.chanMu.Lock()
	ch, ok := b.dms[slackID]
	b.chanMu.Unlock()
	if ok {
		return ch, nil
	}
	c, _, _, err := b.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{slackID}})
	if err != nil {
		return "", err
	}
	b.chanMu.Lock()
	b.dms[slackID] = c.ID
	b.chanMu.Unlock()
	return c.ID, nil
}

// dmRecorded DMs m to the Slack user ref.SlackUser and records where it
// landed under ref, so the notifier's next pass neither repeats nor loses
// it; callers skip people whose ref is already recorded. A permanent failure
// (the person cannot be reached) is logged and skipped with a nil error: one
// unreachable person must not keep the others from their DM.
func (b *Bot) dmRecorded(ctx context.Context, ref access.MessageRef, m Message) error {
	ch, ts, err := b.dm(ctx, ref.SlackUser, m)
	if err != nil {
		if permanent(err) {
			b.log.Error("could not DM a person; skipping them", "slack_id", ref.SlackUser, "err", err)
			return nil
		}
		return err
	}
	ref.Channel, ref.TS = ch, ts
	return b.core.RecordMessage(ref)
}

// dm sends a message to a Slack user's DM and returns where it landed.
func (b *Bot) dm(ctx context.Context, slackID string, m Message) (channel, ts string, err error) {
	ch, err := b.dmChannel(ctx, slackID)
	if err != nil {
		return "", "", err
	}
	return b.api.PostMessageContext(ctx, ch, m.options()...)
}

// resolveChannel turns a configured channel ("#security-alerts" or an id)
// into an id. Slack has no name→id method, so names are found by paging
// conversations.list (Tier 2) once and cached (notes/slack.md §3.2).
func (b *Bot) resolveChannel(ctx context.Context, name string) (string, error) {
	if !strings.HasPrefix(name, "#") {
		return name, nil
	}
	want := strings.TrimPrefix(name, "#")
	b.chanMu.Lock()
	id, ok := b.chans[want]
	b.chanMu.Unlock()
	if ok {
		return id, nil
	}
	cursor := ""
	for range 100 { // 100 pages of 1000 channels bound the walk
		chs, next, err := b.api.GetConversationsContext(ctx, &slack.GetConversationsParameters{Cursor: cursor, Limit: 1000,
			Types: []string{"public_channel", "private_channel"}, ExcludeArchived: true})
		if err != nil {
			return "", err
		}
		b.chanMu.Lock()
		for _, c := range chs {
			b.chans[c.Name] = c.ID
		}
		id, ok = b.chans[want]
		b.chanMu.Unlock()
		if ok {
			return id, nil
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return "", access.Errorf(access.CodeNotFound, "Slack channel %s not found (is the bot in it?)", name)
}

// tell answers the person behind an envelope privately: an ephemeral
// message where they clicked or typed, or a DM when there is no channel
// (App Home, modals).
func (b *Bot) tell(ctx context.Context, in *inbound, text string) {
	b.tellMessage(ctx, in, Message{Text: text, Blocks: []slack.Block{section(esc(text))}})
}

// told tells the person behind in what err means, when there is an error,
// and reports whether it did: the edge's one way of turning a refusal or a
// failure into words for the person who asked.
func (b *Bot) told(ctx context.Context, in *inbound, err error) bool {
	if err == nil {
		return false
	}
	b.tell(ctx, in, access.MessageOf(err))
	return true
}

func (b *Bot) tellMessage(ctx context.Context, in *inbound, m Message) {
	channel := in.cmd.ChannelID
	if channel == "" {
		channel = in.cb.Channel.ID
	}
	if channel == "" {
		channel = in.cb.Container.ChannelID
	}
	var err error
	if channel != "" {
		_, err = b.api.PostEphemeralContext(ctx, channel, in.user, m.options()...)
	}
	if channel == "" || err != nil {
		_, _, err = b.dm(ctx, in.user, m)
	}
	if err != nil {
		b.log.Error("could not answer a person", "user", in.user, "err", err)
	}
}

// retryWait says how long to wait before retrying a failed Slack call:
// Retry-After when rate limited (Slack's 429), else exponential backoff.
func retryWait(err error, attempt int) time.Duration {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		return rl.RetryAfter
	}
	d := 250 * time.Millisecond
	for i := 0; i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

// permanent reports a Slack failure that retrying cannot fix (a logical
// API error such as channel_not_found or invalid_blocks), as opposed to a
// rate limit, a 5xx or a network failure.
func permanent(err error) bool {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return false
		case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope", "no_permission":
			// A setup problem, not a problem with this message: hold the
			// notifier's cursor until the operator fixes the token or scopes
			// rather than skipping (and losing) every event meanwhile.
			return false
		}
		return true
	}
	var ae *access.Error
	if errors.As(err, &ae) {
		return !access.Retryable(err)
	}
	return false
}
