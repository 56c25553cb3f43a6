package bot

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
)

// The notifier treats the audit log as its outbox: every event a person
// should hear about is rendered and sent, in order, and the cursor moves
// only after an event is handled, so a crash or a Slack outage delays
// messages but never skips them. Posted messages are recorded
// (Core.RecordMessage) so a retried event does not post twice and later
// events can update them.
const (
	notifierCursor = "notifier.seq"
	notifyBatch    = 100
	eventTimeout   = time.Minute // bound on one event's Slack calls
)

var errBatchFull = errors.New("notifier batch full")

func (b *Bot) runNotifier(ctx context.Context) {
	for {
		if b.cfg.Leading != nil && !b.cfg.Leading() {
			// A standby: wait for the lease (its change wakes Core.Wake) or
			// the next poll.
			select {
			case <-ctx.Done():
				return
			case <-b.core.Wake():
			case <-b.cfg.Clock.After(b.cfg.NotifyEvery):
			}
			continue
		}
		n, err := b.notifyOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.log.Error("notifier", "err", err)
		}
		if err == nil && n == notifyBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-b.core.Wake():
		case <-b.nudgeCh:
		case <-b.cfg.Clock.After(b.cfg.NotifyEvery):
		}
	}
}

// notifyOnce delivers up to notifyBatch events after the cursor.
func (b *Bot) notifyOnce(ctx context.Context) (int, error) {
	cur, err := b.core.Cursor(notifierCursor)
	if err != nil {
		return 0, err
	}
	var after uint64
	if cur != "" {
		if after, err = strconv.ParseUint(cur, 10, 64); err != nil {
			return 0, err
		}
	}
	var batch []access.Event
	err = b.core.Events(after, func(e access.Event) error {
		batch = append(batch, e)
		if len(batch) == notifyBatch {
			return errBatchFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return 0, err
	}
	homes := map[string]access.Person{}
	for i, e := range batch {
		for attempt := 0; ; attempt++ {
			if b.cfg.Leading != nil && !b.cfg.Leading() {
				// This replica's term ended: the new leader goes on from
				// the cursor (at most this event is sent twice).
				return i, nil
			}
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
			err := b.notify(ectx, e, homes)
			cancel()
			if err == nil {
				break
			}
			if permanent(err) {
				b.log.Error("notifier: giving up on a message Slack refuses", "seq", e.Seq, "type", e.Type, "err", err)
				break
			}
			wait := retryWait(err, attempt)
			b.log.Warn("notifier: Slack call failed; retrying", "seq", e.Seq, "type", e.Type, "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-b.cfg.Clock.After(wait):
			}
		}
		if err := b.core.SetCursor(notifierCursor, strconv.FormatUint(e.Seq, 10)); err != nil {
			return 0, err
		}
	}
	b.refreshHomes(ctx, homes)
	return len(batch), nil
}

// notify handles one audit event.
func (b *Bot) notify(ctx context.Context, e access.Event, homes map[string]access.Person) error {
	if handled, err := b.notifyReview(ctx, e); handled {
		return err
	}
	switch e.Type {
	case access.EvAlert, access.EvIdentityMismatch, access.EvProvisionAlert:
		return b.postAlert(ctx, e)
	case access.EvPolicyStaged:
		return b.postPolicyStaged(ctx, e)
	case access.EvDelegationCreated, access.EvDelegationEnded:
		return b.notifyDelegation(ctx, e, homes) // delegate.go
	}
	if e.RequestID == "" {
		return nil
	}
	r, err := b.core.Get(e.RequestID)
	if access.CodeOf(err) == access.CodeNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	homes[strings.ToLower(r.Requester.Email)] = r.Requester
	if r.EndedBy.Email != "" {
		// An admin who revoked someone's grant sees it leave their list of
		// privileged access, not a stale Revoke button.
		homes[strings.ToLower(r.EndedBy.Email)] = r.EndedBy
	}
	for _, st := range r.Steps {
		for _, c := range st.Candidates {
			homes[strings.ToLower(c.Email)] = c
		}
	}
	b.delegateHomes(r, homes) // delegate.go
	switch e.Type {
	case access.EvRequestSubmitted:
		if err := b.notice(ctx, e, r, NoticeSubmitted); err != nil {
			return err
		}
		if r.BreakGlass {
			if err := b.breakGlass(ctx, e, r); err != nil {
				return err
			}
		}
		return b.syncApprovals(ctx, r)
	case access.EvStepApproved:
		if err := b.syncApprovals(ctx, r); err != nil {
			return err
		}
		return b.notice(ctx, e, r, NoticeStepApproved)
	case access.EvRequestApproved:
		if err := b.syncApprovals(ctx, r); err != nil {
			return err
		}
		if err := b.extensionDecided(ctx, r); err != nil {
			return err
		}
		return b.notice(ctx, e, r, NoticeApproved)
	case access.EvRequestDenied, access.EvRequestCancelled, access.EvRequestTimedOut:
		if err := b.syncApprovals(ctx, r); err != nil {
			return err
		}
		if err := b.extensionDecided(ctx, r); err != nil {
			return err
		}
		kind := map[access.EventType]NoticeKind{access.EvRequestDenied: NoticeDenied,
			access.EvRequestCancelled: NoticeCancelled, access.EvRequestTimedOut: NoticeTimedOut}[e.Type]
		return b.notice(ctx, e, r, kind)
	case access.EvMFAChallenged, access.EvMFAFailed:
		return b.refreshApprovals(ctx, r)
	case access.EvRequestReminded:
		return b.remind(ctx, e, r)
	case access.EvRequestEscalated:
		return b.syncApprovals(ctx, r)
	case access.EvGrantActive:
		return b.notice(ctx, e, r, NoticeActive)
	case access.EvGrantExpiring:
		return b.notice(ctx, e, r, NoticeExpiring)
	case access.EvGrantExpired, access.EvGrantRevoked:
		return b.notice(ctx, e, r, NoticeEnded)
	case access.EvGrantFailed:
		if err := b.notice(ctx, e, r, NoticeFailed); err != nil {
			return err
		}
		return b.alert(ctx, e)
	}
	return nil
}

// slackIDOf finds a person's Slack id: pinned on the request, else by email.
func (b *Bot) slackIDOf(ctx context.Context, p access.Person) (string, error) {
	if p.SlackID != "" {
		return p.SlackID, nil
	}
	return b.people.slackID(ctx, p.Email)
}

func hasRef(refs []access.MessageRef, kind, user string) bool {
	for _, r := range refs {
		if r.Kind == kind && r.SlackUser == user {
			return true
		}
	}
	return false
}

// notice DMs the requester once per event.
func (b *Bot) notice(ctx context.Context, e access.Event, r access.Request, kind NoticeKind) error {
	sid, err := b.slackIDOf(ctx, r.Requester)
	if err != nil {
		return err
	}
	refs, err := b.core.Messages(r.ID)
	if err != nil {
		return err
	}
	refKind := "notice:" + strconv.FormatUint(e.Seq, 10)
	if hasRef(refs, refKind, sid) {
		return nil
	}
	ch, ts, err := b.dm(ctx, sid, RequesterNotice(kind, r, b.cfg.Clock.Now(), b.people.loc(ctx, sid)))
	if permanent(err) {
		// Slack refuses this DM for good (the requester left, blocks the
		// app, ...). The event's other sends, such as the approvers' DMs
		// of a submission, must still go out: give up on the notice only.
		b.log.Error("notifier: requester notice refused by Slack", "request", r.ID, "seq", e.Seq, "type", e.Type, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	return b.core.RecordMessage(access.MessageRef{RequestID: r.ID, Kind: refKind, SlackUser: sid, Channel: ch, TS: ts})
}

// requesterInfo is the directory context shown to approvers.
func (b *Bot) requesterInfo(ctx context.Context, r access.Request) RequesterInfo {
	u, m, err := b.core.Profile(ctx, r.Requester.Email)
	if err != nil {
		b.log.Warn("approval DM: requester profile", "err", err)
		return RequesterInfo{}
	}
	info := RequesterInfo{Manager: m.Name}
	if info.Manager == "" {
		info.Manager = m.Email
	}
	info.Department, _ = u.Attr("department")
	return info
}

const (
	refApproval = "approval" // an approval DM (also "approval:r<seq>" for reminders)
	refClosed   = "closed"   // the approval DM with this ts was updated to its final form
)

// refreshApprovals re-renders the open approval DMs of the current step
// (an MFA push sent: "check your phone"; its rejection or timeout), keeping
// their buttons; a delegate's copy stays a delegate's copy.
func (b *Bot) refreshApprovals(ctx context.Context, r access.Request) error {
	st := r.Step()
	if r.State != access.StatePending || st == nil {
		return nil // the decision's own event updates the DMs
	}
	refs, err := b.core.Messages(r.ID)
	if err != nil {
		return err
	}
	dels, err := b.core.DelegationsInForce()
	if err != nil {
		return err
	}
	asDelegate := map[string]access.Delegation{} // delegate's Slack id -> the delegation
	for _, d := range delegatesOf(r, st, dels) {
		if sid, err := b.slackIDOf(ctx, d.To); err == nil {
			asDelegate[sid] = d
		}
	}
	closed := closedRefs(refs)
	var info *RequesterInfo
	for _, ref := range refs {
		if ref.Kind != refApproval || ref.Step != r.Current || closed[ref.Channel+"/"+ref.TS] {
			continue
		}
		if info == nil {
			i := b.requesterInfo(ctx, r)
			info = &i
		}
		loc := b.people.loc(ctx, ref.SlackUser)
		m := ApprovalMessage(r, ref.Step, *info, loc)
		if d, ok := asDelegate[ref.SlackUser]; ok {
			m = DelegateApprovalMessage(r, ref.Step, *info, loc, d)
		}
		if err := b.updateApprovalDM(ctx, r, ref, m); err != nil {
			return err
		}
	}
	return nil
}

// closedRefs are the approval DMs already updated to their final form, by
// channel/ts.
func closedRefs(refs []access.MessageRef) map[string]bool {
	closed := map[string]bool{}
	for _, ref := range refs {
		if ref.Kind == refClosed {
			closed[ref.Channel+"/"+ref.TS] = true
		}
	}
	return closed
}

// updateApprovalDM updates one approval DM; a permanent failure (the DM is
// gone) is logged, not retried.
func (b *Bot) updateApprovalDM(ctx context.Context, r access.Request, ref access.MessageRef, m Message) error {
	if _, _, _, err := b.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, m.options()...); err != nil {
		if !permanent(err) {
			return err
		}
		b.log.Warn("approval DM could not be updated", "request", r.ID, "err", err)
	}
	return nil
}

// syncApprovals brings the approval DMs in line with the request: every
// candidate of the step being decided has a DM with buttons, and every DM
// of a decided step (or of an ended request) shows who decided, without
// buttons.
func (b *Bot) syncApprovals(ctx context.Context, r access.Request) error {
	refs, err := b.core.Messages(r.ID)
	if err != nil {
		return err
	}
	var info *RequesterInfo
	getInfo := func() RequesterInfo {
		if info == nil {
			i := b.requesterInfo(ctx, r)
			info = &i
		}
		return *info
	}
	if st := r.Step(); r.State == access.StatePending && st != nil {
		for _, c := range st.Candidates {
			sid, err := b.slackIDOf(ctx, c)
			if access.CodeOf(err) == access.CodeNotFound {
				b.log.Warn("approver has no Slack account", "email", c.Email, "request", r.ID)
				continue
			}
			if err != nil {
				return err
			}
			if hasStepRef(refs, r.Current, sid) {
				continue
			}
			if err := b.dmRecorded(ctx, access.MessageRef{RequestID: r.ID, Kind: refApproval, Step: r.Current, SlackUser: sid}, ApprovalMessage(r, r.Current, getInfo(), b.people.loc(ctx, sid))); err != nil {
				return err
			}
		}
		// The candidates' delegates get their copy (delegate.go).
		if err := b.syncDelegates(ctx, r, refs, getInfo); err != nil {
			return err
		}
	}
	closed := closedRefs(refs)
	for _, ref := range refs {
		if !strings.HasPrefix(ref.Kind, refApproval) || closed[ref.Channel+"/"+ref.TS] {
			continue
		}
		if r.State == access.StatePending && ref.Step == r.Current && r.Steps[ref.Step].Decision == access.DecisionNone {
			continue // still waiting: keep the buttons
		}
		m := ApprovalMessage(r, ref.Step, getInfo(), b.people.loc(ctx, ref.SlackUser))
		if err := b.updateApprovalDM(ctx, r, ref, m); err != nil {
			return err
		}
		if err := b.core.RecordMessage(access.MessageRef{RequestID: r.ID, Kind: refClosed, Step: ref.Step, SlackUser: ref.SlackUser, Channel: ref.Channel, TS: ref.TS}); err != nil {
			return err
		}
	}
	return nil
}

func hasStepRef(refs []access.MessageRef, step int, user string) bool {
	for _, r := range refs {
		if strings.HasPrefix(r.Kind, refApproval) && r.Step == step && r.SlackUser == user {
			return true
		}
	}
	return false
}

// remind re-pings the current step's approvers with a fresh DM (which is
// then updated like the first one when the step is decided).
func (b *Bot) remind(ctx context.Context, e access.Event, r access.Request) error {
	st := r.Step()
	if r.State != access.StatePending || st == nil {
		return nil
	}
	refs, err := b.core.Messages(r.ID)
	if err != nil {
		return err
	}
	kind := refApproval + ":r" + strconv.FormatUint(e.Seq, 10)
	info := b.requesterInfo(ctx, r)
	for _, c := range st.Candidates {
		sid, err := b.slackIDOf(ctx, c)
		if err != nil {
			continue
		}
		if hasRef(refs, kind, sid) {
			continue
		}
		if err := b.dmRecorded(ctx, access.MessageRef{RequestID: r.ID, Kind: kind, Step: r.Current, SlackUser: sid}, ReminderMessage(r, r.Current, info, b.people.loc(ctx, sid))); err != nil {
			return err
		}
	}
	return b.remindDelegates(ctx, r, refs, kind, info) // delegate.go
}

// breakGlass tells the security channel and every approver of the normal
// chain at once (SPEC "break_glass").
func (b *Bot) breakGlass(ctx context.Context, e access.Event, r access.Request) error {
	if err := b.alertMessage(ctx, e, BreakGlassNotice(r, time.UTC)); err != nil {
		return err
	}
	var detail access.Submitted
	if err := access.DecodeDetail(e, &detail); err != nil {
		// The security channel was told above; the normal chain's approvers
		// cannot be, and keycard says so rather than skip them silently.
		b.log.Error("a break-glass request's detail could not be decoded; its normal chain's approvers are not told", "seq", e.Seq, "request", r.ID, "err", err)
		return nil
	}
	var normal []access.Step
	if detail.BreakGlassChain != nil {
		normal = detail.NormalChain
	}
	refs, err := b.core.Messages(r.ID)
	if err != nil {
		return err
	}
	kind := "breakglass:" + strconv.FormatUint(e.Seq, 10)
	for _, st := range normal {
		for _, c := range st.Candidates {
			sid, err := b.slackIDOf(ctx, c)
			if err != nil || hasRef(refs, kind, sid) {
				continue
			}
			if err := b.dmRecorded(ctx, access.MessageRef{RequestID: r.ID, Kind: kind, SlackUser: sid}, BreakGlassNotice(r, b.people.loc(ctx, sid))); err != nil {
				return err
			}
		}
	}
	return nil
}

// alert posts an event to the security channel.
func (b *Bot) alert(ctx context.Context, e access.Event) error {
	return b.alertMessage(ctx, e, AlertMessage(e, b.alertOf(e), time.UTC))
}

// alertOf is what an alert shows of e's detail. A detail keycard cannot
// read is logged, and the alert still goes out, without its text: the
// security channel must see it.
func (b *Bot) alertOf(e access.Event) access.Alert {
	d, err := access.AlertOf(e)
	if err != nil {
		b.log.Error("an alert's detail could not be decoded; it is shown without its text", "seq", e.Seq, "type", e.Type, "err", err)
	}
	return d
}

// alertMessage sends m to the policy's alerts channel, or to each admin
// by DM when the policy names none. Alerts about a request are recorded so
// a retried event does not post twice.
func (b *Bot) alertMessage(ctx context.Context, e access.Event, m Message) error {
	kind := "alert:" + strconv.FormatUint(e.Seq, 10)
	var refs []access.MessageRef
	if e.RequestID != "" {
		var err error
		if refs, err = b.core.Messages(e.RequestID); err != nil {
			return err
		}
	}
	key := e.RequestID
	if key == "" {
		key = "alert-" + strconv.FormatUint(e.Seq, 10) // alerts about no request are recorded too: a retried event posts once
		var err error
		if refs, err = b.core.Messages(key); err != nil {
			return err
		}
	}
	record := func(user, ch, ts string) error {
		return b.core.RecordMessage(access.MessageRef{RequestID: key, Kind: kind, SlackUser: user, Channel: ch, TS: ts})
	}
	if name := b.core.Policy().Alerts.Channel; name != "" {
		if hasRef(refs, kind, "") {
			return nil
		}
		ch, err := b.resolveChannel(ctx, name)
		if err == nil {
			var ts string
			if ch, ts, err = b.api.PostMessageContext(ctx, ch, m.options()...); err == nil {
				return record("", ch, ts)
			}
		}
		if !permanent(err) {
			return err
		}
		// The alerts channel is missing, or the bot is not in it: an alert
		// must not be lost to a setup mistake, so it goes to each admin.
		b.log.Error("alerts channel unusable; sending the alert to the admins by DM", "channel", name, "err", err)
		m.Blocks = append([]slack.Block{contextLine(":warning: keycard could not post to " + esc(name) + " (" + esc(err.Error()) + "); this alert comes to you instead.")}, m.Blocks...)
	}
	admins, err := b.core.Admins(ctx)
	if err != nil {
		return err
	}
	for _, a := range admins {
		sid, err := b.people.slackID(ctx, a.Email)
		if err != nil || hasRef(refs, kind, sid) {
			continue
		}
		ch, ts, err := b.dm(ctx, sid, m)
		if err != nil {
			if permanent(err) {
				b.log.Error("could not DM an admin an alert", "admin", a.Email, "err", err)
				continue // one unreachable admin must not keep the others from the alert
			}
			return err
		}
		if err := record(sid, ch, ts); err != nil {
			return err
		}
	}
	return nil
}

// homeAttempts bounds the tries of one App Home refresh. The events that
// caused it are already delivered, so a refresh Slack keeps refusing is
// dropped after a few rate-limited waits rather than holding up the
// notifier; the next event about the person, or their opening the tab,
// publishes it again.
const homeAttempts = 4

// refreshHomes republishes the App Home of everyone a batch of events
// touched (once per person per batch: views.publish is Tier 4). A refresh
// that Slack rate-limits (429 Retry-After) or fails transiently is retried,
// or the home would show a stale state until the next event about that
// person.
func (b *Bot) refreshHomes(parent context.Context, homes map[string]access.Person) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), eventTimeout)
	defer cancel()
	for _, p := range homes {
		sid, err := b.slackIDOf(ctx, p)
		if err != nil {
			continue
		}
		loc := b.people.loc(ctx, sid)
		for attempt := 0; ; attempt++ {
			h := b.homeData(ctx, p.Email, access.User{ID: p.IdPID, Email: p.Email, Name: p.Name}, loc)
			_, err := b.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: sid, View: HomeView(h)})
			if err == nil {
				break
			}
			if permanent(err) || attempt+1 >= homeAttempts {
				b.log.Warn("views.publish failed", "user", sid, "attempts", attempt+1, "err", err)
				break
			}
			select {
			case <-parent.Done():
				return
			case <-ctx.Done():
				return
			case <-b.cfg.Clock.After(retryWait(err, attempt)):
			}
		}
	}
}
