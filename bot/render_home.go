package bot

import (
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/policy"
)

// Home is what one person's App Home tab shows.
type Home struct {
	Now time.Time
	Loc *time.Location // the viewer's time zone
	// Mine are the viewer's requests (any state; ended ones are skipped).
	Mine []access.Request
	// Waiting are requests whose current step the viewer may decide.
	Waiting []access.Request
	// Admin is set for keycard admins; AllPrivileged then lists every
	// active privileged grant.
	Admin         bool
	AllPrivileged []access.Request
	// Delegations in force: for admins every one, for anyone else those
	// from or to them (delegate.go).
	Delegations []access.Delegation
	// Problem replaces the content when the viewer cannot be identified.
	Problem string
}

// per-section caps keep the whole tab within Slack's 100 blocks per view.
const homeSectionCap = 15

// HomeView renders the App Home tab: my active grants with time left and
// Extend / Give up; my pending requests with Cancel; approvals waiting for
// me; for admins, every active privileged grant.
func HomeView(h Home) slack.HomeTabViewRequest {
	blocks := []slack.Block{
		header("keycard"),
		slack.NewActionBlock("home_actions", button(actOpenForm, "open", "Request access", slack.StylePrimary)),
	}
	if h.Problem != "" {
		blocks = append(blocks, section(":warning: "+esc(h.Problem)))
		return slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: blocks}}
	}
	var active, pending []access.Request
	for _, r := range h.Mine {
		switch {
		case r.State.HoldsMembership():
			active = append(active, r)
		case r.State == access.StatePending, r.State == access.StateScheduled:
			pending = append(pending, r)
		}
	}

	blocks = append(blocks, slack.NewDividerBlock(), section("*Your access*"))
	blocks = append(blocks, listBlocks(active, "You hold nothing through keycard right now.", func(r *access.Request) []slack.Block {
		line := "*" + esc(what(r)) + "* `" + r.ID + "` — " + stateWords(r)
		if r.State == access.StateActive {
			line += "\nEnds " + when(r.EndsAt, h.Loc) + " · " + left(h.Now, r.EndsAt) + " left"
			if r.ExtendedBy != "" {
				line += " · extended by `" + r.ExtendedBy + "`"
			}
		}
		if r.State == access.StateActive && r.ExtendedBy == "" {
			return []slack.Block{section(line), slack.NewActionBlock("grant:"+truncate(r.ID, 200),
				button(actExtend, r.ID, "Extend", ""), button(actGiveUp, r.ID, "Give up", slack.StyleDanger))}
		}
		return []slack.Block{section(line)}
	})...)

	blocks = append(blocks, slack.NewDividerBlock(), section("*Your open requests*"))
	blocks = append(blocks, listBlocks(pending, "No open requests.", func(r *access.Request) []slack.Block {
		line := "*" + esc(what(r)) + "* `" + r.ID + "` for " + policy.FormatDuration(r.Duration)
		if !r.StartAt.IsZero() {
			line += " from " + when(r.StartAt, h.Loc)
		}
		line += " — " + stateWords(r)
		return []slack.Block{slack.NewSectionBlock(md(line, maxSectionText),
			nil, slack.NewAccessory(button(actCancel, r.ID, "Cancel", "")))}
	})...)

	blocks = append(blocks, slack.NewDividerBlock(), section("*Waiting for your approval*"))
	blocks = append(blocks, listBlocks(h.Waiting, "Nothing is waiting for you.", func(r *access.Request) []slack.Block {
		return []slack.Block{section(fmt.Sprintf("%s asks for *%s* for %s — step %d of %d. Decide in the DM keycard sent you.",
			person(r.Requester), esc(what(r)), policy.FormatDuration(r.Duration), r.Current+1, len(r.Steps)))}
	})...)

	blocks = append(blocks, delegationBlocks(h)...)

	if h.Admin {
		blocks = append(blocks, slack.NewDividerBlock(), section("*All active privileged access* (admin)"))
		blocks = append(blocks, listBlocks(h.AllPrivileged, "No privileged access is active.", func(r *access.Request) []slack.Block {
			return []slack.Block{slack.NewSectionBlock(md(person(r.Requester)+" · *"+esc(what(r))+"* `"+r.ID+"` — ends "+when(r.EndsAt, h.Loc)+" ("+left(h.Now, r.EndsAt)+")", maxSectionText),
				nil, slack.NewAccessory(button(actRevoke, r.ID, "Revoke", slack.StyleDanger)))}
		})...)
	}
	blocks = append(blocks, contextLine("Updated "+when(h.Now, h.Loc)))
	return slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: capBlocks(blocks, maxViewBlocks, moreLine)}}
}

// delegationBlocks lists the delegations in force: every one for an admin
// (the section shows even when empty), the viewer's own for anyone else
// (only when there is one).
func delegationBlocks(h Home) []slack.Block {
	title := "*Your delegations*"
	if h.Admin {
		title = "*Delegations in force* (admin)"
	} else if len(h.Delegations) == 0 {
		return nil
	}
	out := []slack.Block{slack.NewDividerBlock(), section(title)}
	if len(h.Delegations) == 0 {
		return append(out, contextLine("No delegation is in force."))
	}
	for i, d := range h.Delegations {
		if i == homeSectionCap {
			out = append(out, contextLine(moreLine(len(h.Delegations)-homeSectionCap)))
			break
		}
		line := person(d.From) + " → " + person(d.To) + " until " + when(d.Until, h.Loc) + " · `" + d.ID + "`"
		if d.Reason != "" {
			line += "\n" + esc(d.Reason)
		}
		out = append(out, section(line))
	}
	return append(out, contextLine("A delegate gets the delegator's approval requests and may decide them in their place. `/access delegate @person until YYYY-MM-DD` or `/access delegate off`."))
}

// listBlocks renders up to homeSectionCap items, then a "…and N more" line.
func listBlocks(rs []access.Request, empty string, item func(*access.Request) []slack.Block) []slack.Block {
	if len(rs) == 0 {
		return []slack.Block{contextLine(empty)}
	}
	var out []slack.Block
	for i := range rs {
		if i == homeSectionCap {
			out = append(out, contextLine(moreLine(len(rs)-homeSectionCap)))
			break
		}
		out = append(out, item(&rs[i])...)
	}
	return out
}
