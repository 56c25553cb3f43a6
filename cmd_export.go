package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/server"
)

// exportCmd: keycard export [--kind K] [--policy P] [--from D] [--to D]
// [--as-of T] [--campaign ID] [--db PATH] [--out FILE] [--manifest FILE],
// and keycard export verify MANIFEST.
func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "verify" {
		return exportVerifyCmd(ctx, args[1:], stdout)
	}
	fs := newFlagSet("export")
	kind := fs.String("kind", "access", "access, events, holders, policies, jobs, campaign, who-can or delegations")
	events := fs.Bool("events", false, "short for --kind events")
	pol := fs.String("policy", "", "only this policy")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: 90 days ago)")
	to := fs.String("to", "", "last day included, YYYY-MM-DD (default: today)")
	asOf := fs.String("as-of", "", "holders: the moment, RFC 3339 or YYYY-MM-DD (default: now)")
	campaign := fs.String("campaign", "", "campaign: its id")
	sf := addStoreFlags(fs, "database file")
	outPath := fs.String("out", "", "write the CSV to this file instead of stdout")
	manifestPath := fs.String("manifest", "", "write the evidence manifest (JSON) to this file")
	if err := fs.Parse(args); err != nil {
		return usageError("export: %v", err)
	}
	if fs.NArg() == 1 && *kind == handlers.KindCampaign && *campaign == "" {
		*campaign = fs.Arg(0) // SPEC writes `campaign <id>`
	} else if fs.NArg() > 0 {
		return usageError("export: unexpected %q", fs.Arg(0))
	}
	if *events {
		*kind = handlers.KindEvents
	}
	now := access.SystemClock{}.Now()
	p, err := handlers.Period(*from, *to, now)
	if err != nil {
		return usageError("export: %v", err)
	}
	if *kind != handlers.KindAccess && *kind != handlers.KindEvents && *from == "" && *to == "" {
		p.From, p.To = time.Time{}, time.Time{} // whole history unless a period is asked for
	}
	p.Policy, p.Campaign = *pol, *campaign
	if *asOf != "" {
		if p.AsOf, err = parseMoment(*asOf); err != nil {
			return usageError("export: --as-of: %v", err)
		}
	}
	env, err := openCLI(ctx, sf)
	if err != nil {
		return err
	}
	defer env.Close()
	var out io.Writer = stdout
	var file *os.File
	name := handlers.DefaultFileName(*kind, p)
	if *outPath != "" {
		if file, err = os.OpenFile(*outPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600); err != nil {
			return err
		}
		defer file.Close()
		out, name = file, filepath.Base(*outPath)
	}
	bar := newProgress(stderr, -1, "rows", false)
	defer bar.Done()
	w := bufio.NewWriterSize(bar.Lines(out), 64<<10)
	m, err := env.svc.Export(ctx, w, handlers.ExportRequest{Kind: *kind, Params: p, By: cliUser(), FileName: name,
		Invocation: "keycard export " + strings.Join(args, " ")})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return err
		}
	}
	if *manifestPath != "" {
		return os.WriteFile(*manifestPath, m.Encode(), 0o600)
	}
	return nil
}

// exportVerifyCmd re-checks an export against its manifest: the CSV (named
// in the manifest, beside it, or --csv), its counts, and the audit chain.
func exportVerifyCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("export verify")
	sf := addStoreFlags(fs, "database file")
	csvPath := fs.String("csv", "", "the CSV (default: the manifest's csv.name beside the manifest)")
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return usageError("export verify: %v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		return usageError("export verify: expected one MANIFEST file")
	}
	data, err := os.ReadFile(positional[0])
	if err != nil {
		return err
	}
	var m handlers.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s is not a keycard manifest: %w", positional[0], err)
	}
	if *csvPath == "" {
		*csvPath = filepath.Join(filepath.Dir(positional[0]), m.CSV.Name)
	}
	f, err := os.Open(*csvPath)
	if err != nil {
		return fmt.Errorf("the CSV the manifest describes: %w", err)
	}
	defer f.Close()
	db, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	st := db.Store()
	recorded := handlers.RecordedIn(st, slog.Default())
	problems, err := handlers.VerifyManifest(m, f, chainCheck(st, server.Verifier(db.Chain())), recorded)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "%s does NOT match its manifest:\n", *csvPath)
		for _, p := range problems {
			fmt.Fprintln(stdout, "  -", p)
		}
		return exitCode(1)
	}
	fmt.Fprintf(stdout, "ok: %s matches its manifest (%d rows, sha256 %s); audit chain verifies up to event %d\n", *csvPath, m.RowCount, m.CSV.SHA256, m.Audit.HeadSeq)
	if rec, ok, err := recorded(m.CSV.SHA256, m.Audit.HeadSeq); err == nil && ok {
		// Restated from the audit log, not from the (editable) manifest.
		fmt.Fprintf(stdout, "contents (audit event %d): %s\n", rec.Seq, handlers.InclusionStatement(rec))
	}
	return nil
}
