package bot

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// Message is a rendered chat message: the fallback text Slack shows in
// notifications and the blocks.
type Message struct {
	Text   string
	Blocks []slack.Block
}

func (m Message) options() []slack.MsgOption {
	return []slack.MsgOption{slack.MsgOptionText(truncate(m.Text, maxFallbackText), false),
		slack.MsgOptionBlocks(capBlocks(m.Blocks, maxMessageBlocks, moreLine)...)}
}

// RequesterInfo is directory context an approver sees beside a request.
type RequesterInfo struct {
	Manager    string // name or email of the requester's manager
	Department string
}

// ApprovalMessage renders the DM an approver of step gets: who asks, for
// what, how long, why, step k of n, the requester's manager and department.
// While step is the one being decided it carries Approve and Deny buttons;
// once decided (or the request ended) the buttons give way to who decided.
func ApprovalMessage(r access.Request, step int, info RequesterInfo, loc *time.Location) Message {
	st := access.Step{}
	if step >= 0 && step < len(r.Steps) {
		st = r.Steps[step]
	}
	blocks := []slack.Block{
		header("Access request " + r.ID),
		section(person(r.Requester) + " asks for *" + esc(what(&r)) + "* for *" + policy.FormatDuration(r.Duration) + "*."),
	}
	mgr, dept := info.Manager, info.Department
	if mgr == "" {
		mgr = "—"
	}
	if dept == "" {
		dept = "—"
	}
	fields := []string{
		fmt.Sprintf("*Step*\n%d of %d · %s", step+1, len(r.Steps), esc(ruleLabel(st.Rule))),
		"*Requester*\n" + esc(r.Requester.Label()) + " (" + esc(r.Requester.Email) + ")",
		"*Manager*\n" + esc(mgr),
		"*Department*\n" + esc(dept),
		"*Policy*\n`" + r.Policy + "`" + map[bool]string{true: " · privileged", false: ""}[r.Privileged],
		"*Requested*\n" + when(r.CreatedAt, loc),
	}
	if r.Extends != "" {
		fields = append(fields, "*Extends*\n`"+r.Extends+"`")
	}
	if !r.StartAt.IsZero() {
		fields = append(fields, "*Starts*\n"+when(r.StartAt, loc)+" (scheduled)")
	}
	blocks = append(blocks, fieldsSection(fields...))
	just := r.Justification
	if just == "" {
		just = "_none given_"
	} else {
		just = esc(just)
	}
	blocks = append(blocks, section("*Justification*\n"+just))
	for i := 0; i < step && i < len(r.Steps); i++ {
		if p := r.Steps[i]; p.Decision == access.DecisionApproved {
			blocks = append(blocks, contextLine(fmt.Sprintf("Step %d (%s) approved by %s", i+1, esc(ruleLabel(p.Rule)), decider(p))))
		}
	}
	text := fmt.Sprintf("%s asks for %s for %s (step %d of %d)", r.Requester.Label(), what(&r), policy.FormatDuration(r.Duration), step+1, len(r.Steps))
	if !r.StartAt.IsZero() {
		text = fmt.Sprintf("%s asks for %s for %s from %s (step %d of %d)", r.Requester.Label(), what(&r), policy.FormatDuration(r.Duration), when(r.StartAt, loc), step+1, len(r.Steps))
	}
	if r.State == access.StatePending && r.Current == step && st.Decision == access.DecisionNone {
		blocks = append(blocks, slack.NewActionBlock("decide:"+truncate(r.ID, 200),
			button(actApprove, decisionValue(r.ID, step), "Approve", slack.StylePrimary),
			button(actDeny, decisionValue(r.ID, step), "Deny", slack.StyleDanger)))
		if st.Escalated {
			blocks = append(blocks, contextLine("Escalated: this request waited too long for a decision."))
		}
		switch {
		case st.Challenge != nil:
			blocks = append(blocks, section(":iphone: *Check your phone:* "+person(st.Challenge.Approver)+"'s Approve counts once the Okta Verify push sent "+when(st.Challenge.SentAt, loc)+" is approved."))
		case st.MFANote != "":
			blocks = append(blocks, section(":warning: "+esc(st.MFANote)+" The step is still undecided; Approve sends a new push."))
		case st.MFA:
			blocks = append(blocks, contextLine(":lock: This step needs MFA: Approve sends an Okta Verify push to your phone."))
		}
		return Message{Text: "Approval needed: " + text, Blocks: blocks}
	}
	outcome := stepOutcome(&r, step, loc)
	blocks = append(blocks, section(outcome))
	return Message{Text: text + " — " + outcome, Blocks: blocks}
}

// stepOutcome says how a step ended, for the updated approval DM.
func stepOutcome(r *access.Request, step int, loc *time.Location) string {
	if step >= 0 && step < len(r.Steps) {
		st := r.Steps[step]
		switch st.Decision {
		case access.DecisionApproved:
			s := ":white_check_mark: Approved by " + decider(st) + " · " + when(st.DecidedAt, loc)
			if st.MFAFactor != "" {
				s += " · MFA-verified (" + esc(st.MFAFactor) + ")"
			}
			return s
		case access.DecisionDenied:
			s := ":x: Denied by " + decider(st) + " · " + when(st.DecidedAt, loc)
			if st.Comment != "" {
				s += "\n>" + esc(st.Comment)
			}
			return s
		}
	}
	switch r.State {
	case access.StateCancelled:
		return ":no_entry_sign: Cancelled by the requester · " + when(r.DecidedAt, loc)
	case access.StateTimedOut:
		return ":hourglass: Timed out without a decision · " + when(r.DecidedAt, loc)
	case access.StateDenied:
		return ":x: Denied at an earlier step"
	}
	return "No decision needed any more: the request is " + stateWords(r) + "."
}

// NoticeKind names the messages the requester gets.
type NoticeKind string

// Requester notices.
const (
	NoticeSubmitted    NoticeKind = "submitted"
	NoticeStepApproved NoticeKind = "step_approved"
	NoticeApproved     NoticeKind = "approved"
	NoticeDenied       NoticeKind = "denied"
	NoticeCancelled    NoticeKind = "cancelled"
	NoticeTimedOut     NoticeKind = "timed_out"
	NoticeActive       NoticeKind = "active"
	NoticeExpiring     NoticeKind = "expiring"
	NoticeEnded        NoticeKind = "ended"
	NoticeFailed       NoticeKind = "failed"
)

// RequesterNotice renders what the requester is told at each point of the
// lifecycle; times are in the requester's own time zone.
func RequesterNotice(kind NoticeKind, r access.Request, now time.Time, loc *time.Location) Message {
	w := "*" + esc(what(&r)) + "*"
	id := " (`" + r.ID + "`)"
	var text string
	var extra []slack.Block
	switch kind {
	case NoticeSubmitted:
		text = ":inbox_tray: Your request for " + w + " for *" + policy.FormatDuration(r.Duration) + "*"
		if !r.StartAt.IsZero() {
			text += " starting *" + when(r.StartAt, loc) + "*"
		}
		text += " was submitted" + id + "."
		if st := r.Step(); st != nil && r.State == access.StatePending {
			text += fmt.Sprintf("\nStep 1 of %d: %s.", len(r.Steps), esc(ruleLabel(r.Steps[0].Rule)))
			extra = append(extra, slack.NewActionBlock("cancel:"+truncate(r.ID, 200), button(actCancel, r.ID, "Cancel request", "")))
		}
		if r.BreakGlass {
			text += "\n:rotating_light: Break-glass: you approved it yourself; the security team and the usual approvers have been told."
		}
	case NoticeStepApproved:
		k := r.Current // the step just decided is the one before the current
		if k > 0 && k <= len(r.Steps) {
			st := r.Steps[k-1]
			text = fmt.Sprintf(":white_check_mark: Step %d of %d of your request for %s%s was approved by %s.", k, len(r.Steps), w, id, decider(st))
		} else {
			text = ":white_check_mark: A step of your request for " + w + id + " was approved."
		}
		if r.State == access.StatePending && r.Step() != nil {
			text += fmt.Sprintf("\nNext: step %d of %d, %s.", r.Current+1, len(r.Steps), esc(ruleLabel(r.Step().Rule)))
		}
	case NoticeApproved:
		text = ":white_check_mark: Your request for " + w + id + " was approved. Access is being set up; you will hear when it is in place."
		if r.Scheduled() {
			// Approved now for a later start (scheduled access).
			text = ":white_check_mark: Your request for " + w + id + " was approved for its scheduled start. Access begins *" +
				when(r.StartAt, loc) + "* and lasts " + policy.FormatDuration(r.Duration) + " from then; you will hear when it is in place."
			if r.State == access.StateScheduled {
				extra = append(extra, slack.NewActionBlock("cancel:"+truncate(r.ID, 200), button(actCancel, r.ID, "Cancel before it starts", "")))
			}
		}
	case NoticeDenied:
		text = ":x: Your request for " + w + id + " was denied"
		for _, st := range r.Steps {
			if st.Decision == access.DecisionDenied {
				text += " by " + decider(st)
				if st.Comment != "" {
					text += ".\n>" + esc(st.Comment)
				}
				break
			}
		}
		if !strings.Contains(text, "\n>") {
			text += "."
		}
	case NoticeCancelled:
		text = ":no_entry_sign: Your request for " + w + id + " was cancelled."
	case NoticeTimedOut:
		text = ":hourglass: Your request for " + w + id + " timed out without a decision. You can ask again with `/access`."
	case NoticeActive:
		text = ":unlock: You now have " + w + id + " until *" + when(r.EndsAt, loc) + "* (" + left(now, r.EndsAt) + ")."
		if r.Scheduled() {
			text = ":unlock: Your scheduled access began: you now have " + w + id + " from *" + when(r.AccessStart(), loc) +
				"* until *" + when(r.EndsAt, loc) + "* (" + left(now, r.EndsAt) + ")."
		}
	case NoticeExpiring:
		text = ":alarm_clock: " + w + id + " ends *" + when(r.EndsAt, loc) + "* (in " + left(now, r.EndsAt) + ")."
		extra = append(extra, slack.NewActionBlock("extend:"+truncate(r.ID, 200),
			button(actExtend, r.ID, "Extend", slack.StylePrimary), button(actGiveUp, r.ID, "Give up now", "")))
	case NoticeEnded:
		switch {
		case r.NeverStarted() && r.EndReason == access.ReasonOffboarded:
			text = ":no_entry_sign: " + w + id + ", scheduled to start " + when(r.StartAt, loc) + ", was withdrawn before it began: your identity-provider account is no longer active. Nothing was granted."
		case r.NeverStarted():
			by := "an admin"
			if r.EndedBy.Email != "" {
				by = person(r.EndedBy)
				if r.EndedBy.Same(r.Requester) {
					by = "you"
				}
			}
			text = ":no_entry_sign: " + w + id + ", scheduled to start " + when(r.StartAt, loc) + ", was cancelled by " + by + " before it began. Nothing was granted, so nothing had to be removed."
		}
		if text != "" {
			break
		}
		switch r.EndReason {
		case access.ReasonExpired:
			text = ":lock: " + w + id + " has ended: it expired at " + when(r.EndsAt, loc) + ". The identity provider confirmed the removal."
		case access.ReasonOffboarded:
			text = ":lock: " + w + id + " has ended: your identity-provider account was deactivated."
		default:
			by := "an admin"
			if r.EndedBy.Email != "" {
				by = person(r.EndedBy)
				if r.EndedBy.Same(r.Requester) {
					by = "you"
				}
			}
			text = ":lock: " + w + id + " has ended: revoked by " + by + " at " + when(r.EndedAt, loc) + "."
		}
	case NoticeFailed:
		text = ":warning: " + w + id + " could not be set up in the identity provider. The security team has been alerted; nothing was granted."
		if r.Scheduled() && r.ProvisionedAt.IsZero() && strings.HasPrefix(r.FailReason, access.FailedAtStart) {
			// The re-check at the start refused it (handlers.startScheduled).
			why := strings.TrimPrefix(r.FailReason, access.FailedAtStart)
			text = ":warning: " + w + id + " was not granted at its scheduled start: " + esc(why) + ". The security team has been told."
		}
	}
	blocks := append([]slack.Block{section(text)}, extra...)
	return Message{Text: slackText(text), Blocks: blocks}
}

// slackText is a fallback line without mrkdwn quoting noise.
func slackText(s string) string {
	s = strings.ReplaceAll(s, "*", "")
	s = strings.ReplaceAll(s, "`", "")
	return s
}

// AlertMessage renders an event the security channel must see; d is what
// it shows of the event's detail (access.AlertOf).
func AlertMessage(e access.Event, d access.Alert, loc *time.Location) Message {
	title := map[access.EventType]string{
		access.EvAlert:            "keycard alert",
		access.EvIdentityMismatch: "Identity mismatch",
		access.EvProvisionAlert:   "Access removal keeps failing",
		access.EvGrantFailed:      "Provisioning failed",
		access.EvPolicyEmergency:  "EMERGENCY policy change (no second admin)",
	}[e.Type]
	if title == "" {
		title = string(e.Type)
	}
	msg := d.Message
	if d.Kind != "" && e.Type == access.EvAlert {
		title += ": " + strings.ReplaceAll(d.Kind, "_", " ")
	}
	fields := []string{"*Event*\n`" + string(e.Type) + "` #" + fmt.Sprint(e.Seq), "*When*\n" + when(e.Time, loc)}
	if e.Subject != "" {
		fields = append(fields, "*Who*\n"+esc(e.Subject))
	}
	if e.RequestID != "" {
		fields = append(fields, "*Request*\n`"+e.RequestID+"`")
	}
	if e.Policy != "" {
		fields = append(fields, "*Policy*\n`"+e.Policy+"`")
	}
	blocks := []slack.Block{header(":rotating_light: " + title), fieldsSection(fields...)}
	if msg != "" {
		blocks = append(blocks, section(esc(msg)))
	}
	return Message{Text: title + ": " + msg, Blocks: blocks}
}

// BreakGlassNotice tells the security channel and every approver of the
// normal chain that someone used break-glass access.
func BreakGlassNotice(r access.Request, loc *time.Location) Message {
	text := ":rotating_light: *Break-glass:* " + person(r.Requester) + " gave themselves *" + esc(what(&r)) + "* for *" +
		policy.FormatDuration(r.Duration) + "* (`" + r.ID + "`) at " + when(r.CreatedAt, loc) + ".\n*Why:* " + esc(r.Justification)
	return Message{Text: slackText(text), Blocks: []slack.Block{section(text),
		contextLine("You are told because you approve " + esc(r.Policy) + " normally. An admin can revoke it with `/access revoke " + r.ID + "`.")}}
}

// ListMessage renders /access list: the person's grants and open requests.
func ListMessage(rs []access.Request, now time.Time, loc *time.Location) Message {
	var blocks []slack.Block
	for i := range rs {
		r := &rs[i]
		if r.State.Terminal() {
			continue
		}
		line := "*" + esc(what(r)) + "* `" + r.ID + "` — " + stateWords(r)
		if r.State == access.StateActive {
			line += ", ends " + when(r.EndsAt, loc) + " (" + left(now, r.EndsAt) + " left)"
		}
		if r.State == access.StateScheduled {
			line += ": starts " + when(r.StartAt, loc) + " (in " + left(now, r.StartAt) + "), for " + policy.FormatDuration(r.Duration)
		}
		blocks = append(blocks, section(line))
	}
	if len(blocks) == 0 {
		return Message{Text: "You have no active grants or open requests.",
			Blocks: []slack.Block{section("You have no active grants or open requests. Use `/access` to ask for something.")}}
	}
	blocks = append([]slack.Block{header("Your access")}, blocks...)
	return Message{Text: "Your grants and open requests", Blocks: blocks}
}

// HelpMessage renders /access help (and the usage shown for unknown
// subcommands, with problem explaining what was wrong).
func HelpMessage(problem string) Message {
	text := "*keycard* — time-bound access to application roles.\n" +
		"• `/access` — request a role (opens a form: start now, or pick a later start)\n" +
		"• `/access list` — your grants and open requests\n" +
		"• `/access revoke <id>` — end a grant early (its holder or an admin)\n" +
		"• `/access delegate @person until YYYY-MM-DD [reason]` — while you are away, @person also gets your approval requests and may decide them for you, to the end of that day in your Slack time zone (at most 90 days); `/access delegate off` ends it\n" +
		"• `/access help` — this help\n" +
		"• `/export [policy] [from] [to]` — auditors: access evidence as CSV (dates YYYY-MM-DD, default the last 90 days)\n" +
		"• `/export events [from] [to]` — auditors: the raw audit events"
	if problem != "" {
		text = ":warning: " + esc(problem) + "\n\n" + text
	}
	return Message{Text: "keycard help", Blocks: []slack.Block{section(text)}}
}

// ExportSummary is the comment that comes with an export's CSV: rows,
// period, counts and the audit chain head it was taken at.
func ExportSummary(m handlers.Manifest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*keycard %s export*", m.Report)
	p := m.Parameters
	if p.Policy != "" {
		fmt.Fprintf(&b, " · policy `%s`", p.Policy)
	}
	if p.Campaign != "" {
		fmt.Fprintf(&b, " · campaign `%s`", p.Campaign)
	}
	switch {
	case p.From != "" && p.To != "":
		fmt.Fprintf(&b, "\nPeriod: %s to %s (UTC, end exclusive)", p.From[:10], p.To[:10])
	case p.AsOf != "":
		fmt.Fprintf(&b, "\nAs of: %s", p.AsOf)
	default:
		b.WriteString("\nPeriod: all history")
	}
	fmt.Fprintf(&b, "\nRows: %d", m.RowCount)
	if len(m.Counts) > 0 {
		keys := slices.Sorted(maps.Keys(m.Counts))
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			label := k
			if label == "" {
				label = "(none)"
			}
			parts = append(parts, fmt.Sprintf("%s %d", label, m.Counts[k]))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "\nAudit chain head: #%d `%s`", m.Audit.HeadSeq, m.Audit.HeadHash)
	switch {
	case m.Audit.ChainVerified:
		b.WriteString(" · chain verified")
	case m.Audit.VerifyProblem != "":
		fmt.Fprintf(&b, " · :warning: chain check: %s", m.Audit.VerifyProblem)
	}
	fmt.Fprintf(&b, "\nCSV SHA-256: `%s`", m.CSV.SHA256)
	fmt.Fprintf(&b, "\nIncluded: %s", m.InclusionRule)
	b.WriteString("\nThe manifest.json beside it lets anyone re-check this file with `keycard export verify`.")
	return truncate(b.String(), maxFallbackText)
}

// ReminderMessage re-pings an approver: the approval DM with a reminder on top.
func ReminderMessage(r access.Request, step int, info RequesterInfo, loc *time.Location) Message {
	m := ApprovalMessage(r, step, info, loc)
	m.Text = "Reminder: " + m.Text
	m.Blocks = append([]slack.Block{contextLine(":bell: Reminder: this request is still waiting for a decision.")}, m.Blocks...)
	return m
}
