package bot

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"keycard/access"
	"keycard/handlers"
)

// exportWindow is the default period of /export (SPEC: the last 90 days).
const exportWindow = 90 * 24 * time.Hour

// exportArgs is a parsed /export command.
type exportArgs struct {
	kind   string // access | events
	params handlers.ExportParams
}

// parseExport reads "/export [policy] [from] [to]" and "/export events
// [from] [to]": dates YYYY-MM-DD (UTC), to inclusive; default the 90 days
// before now. Other reserved kinds are named but not served in Slack yet.
func parseExport(text string, now time.Time, policyExists func(string) bool) (exportArgs, error) {
	a := exportArgs{kind: "access"}
	f := strings.Fields(text)
	if len(f) > 0 {
		switch strings.ToLower(f[0]) {
		case "events":
			a.kind = "events"
			f = f[1:]
		case "holders", "campaign", "policies", "jobs":
			return a, access.Errorf(access.CodeInvalid, "The %s export is not available from Slack yet; run `keycard export --kind %s` on the server.", f[0], f[0])
		default:
			if _, err := time.Parse(time.DateOnly, f[0]); err != nil {
				if !policyExists(f[0]) {
					return a, access.Errorf(access.CodeUnknownPolicy, "There is no policy named %q. Usage: /export [policy] [from] [to], dates YYYY-MM-DD.", f[0])
				}
				a.params.Policy = f[0]
				f = f[1:]
			}
		}
	}
	if len(f) > 2 {
		return a, access.Errorf(access.CodeInvalid, "Too many arguments. Usage: /export [policy] [from] [to] or /export events [from] [to], dates YYYY-MM-DD.")
	}
	a.params.To = now.UTC()
	a.params.From = a.params.To.Add(-exportWindow)
	if len(f) >= 1 {
		from, err := time.Parse(time.DateOnly, f[0])
		if err != nil {
			return a, access.Errorf(access.CodeInvalid, "%q is not a date; write YYYY-MM-DD.", f[0])
		}
		a.params.From = from
	}
	if len(f) == 2 {
		to, err := time.Parse(time.DateOnly, f[1])
		if err != nil {
			return a, access.Errorf(access.CodeInvalid, "%q is not a date; write YYYY-MM-DD.", f[1])
		}
		a.params.To = to.Add(24 * time.Hour) // the end date is included
	}
	if !a.params.From.Before(a.params.To) {
		return a, access.Errorf(access.CodeInvalid, "The period is empty: %s is not before %s.", a.params.From.Format(time.DateOnly), a.params.To.Format(time.DateOnly))
	}
	return a, nil
}

// onExportCommand runs /export for auditors: the CSV is written to a
// temporary file (large exports stream, not held in memory), uploaded to
// the auditor's DM with the external-upload flow, and audited. Anyone else
// gets an ephemeral refusal and the attempt is audited.
func (b *Bot) onExportCommand(ctx context.Context, in *inbound) {
	w, err := b.identify(ctx, in.user)
	if err != nil {
		b.tell(ctx, in, access.MessageOf(err))
		return
	}
	ok, err := b.core.IsAuditor(ctx, w.user)
	if err != nil {
		b.tell(ctx, in, "Could not check whether you are an auditor; try again in a minute.")
		return
	}
	if !ok {
		why := "not a member of the auditors group"
		if err := b.core.RecordExportRefused(w.user.Email, in.cmd.Text, why); err != nil {
			b.log.Error("audit export refusal", "err", err)
		}
		b.tell(ctx, in, "Only auditors can export evidence. This attempt has been recorded in the audit log.")
		return
	}
	args, err := parseExport(in.cmd.Text, b.cfg.Clock.Now(), func(n string) bool { _, ok := b.core.Policy().Policy(n); return ok })
	if err != nil {
		b.tell(ctx, in, access.MessageOf(err))
		return
	}
	res, err := b.export(ctx, in.user, w.user.Email, args)
	if err != nil {
		b.log.Error("export failed", "err", err)
		b.tell(ctx, in, "The export failed: "+err.Error())
		return
	}
	if in.cmd.ChannelID != "" && !strings.HasPrefix(in.cmd.ChannelID, "D") {
		b.tell(ctx, in, fmt.Sprintf("Your %s export (%d rows) is in your DM with keycard.", args.kind, res.Rows))
	}
}

func (b *Bot) export(ctx context.Context, slackID, email string, a exportArgs) (handlers.ExportResult, error) {
	f, err := os.CreateTemp(b.cfg.ExportDir, "keycard-export-*.csv")
	if err != nil {
		return handlers.ExportResult{}, fmt.Errorf("temporary file: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	var res handlers.ExportResult
	if a.kind == "events" {
		res, err = b.core.ExportEvents(f, a.params)
	} else {
		res, err = b.core.ExportAccess(f, a.params)
	}
	if err != nil {
		return res, fmt.Errorf("writing the CSV: %w", err)
	}
	size, err := f.Seek(0, 1)
	if err != nil {
		return res, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return res, err
	}
	// Audited once the evidence exists, before it leaves keycard.
	if err := b.core.RecordExport(email, a.kind, a.params, res); err != nil {
		return res, fmt.Errorf("auditing the export: %w", err)
	}
	ch, err := b.dmChannel(ctx, slackID)
	if err != nil {
		return res, fmt.Errorf("opening your DM: %w", err)
	}
	name := fmt.Sprintf("keycard-%s-%s-%s.csv", a.kind, a.params.From.UTC().Format("20060102"), a.params.To.UTC().Format("20060102"))
	if a.params.Policy != "" {
		name = fmt.Sprintf("keycard-%s-%s-%s-%s.csv", a.kind, a.params.Policy, a.params.From.UTC().Format("20060102"), a.params.To.UTC().Format("20060102"))
	}
	if _, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{Reader: f, FileSize: int(size), Filename: name,
		Title: name, Channel: ch, InitialComment: ExportSummary(a.kind, a.params, res)}); err != nil {
		return res, fmt.Errorf("uploading to Slack: %w", err)
	}
	return res, nil
}
