package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/policy"
	"keycard/store"
)

// policyCmd: keycard policy check [FILE].
func policyCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "apply" {
		return policyApplyCmd(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "import" {
		return policyImportCmd(ctx, args[1:], stdout)
	}
	if len(args) == 0 || args[0] != "check" {
		return usageError("policy: expected `policy check [FILE]`, `policy import --connector NAME [--out FILE]` or `policy apply --by EMAIL [--emergency --reason TEXT]`")
	}
	path := os.Getenv("KEYCARD_POLICY")
	if path == "" {
		path = "policy.yaml"
	}
	againstIdP := false
	for _, a := range args[1:] {
		if a == "--against-idp" {
			againstIdP = true
		} else {
			path = a
		}
	}
	set, err := policy.Load(path)
	if err != nil {
		return err
	}
	if againstIdP {
		return checkAgainstIdP(ctx, set, stdout)
	}
	fmt.Fprint(stdout, policy.Summary(set))
	return nil
}

// openDB opens the store for a command-line tool; it shares the file lock
// with a running `keycard serve`, so say so when it is held.
func openDB(path string) (*store.DB, error) {
	db, err := store.Open(path, store.Options{Timeout: 2 * time.Second})
	if err != nil && strings.Contains(err.Error(), "timeout") {
		return nil, fmt.Errorf("%s is locked by another process (is keycard serve running? stop it, or export from Slack with /export): %w", path, err)
	}
	return db, err
}

// exportCmd: keycard export [--kind K] [--policy P] [--from D] [--to D]
// [--as-of T] [--campaign ID] [--db PATH] [--out FILE] [--manifest FILE],
// and keycard export verify MANIFEST.
func exportCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "verify" {
		return exportVerifyCmd(args[1:], stdout)
	}
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("kind", "access", "access, events, holders, policies, jobs or campaign")
	events := fs.Bool("events", false, "short for --kind events")
	pol := fs.String("policy", "", "only this policy")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: 90 days ago)")
	to := fs.String("to", "", "last day included, YYYY-MM-DD (default: today)")
	asOf := fs.String("as-of", "", "holders: the moment, RFC 3339 or YYYY-MM-DD (default: now)")
	campaign := fs.String("campaign", "", "campaign: its id")
	dbPath := fs.String("db", envOr("KEYCARD_DB", "keycard.db"), "database file")
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
	env, err := openCLI(*dbPath)
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
	m, err := env.svc.Export(context.Background(), w, handlers.ExportRequest{Kind: *kind, Params: p, By: cliUser(), FileName: name,
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
func exportVerifyCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dbPath := fs.String("db", envOr("KEYCARD_DB", "keycard.db"), "database file")
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
	db, err := openDB(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := handlers.New(adapt.Store(db), nil, nil, access.SystemClock{}, handlers.Options{})
	problems, err := handlers.VerifyManifest(m, f, chainCheck(db), svc.Recorded)
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
	if rec, ok, err := svc.Recorded(m.CSV.SHA256, m.Audit.HeadSeq); err == nil && ok {
		// Restated from the audit log, not from the (editable) manifest.
		fmt.Fprintf(stdout, "contents (audit event %d): %s\n", rec.Seq, handlers.InclusionStatement(rec))
	}
	return nil
}

// chainCheck verifies the chain up to seq and reads event seq's hash.
func chainCheck(db *store.DB) handlers.ChainCheck {
	return func(seq uint64) (string, bool, string, error) {
		var ev access.Event
		var found bool
		err := db.View(func(tx *store.Tx) error {
			e, err := tx.Event(seq)
			if access.CodeOf(err) == access.CodeNotFound {
				return nil
			}
			ev, found = e, err == nil
			return err
		})
		if err != nil {
			return "", false, "", err
		}
		problem := ""
		res, err := db.Verify(1, func(e access.Event) error {
			if e.Seq >= seq {
				return store.ErrStop
			}
			return nil
		})
		if err != nil {
			return "", false, "", err
		}
		if res.Problem != "" && res.BadSeq <= seq {
			problem = res.Problem
		}
		return ev.Hash, found, problem, nil
	}
}

// parseMoment reads an RFC 3339 time or a date (midnight UTC).
func parseMoment(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
	}
	return t, nil
}

// cliUser names the person running a command-line export.
func cliUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// cliEnv is what command-line tools need: the store and, when the policy
// file is readable, the connectors (holders snapshots read the IdP).
type cliEnv struct {
	db  *store.DB
	svc *handlers.Service
}

func (e *cliEnv) Close() { e.db.Close() }

func openCLI(dbPath string) (*cliEnv, error) {
	db, err := openDB(dbPath)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig()
	if err != nil {
		db.Close()
		return nil, err
	}
	clock := access.SystemClock{}
	var set *policy.Set
	var conns handlers.Connectors
	var inst handlers.Instance
	if _, statErr := os.Stat(cfg.Policy); statErr == nil {
		if set, err = policy.Load(cfg.Policy); err != nil {
			db.Close()
			return nil, err
		}
		cs, _, err := buildConnectors(set, cfg, db, clock)
		if err != nil {
			db.Close()
			return nil, err
		}
		conns = cs
		inst = instance(set, cfg)
	}
	svc := handlers.New(adapt.Store(db), conns, set, clock, handlers.Options{Verify: verifier(db), Instance: inst})
	return &cliEnv{db: db, svc: svc}, nil
}

// auditCmd: keycard audit verify [--db PATH].
func auditCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError("audit: expected `audit verify [--db PATH]`")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dbPath := fs.String("db", envOr("KEYCARD_DB", "keycard.db"), "database file")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError("audit verify: %v", err)
	}
	if _, err := os.Stat(*dbPath); err != nil {
		return err
	}
	db, err := openDB(*dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	var total int64 = -1
	if err := db.View(func(tx *store.Tx) error { seq, _, _ := tx.Head(); total = int64(seq); return nil }); err != nil {
		return err
	}
	bar := newProgress(stderr, total, "events", false)
	res, err := db.Verify(1, func(access.Event) error { bar.Add(1); return nil })
	bar.Done()
	if err != nil {
		return err
	}
	if res.Problem != "" {
		fmt.Fprintf(stdout, "audit chain BROKEN at event %d: %s\n", res.BadSeq, res.Problem)
		return exitCode(1)
	}
	fmt.Fprintf(stdout, "audit chain ok: %d events (seq %d..%d), head %s\n", res.Count, res.First, res.Last, res.Head)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// checkAgainstIdP is `keycard policy check --against-idp`: groups inside a
// connector's scope that no policy covers, and policies whose group the IdP
// does not have. It reads the IdP (OKTA_CLIENT_* for okta connectors) and
// changes nothing; a disagreement exits 1.
func checkAgainstIdP(ctx context.Context, set *policy.Set, stdout io.Writer) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	conns, _, err := buildConnectors(set, cfg, nil, access.SystemClock{}) // listing groups never reads static memberships
	if err != nil {
		return err
	}
	sync, err := handlers.New(nil, conns, set, access.SystemClock{}, handlers.Options{}).CheckAgainstIdP(ctx)
	if err != nil {
		return err
	}
	for _, g := range sync.Uncovered {
		fmt.Fprintf(stdout, "uncovered: group %s of connector %s is inside the scope but no policy covers it\n", g.Group, g.Connector)
	}
	for _, g := range sync.Missing {
		fmt.Fprintf(stdout, "missing: policy %s maps to group %s, which connector %s does not have\n", g.Policy, g.Group, g.Connector)
	}
	for _, c := range sync.Unchecked {
		fmt.Fprintf(stdout, "unchecked: connector %s cannot list its groups\n", c)
	}
	if !sync.Empty() {
		return exitCode(1)
	}
	fmt.Fprintln(stdout, "policies and the identity provider agree")
	return nil
}

// policyImportCmd is `keycard policy import --connector NAME [--out FILE]
// [--policy FILE]`: it reads the groups inside the connector's scope from the
// live IdP, with their members, and writes a starting policy (SPEC
// "Identity providers"). Only the connectors of the policy file are read, so
// a file holding just version, directory and connectors is enough.
func policyImportCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy import", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("connector", "", "the connector whose groups to import")
	outPath := fs.String("out", "", "write the policy to this file (refuses to overwrite) instead of stdout")
	path := fs.String("policy", envOr("KEYCARD_POLICY", "policy.yaml"), "the policy file that defines the connector")
	if err := fs.Parse(args); err != nil {
		return usageError("policy import: %v", err)
	}
	if *name == "" || fs.NArg() > 0 {
		return usageError("policy import: expected --connector NAME [--out FILE] [--policy FILE]")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return err
	}
	src, err := policy.ParseConnectors(*path, data)
	if err != nil {
		return err
	}
	c, ok := src.Connectors[*name]
	if !ok {
		return fmt.Errorf("%q is not a connector of %s", *name, *path)
	}
	var groups []policy.ImportGroup
	if c.Type == policy.ConnectorStatic {
		// A static directory's groups are in the file itself.
		for _, g := range c.Groups {
			groups = append(groups, policy.ImportGroup(g))
		}
	} else {
		cfg, err := loadConfig()
		if err != nil {
			return err
		}
		only := &policy.Set{Path: src.Path, Directory: *name, Connectors: map[string]*policy.Connector{*name: c}}
		conns, _, err := buildConnectors(only, cfg, nil, access.SystemClock{})
		if err != nil {
			return err
		}
		if groups, err = importGroups(ctx, conns, *name, c); err != nil {
			return err
		}
	}
	out, err := policy.Import(src, *name, groups)
	if err != nil {
		return err
	}
	if *outPath == "" {
		_, err = stdout.Write(out)
		return err
	}
	f, err := os.OpenFile(*outPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// importGroups lists a live connector's groups inside its scope, with the
// emails of their members.
func importGroups(ctx context.Context, conns *connectorSet, name string, c *policy.Connector) ([]policy.ImportGroup, error) {
	dir, _ := conns.Directory(name)
	gl, ok := dir.(handlers.GroupLister)
	if !ok {
		return nil, fmt.Errorf("connector %s cannot list its groups", name)
	}
	names, err := gl.Groups(ctx)
	if err != nil {
		return nil, fmt.Errorf("connector %s: listing groups: %w", name, err)
	}
	var out []policy.ImportGroup
	for _, g := range names {
		if !c.InScope(g) {
			continue
		}
		members, err := dir.GroupMembers(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("connector %s: members of %s: %w", name, g, err)
		}
		ig := policy.ImportGroup{Name: g}
		for _, u := range members {
			ig.Members = append(ig.Members, u.Email)
		}
		out = append(out, ig)
	}
	return out, nil
}
