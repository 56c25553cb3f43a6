package bot

import (
	"context"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// Why the request modal waits for Submit before acking: the refusals a
// person must fix in the form (not eligible, already active, standing
// access, no possible approver) are only known after identity-provider
// lookups, and only the ack can show them inline (response_action
// "errors"). Those lookups usually take well under a second, so the
// submission waits up to Config.SubmitBudget (2 s, inside Slack's 3 s).
// When the IdP is slower the ack switches the modal to "Submitting…"
// (response_action "update") and the result replaces it by views.update:
// the confirmation, or the form again with the refusal on top. Checks that
// need no lookup (over max, missing justification) never wait.

// formInput is what a submitted request or extend modal holds.
type formInput struct {
	policy        string
	duration      time.Duration
	durationBlock string
	justification string
	breakGlass    bool           // the request modal's break-glass box is ticked
	startAt       time.Time      // a scheduled start; zero: start now
	loc           *time.Location // the submitter's time zone, for the confirmation
}

func stateValue(v *slack.View, block, action string) (slack.BlockAction, bool) {
	if v.State == nil {
		return slack.BlockAction{}, false
	}
	a, ok := v.State.Values[block][action]
	return a, ok
}

// readForm reads the modal and checks what needs no lookup; errs is keyed
// by input block id, ready for response_action "errors".
func (b *Bot) readForm(v *slack.View, policyName string) (formInput, *policy.Policy, map[string]string) {
	errs := map[string]string{}
	in := formInput{policy: policyName}
	if in.policy == "" {
		if a, ok := stateValue(v, blkRole, actRoleStat); ok {
			in.policy = a.SelectedOption.Value
		}
		if a, ok := stateValue(v, blkRole, actRoleExt); ok && in.policy == "" {
			in.policy = a.SelectedOption.Value
		}
	}
	p, ok := b.core.Policy().Policy(in.policy)
	if !ok {
		errs[blkRole] = "Pick a role from the list."
		return in, nil, errs
	}
	in.durationBlock = durationBlockID(p.Name)
	if a, ok := stateValue(v, in.durationBlock, actDuration); ok && a.SelectedOption.Value != "" {
		d, err := policy.ParseDuration(a.SelectedOption.Value)
		if err != nil {
			errs[in.durationBlock] = err.Error()
		}
		in.duration = d
	} else {
		in.duration = p.DefaultDuration
	}
	if _, bad := errs[in.durationBlock]; !bad && in.duration > 0 {
		if err := p.CheckDuration(in.duration); err != nil {
			if hasBlock(v, in.durationBlock) {
				errs[in.durationBlock] = access.MessageOf(err)
			} else {
				errs[blkRole] = access.MessageOf(err)
			}
		}
	}
	if a, ok := stateValue(v, blkJustify, actJustify); ok {
		in.justification = strings.TrimSpace(a.Value)
	}
	if a, ok := stateValue(v, blkBreakGlass, actBreakGlass); ok && p.BreakGlass {
		for _, o := range a.SelectedOptions {
			in.breakGlass = in.breakGlass || o.Value == breakGlassValue
		}
	}
	if p.ScheduleAhead > 0 {
		start, problem := readStart(v)
		in.startAt = start
		if problem != "" {
			errs[blkStartAt] = problem
		}
	}
	switch {
	case in.justification == "" && in.breakGlass:
		errs[blkJustify] = "Break-glass access needs a justification: say what is on fire."
	case in.justification == "" && p.JustificationRequired:
		errs[blkJustify] = "A justification is required for " + p.App + " " + p.Role + "."
	case len(in.justification) > handlers.MaxJustification:
		errs[blkJustify] = "Please keep the justification under 2000 characters."
	}
	return in, p, errs
}

// readStart reads the request modal's start: zero for "Start now" (the
// default), else the datetimepicker's selected_date_time, a Unix timestamp
// (Slack's picker shows the person's local time and sends the instant).
// problem is set when "Start at a date and time" has no time picked. The
// bounds (past, schedule_ahead) are the use case's check, so that a
// refusal is audited.
func readStart(v *slack.View) (start time.Time, problem string) {
	if a, ok := stateValue(v, blkStart, actStart); !ok || a.SelectedOption.Value != startLater {
		return time.Time{}, ""
	}
	if at, ok := stateValue(v, blkStartAt, actStartAt); ok && at.SelectedDateTime > 0 {
		return time.Unix(at.SelectedDateTime, 0).UTC(), ""
	}
	return time.Time{}, "Pick the date and time your access should start, or choose Start now."
}

func hasBlock(v *slack.View, blockID string) bool {
	for _, blk := range v.Blocks.BlockSet {
		if ib, ok := blk.(*slack.InputBlock); ok && ib.BlockID == blockID {
			return true
		}
	}
	return false
}

// errorBlock says which input a refusal belongs to.
func errorBlock(code access.Code, in formInput, v *slack.View) string {
	block := blkRole
	switch code {
	case access.CodeOverMax, access.CodeBadDuration, access.CodeOverTotal:
		block = in.durationBlock
	case access.CodeNeedJustify, access.CodeInvalid:
		block = blkJustify
	case access.CodeBadStart:
		block = blkStartAt
	}
	if !hasBlock(v, block) {
		block = blkRole
	}
	if !hasBlock(v, block) {
		// the extend modal has no role input; its duration block stands in
		block = in.durationBlock
	}
	return block
}

// runWithin runs fn in the background and reports its result if it ends
// within the budget; late results arrive on the returned channel.
func (b *Bot) runWithin(budget time.Duration, fn func() (access.Request, error)) (res result, done bool, late <-chan result) {
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil { // the selfAck goroutine's own recover cannot see this one
				b.log.Error("bot use case panicked", "panic", p)
				ch <- result{err: access.Errorf(access.CodeInternal, "%s", panicMessage)}
			}
		}()
		r, err := fn()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		return res, true, nil
	case <-b.cfg.Clock.After(budget):
		return result{}, false, ch
	}
}

type result struct {
	r   access.Request
	err error
}

// onRequestSubmit handles the /access modal's submission.
func (b *Bot) onRequestSubmit(ctx context.Context, in *inbound, ack func(any)) {
	v := &in.cb.View
	form, p, errs := b.readForm(v, "")
	if len(errs) > 0 {
		ack(slack.NewErrorsViewSubmissionResponse(errs))
		return
	}
	pr, err := b.people.profile(ctx, in.user)
	if err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkRole: access.MessageOf(err)}))
		return
	}
	form.loc = pr.Loc
	submit := func() (access.Request, error) {
		return b.core.Submit(ctx, handlers.SubmitInput{SlackID: in.user, Email: pr.Email, Policy: p.Name,
			Duration: form.duration, Justification: form.justification, BreakGlass: form.breakGlass, StartAt: form.startAt})
	}
	b.finishSubmission(ctx, in, form, ack, submit, func(problem string) slack.ModalViewRequest {
		f := b.requestForm(ctx, in.user, p.Name)
		f.Problem = problem
		return RequestModal(f)
	})
}

// onExtendSubmit handles the Extend modal: a new request through the
// policy's approval chain that continues the grant.
func (b *Bot) onExtendSubmit(ctx context.Context, in *inbound, ack func(any)) {
	v := &in.cb.View
	g, err := b.core.Get(v.PrivateMetadata)
	if err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{durationBlockID(""): access.MessageOf(err)}))
		return
	}
	form, p, errs := b.readForm(v, g.Policy)
	if p == nil {
		ack(NoticeUpdate("Extend access", "Policy "+g.Policy+" no longer exists."))
		return
	}
	if len(errs) > 0 {
		ack(slack.NewErrorsViewSubmissionResponse(errs))
		return
	}
	pr, err := b.people.profile(ctx, in.user)
	if err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{form.durationBlock: access.MessageOf(err)}))
		return
	}
	extend := func() (access.Request, error) {
		return b.core.Extend(ctx, g.ID, handlers.SubmitInput{SlackID: in.user, Email: pr.Email, Duration: form.duration, Justification: form.justification})
	}
	b.finishSubmission(ctx, in, form, ack, extend, func(problem string) slack.ModalViewRequest {
		return ExtendModal(g, p, problem)
	})
}

// NoticeUpdate is a response_action "update" to a notice modal.
func NoticeUpdate(title, text string) *slack.ViewSubmissionResponse {
	v := NoticeModal(title, text)
	return slack.NewUpdateViewSubmissionResponse(&v)
}

// finishSubmission runs a submission within the budget and shows its
// outcome: inline errors or the confirmation in the ack when in time,
// else "Submitting…" now and views.update later.
func (b *Bot) finishSubmission(ctx context.Context, in *inbound, form formInput, ack func(any),
	run func() (access.Request, error), formAgain func(problem string) slack.ModalViewRequest) {
	v := &in.cb.View
	res, done, late := b.runWithin(b.cfg.SubmitBudget, run)
	r, err := res.r, res.err
	if done {
		if err != nil {
			if access.Retryable(err) {
				b.log.Error("submission failed", "err", err)
			}
			ack(slack.NewErrorsViewSubmissionResponse(map[string]string{errorBlock(access.CodeOf(err), form, v): truncate(access.MessageOf(err), 2000)}))
			return
		}
		b.nudge()
		sub := SubmittedModal(r, form.loc)
		ack(slack.NewUpdateViewSubmissionResponse(&sub))
		return
	}
	wait := LoadingModal(v.Title.Text)
	ack(slack.NewUpdateViewSubmissionResponse(&wait))
	res = <-late
	if res.err != nil {
		b.updateView(ctx, v.ID, formAgain(access.MessageOf(res.err)))
		return
	}
	b.nudge()
	b.updateView(ctx, v.ID, SubmittedModal(res.r, form.loc))
}

// onDenySubmit denies with the optional reason; a refusal (not an
// approver, already decided) comes back inline on the reason field.
func (b *Bot) onDenySubmit(ctx context.Context, in *inbound, ack func(any)) {
	v := &in.cb.View
	id, step := parseDecisionValue(v.PrivateMetadata)
	reason := ""
	if a, ok := stateValue(v, blkReason, actDenyInput); ok {
		reason = strings.TrimSpace(a.Value)
	}
	if len(reason) > handlers.MaxComment {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkReason: "Please keep the reason under 1000 characters."}))
		return
	}
	pr, err := b.people.profile(ctx, in.user)
	if err != nil {
		ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkReason: access.MessageOf(err)}))
		return
	}
	deny := func() (access.Request, error) {
		return b.core.Decide(ctx, handlers.DecideInput{RequestID: id, Step: step, SlackID: in.user, Email: pr.Email, Comment: reason})
	}
	res, done, late := b.runWithin(b.cfg.SubmitBudget, deny)
	if done {
		if res.err != nil {
			ack(slack.NewErrorsViewSubmissionResponse(map[string]string{blkReason: truncate(access.MessageOf(res.err), 2000)}))
			return
		}
		b.nudge()
		ack(slack.NewClearViewSubmissionResponse())
		return
	}
	ack(slack.NewClearViewSubmissionResponse())
	if res := <-late; res.err != nil {
		_, _, _ = b.dm(ctx, in.user, Message{Text: access.MessageOf(res.err), Blocks: []slack.Block{section(esc(access.MessageOf(res.err)))}})
		return
	}
	b.nudge()
}
