package okta

import (
	"context"
	"time"

	"github.com/okta/okta-sdk-golang/v2/okta/query"
)

// Event types Okta's System Log writes for membership changes.
const (
	EventMembershipAdd    = "group.user_membership.add"
	EventMembershipRemove = "group.user_membership.remove"
)

// traceWindow is how far before the change the System Log is searched: the
// event's published time is Okta's clock, not ours.
const traceWindow = time.Minute

// membershipEvent finds the System Log uuid of the membership change keycard
// just made, so an auditor can match a sampled grant to Okta's own record
// (the evidence issue's traceability). It is best effort: the System Log is
// eventually consistent and a miss leaves the id empty, never fails the change.
// The query is bounded with `until`, so it is not a polling query whose next
// link never ends (notes/okta.md §4).
func (c *Connector) membershipEvent(ctx context.Context, add bool, groupID, userID string, started time.Time) string {
	typ := EventMembershipRemove
	if add {
		typ = EventMembershipAdd
	}
	qp := query.NewQueryParams(
		query.WithFilter(`eventType eq "`+typ+`" and target.id eq "`+userID+`"`),
		query.WithSince(started.Add(-traceWindow).UTC().Format(time.RFC3339)),
		query.WithUntil(c.clock.Now().Add(traceWindow).UTC().Format(time.RFC3339)),
		query.WithSortOrder("DESCENDING"),
		query.WithLimit(20),
	)
	cl := c.begin(ctx)
	defer cl.cancel()
	events, _, err := c.client.LogEvent.GetLogs(cl.ctx, qp)
	if err != nil {
		return ""
	}
	for _, e := range events {
		if e == nil || e.EventType != typ {
			continue
		}
		for _, t := range e.Target {
			if t != nil && t.Id == groupID {
				return e.Uuid
			}
		}
	}
	return ""
}
