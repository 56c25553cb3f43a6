package bot

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
)

// Delegation and out-of-office (handlers/delegate.go has the rules):
// `/access delegate @person until YYYY-MM-DD [reason]`, `/access delegate
// off`, the delegate's copies of the delegator's approval DMs, and the
// notices when a delegation starts and ends.

const delegateUsage = "Usage: `/access delegate @person until YYYY-MM-DD [reason]` (the last day, in your Slack time zone) or `/access delegate off`."

// delegateArgs is a parsed /access delegate command: off, or a delegate
// (a Slack user id from a mention, or an email) and the end date as typed.
type delegateArgs struct {
	off     bool
	slackID string
	email   string
	until   string
	reason  string
}

// parseDelegate reads the /access text after the subcommand word. Slack
// escapes a mention to <@U123> or <@U123|name> (the command has
// should_escape: true in manifest.yaml) and an email to
// <mailto:a@b|a@b>; a bare email is accepted too. The date is only cut
// out here: handlers.DelegationEnd reads it in the delegator's time zone.
func parseDelegate(text string) (delegateArgs, error) {
	var a delegateArgs
	word, rest := cutField(text)
	if !strings.EqualFold(word, "delegate") {
		return a, access.Errorf(access.CodeInvalid, "%s", delegateUsage)
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return a, access.Errorf(access.CodeInvalid, "Name your delegate. %s", delegateUsage)
	}
	if strings.EqualFold(rest, "off") {
		a.off = true
		return a, nil
	}
	var tok string
	if strings.HasPrefix(rest, "<") {
		i := strings.IndexByte(rest, '>')
		if i < 0 {
			return a, access.Errorf(access.CodeInvalid, "The mention is not closed. %s", delegateUsage)
		}
		tok, rest = rest[:i+1], rest[i+1:]
	} else {
		tok, rest = cutField(rest)
	}
	switch {
	case strings.HasPrefix(tok, "<@"):
		id, _, _ := strings.Cut(tok[2:len(tok)-1], "|")
		if !slackUserID(id) {
			return a, access.Errorf(access.CodeInvalid, "%q is not a Slack user mention. %s", truncate(tok, 60), delegateUsage)
		}
		a.slackID = id
	case strings.HasPrefix(tok, "<mailto:"):
		addr, _, _ := strings.Cut(tok[len("<mailto:"):len(tok)-1], "|")
		if !plainEmail(addr) {
			return a, access.Errorf(access.CodeInvalid, "%q is not an email address. %s", truncate(addr, 60), delegateUsage)
		}
		a.email = addr
	case strings.HasPrefix(tok, "@"):
		return a, access.Errorf(access.CodeInvalid, "Slack sent %q as plain text, not as a mention: pick the person from the list Slack offers as you type @, or give their email address.", truncate(tok, 60))
	case plainEmail(tok):
		a.email = tok
	default:
		return a, access.Errorf(access.CodeInvalid, "%q is not a person: mention them (@name) or give their email address. %s", truncate(tok, 60), delegateUsage)
	}
	word, rest = cutField(rest)
	if !strings.EqualFold(word, "until") {
		return a, access.Errorf(access.CodeInvalid, "Say until when. %s", delegateUsage)
	}
	a.until, rest = cutField(rest)
	if a.until == "" {
		return a, access.Errorf(access.CodeInvalid, "Give the last day of the delegation as YYYY-MM-DD. %s", delegateUsage)
	}
	a.reason = strings.TrimSpace(rest)
	return a, nil
}

// cutField splits s into its first whitespace-separated word and the rest.
func cutField(s string) (string, string) {
	s = strings.TrimLeft(s, " \t\r\n")
	i := strings.IndexAny(s, " \t\r\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// slackUserID reports whether id looks like a Slack user id (U… or W…).
func slackUserID(id string) bool {
	if len(id) < 3 || len(id) > 32 || (id[0] != 'U' && id[0] != 'W') {
		return false
	}
	for _, c := range id {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// plainEmail is a loose check: one @ with text on both sides, no spaces or
// Slack markup. The directory lookup is the real check.
func plainEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && len(s) <= 254 && !strings.ContainsAny(s, " \t\r\n<>|") &&
		!strings.Contains(domain, "@") && strings.Contains(domain, ".")
}

// accessDelegate runs /access delegate.
func (b *Bot) accessDelegate(ctx context.Context, in *inbound) {
	a, err := parseDelegate(in.cmd.Text)
	if b.told(ctx, in, err) {
		return
	}
	pr, err := b.people.profile(ctx, in.user)
	if b.told(ctx, in, err) {
		return
	}
	loc := pr.Loc
	if loc == nil {
		loc = time.UTC
	}
	if a.off {
		d, err := b.core.EndDelegation(ctx, in.user, pr.Email)
		if b.told(ctx, in, err) {
			return
		}
		b.nudge()
		b.tellMessage(ctx, in, DelegationOffMessage(d))
		return
	}
	to := a.email
	if a.slackID != "" {
		tp, err := b.people.profile(ctx, a.slackID)
		if err != nil {
			b.tell(ctx, in, "Slack does not know the person you mentioned ("+access.MessageOf(err)+").")
			return
		}
		if tp.Email == "" {
			b.tell(ctx, in, "The person you mentioned has no email address in Slack, so keycard cannot find them in the identity provider.")
			return
		}
		to = tp.Email
	}
	d, err := b.core.Delegate(ctx, handlers.DelegateInput{SlackID: in.user, Email: pr.Email, ToEmail: to, Until: a.until, Loc: loc, Reason: a.reason})
	if b.told(ctx, in, err) {
		return
	}
	b.nudge()
	b.tellMessage(ctx, in, DelegationCreatedMessage(d, loc))
}

// lastDay is the last day a delegation runs, in loc ("Tue 10 Mar 2026").
func lastDay(d access.Delegation, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return d.Until.Add(-time.Nanosecond).In(loc).Format("Mon 2 Jan 2006")
}

// DelegationCreatedMessage confirms a delegation to the delegator.
func DelegationCreatedMessage(d access.Delegation, loc *time.Location) Message {
	text := fmt.Sprintf(":palm_tree: Until the end of %s (%s), %s also gets the approval requests meant for you and may decide them in your place (`%s`, ends %s). "+
		"They cannot decide their own requests. `/access delegate off` ends it sooner.",
		lastDay(d, loc), loc, person(d.To), d.ID, when(d.Until, loc))
	if d.Reason != "" {
		text += "\nReason: " + esc(d.Reason)
	}
	return Message{Text: "Delegation to " + d.To.Label() + " until " + lastDay(d, loc), Blocks: []slack.Block{section(text)}}
}

// DelegationOffMessage confirms /access delegate off.
func DelegationOffMessage(d access.Delegation) Message {
	text := fmt.Sprintf("Your delegation to %s (`%s`) is off: approval requests come only to you again, and their buttons no longer work for %s.", person(d.To), d.ID, person(d.To))
	return Message{Text: "Delegation to " + d.To.Label() + " ended", Blocks: []slack.Block{section(text)}}
}

// DelegatorOffboardedNotice tells the delegator that their delegation
// ended because one of them was offboarded.
func DelegatorOffboardedNotice(d access.DelegationDetail, to access.Person) Message {
	text := fmt.Sprintf("Your delegation to %s (`%s`) ended when one of you was offboarded: approval requests meant for you come only to you again. "+
		"`/access delegate @someone until YYYY-MM-DD` names another delegate.", person(to), d.Delegation)
	return Message{Text: "Delegation " + d.Delegation + " ended", Blocks: []slack.Block{section(text)}}
}

// DelegateNotice tells the delegate that a delegation to them started or
// ended (from the audit event's detail).
func DelegateNotice(t access.EventType, d access.DelegationDetail, from access.Person, loc *time.Location) Message {
	var text string
	if t == access.EvDelegationCreated {
		// The exact end, in the delegate's time zone: the date was read in
		// the delegator's.
		text = fmt.Sprintf(":palm_tree: %s made you their delegate until %s (`%s`): approval requests meant for them come to you too, and you may decide them in their place. "+
			"Each decision records that you decided for them.", person(from), when(d.Until, loc), d.Delegation)
		if d.Reason != "" {
			text += "\nReason: " + esc(d.Reason)
		}
	} else {
		why := map[string]string{access.DelegationEndOff: "was turned off", access.DelegationEndReplaced: "was replaced by another",
			access.DelegationEndExpired: "reached its end date", access.DelegationEndOffboarded: "ended when one of you was offboarded"}[d.EndReason]
		if why == "" {
			why = "ended"
		}
		text = fmt.Sprintf("%s's delegation to you (`%s`) %s at %s: their approval requests no longer come to you, and the buttons of those you got no longer work.",
			person(from), d.Delegation, why, when(d.EndedAt, loc))
	}
	return Message{Text: "Delegation " + d.Delegation, Blocks: []slack.Block{section(text)}}
}

// DelegateApprovalMessage is the approval DM a delegate gets: the
// delegator's, with a line saying for whom they are asked.
func DelegateApprovalMessage(r access.Request, step int, info RequesterInfo, loc *time.Location, d access.Delegation) Message {
	m := ApprovalMessage(r, step, info, loc)
	line := contextLine(fmt.Sprintf(":palm_tree: You get this as %s's delegate (`%s`, until %s). A decision you take records that you decided for them.",
		person(d.From), d.ID, when(d.Until, loc)))
	m.Blocks = append(m.Blocks[:1:1], append([]slack.Block{line}, m.Blocks[1:]...)...)
	m.Text = "As " + d.From.Label() + "'s delegate: " + m.Text
	return m
}

// decider names who decided a step: "<@bob>", or under a delegation
// "<@frank> for <@bob> (delegation `DLG-1`)".
func decider(st access.Step) string {
	if st.OnBehalfOf.Email == "" {
		return person(st.DecidedBy)
	}
	return person(st.DecidedBy) + " for " + person(st.OnBehalfOf) + " (delegation `" + st.Delegation + "`)"
}

// delegatesOf lists the delegates who get a copy of st's approval DMs:
// for each candidate with a delegation in force, its delegate, unless the
// delegate is the requester (who never decides their own request) or a
// candidate already (who gets their own DM).
func delegatesOf(r access.Request, st *access.Step, dels []access.Delegation) []access.Delegation {
	var out []access.Delegation
	seen := map[string]bool{}
	for _, d := range dels {
		if !st.IsCandidate(d.From) || st.IsCandidate(d.To) || d.To.Same(r.Requester) || seen[strings.ToLower(d.To.Email)] {
			continue
		}
		seen[strings.ToLower(d.To.Email)] = true
		out = append(out, d)
	}
	return out
}

// syncDelegates sends the delegates of the current step's candidates their
// copy of the approval DM, once each (recorded like the candidates' DMs, so
// the notifier closes them the same way when the step is decided).
func (b *Bot) syncDelegates(ctx context.Context, r access.Request, refs []access.MessageRef, info func() RequesterInfo) error {
	st := r.Step()
	if r.State != access.StatePending || st == nil {
		return nil
	}
	dels, err := b.core.DelegationsInForce()
	if err != nil {
		return err
	}
	for _, d := range delegatesOf(r, st, dels) {
		sid, err := b.slackIDOf(ctx, d.To)
		if access.CodeOf(err) == access.CodeNotFound {
			b.log.Warn("delegate has no Slack account", "email", d.To.Email, "request", r.ID)
			continue
		}
		if err != nil {
			return err
		}
		if hasStepRef(refs, r.Current, sid) {
			continue
		}
		m := DelegateApprovalMessage(r, r.Current, info(), b.people.loc(ctx, sid), d)
		if err := b.dmRecorded(ctx, access.MessageRef{RequestID: r.ID, Kind: refApproval, Step: r.Current, SlackUser: sid}, m); err != nil {
			return err
		}
	}
	return nil
}

// notifyDelegation handles delegation.created and delegation.ended: the
// delegate is told, both people's App Homes are refreshed, and on creation
// the requests already waiting for the delegator reach the delegate.
func (b *Bot) notifyDelegation(ctx context.Context, e access.Event, homes map[string]access.Person) error {
	var d access.DelegationDetail
	if err := access.DecodeDetail(e, &d); err != nil || d.Delegation == "" {
		b.log.Error("a delegation event's detail could not be decoded; its delegate is not told", "seq", e.Seq, "err", err)
		return nil
	}
	from, to := access.Person{Email: d.From}, access.Person{Email: d.To}
	homes[strings.ToLower(d.From)] = from
	homes[strings.ToLower(d.To)] = to
	if sid, err := b.people.slackID(ctx, d.From); err == nil {
		from.SlackID = sid
	}
	sid, slackErr := b.slackIDOf(ctx, to)
	if slackErr == nil {
		to.SlackID = sid
	}
	refs, err := b.core.Messages(d.Delegation)
	if err != nil {
		return err
	}
	kind := "delegation:" + strconv.FormatUint(e.Seq, 10)
	if e.Type == access.EvDelegationEnded && d.EndReason == access.DelegationEndOffboarded && from.SlackID != "" && !hasRef(refs, kind+":from", from.SlackID) {
		// Ended by an offboarding, not by the delegator: they are told
		// their stand-in is gone (if they are the one who left, Slack
		// drops the message).
		if err := b.dmRecorded(ctx, access.MessageRef{RequestID: d.Delegation, Kind: kind + ":from", SlackUser: from.SlackID}, DelegatorOffboardedNotice(d, to)); err != nil {
			return err
		}
	}
	if access.CodeOf(slackErr) == access.CodeNotFound {
		return nil
	}
	if slackErr != nil {
		return slackErr
	}
	if !hasRef(refs, kind, sid) {
		if err := b.dmRecorded(ctx, access.MessageRef{RequestID: d.Delegation, Kind: kind, SlackUser: sid}, DelegateNotice(e.Type, d, from, b.people.loc(ctx, sid))); err != nil {
			return err
		}
	}
	if e.Type != access.EvDelegationCreated {
		return nil
	}
	waiting, err := b.core.WaitingOn(d.From)
	if err != nil {
		return err
	}
	for _, r := range waiting {
		if err := b.syncApprovals(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// homeDelegations fills the App Home's delegations (every one for an
// admin, the viewer's own otherwise) and adds to Waiting the requests a
// delegate may decide for their delegators.
func (b *Bot) homeDelegations(h *Home, email string) {
	dels, err := b.core.DelegationsInForce()
	if err != nil {
		b.log.Error("home: delegations", "err", err)
		return
	}
	me := access.Person{Email: email}
	have := map[string]bool{}
	for _, r := range h.Waiting {
		have[r.ID] = true
	}
	for _, d := range dels {
		mine := d.From.Same(me) || d.To.Same(me)
		if h.Admin || mine {
			h.Delegations = append(h.Delegations, d)
		}
		if !d.To.Same(me) {
			continue
		}
		waiting, err := b.core.WaitingOn(d.From.Email)
		if err != nil {
			b.log.Error("home: waiting for a delegator", "err", err)
			continue
		}
		for _, r := range waiting {
			if !have[r.ID] && !r.Requester.Same(me) {
				have[r.ID] = true
				h.Waiting = append(h.Waiting, r)
			}
		}
	}
}

// delegateHomes adds to homes the delegates of r's candidates, whose App
// Home lists what waits for them as delegates.
func (b *Bot) delegateHomes(r access.Request, homes map[string]access.Person) {
	if r.State != access.StatePending || r.Step() == nil {
		return
	}
	dels, err := b.core.DelegationsInForce()
	if err != nil {
		b.log.Warn("delegations for the App Home refresh", "err", err)
		return
	}
	for _, d := range delegatesOf(r, r.Step(), dels) {
		homes[strings.ToLower(d.To.Email)] = d.To
	}
}

// remindDelegates re-pings the current step's candidates' delegates with
// the reminder the candidates got.
func (b *Bot) remindDelegates(ctx context.Context, r access.Request, refs []access.MessageRef, kind string, info RequesterInfo) error {
	dels, err := b.core.DelegationsInForce()
	if err != nil {
		return err
	}
	for _, d := range delegatesOf(r, r.Step(), dels) {
		sid, err := b.slackIDOf(ctx, d.To)
		if err != nil || hasRef(refs, kind, sid) {
			continue
		}
		if err := b.dmRecorded(ctx, access.MessageRef{RequestID: r.ID, Kind: kind, Step: r.Current, SlackUser: sid}, ReminderMessage(r, r.Current, info, b.people.loc(ctx, sid))); err != nil {
			return err
		}
	}
	return nil
}
