package bot

import (
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// RequestForm is what the /access modal shows.
type RequestForm struct {
	// Policies are the roles this person may request, in menu order.
	Policies []*policy.Policy
	// Selected is the chosen role; its duration choices and justification
	// rule shape the rest of the form. Nil: nothing chosen yet.
	Selected *policy.Policy
	// Problem is shown above the form (e.g. a refusal that came back after
	// the modal was acknowledged).
	Problem string
	// Loc is the requester's time zone (users.info tz): the scheduled
	// start is explained in it. Slack's datetimepicker itself shows the
	// requester's local time and submits a Unix timestamp.
	Loc *time.Location
}

func modal(callbackID, title, submit string, blocks []slack.Block) slack.ModalViewRequest {
	v := slack.ModalViewRequest{
		Type:       slack.VTModal,
		CallbackID: callbackID,
		Title:      plain(title, maxTitleText),
		Close:      plain("Close", maxTitleText),
		Blocks:     slack.Blocks{BlockSet: capBlocks(blocks, maxViewBlocks, moreLine)},
	}
	if submit != "" {
		v.Submit = plain(submit, maxTitleText)
		v.Close = plain("Cancel", maxTitleText)
	}
	return v
}

func moreLine(n int) string { return "…and " + strconv.Itoa(n) + " more." }

func roleOption(p *policy.Policy) *slack.OptionBlockObject {
	text := p.Role
	if p.Privileged {
		text += " (privileged)"
	}
	return slack.NewOptionBlockObject(truncate(p.Name, maxOptionValue), plain(text+" — "+p.App, maxOptionText), nil)
}

// roleGroups groups roles by app for the role menu's option_groups.
func roleGroups(ps []*policy.Policy) []*slack.OptionGroupBlockObject {
	var groups []*slack.OptionGroupBlockObject
	var cur *slack.OptionGroupBlockObject
	var curApp string
	for _, p := range ps {
		if cur == nil || p.App != curApp {
			if len(groups) == maxOptions {
				break
			}
			curApp = p.App
			cur = slack.NewOptionGroupBlockElement(plain(p.App, maxOptionText))
			groups = append(groups, cur)
		}
		if len(cur.Options) < maxOptions {
			cur.Options = append(cur.Options, roleOption(p))
		}
	}
	return groups
}

// RequestModal renders the /access modal: a role menu offering only the
// roles this person may request (grouped by app; a search box when there
// are more than Slack's 100 options), the policy's durations with its
// default preselected, and a justification that is required or optional
// per policy. No roles at all: a modal that says so and why.
func RequestModal(f RequestForm) slack.ModalViewRequest {
	if len(f.Policies) == 0 {
		text := "There is nothing you can request right now: no policy lists you as eligible. " +
			"Eligibility comes from your identity-provider profile (for example your department); ask the security team if that looks wrong."
		if f.Problem != "" {
			text = f.Problem
		}
		return modal(cbNotice, "Request access", "", []slack.Block{section(esc(text))})
	}
	var blocks []slack.Block
	if f.Problem != "" {
		blocks = append(blocks, section(":warning: "+esc(f.Problem)))
	}
	var role slack.BlockElement
	if len(f.Policies) > maxOptions {
		ext := slack.NewOptionsSelectBlockElement(slack.OptTypeExternal, plain("Search roles", maxPlaceholder), actRoleExt)
		ext.MinQueryLength = new(int)
		if f.Selected != nil {
			ext.InitialOption = roleOption(f.Selected)
		}
		role = ext
	} else {
		sel := slack.NewOptionsGroupSelectBlockElement(slack.OptTypeStatic, plain("Pick a role", maxPlaceholder), actRoleStat, roleGroups(f.Policies)...)
		if f.Selected != nil {
			sel.InitialOption = roleOption(f.Selected)
		}
		role = sel
	}
	roleBlock := slack.NewInputBlock(blkRole, plain("Role", 2000), nil, role)
	roleBlock.DispatchAction = true // a new role re-renders durations and the justification rule
	blocks = append(blocks, roleBlock)

	p := f.Selected
	if p == nil {
		blocks = append(blocks, contextLine("Pick a role to see how long it can be granted for."))
		return modal(cbRequest, "Request access", "Submit", blocks)
	}
	var opts []*slack.OptionBlockObject
	var initial *slack.OptionBlockObject
	for _, d := range durationChoices(p) {
		o := slack.NewOptionBlockObject(policy.FormatDuration(d), plain(policy.FormatDuration(d), maxOptionText), nil)
		opts = append(opts, o)
		if d == p.DefaultDuration {
			initial = o
		}
	}
	dur := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("How long", maxPlaceholder), actDuration, opts...)
	dur.InitialOption = initial
	durBlock := slack.NewInputBlock(durationBlockID(p.Name), plain("Duration", 2000),
		plain("Up to "+policy.FormatDuration(p.MaxDuration)+"; the clock starts when access is in place.", 2000), dur)
	blocks = append(blocks, durBlock)

	just := slack.NewPlainTextInputBlockElement(plain("Why do you need this? (ticket, incident, task)", maxPlaceholder), actJustify)
	just.Multiline = true
	just.MaxLength = handlers.MaxJustification
	justBlock := slack.NewInputBlock(blkJustify, plain("Justification", 2000), nil, just)
	justBlock.Optional = !p.JustificationRequired
	blocks = append(blocks, justBlock)

	if p.ScheduleAhead > 0 {
		blocks = append(blocks, startBlocks(p, f.Loc)...)
	}
	if p.BreakGlass {
		blocks = append(blocks, breakGlassBlock(p))
	}
	blocks = append(blocks, contextLine(approvalSummary(p)))
	return modal(cbRequest, "Request access", "Submit", blocks)
}

// The start choices of the request modal's radio buttons.
const (
	startNow   = "now"
	startLater = "later"
)

// startBlocks offer "Start now" (the default) or a start date and time
// (scheduled access, up to the policy's schedule_ahead). Slack's
// datetimepicker shows the person's own local time and submits a Unix
// timestamp (selected_date_time), so no time zone is parsed here; the hint
// names the zone keycard will use in its messages.
func startBlocks(p *policy.Policy, loc *time.Location) []slack.Block {
	if loc == nil {
		loc = time.UTC
	}
	now := slack.NewOptionBlockObject(startNow, plain("Start now", maxOptionText), plain("As soon as it is approved", maxOptionText))
	later := slack.NewOptionBlockObject(startLater, plain("Start at a date and time", maxOptionText),
		plain("Up to "+policy.FormatDuration(p.ScheduleAhead)+" ahead; approval happens now", maxOptionText))
	radio := slack.NewRadioButtonsBlockElement(actStart, now, later)
	radio.InitialOption = now
	when := slack.NewInputBlock(blkStart, plain("When", 2000), nil, radio)
	picker := slack.NewDateTimePickerBlockElement(actStartAt)
	at := slack.NewInputBlock(blkStartAt, plain("Start at", 2000),
		plain("Only with \"Start at a date and time\". In your time zone ("+loc.String()+"); access is set up then, and its "+
			policy.FormatDuration(p.DefaultDuration)+" (or what you chose) counts from then.", 2000), picker)
	at.Optional = true
	return []slack.Block{when, at}
}

// breakGlassValue is the value of the break-glass checkbox's one option.
const breakGlassValue = "break_glass"

// breakGlassBlock is the optional checkbox with which a person asks for
// break-glass access (SPEC "break_glass"): self-approved at once, with a
// justification required, and the security channel and every approver of
// the normal chain told at once. Only policies with break_glass show it.
func breakGlassBlock(p *policy.Policy) *slack.InputBlock {
	opt := slack.NewOptionBlockObject(breakGlassValue, plain("Break glass: I need this now and will justify it", maxOptionText),
		plain("Self-approved, at most "+policy.FormatDuration(p.MaxDuration)+"; security and your approvers are told at once.", maxOptionText))
	box := slack.NewCheckboxGroupsBlockElement(actBreakGlass, opt)
	blk := slack.NewInputBlock(blkBreakGlass, plain("Emergency", 2000), nil, box)
	blk.Optional = true
	return blk
}

// durationBlockID names the duration input for one policy, so switching
// roles resets the choice to the new policy's default.
func durationBlockID(policyName string) string {
	return truncate(blkDuration+":"+policyName, 255)
}

// approvalSummary tells the requester who will decide.
func approvalSummary(p *policy.Policy) string {
	if p.Auto {
		return "Approved automatically; every grant is still audited."
	}
	var steps []string
	for _, r := range p.Approval {
		steps = append(steps, ruleLabel(r.String()))
	}
	return "Approval: " + esc(strings.Join(steps, ", then ")) + "."
}

// NoticeModal is a modal with a title and one paragraph and no submit button.
func NoticeModal(title, text string) slack.ModalViewRequest {
	return modal(cbNotice, title, "", []slack.Block{section(esc(text))})
}

// LoadingModal is opened at once with a trigger_id (valid about 3 s) while
// slower lookups run; the real content replaces it with views.update.
func LoadingModal(title string) slack.ModalViewRequest {
	return modal(cbNotice, title, "", []slack.Block{section(":hourglass_flowing_sand: One moment…")})
}

// SubmittedModal confirms a submitted request; a scheduled start is shown
// in loc, the requester's time zone.
func SubmittedModal(r access.Request, loc *time.Location) slack.ModalViewRequest {
	text := "*" + esc(what(&r)) + "* for *" + policy.FormatDuration(r.Duration) + "*"
	if !r.StartAt.IsZero() {
		text += " starting *" + when(r.StartAt, loc) + "*"
	}
	text += " — request `" + r.ID + "` is " + stateWords(&r) + "."
	if r.State == access.StatePending {
		text += "\nYou will get a DM as each step is decided."
	}
	return modal(cbNotice, "Request sent", "", []slack.Block{section(text)})
}

// DenyModal asks an approver for an optional reason before denying.
// private_metadata carries the request id and step: a lookup key only;
// Decide checks the submitter against the store.
func DenyModal(r access.Request, step int) slack.ModalViewRequest {
	in := slack.NewPlainTextInputBlockElement(plain("Tell the requester why (optional)", maxPlaceholder), actDenyInput)
	in.Multiline = true
	in.MaxLength = handlers.MaxComment
	blk := slack.NewInputBlock(blkReason, plain("Reason", 2000), nil, in)
	blk.Optional = true
	v := modal(cbDeny, "Deny request", "Deny", []slack.Block{
		section("Deny " + person(r.Requester) + "'s request for *" + esc(what(&r)) + "* (`" + r.ID + "`)?"),
		blk,
	})
	v.PrivateMetadata = decisionValue(r.ID, step)
	return v
}

// ExtendModal asks for more time on an active grant; the extension goes
// through the policy's approval chain again.
func ExtendModal(g access.Request, p *policy.Policy, problem string) slack.ModalViewRequest {
	var blocks []slack.Block
	if problem != "" {
		blocks = append(blocks, section(":warning: "+esc(problem)))
	}
	blocks = append(blocks, section("Extend *"+esc(what(&g))+"* (`"+g.ID+"`), which ends "+when(g.EndsAt, nil)+"."))
	dur := extensionSelect(p)
	blocks = append(blocks, slack.NewInputBlock(durationBlockID(p.Name), plain("Extend by", 2000), nil, dur))
	just := slack.NewPlainTextInputBlockElement(plain("Why do you need more time?", maxPlaceholder), actJustify)
	just.Multiline = true
	just.MaxLength = handlers.MaxJustification
	jb := slack.NewInputBlock(blkJustify, plain("Justification", 2000), nil, just)
	jb.Optional = !p.JustificationRequired
	blocks = append(blocks, jb, contextLine(approvalSummary(p)))
	v := modal(cbExtend, "Extend access", "Ask", blocks)
	v.PrivateMetadata = g.ID
	return v
}

// decisionValue is the value of Approve/Deny buttons: "<request id>|<step>".
func decisionValue(id string, step int) string { return id + "|" + strconv.Itoa(step) }

// parseDecisionValue reads a decisionValue; a malformed value gives step -1
// (handlers then checks against the current step only).
func parseDecisionValue(v string) (id string, step int) {
	id, s, ok := strings.Cut(v, "|")
	if !ok {
		return v, -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return id, -1
	}
	return id, n
}

// extensionSelect offers "+duration" choices up to the policy's max, the
// policy's default preselected (the Extend and contractor-extension modals).
func extensionSelect(p *policy.Policy) *slack.SelectBlockElement {
	var opts []*slack.OptionBlockObject
	var initial *slack.OptionBlockObject
	for _, d := range durationChoices(p) {
		o := slack.NewOptionBlockObject(policy.FormatDuration(d), plain("+"+policy.FormatDuration(d), maxOptionText), nil)
		opts = append(opts, o)
		if d == p.DefaultDuration {
			initial = o
		}
	}
	dur := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("How much longer", maxPlaceholder), actDuration, opts...)
	dur.InitialOption = initial
	return dur
}
