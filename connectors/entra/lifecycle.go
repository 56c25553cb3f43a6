package entra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"keycard/access"
)

// Leaver event types.
const (
	EventDisabled = "entra.user.disabled" // accountEnabled became false
	EventDeleted  = "entra.user.deleted"  // @removed from the users delta
)

// deltaSelect is what the delta query asks for: enough to tell a leaver.
const deltaSelect = "id,accountEnabled,mail,userPrincipalName"

// maxDeltaPages bounds one poll; the returned cursor (a nextLink) resumes
// where it stopped.
const maxDeltaPages = 50

// LifecycleEvent is one leaver found by the users delta query. Its shape
// matches connectors/okta.LifecycleEvent, so the wiring adapts both to
// handlers.DeactivationFeed the same way.
type LifecycleEvent struct {
	UUID      string // stable for a replay from the same cursor
	Type      string // EventDisabled or EventDeleted
	UserID    string
	UserLogin string // userPrincipalName, when Graph sent it
	Published time.Time
}

// LifecycleEvents reads the users delta query from cursor and returns the
// people it shows disabled (accountEnabled false) or deleted, with the new
// cursor: the round's @odata.deltaLink (or a nextLink, when the page bound
// stopped it), to be stored and passed back. cursor "" or "since:…" (the
// first poll, see handlers.PollDeactivations) starts tracking from now with
// $deltatoken=latest: a delta has no history to look back into, and a full
// round would page through the whole tenant and report every account ever
// disabled; whoever left before the first poll and still holds keycard
// access is found by the holder sweep. On error the input cursor is
// returned. A delta token Graph no longer knows (410 Gone) restarts from
// now the same way.
func (c *Connector) LifecycleEvents(ctx context.Context, cursor string) ([]LifecycleEvent, string, error) {
	evs, next, err := c.deltaRound(ctx, cursor)
	if err != nil && cursor != "" && !strings.HasPrefix(cursor, "since:") && isGone(err) {
		evs, next, err = c.deltaRound(ctx, "")
	}
	if err != nil {
		return nil, cursor, err
	}
	return evs, next, nil
}

func isGone(err error) bool {
	var ae *apiError
	return access.CodeOf(err) == access.CodeInvalid && asAPI(err, &ae) && ae.Status == http.StatusGone
}

func (c *Connector) deltaRound(ctx context.Context, cursor string) ([]LifecycleEvent, string, error) {
	link := cursor
	if link == "" || strings.HasPrefix(link, "since:") {
		link = c.graph + "/users/delta?" + query(url.Values{"$select": {deltaSelect}, "$deltatoken": {"latest"}})
	} else if !strings.HasPrefix(link, c.graph+"/") {
		return nil, "", access.Errorf(access.CodeInvalid, "the stored Entra ID delta cursor is not a Graph link under %s", c.graph)
	}
	sum := sha256.Sum256([]byte(cursor))
	tag := hex.EncodeToString(sum[:6])
	now := c.clock.Now()
	seen := map[string]bool{}
	got := map[string]bool{}
	var out []LifecycleEvent
	for pages := 0; ; pages++ {
		if seen[link] {
			return nil, "", access.Errorf(access.CodeUnavailable, "Microsoft Graph paging did not end (read the users delta, %d pages)", pages)
		}
		if pages >= maxDeltaPages {
			return out, link, nil
		}
		seen[link] = true
		var p page[graphUser]
		if err := c.do(ctx, call{method: http.MethodGet, url: link, what: "read the users delta"}, &p); err != nil {
			return nil, "", err
		}
		if err := p.check("read the users delta"); err != nil {
			return nil, "", err
		}
		for _, u := range p.Value {
			typ := ""
			switch {
			case u.Removed != nil:
				typ = EventDeleted
			case u.AccountEnabled != nil && !*u.AccountEnabled:
				typ = EventDisabled
			}
			if typ == "" || u.ID == "" || got[u.ID] {
				continue
			}
			got[u.ID] = true
			out = append(out, LifecycleEvent{
				UUID: "entra:" + tag + ":" + u.ID, Type: typ, UserID: u.ID,
				UserLogin: str(u.UserPrincipalName), Published: now,
			})
		}
		switch {
		case p.DeltaLink != "":
			return out, p.DeltaLink, nil
		case p.NextLink != "":
			link = p.NextLink
		default:
			return nil, "", access.Errorf(access.CodeUnavailable, "Microsoft Graph ended the users delta with neither a nextLink nor a deltaLink")
		}
	}
}
