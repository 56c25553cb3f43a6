package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keycard/access"
	"keycard/handlers/chart"
	"keycard/internal/fakeclock"
	"keycard/internal/server"
	"keycard/internal/slackemu"
	"keycard/store"
)

//go:embed docs/examples/policy-static.yaml
var demoPolicy []byte

// demoPeople are the static directory's people, as Slack users.
var demoPeople = []slackemu.User{
	{ID: "U0ANN", Name: "ann", RealName: "Ann Lee", Email: "ann@example.com", TZ: "Europe/Berlin"},
	{ID: "U0BOB", Name: "bob", RealName: "Bob Stone", Email: "bob@example.com", TZ: "America/New_York"},
	{ID: "U0CAROL", Name: "carol", RealName: "Carol Diaz", Email: "carol@example.com", TZ: "Europe/London"},
	{ID: "U0DAVE", Name: "dave", RealName: "Dave Kim", Email: "dave@example.com", TZ: "Asia/Seoul"},
	{ID: "U0ERIN", Name: "erin", RealName: "Erin Park", Email: "erin@example.com", TZ: "America/Los_Angeles"},
	{ID: "U0FRANK", Name: "frank", RealName: "Frank Ortiz", Email: "frank@example.com", TZ: "UTC"},
}

// demoCmd runs the real keycard (store, static directory, handlers, bot)
// against the built-in Slack emulator on loopback, plays a script as the
// people in the demo policy, and prints what each of them saw.
func demoCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError("demo takes no arguments")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "keycard-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, demoPolicy, 0o600); err != nil {
		return err
	}
	clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	emu := slackemu.New(slackemu.Options{Clock: clock.Now, PingInterval: 5 * time.Second})
	defer emu.Close()
	for _, u := range demoPeople {
		emu.AddUser(u)
	}
	emu.AddChannel("security-alerts")
	emu.AddChannel("security-reviews")

	cfg := server.Config{SlackBotToken: slackemu.DefaultBotToken, SlackAppToken: slackemu.DefaultAppToken,
		SlackAPIURL: emu.APIURL(), Policy: policyPath, DB: filepath.Join(dir, "keycard.db"),
		LogLevel: "warn", LogFormat: "text", BackupEvery: 24 * time.Hour}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		srv, err := server.New(cfg, server.Deps{Logger: slog.New(slog.DiscardHandler), Clock: clock})
		if err != nil {
			done <- err
			return
		}
		err = srv.Run(runCtx)
		if cerr := srv.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	d := &demo{ctx: ctx, emu: emu, clock: clock, out: stdout, seen: map[string]string{}, dir: dir}
	script := d.script
	if err := emu.WaitConnected(ctx); err != nil {
		stop()
		return fmt.Errorf("demo: the bot did not connect to the Slack emulator: %w (%v)", err, <-done)
	}
	err = script()
	stop()
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// keycard has stopped and released the database: check the audit chain.
	db, err := store.Open(cfg.DB, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Verify(1, nil)
	if err != nil {
		return err
	}
	d.say("keycard audit verify")
	if res.Problem != "" {
		return fmt.Errorf("audit chain broken: %s", res.Problem)
	}
	fmt.Fprintf(stdout, "audit chain ok: %d events, head %s\n", res.Count, res.Head)
	png, err := demoChart(db)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(png)
	d.say("The week's chart, as the admin access report posts it beside its CSV")
	fmt.Fprintf(stdout, "keycard-privileged-access.png: %dx%d px PNG, %d bytes, sha256 %x\n", 960, 960, len(png), sum)
	if demoChartOut != nil {
		demoChartOut(png)
	}
	db.Close()
	d.say("Erin re-checks what she downloaded: keycard export verify " + filepath.Base(d.manifest))
	return exportVerifyCmd(d.ctx, []string{d.manifest, "--db", cfg.DB, "--database-url="}, stdout) // the demo's own bbolt file, whatever KEYCARD_DATABASE_URL says
}

// demo is the script's state: what has already been shown per screen.
type demo struct {
	ctx   context.Context
	emu   *slackemu.Server
	clock *fakeclock.Clock
	out   io.Writer
	seen  map[string]string // screen key -> text last shown
	dir   string            // where Erin saves what she downloaded
	// manifest is the path of the downloaded manifest.json.
	manifest string
}

func (d *demo) script() error {
	ann, bob, carol, dave, erin := "U0ANN", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN"

	d.say("Ann types /access")
	if _, err := d.emu.SlashCommand(d.ctx, ann, "/access", ""); err != nil {
		return err
	}
	modal, err := d.waitView(ann, func(v slackemu.View) bool { return strings.Contains(v.PlainText(), "Role") })
	if err != nil {
		return err
	}
	d.say("Ann picks Production Database — Admin")
	if _, err := d.emu.SelectOption(d.ctx, ann, modal.ID, "keycard_role", "prod-db-admin"); err != nil {
		return err
	}
	modal, err = d.waitView(ann, func(v slackemu.View) bool { return strings.Contains(string(v.Blocks), `"duration:prod-db-admin"`) })
	if err != nil {
		return err
	}
	d.show("Ann", "modal", modal.PlainText())
	d.say("Ann submits: 4h, \"INC-2041: orders table migration is stuck\"")
	ack, err := d.emu.SubmitView(d.ctx, ann, modal.ID, slackemu.Values{
		"role":                   {"keycard_role": {Selected: "prod-db-admin"}},
		"duration:prod-db-admin": {"keycard_duration": {Selected: "4h"}},
		"justification":          {"keycard_justification": {Text: "INC-2041: orders table migration is stuck"}},
	})
	if err != nil {
		return err
	}
	if errs := ack.Errors(); len(errs) > 0 {
		return fmt.Errorf("the modal refused the request: %v", errs)
	}
	if err := d.waitAll(d.hasButton(bob, "keycard_approve"), d.saw(ann, "was submitted")); err != nil {
		return err
	}
	d.screens(ann, bob)

	d.say("Bob (Ann's manager) clicks Approve")
	if err := d.click(bob, "keycard_approve"); err != nil {
		return err
	}
	if err := d.waitAll(d.hasButton(carol, "keycard_approve"), d.hasButton(dave, "keycard_approve"),
		d.noButton(bob, "keycard_approve"), d.saw(ann, "step 1 of 2")); err != nil {
		return err
	}
	d.screens(bob, carol, dave, ann)

	d.say("Carol (security team) clicks Approve")
	if err := d.click(carol, "keycard_approve"); err != nil {
		return err
	}
	if err := d.waitAll(d.saw(ann, "you now have"), d.noButton(carol, "keycard_approve"), d.noButton(dave, "keycard_approve")); err != nil {
		return err
	}
	d.screens(carol, dave, ann)

	d.clock.Advance(3*time.Hour + 45*time.Minute)
	d.say("3 hours 45 minutes later")
	if err := d.waitAll(d.hasButton(ann, "keycard_extend")); err != nil {
		return err
	}
	d.screens(ann)

	d.clock.Advance(15 * time.Minute)
	d.say("15 minutes later: the grant ends")
	if err := d.waitAll(d.saw(ann, "has ended")); err != nil {
		return err
	}
	d.screens(ann)

	d.say("Erin (auditor) types /export")
	if _, err := d.emu.SlashCommand(d.ctx, erin, "/export", "prod-db-admin 2026-11-01 2026-11-30"); err != nil {
		return err
	}
	if err := d.emu.WaitFor(d.ctx, func(s *slackemu.Server) bool {
		n := 0
		for _, f := range s.Files() {
			if f.Completed && f.Channel == s.DMChannel(erin) {
				n++
			}
		}
		return n == 2 // the CSV and its manifest.json
	}); err != nil {
		return errors.New("the export and its manifest did not both reach the auditor's DM")
	}
	d.screens(erin)
	for _, f := range d.emu.Files() {
		fmt.Fprintf(d.out, "\n--- %s (%d bytes) ---\n%s", f.Name, len(f.Content), f.Content)
		if err := os.WriteFile(filepath.Join(d.dir, f.Name), f.Content, 0o600); err != nil {
			return err
		}
		if strings.HasSuffix(f.Name, ".manifest.json") {
			d.manifest = filepath.Join(d.dir, f.Name)
		}
	}
	return nil
}

// say prints a step heading with the simulated time.
func (d *demo) say(what string) {
	fmt.Fprintf(d.out, "\n=== %s  %s\n", d.clock.Now().Format("15:04 MST"), what)
}

// show prints a screen when its text changed since it was last shown.
func (d *demo) show(who, where, text string) {
	key := who + "|" + where
	if d.seen[key] == text {
		return
	}
	prefix := ""
	if _, ok := d.seen[key]; ok && strings.HasPrefix(where, "DM ") {
		prefix = " (updated)"
	}
	d.seen[key] = text
	fmt.Fprintf(d.out, "[%s · %s%s]\n", who, where, prefix)
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(d.out, "    %s\n", line)
	}
}

// screens shows each user's DM messages that are new or changed.
func (d *demo) screens(users ...string) {
	for _, id := range users {
		u, _ := d.emu.User(id)
		for _, m := range d.emu.Messages(id) {
			d.show(u.RealName, "DM "+m.TS, m.PlainText())
		}
		for _, m := range d.emu.Ephemerals(id) {
			d.show(u.RealName, "only visible to you "+m.TS, m.PlainText())
		}
	}
}

func (d *demo) waitView(user string, ok func(slackemu.View) bool) (slackemu.View, error) {
	var found slackemu.View
	err := d.emu.WaitFor(d.ctx, func(s *slackemu.Server) bool {
		vs := s.OpenViews(user)
		if len(vs) == 0 || !ok(vs[len(vs)-1]) {
			return false
		}
		found = vs[len(vs)-1]
		return true
	})
	return found, err
}

// cond is something the script waits for, with words for when it never comes.
type cond struct {
	what string
	ok   func(*slackemu.Server) bool
}

// waitAll waits until every condition holds (the emulator re-checks on each
// change; nothing polls or sleeps).
func (d *demo) waitAll(cs ...cond) error {
	err := d.emu.WaitFor(d.ctx, func(s *slackemu.Server) bool {
		for _, c := range cs {
			if !c.ok(s) {
				return false
			}
		}
		return true
	})
	if err != nil {
		var missing []string
		for _, c := range cs {
			if !c.ok(d.emu) {
				missing = append(missing, c.what)
			}
		}
		return fmt.Errorf("waited in vain for: %s", strings.Join(missing, "; "))
	}
	return nil
}

func buttons(s *slackemu.Server, user, action string) int {
	n := 0
	for _, m := range s.Messages(user) {
		for _, b := range m.Buttons() {
			if b.ActionID == action {
				n++
			}
		}
	}
	return n
}

func (d *demo) hasButton(user, action string) cond {
	return cond{user + " gets a " + action + " button", func(s *slackemu.Server) bool { return buttons(s, user, action) > 0 }}
}

func (d *demo) noButton(user, action string) cond {
	return cond{user + "'s " + action + " buttons go away", func(s *slackemu.Server) bool { return buttons(s, user, action) == 0 }}
}

func (d *demo) saw(user, words string) cond {
	return cond{user + " sees \"" + words + "\"", func(s *slackemu.Server) bool {
		for _, m := range s.Messages(user) {
			if strings.Contains(strings.ToLower(m.PlainText()), strings.ToLower(words)) {
				return true
			}
		}
		return false
	}}
}

// click presses the newest button with this action in the user's DM.
func (d *demo) click(user, action string) error {
	ms := d.emu.Messages(user)
	for i := len(ms) - 1; i >= 0; i-- {
		for _, b := range ms[i].Buttons() {
			if b.ActionID == action {
				_, err := d.emu.ClickButton(d.ctx, user, d.emu.DMChannel(user), ms[i].TS, action)
				return err
			}
		}
	}
	var buf bytes.Buffer
	for _, m := range ms {
		buf.WriteString(m.PlainText())
	}
	return fmt.Errorf("%s has no %s button in: %s", user, action, buf.String())
}

// demoChartOut, when set (by the demo's test), receives the chart the demo
// draws, so its golden rendering stays checked in and viewable.
var demoChartOut func(png []byte)

// demoChart draws the admin report's chart over the demo's week: Ann's
// privileged hours and the time her request waited for its approvals.
func demoChart(db *store.DB) ([]byte, error) {
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	to := from.Add(7 * 24 * time.Hour)
	var reqs []access.Request
	err := db.View(func(tx *store.Tx) error {
		return tx.ForEachRequest(to, func(r *access.Request) error {
			if r.Privileged {
				reqs = append(reqs, *r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	d := chart.FromRequests(reqs, from, to)
	d.Title = "Privileged access, 2026-11-02 to 2026-11-09"
	return chart.Report(d)
}
