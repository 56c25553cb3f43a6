package bot

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
	"keycard/policy"
)

// reportLines bounds the list lines one report section shows: a section's
// text is at most 3000 characters (maxSectionText) and a message at most 50
// blocks; the complete list is always in the attached CSV.
const reportLines = 15

// linesSection renders up to reportLines lines, then "…and N more (in the
// CSV)", within a section's 3000 characters.
func linesSection(lines []string) *slack.SectionBlock {
	shown := lines
	more := 0
	if len(shown) > reportLines {
		shown, more = shown[:reportLines], len(lines)-reportLines
	}
	text := strings.Join(shown, "\n")
	tail := ""
	if more > 0 {
		tail = fmt.Sprintf("\n…and %d more in the attached CSV.", more)
	}
	if n := maxSectionText - len([]rune(tail)); len([]rune(text)) > n {
		text = truncate(text, n)
	}
	return section(text + tail)
}

// ReportMessage renders a scheduled report from its domain value.
func ReportMessage(r handlers.Report, loc *time.Location) Message {
	switch {
	case r.Admin != nil:
		return AdminReportMessage(*r.Admin, loc)
	case r.Compliance != nil:
		return ComplianceMessage(*r.Compliance)
	case r.Campaign != nil:
		return CampaignSummaryMessage(*r.Campaign, loc)
	}
	return Message{Text: "keycard report " + r.Job, Blocks: []slack.Block{section("keycard report `" + esc(r.Job) + "`")}}
}

// AdminReportMessage is the admin access report: privileged grants by app
// and role (holder, approvers, started, ends), the privileged access
// keycard did not grant, the people holding a whole separation-of-duties
// set anyway (policy `conflicts:`), and where the policies and the IdP
// disagree.
func AdminReportMessage(rep handlers.AdminReport, loc *time.Location) Message {
	n := 0
	for _, g := range rep.Groups {
		n += len(g.Grants)
	}
	title := "Privileged access report — " + rep.At.In(loc).Format("Mon 2 Jan 2006")
	summary := fmt.Sprintf("*%d* active privileged grants in *%d* roles; *%d* members of privileged groups that keycard did not grant.", n, len(rep.Groups), len(rep.Unmanaged))
	if len(rep.Conflicts) > 0 {
		summary += fmt.Sprintf("\n:warning: *%d* conflicting %s held anyway: separation of duties says nobody may hold those policies at once.",
			len(rep.Conflicts), map[bool]string{true: "set", false: "sets"}[len(rep.Conflicts) == 1])
	}
	blocks := []slack.Block{header(title), section(summary)}
	// Each role takes 3 blocks; leave room for the unmanaged (3), the
	// conflicts (3, when there are any), sync (3) and footer (1) blocks
	// within Slack's 50.
	roleBlocksEnd := maxMessageBlocks - 8
	if len(rep.Conflicts) > 0 {
		roleBlocksEnd -= 3
	}
	for i, g := range rep.Groups {
		if len(blocks)+3 > roleBlocksEnd {
			blocks = append(blocks, contextLine(fmt.Sprintf("…and %d more roles in the attached CSV.", len(rep.Groups)-i)))
			break
		}
		var lines []string
		for _, r := range g.Grants {
			var approvers []string
			for _, a := range r.Approvers() {
				approvers = append(approvers, a.Label())
			}
			if len(approvers) == 0 {
				approvers = []string{"auto"}
			}
			lines = append(lines, fmt.Sprintf("• %s (%s) — approved by %s — since %s — ends %s",
				esc(r.Requester.Label()), esc(r.Requester.Email), esc(strings.Join(approvers, ", ")), when(r.ProvisionedAt, loc), when(r.EndsAt, loc)))
		}
		blocks = append(blocks, slack.NewDividerBlock(), section("*"+esc(g.App)+" · "+esc(g.Role)+"*"), linesSection(lines))
	}
	if len(rep.Unmanaged) > 0 {
		var lines []string
		for _, h := range rep.Unmanaged {
			lines = append(lines, fmt.Sprintf("• %s — %s — `%s`", esc(h.Email), h.Source, esc(h.Group)))
		}
		blocks = append(blocks, slack.NewDividerBlock(), section("*Access keycard did not grant* (standing or added outside keycard)"), linesSection(lines))
	}
	if len(rep.Conflicts) > 0 {
		blocks = append(blocks, slack.NewDividerBlock(),
			section("*Separation of duties: conflicting sets held anyway* (policy `conflicts:`; standing membership counts)"),
			linesSection(conflictLines(rep.Conflicts)))
	}
	if !rep.Sync.Empty() || len(rep.Sync.Unchecked) > 0 {
		var lines []string
		for _, g := range rep.Sync.Uncovered {
			lines = append(lines, fmt.Sprintf("• `%s` (%s) is inside the scope but no policy covers it", esc(g.Group), esc(g.Connector)))
		}
		for _, g := range rep.Sync.Missing {
			lines = append(lines, fmt.Sprintf("• policy `%s`: group `%s` is missing in %s", esc(g.Policy), esc(g.Group), esc(g.Connector)))
		}
		for _, c := range rep.Sync.Unchecked {
			lines = append(lines, fmt.Sprintf("• connector %s cannot list its groups: not checked", esc(c)))
		}
		blocks = append(blocks, slack.NewDividerBlock(), section("*Policies and the identity provider disagree*"), linesSection(lines))
	}
	blocks = append(blocks, contextLine(fmt.Sprintf("The full list (%d rows) is in the attached CSV, with its manifest.", rep.Rows)))
	text := fmt.Sprintf("%s: %d privileged grants, %d members keycard did not grant", title, n, len(rep.Unmanaged))
	if len(rep.Conflicts) > 0 {
		text += fmt.Sprintf(", %d holding a conflicting set", len(rep.Conflicts))
	}
	return Message{Text: text, Blocks: blocks}
}

// conflictLines names each conflicting set, then the people holding all of
// it and through what (a keycard grant, a standing or unmanaged
// membership), in the order the report found them.
func conflictLines(cs []handlers.ConflictHolder) []string {
	var order []string
	by := map[string][]handlers.ConflictHolder{}
	for _, c := range cs {
		if _, ok := by[c.Conflict]; !ok {
			order = append(order, c.Conflict)
		}
		by[c.Conflict] = append(by[c.Conflict], c)
	}
	var lines []string
	for _, name := range order {
		lines = append(lines, "• *"+esc(name)+"* — held by:")
		for _, h := range by[name] {
			who := esc(h.Email)
			if h.Name != "" && h.Name != h.Email {
				who = esc(h.Name) + " (" + esc(h.Email) + ")"
			}
			lines = append(lines, "    ◦ "+who+" — "+esc(strings.Join(h.Through, "; ")))
		}
	}
	return lines
}

// ComplianceMessage is the monthly compliance package's post.
func ComplianceMessage(c handlers.ComplianceReport) Message {
	month := c.From.Format("January 2006")
	chain := "verified"
	if !c.ChainChecked {
		chain = "not verified"
		if c.ChainProblem != "" {
			chain = "problem: " + c.ChainProblem
		}
	}
	blocks := []slack.Block{header("Compliance package — " + month),
		fieldsSection(
			"*Access export*\n"+strconv.Itoa(c.AccessRows)+" rows",
			"*Events export*\n"+strconv.Itoa(c.EventRows)+" events",
			"*Period*\n"+c.From.Format(time.DateOnly)+" to "+c.To.Add(-time.Second).Format(time.DateOnly),
			"*Audit chain*\n"+esc(chain),
		),
		section(fmt.Sprintf("*Audit chain head* #%d `%s`\n*Policy file SHA-256* `%s`", c.HeadSeq, c.HeadHash, c.PolicyHash)),
		contextLine("Each CSV has a manifest.json beside it; `keycard export verify` re-checks it."),
	}
	return Message{Text: fmt.Sprintf("Compliance package %s: %d access rows, %d events, chain head %s", month, c.AccessRows, c.EventRows, c.HeadHash), Blocks: blocks}
}

// CampaignSummaryMessage is a closed campaign's completion summary.
func CampaignSummaryMessage(s handlers.CampaignSummary, loc *time.Location) Message {
	c := s.Campaign
	n := c.Counts
	blocks := []slack.Block{header("Access review " + c.ID + " closed"),
		fieldsSection(
			"*Items*\n"+strconv.Itoa(n["items"]),
			"*Kept*\n"+strconv.Itoa(n[string(access.ReviewKeep)]),
			"*Revoked*\n"+strconv.Itoa(n[string(access.ReviewRevoke)]),
			"*Flagged*\n"+strconv.Itoa(n[string(access.ReviewFlag)]),
			"*Unreviewed at due date*\n"+strconv.Itoa(len(s.Unreviewed))+" (on_timeout: "+esc(c.OnTimeout)+")",
			"*Opened / closed*\n"+when(c.OpenedAt, loc)+"\n"+when(c.ClosedAt, loc),
		),
		contextLine("Population frozen " + when(c.SnapshotAt, loc) + " · SHA-256 `" + c.PopulationSHA256 + "`"),
	}
	item := func(it handlers.CampaignItem, extra string) string {
		return fmt.Sprintf("• %s — `%s` (%s)%s", esc(it.Holder.Email), esc(it.Group), it.Source, extra)
	}
	if len(s.Unreviewed) > 0 {
		var lines []string
		for _, it := range s.Unreviewed {
			lines = append(lines, item(it, " → "+strings.ReplaceAll(string(it.TimeoutOutcome), "_", " ")))
		}
		blocks = append(blocks, section("*Unreviewed items*"), linesSection(lines))
	}
	if len(s.Revoked) > 0 {
		var lines []string
		for _, it := range s.Revoked {
			extra := " by " + esc(it.DecidedBy.Email)
			if it.RemediationErr != "" {
				extra += " — " + esc(it.RemediationErr)
			}
			lines = append(lines, item(it, extra))
		}
		blocks = append(blocks, section("*Revoked*"), linesSection(lines))
	}
	if len(s.Flagged) > 0 {
		var lines []string
		for _, it := range s.Flagged {
			lines = append(lines, item(it, " by "+esc(it.DecidedBy.Email)))
		}
		blocks = append(blocks, section("*Flagged for follow-up*"), linesSection(lines))
	}
	blocks = append(blocks, contextLine("Every item's evidence is in the attached campaign CSV, with its manifest."))
	return Message{Text: fmt.Sprintf("Access review %s closed: %d items, %d kept, %d revoked, %d flagged, %d unreviewed",
		c.ID, n["items"], n[string(access.ReviewKeep)], n[string(access.ReviewRevoke)], n[string(access.ReviewFlag)], len(s.Unreviewed)), Blocks: blocks}
}

func sourceWords(source string) string {
	switch source {
	case handlers.SourceKeycard:
		return "a keycard grant"
	case handlers.SourceStanding:
		return "a standing membership (there before keycard)"
	case handlers.SourceUnmanaged:
		return "a membership added outside keycard"
	}
	return source
}

// ReviewItemMessage is the DM a reviewer gets for one campaign item: whose
// access, to what, how they got it; Keep / Revoke / Flag while the item is
// open, the outcome once it is not. There is deliberately no "keep all".
func ReviewItemMessage(it handlers.CampaignItem, c handlers.Campaign, loc *time.Location) Message {
	text := fmt.Sprintf("Access review %s: does %s still need %s?", c.ID, it.Holder.Label(), it.App+" · "+it.Role)
	fields := []string{"*Who*\n" + person(it.Holder) + " (" + esc(it.Holder.Email) + ")", "*Access*\n" + esc(it.App+" · "+it.Role),
		"*Group*\n`" + esc(it.Group) + "`", "*How*\n" + sourceWords(it.Source), "*Due*\n" + when(c.DueAt, loc)}
	if it.GrantID != "" {
		fields = append(fields, "*Grant*\n`"+it.GrantID+"`")
	}
	blocks := []slack.Block{section("*" + esc(text) + "*"), fieldsSection(fields...)}
	if it.ReassignedTo != "" {
		blocks = append(blocks, contextLine("Sent to you as "+esc(it.ReassignedTo)+": the review rule ("+esc(it.ReviewerRule)+") named nobody but the holder."))
	}
	switch {
	case it.Decision != "":
		line := fmt.Sprintf("*%s* by %s, %s", strings.ToUpper(string(it.Decision[:1]))+string(it.Decision[1:]), person(it.DecidedBy), when(it.DecidedAt, loc))
		if it.Comment != "" {
			line += ": " + esc(it.Comment)
		}
		blocks = append(blocks, section(line))
	case it.TimeoutOutcome != "":
		blocks = append(blocks, section("Nobody reviewed this by the due date: "+strings.ReplaceAll(string(it.TimeoutOutcome), "_", " ")+"."))
	default:
		keep := "Keep"
		if it.Privileged {
			keep = "Keep (with a reason)"
		}
		blocks = append(blocks, slack.NewActionBlock("review:"+it.ID,
			button(actReviewKeep, it.ID, keep, slack.StylePrimary),
			button(actReviewRevoke, it.ID, "Revoke", slack.StyleDanger),
			button(actReviewFlag, it.ID, "Flag for follow-up", "")))
	}
	return Message{Text: text, Blocks: blocks}
}

// ReviewReminderMessage is the daily reminder of unreviewed items.
func ReviewReminderMessage(campaign string, waiting int, due time.Time, loc *time.Location) Message {
	text := fmt.Sprintf("Reminder: %d access review items of %s still wait for you; due %s.", waiting, campaign, when(due, loc))
	return Message{Text: text, Blocks: []slack.Block{section(":hourglass: " + esc(text)),
		contextLine("Each item is a separate message above, with Keep / Revoke / Flag.")}}
}

// ContractorAskMessage asks a contractor's manager (or the security
// channel) whether the contractor still needs access that ends soon.
func ContractorAskMessage(a handlers.ContractorAsk, loc *time.Location) Message {
	text := fmt.Sprintf("%s (contractor) has %s until %s. Extend it, or let it expire?", a.Holder.Label(), a.App+" · "+a.Role, when(a.EndsAt, loc))
	blocks := []slack.Block{section("*Contractor access ending soon*\n" + esc(text)),
		fieldsSection("*Who*\n"+person(a.Holder)+" ("+esc(a.Holder.Email)+")", "*Access*\n"+esc(a.App+" · "+a.Role),
			"*Ends*\n"+when(a.EndsAt, loc), "*Grant*\n`"+a.GrantID+"`")}
	if a.Manager.Email == "" {
		blocks = append(blocks, contextLine("The directory names no manager for this contractor, so the security channel decides (keycard admins)."))
	}
	switch a.Decision {
	case "":
		blocks = append(blocks, slack.NewActionBlock("contractor:"+a.GrantID,
			button(actAskExtend, a.GrantID, "Extend", slack.StylePrimary),
			button(actAskExpire, a.GrantID, "Let expire", "")))
	case handlers.AskExtended:
		blocks = append(blocks, section(fmt.Sprintf("*Extended* by %s for %s (`%s`).", person(a.DecidedBy), policy.FormatDuration(a.Duration), a.Extension)))
	case handlers.AskExtensionRequested:
		// A privileged policy's extension goes through its approval chain:
		// it is not "Extended" until that chain approves it.
		by := fmt.Sprintf("by %s for %s (`%s`)", person(a.DecidedBy), policy.FormatDuration(a.Duration), a.Extension)
		switch st := a.ExtensionState; st {
		case access.StatePending, "":
			blocks = append(blocks, section("*Extension requested* "+by+", pending approval through the policy's approval chain. Until it is approved the access ends as scheduled."))
		case access.StateProvisioning, access.StateActive, access.StateDeprovisioning, access.StateExpired, access.StateRevoked:
			blocks = append(blocks, section("*Extended* "+by+", approved through the policy's approval chain."))
		default:
			blocks = append(blocks, section(fmt.Sprintf("*Extension %s*: requested %s; the access ends as scheduled.", strings.ReplaceAll(string(st), "_", " "), by)))
		}
	default:
		blocks = append(blocks, section(fmt.Sprintf("*Left to expire* by %s, %s.", person(a.DecidedBy), when(a.DecidedAt, loc))))
	}
	return Message{Text: text, Blocks: blocks}
}

// ReviewKeepModal asks for the reason privileged access is kept.
func ReviewKeepModal(it handlers.CampaignItem) slack.ModalViewRequest {
	in := slack.NewPlainTextInputBlockElement(plain("Why does this person still need it?", maxPlaceholder), actComment)
	in.Multiline = true
	in.MaxLength = handlers.MaxComment
	blocks := []slack.Block{
		section(fmt.Sprintf("Keep *%s*'s *%s* (`%s`)? Privileged access is kept only with a reason.", esc(it.Holder.Label()), esc(it.App+" · "+it.Role), esc(it.Group))),
		slack.NewInputBlock(blkComment, plain("Reason", 2000), nil, in),
	}
	v := modal(cbReviewKeep, "Keep access", "Keep", blocks)
	v.PrivateMetadata = it.ID
	return v
}

// ContractorExtendModal offers durations up to the policy's max.
func ContractorExtendModal(a handlers.ContractorAsk, p *policy.Policy) slack.ModalViewRequest {
	dur := extensionSelect(p)
	how := "The extension is recorded as approved by you."
	if p.Privileged {
		how = "This is privileged access: the extension goes through the policy's approval chain, and the access ends as scheduled unless it is approved in time."
	}
	blocks := []slack.Block{
		section(fmt.Sprintf("Extend *%s*'s *%s* (`%s`), which ends %s. %s",
			esc(a.Holder.Label()), esc(a.App+" · "+a.Role), a.GrantID, when(a.EndsAt, nil), how)),
		slack.NewInputBlock(durationBlockID(p.Name), plain("Extend by (at most "+policy.FormatDuration(p.MaxDuration)+")", 2000), nil, dur),
	}
	v := modal(cbAskExtend, "Extend access", "Extend", blocks)
	v.PrivateMetadata = a.GrantID
	return v
}
