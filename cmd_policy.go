package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/server"
	"keycard/policy"
)

// policyCmd: keycard policy check [FILE].
func policyCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "apply" {
		return policyApplyCmd(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "import" {
		return policyImportCmd(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "who-can" {
		return policyWhoCanCmd(ctx, args[1:], stdout)
	}
	if len(args) == 0 || args[0] != "check" {
		return usageError("policy: expected `policy check [FILE]`, `policy who-can [--policy P] [--user EMAIL] [--policy-file NEW]`, `policy import --connector NAME [--out FILE]` or `policy apply --by EMAIL [--emergency --reason TEXT]`")
	}
	fs := newFlagSet("policy check")
	againstIdP := fs.Bool("against-idp", false, "compare the policies with the groups the identity provider has")
	rest, err := parseAnywhere(fs, args[1:])
	if err != nil {
		return usageError("policy check: %v", err)
	}
	path := envOr("KEYCARD_POLICY", "policy.yaml")
	if len(rest) > 0 {
		path = rest[len(rest)-1]
	}
	set, err := policy.Load(path)
	if err != nil {
		return err
	}
	if *againstIdP {
		return checkAgainstIdP(ctx, set, stdout)
	}
	fmt.Fprint(stdout, policy.Summary(set))
	return nil
}

// policyApplyCmd: keycard policy apply --by EMAIL [--emergency --reason TEXT],
// sent to the running keycard over KEYCARD_HTTP_ADDR.
func policyApplyCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("policy apply")
	by := fs.String("by", "", "who is making the change (EMAIL)")
	reason := fs.String("reason", "", "why (required with --emergency)")
	emergency := fs.Bool("emergency", false, "apply at once, alerting, even when change_approval is in force")
	if err := fs.Parse(args); err != nil {
		return usageError("policy apply: unexpected %q", unexpectedArg(fs, args, err))
	}
	if fs.NArg() > 0 {
		return usageError("policy apply: unexpected %q", fs.Arg(0))
	}
	form := url.Values{}
	if *by != "" {
		form.Set("by", *by)
	}
	if *reason != "" {
		form.Set("reason", *reason)
	}
	if *emergency {
		form.Set("emergency", "1")
	}
	if form.Get("by") == "" {
		return usageError("policy apply: --by EMAIL is required (who is making the change)")
	}
	addr := envOr("KEYCARD_HTTP_ADDR", "127.0.0.1:8080")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/policy/apply", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+server.ReadOpsToken(envOr("KEYCARD_DB", "keycard.db")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the running keycard did not answer on %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("policy not applied: %s", strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}

// checkAgainstIdP is `keycard policy check --against-idp`: groups inside a
// connector's scope that no policy covers, and policies whose group the IdP
// does not have. It reads the IdP (OKTA_CLIENT_* for okta connectors) and
// changes nothing; a disagreement exits 1.
func checkAgainstIdP(ctx context.Context, set *policy.Set, stdout io.Writer) error {
	cfg, err := server.LoadConfig()
	if err != nil {
		return err
	}
	conns, err := server.BuildConnectors(set, cfg, nil, access.SystemClock{}) // listing groups never reads static memberships
	if err != nil {
		return err
	}
	sync, err := handlers.CheckAgainstIdP(ctx, set, conns)
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
	fs := newFlagSet("policy import")
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
		cfg, err := server.LoadConfig()
		if err != nil {
			return err
		}
		only := &policy.Set{Path: src.Path, Directory: *name, Connectors: map[string]*policy.Connector{*name: c}}
		conns, err := server.BuildConnectors(only, cfg, nil, access.SystemClock{})
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
func importGroups(ctx context.Context, conns *server.ConnectorSet, name string, c *policy.Connector) ([]policy.ImportGroup, error) {
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

// policyWhoCanCmd is `keycard policy who-can [--policy P] [--user EMAIL]
// [--policy-file NEW]`: for every person the directory knows and every
// policy, whether they may request it and who would approve each step today,
// as CSV; with --policy-file, only the rows a proposed policy would change.
// For the same CSV with a manifest, use `keycard export --kind who-can` or
// `/export who-can`.
func policyWhoCanCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("policy who-can")
	pol := fs.String("policy", "", "only this policy")
	user := fs.String("user", "", "only this person (EMAIL)")
	proposed := fs.String("policy-file", "", "a proposed policy file: print what it would change")
	path := fs.String("file", envOr("KEYCARD_POLICY", "policy.yaml"), "the running policy file")
	sf := addStoreFlags(fs, "database (a static directory's keycard-granted members)")
	if err := fs.Parse(args); err != nil {
		return usageError("policy who-can: unexpected %q", unexpectedArg(fs, args, err))
	}
	if fs.NArg() > 0 {
		return usageError("policy who-can: unexpected %q", fs.Arg(0))
	}
	set, err := policy.Load(*path)
	if err != nil {
		return err
	}
	cfg, err := server.LoadConfig()
	if err != nil {
		return err
	}
	// A static directory reads keycard's own grants from the store: the
	// database (bbolt or PostgreSQL) when there is one, else an empty
	// scratch store.
	pg, err := sf.postgres()
	if err != nil {
		return err
	}
	var db *cliStore
	if _, statErr := os.Stat(*sf.db); statErr != nil && !pg {
		dir, err := os.MkdirTemp("", "keycard-who-can-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		scratch, err := openDB(filepath.Join(dir, "scratch.db"))
		if err != nil {
			return err
		}
		db = &cliStore{bolt: scratch}
	} else if db, err = sf.open(ctx); err != nil {
		return err
	}
	defer db.Close()
	conns, err := server.BuildConnectors(set, cfg, db.Static(), access.SystemClock{})
	if err != nil {
		return err
	}
	dir, ok := conns.Directory(set.Directory)
	if !ok {
		return fmt.Errorf("the directory connector %q is not built", set.Directory)
	}
	opt := handlers.WhoCanOptions{Policy: *pol, User: *user}
	if *proposed != "" {
		next, err := policy.Load(*proposed)
		if err != nil {
			return err
		}
		changes, err := handlers.WhoCanDiff(ctx, set, next, dir, opt)
		if err != nil {
			return err
		}
		return handlers.WriteWhoCanDiffCSV(stdout, changes)
	}
	rows, err := handlers.WhoCan(ctx, set, dir, opt)
	if err != nil {
		return err
	}
	return handlers.WriteWhoCanCSV(stdout, rows)
}
