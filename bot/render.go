package bot

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/policy"
)

// Block Kit limits (Slack's Block Kit reference; notes/slack.md §5). The
// render functions respect every one of them so no payload is refused with
// invalid_blocks.
const (
	maxMessageBlocks = 50   // blocks per message
	maxViewBlocks    = 100  // blocks per modal or Home tab
	maxSectionText   = 3000 // section text
	maxFieldText     = 2000 // each section field
	maxFields        = 10   // fields per section
	maxHeaderText    = 150  // header block text
	maxTitleText     = 24   // modal title, submit, close
	maxButtonText    = 75   // button text
	maxOptionText    = 75   // option text
	maxOptionValue   = 150  // option value
	maxOptions       = 100  // static_select options (or option groups)
	maxContextItems  = 10   // context block elements
	maxPlaceholder   = 150  // placeholder text
	maxFallbackText  = 4000 // top-level message text (hard cap 40000; keep short)
	maxInputLength   = 3000 // plain_text_input max_length
)

// truncate shortens s to at most n runes, ending with "…" when cut, and never
// splits a UTF-8 sequence.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// esc escapes the three characters Slack's mrkdwn treats as control
// characters, so a justification cannot inject links or mentions
// (https://api.slack.com/reference/surfaces/formatting#escaping).
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func plain(s string, limit int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, truncate(s, limit), false, false)
}

func md(s string, limit int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, truncate(s, limit), false, false)
}

func section(text string) *slack.SectionBlock {
	return slack.NewSectionBlock(md(text, maxSectionText), nil, nil)
}

func fieldsSection(fields ...string) *slack.SectionBlock {
	if len(fields) > maxFields {
		fields = fields[:maxFields]
	}
	objs := make([]*slack.TextBlockObject, 0, len(fields))
	for _, f := range fields {
		objs = append(objs, md(f, maxFieldText))
	}
	return slack.NewSectionBlock(nil, objs, nil)
}

func contextLine(text string) *slack.ContextBlock {
	return slack.NewContextBlock("", md(text, maxSectionText))
}

func header(text string) *slack.HeaderBlock {
	return slack.NewHeaderBlock(plain(text, maxHeaderText))
}

func button(actionID, value, text string, style slack.Style) *slack.ButtonBlockElement {
	b := slack.NewButtonBlockElement(actionID, value, plain(text, maxButtonText))
	if style != "" {
		b.WithStyle(style)
	}
	return b
}

// capBlocks keeps at most limit blocks; when it has to cut, the last kept
// block says how many items were left out.
func capBlocks(blocks []slack.Block, limit int, more func(n int) string) []slack.Block {
	if len(blocks) <= limit {
		return blocks
	}
	kept := blocks[:limit-1]
	return append(kept, contextLine(more(len(blocks)-len(kept))))
}

// when formats t for a person in their time zone, e.g. "Tue 3 Mar 2026 14:05 CET".
func when(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "—"
	}
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("Mon 2 Jan 2006 15:04 MST")
}

// left says how long until t, rounded for a person: "3h 20m", "2d 4h", "under a minute".
func left(now, t time.Time) string {
	d := t.Sub(now)
	switch {
	case d <= 0:
		return "ending now"
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd %dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// what names the access a request is about: "Production Database · Admin".
func what(r *access.Request) string {
	return r.App + " · " + r.Role
}

// person names someone with a Slack mention when their Slack id is known.
func person(p access.Person) string {
	if p.SlackID != "" {
		return "<@" + p.SlackID + ">"
	}
	if p.Name != "" {
		return esc(p.Name)
	}
	return esc(p.Email)
}

// ruleLabel explains a step's rule to an approver.
func ruleLabel(rule string) string {
	switch {
	case rule == "manager":
		return "the requester's manager"
	case strings.HasPrefix(rule, "group:"):
		return "any member of " + strings.TrimPrefix(rule, "group:")
	case strings.HasPrefix(rule, "user:"):
		return strings.TrimPrefix(rule, "user:")
	case strings.HasPrefix(rule, "users:"):
		return "one of " + strings.ReplaceAll(strings.TrimPrefix(rule, "users:"), ";", ", ")
	}
	return rule
}

// stateWords says where a request stands, for a person.
func stateWords(r *access.Request) string {
	switch r.State {
	case access.StatePending:
		if st := r.Step(); st != nil {
			return fmt.Sprintf("waiting for step %d of %d (%s)", r.Current+1, len(r.Steps), ruleLabel(st.Rule))
		}
		return "waiting"
	case access.StateScheduled:
		return "approved; waiting for its scheduled start"
	case access.StateProvisioning:
		return "approved; being provisioned"
	case access.StateActive:
		return "active"
	case access.StateDeprovisioning:
		return "ending; access being removed"
	case access.StateExpired:
		return "expired"
	case access.StateRevoked:
		if r.NeverStarted() {
			return "withdrawn before its start"
		}
		if r.EndReason == access.ReasonOffboarded {
			return "ended (offboarded)"
		}
		return "revoked"
	case access.StateDenied:
		return "denied"
	case access.StateCancelled:
		return "cancelled"
	case access.StateTimedOut:
		return "timed out"
	case access.StateFailed:
		return "failed"
	}
	return string(r.State)
}

// durationChoices lists the durations offered for p: common spans up to
// the policy's max, plus its default and max themselves, ascending.
func durationChoices(p *policy.Policy) []time.Duration {
	common := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour,
		8 * time.Hour, 12 * time.Hour, 24 * time.Hour, 2 * 24 * time.Hour, 3 * 24 * time.Hour, 7 * 24 * time.Hour,
		14 * 24 * time.Hour, 30 * 24 * time.Hour, 60 * 24 * time.Hour, 90 * 24 * time.Hour, 180 * 24 * time.Hour,
		365 * 24 * time.Hour}
	seen := map[time.Duration]bool{}
	var out []time.Duration
	add := func(d time.Duration) {
		if d > 0 && !seen[d] && (p.MaxDuration <= 0 || d <= p.MaxDuration) {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, d := range common {
		add(d)
	}
	add(p.DefaultDuration)
	add(p.MaxDuration)
	for i := 1; i < len(out); i++ { // insertion sort: the list is short
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	if len(out) > maxOptions {
		out = out[len(out)-maxOptions:]
	}
	return out
}
