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

// exportArgs is a parsed /export command.
type exportArgs struct {
	kind   string // a handlers.Kind* report kind
	params handlers.ExportParams
}

const exportUsage = "Usage: `/export [policy] [from] [to]`, `/export events [from] [to]`, `/export holders [as-of]`, " +
	"`/export policies`, `/export jobs [from] [to]`, `/export campaign <id>`, `/export who-can [policy]`, `/export delegations [from] [to]`; dates YYYY-MM-DD."

// parseExport reads the /export text (SPEC "Commands"): dates are
// YYYY-MM-DD in UTC, `to` inclusive, default the 90 days up to now for the
// access and events exports and the whole history for policies, jobs and
// delegations.
func parseExport(text string, now time.Time, policyExists func(string) bool) (exportArgs, error) {
	a := exportArgs{kind: handlers.KindAccess}
	f := strings.Fields(text)
	if len(f) > 0 {
		switch k := strings.ToLower(f[0]); k {
		case handlers.KindEvents, handlers.KindPolicies, handlers.KindJobs, handlers.KindDelegations:
			a.kind = k
			f = f[1:]
		case handlers.KindHolders:
			a.kind = k
			if len(f) > 2 {
				return a, access.Errorf(access.CodeInvalid, "Too many arguments. %s", exportUsage)
			}
			if len(f) == 2 {
				t, err := time.Parse(time.DateOnly, f[1])
				if err != nil {
					if t, err = time.Parse(time.RFC3339, f[1]); err != nil {
						return a, access.Errorf(access.CodeInvalid, "%q is not a date or time; write YYYY-MM-DD or 2026-01-31T17:00:00Z.", f[1])
					}
				}
				a.params.AsOf = t.UTC()
			}
			return a, nil
		case handlers.KindWhoCan: // /export who-can [policy] (handlers/whocan.go)
			a.kind = k
			if len(f) > 2 {
				return a, access.Errorf(access.CodeInvalid, "Too many arguments. %s", exportUsage)
			}
			if len(f) == 2 {
				if !policyExists(f[1]) {
					return a, access.Errorf(access.CodeUnknownPolicy, "There is no policy named %q. %s", f[1], exportUsage)
				}
				a.params.Policy = f[1]
			}
			return a, nil
		case handlers.KindCampaign:
			a.kind = k
			if len(f) != 2 {
				return a, access.Errorf(access.CodeInvalid, "Name the campaign: `/export campaign <id>`.")
			}
			a.params.Campaign = f[1]
			return a, nil
		default:
			if _, err := time.Parse(time.DateOnly, f[0]); err != nil {
				if !policyExists(f[0]) {
					return a, access.Errorf(access.CodeUnknownPolicy, "There is no policy named %q. %s", f[0], exportUsage)
				}
				a.params.Policy = f[0]
				f = f[1:]
			}
		}
	}
	if len(f) > 2 {
		return a, access.Errorf(access.CodeInvalid, "Too many arguments. %s", exportUsage)
	}
	if a.kind == handlers.KindAccess || a.kind == handlers.KindEvents || len(f) > 0 {
		// Whole UTC days, as `keycard export` counts them: the 90 days up to
		// and including today, so the same words give the same window.
		d, err := handlers.Period("", "", now)
		if err != nil {
			return a, err
		}
		a.params.From, a.params.To = d.From, d.To
	}
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
	if !a.params.From.IsZero() && !a.params.From.Before(a.params.To) {
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
	if b.told(ctx, in, err) {
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
	if f := strings.Fields(in.cmd.Text); len(f) > 0 && strings.EqualFold(f[0], "campaign") {
		b.exportCampaign(ctx, in, w, f)
		return
	}
	args, err := parseExport(in.cmd.Text, b.cfg.Clock.Now(), func(n string) bool { _, ok := b.core.Policy().Policy(n); return ok })
	if b.told(ctx, in, err) {
		return
	}
	m, err := b.export(ctx, in.user, w.user.Email, in.cmd.Text, args)
	if err != nil {
		b.log.Error("export failed", "err", err)
		b.tell(ctx, in, "The export failed: "+access.MessageOf(err))
		return
	}
	if in.cmd.ChannelID != "" && !strings.HasPrefix(in.cmd.ChannelID, "D") {
		b.tell(ctx, in, fmt.Sprintf("Your %s export (%d rows) and its manifest are in your DM with keycard.", args.kind, m.RowCount))
	}
}

// export writes the report to a temporary file through Core.Export (which
// audits it and builds its manifest), then uploads the CSV and its
// manifest.json to the auditor's DM with the external-upload flow.
func (b *Bot) export(ctx context.Context, slackID, email, text string, a exportArgs) (handlers.Manifest, error) {
	f, err := os.CreateTemp(b.cfg.ExportDir, "keycard-export-*.csv")
	if err != nil {
		return handlers.Manifest{}, fmt.Errorf("temporary file: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	name := handlers.DefaultFileName(a.kind, a.params)
	m, err := b.core.Export(ctx, f, handlers.ExportRequest{Kind: a.kind, Params: a.params, By: email,
		Invocation: strings.TrimSpace("/export " + text), FileName: name})
	if err != nil {
		return m, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return m, err
	}
	ch, err := b.dmChannel(ctx, slackID)
	if err != nil {
		return m, fmt.Errorf("opening your DM: %w", err)
	}
	if _, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{Reader: f, FileSize: int(m.CSV.Bytes), Filename: name,
		Title: name, Channel: ch, InitialComment: ExportSummary(m)}); err != nil {
		return m, fmt.Errorf("uploading to Slack: %w", err)
	}
	manifest := m.Encode()
	mname := strings.TrimSuffix(name, ".csv") + ".manifest.json"
	if _, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{Content: string(manifest), FileSize: len(manifest),
		Filename: mname, Title: mname, Channel: ch}); err != nil {
		return m, fmt.Errorf("uploading the manifest to Slack: %w", err)
	}
	return m, nil
}
