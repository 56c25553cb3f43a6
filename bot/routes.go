package bot

import "context"

type routeKey struct{ kind, id string }

// route is what the bot does with one kind of envelope. Exactly one of
// selfAck or the (ack, urgent, work) trio is used.
type route struct {
	// ack computes the acknowledgement payload on the socket loop; it must
	// be quick (no identity-provider calls). nil acks empty.
	ack func(b *Bot, in *inbound) any
	// urgent runs right after the ack in its own goroutine, for calls that
	// cannot wait in the queue: views.open needs a trigger_id that is valid
	// for about 3 s (notes/slack.md §5).
	urgent func(b *Bot, ctx context.Context, in *inbound)
	// work runs after the ack on the bounded queue.
	work func(b *Bot, ctx context.Context, in *inbound)
	// selfAck runs in its own goroutine and acks through the callback
	// within Config.SubmitBudget (then continues with views.update).
	selfAck func(b *Bot, ctx context.Context, in *inbound, ack func(payload any))
}

// routeTable maps (kind, command | action_id | callback_id | event type)
// to one method each.
func routeTable() map[routeKey]route {
	t := map[routeKey]route{
		{kindCommand, cmdAccess}: {ack: (*Bot).ackAccessCommand, urgent: (*Bot).onAccessCommand},
		{kindCommand, cmdExport}: {work: (*Bot).onExportCommand},

		{kindAction, actApprove}:  {work: (*Bot).onApprove},
		{kindAction, actDeny}:     {urgent: (*Bot).onDenyClick},
		{kindAction, actCancel}:   {work: (*Bot).onCancel},
		{kindAction, actGiveUp}:   {work: (*Bot).onGiveUp},
		{kindAction, actRevoke}:   {work: (*Bot).onAdminRevoke},
		{kindAction, actExtend}:   {urgent: (*Bot).onExtendClick},
		{kindAction, actOpenForm}: {urgent: (*Bot).onOpenForm},
		{kindAction, actRoleStat}: {work: (*Bot).onRoleChosen},
		{kindAction, actRoleExt}:  {work: (*Bot).onRoleChosen},

		{kindView, cbRequest}: {selfAck: (*Bot).onRequestSubmit},
		{kindView, cbDeny}:    {selfAck: (*Bot).onDenySubmit},
		{kindView, cbExtend}:  {selfAck: (*Bot).onExtendSubmit},

		{kindSuggestion, actRoleExt}: {selfAck: (*Bot).onRoleSearch},

		{kindEvent, evAppHomeOpened}: {work: (*Bot).onHomeOpened},
		{kindEvent, evUserChange}:    {work: (*Bot).onUserChange},
	}
	for k, r := range alertRoutes() { // alerts.go: alert triage, staged policy approval
		t[k] = r
	}
	for k, r := range reviewRoutes() { // review_*.go: campaigns, contractor questions, /access review, /export campaign
		t[k] = r
	}
	return t
}
