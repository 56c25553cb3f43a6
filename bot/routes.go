package bot

import (
	"context"
	"fmt"
)

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

// routes is the route table under construction; add refuses a key that is
// already taken, so no surface can silently replace another's route.
type routes map[routeKey]route

func (t routes) add(kind, id string, r route) {
	k := routeKey{kind, id}
	if _, dup := t[k]; dup {
		panic(fmt.Sprintf("bot: two routes for %s %q", kind, id))
	}
	t[k] = r
}

// routeTable maps (kind, command | action_id | callback_id | event type)
// to one method each. Subcommands (/access review, /export campaign) are
// dispatched by their command's method, not routed here.
func routeTable() map[routeKey]route {
	t := routes{}
	t.add(kindCommand, cmdAccess, route{ack: (*Bot).ackAccessCommand, urgent: (*Bot).onAccessCommand})
	t.add(kindCommand, cmdExport, route{work: (*Bot).onExportCommand})

	// Requests (actions.go, views.go, render_home.go).
	t.add(kindAction, actApprove, route{work: (*Bot).onApprove})
	t.add(kindAction, actDeny, route{urgent: (*Bot).onDenyClick})
	t.add(kindAction, actCancel, route{work: (*Bot).onCancel})
	t.add(kindAction, actGiveUp, route{work: (*Bot).onGiveUp})
	t.add(kindAction, actRevoke, route{work: (*Bot).onAdminRevoke})
	t.add(kindAction, actExtend, route{urgent: (*Bot).onExtendClick})
	t.add(kindAction, actOpenForm, route{urgent: (*Bot).onOpenForm})
	t.add(kindAction, actRoleStat, route{work: (*Bot).onRoleChosen})
	t.add(kindAction, actRoleExt, route{work: (*Bot).onRoleChosen})
	t.add(kindView, cbRequest, route{selfAck: (*Bot).onRequestSubmit})
	t.add(kindView, cbDeny, route{selfAck: (*Bot).onDenySubmit})
	t.add(kindView, cbExtend, route{selfAck: (*Bot).onExtendSubmit})
	t.add(kindSuggestion, actRoleExt, route{selfAck: (*Bot).onRoleSearch})

	// Alert triage and staged policy approval (alerts.go).
	t.add(kindAction, actAlertAck, route{work: (*Bot).onAlertAck})
	t.add(kindAction, actAlertResolve, route{urgent: (*Bot).onAlertResolveClick})
	t.add(kindAction, actPolicyApprove, route{work: (*Bot).onPolicyApprove})
	t.add(kindView, cbResolve, route{selfAck: (*Bot).onResolveSubmit})

	// Campaign items and contractor questions (review.go).
	t.add(kindAction, actReviewKeep, route{urgent: (*Bot).onReviewKeep})
	t.add(kindAction, actReviewRevoke, route{work: (*Bot).onReviewRevoke})
	t.add(kindAction, actReviewFlag, route{work: (*Bot).onReviewFlag})
	t.add(kindAction, actAskExtend, route{urgent: (*Bot).onAskExtendClick})
	t.add(kindAction, actAskExpire, route{work: (*Bot).onAskExpire})
	t.add(kindView, cbReviewKeep, route{selfAck: (*Bot).onReviewKeepSubmit})
	t.add(kindView, cbAskExtend, route{selfAck: (*Bot).onAskExtendSubmit})

	t.add(kindEvent, evAppHomeOpened, route{work: (*Bot).onHomeOpened})
	t.add(kindEvent, evUserChange, route{work: (*Bot).onUserChange})
	return t
}
