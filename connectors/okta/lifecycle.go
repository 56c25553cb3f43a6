package okta

import (
	"context"
	"net/url"
	"strings"
	"time"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"
	"github.com/okta/okta-sdk-golang/v2/okta/query"

	"keycard/access"
)

// Lifecycle event types that mean a person was cut off (Okta System Log
// event types; SUSPENDED and DEPROVISIONED are the offboarded statuses).
const (
	EventDeactivate = "user.lifecycle.deactivate"
	EventSuspend    = "user.lifecycle.suspend"
)

// SinceCursor makes a LifecycleEvents cursor that starts at t.
func SinceCursor(t time.Time) string { return "since:" + t.UTC().Format(time.RFC3339) }

// logPageLimit is the System Log's maximum page size (Okta: limit ≤ 1000).
const logPageLimit = 1000

// maxLogPages bounds one poll; the returned cursor resumes where it stopped.
const maxLogPages = 50

// LifecycleEvent is a deactivation or suspension from the System Log.
type LifecycleEvent struct {
	UUID      string
	Type      string
	UserID    string
	UserLogin string
	Published time.Time
}

// LifecycleEvents polls GET /api/v1/logs for user.lifecycle.deactivate and
// user.lifecycle.suspend. cursor is "" (Okta's default window: the last 7
// days), "since:RFC3339" (see SinceCursor), or the `after` of a previous
// call's result. A query without `until` is a polling query whose next link
// never ends (notes/okta.md §4), so the loop stops at the first empty page
// and returns the `after` of the last next link as the new cursor, to be
// stored and passed back on the next tick. Events are deduplicated on uuid
// within a call. On error the input cursor is returned: the caller retries
// from it (handling an event twice must be harmless).
func (c *Connector) LifecycleEvents(ctx context.Context, cursor string) ([]LifecycleEvent, string, error) {
	qp := query.NewQueryParams(
		query.WithFilter(`eventType eq "`+EventDeactivate+`" or eventType eq "`+EventSuspend+`"`),
		query.WithLimit(logPageLimit),
		query.WithSortOrder("ASCENDING"),
	)
	switch {
	case strings.HasPrefix(cursor, "since:"):
		t, err := time.Parse(time.RFC3339, strings.TrimPrefix(cursor, "since:"))
		if err != nil {
			return nil, cursor, access.Wrap(access.CodeInvalid, err, "System Log cursor %q: since must be RFC 3339", cursor)
		}
		qp.Since = t.UTC().Format(time.RFC3339)
	case cursor != "":
		qp.After = cursor
	}
	cl := c.begin(ctx)
	page, resp, err := c.client.LogEvent.GetLogs(cl.ctx, qp)
	cl.cancel()
	if err != nil {
		return nil, cursor, c.classify(cl, resp, err, "read the System Log")
	}
	next := cursor
	seen := map[string]bool{}
	var out []LifecycleEvent
	for pages := 1; ; pages++ {
		if a := afterOf(resp); a != "" {
			next = a
		}
		if len(page) == 0 || !resp.HasNextPage() || pages >= maxLogPages {
			break
		}
		for _, e := range page {
			if e == nil || seen[e.Uuid] {
				continue
			}
			seen[e.Uuid] = true
			out = append(out, toLifecycle(e))
		}
		page = nil
		cl := c.begin(ctx)
		resp, err = resp.Next(cl.ctx, &page)
		cl.cancel()
		if err != nil {
			return nil, cursor, c.classify(cl, resp, err, "read the System Log")
		}
	}
	// The last page read holds events too when the loop ended without an
	// empty page (no next link, or the page bound).
	for _, e := range page {
		if e == nil || seen[e.Uuid] {
			continue
		}
		seen[e.Uuid] = true
		out = append(out, toLifecycle(e))
	}
	return out, next, nil
}

func afterOf(resp *sdk.Response) string {
	if resp == nil || resp.NextPage == "" {
		return ""
	}
	u, err := url.Parse(resp.NextPage)
	if err != nil {
		return ""
	}
	return u.Query().Get("after")
}

func toLifecycle(e *sdk.LogEvent) LifecycleEvent {
	le := LifecycleEvent{UUID: e.Uuid, Type: e.EventType}
	if e.Published != nil {
		le.Published = e.Published.UTC()
	}
	for _, t := range e.Target {
		if t != nil && t.Type == "User" {
			le.UserID, le.UserLogin = t.Id, t.AlternateId
			break
		}
	}
	return le
}
