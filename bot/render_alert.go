package bot

import (
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
)

// TriagedAlert is an alert with its triage: who acknowledged or resolved it
// and when, and the Acknowledge / Resolve buttons while it is open. The
// buttons carry the alert's audit sequence number, a pointer only: handlers
// checks that the clicker is a keycard admin. d is what the alert shows of
// the event's detail (access.AlertOf).
func TriagedAlert(e access.Event, d access.Alert, st handlers.AlertState, loc *time.Location) Message {
	m := AlertMessage(e, d, loc)
	seq := strconv.FormatUint(e.Seq, 10)
	switch st.State {
	case handlers.AlertAcknowledged:
		m.Blocks = append(m.Blocks, contextLine(":eyes: Acknowledged by "+esc(st.By)+" · "+when(st.At, loc)))
	case handlers.AlertResolved:
		line := ":white_check_mark: Resolved by " + esc(st.By) + " · " + when(st.At, loc)
		if st.Outcome != "" {
			line += "\n*Outcome:* " + esc(st.Outcome)
		}
		m.Blocks = append(m.Blocks, contextLine(line))
		return m
	}
	var buttons []slack.BlockElement
	if st.State != handlers.AlertAcknowledged {
		buttons = append(buttons, button(actAlertAck, seq, "Acknowledge", ""))
	}
	buttons = append(buttons, button(actAlertResolve, seq, "Resolve…", slack.StylePrimary))
	m.Blocks = append(m.Blocks, slack.NewActionBlock("alert:"+seq, buttons...))
	return m
}

// PolicyStagedMessage shows the security channel a policy change that waits
// for a second admin: what changed, who staged it, and the Approve button.
func PolicyStagedMessage(e access.Event, st handlers.StagedPolicy, approvedBy string, loc *time.Location) Message {
	title := ":scroll: Policy change waiting for a second admin"
	lines := st.Changes
	if len(lines) > 40 {
		lines = append(lines[:40:40], "…and "+strconv.Itoa(len(st.Changes)-40)+" more")
	}
	body := "*Staged by* " + esc(st.StagedBy) + " · " + when(st.StagedAt, loc) + "\n*New version* `" + st.Hash + "`\n*What changes:*\n• " +
		esc(strings.Join(lines, "\n• "))
	blocks := []slack.Block{header(title), section(body)}
	if approvedBy != "" {
		blocks = append(blocks, contextLine(":white_check_mark: Approved by "+esc(approvedBy)+"; this version is in force."))
	} else {
		blocks = append(blocks, contextLine("Only a keycard admin other than the one who staged it can approve. Until then the current policy stays in force."),
			slack.NewActionBlock("policy:"+truncate(st.Hash, 200), button(actPolicyApprove, st.Hash, "Approve policy change", slack.StylePrimary)))
	}
	return Message{Text: "Policy change waiting for a second admin: " + strings.Join(st.Changes, "; "), Blocks: blocks}
}

// ResolveModal asks for the outcome of an alert. The private metadata names
// the alert and the message to update: pointers, re-checked on submit.
func ResolveModal(seq uint64, channel, ts string) slack.ModalViewRequest {
	in := slack.NewPlainTextInputBlockElement(plain("What was it, and what was done? (e.g. false positive, access removed)", maxPlaceholder), actOutcomeInput)
	in.Multiline = true
	in.MaxLength = handlers.MaxOutcome
	blk := slack.NewInputBlock(blkOutcome, plain("Outcome", 2000), nil, in)
	v := modal(cbResolve, "Resolve alert", "Resolve", []slack.Block{section("Resolve alert #" + strconv.FormatUint(seq, 10) + "?"), blk})
	v.PrivateMetadata = strconv.FormatUint(seq, 10) + "|" + channel + "|" + ts
	return v
}
