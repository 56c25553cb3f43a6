package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/oktafake"
	"keycard/internal/slackemu"
	"keycard/store"
)

// The SIGKILL chaos test: the real keycard binary runs as a child process
// against the Slack and Okta emulators of this process, people drive
// requests through Slack, and the process is killed (SIGKILL: no deferred
// close, no flush) at random points of the lifecycle and restarted. At the
// end every grant is left to expire, keycard is stopped cleanly, and the
// invariants are checked against the Okta emulator and the database.
// docs/chaos.md describes it; KEYCARD_CHAOS_N and KEYCARD_CHAOS_SEED size a
// larger run.

// keycardBin is the binary TestMain builds once; buildErr says why not.
var (
	keycardBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keycard-chaos-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keycardBin = filepath.Join(dir, "keycard")
	if wantsChaos() {
		cmd := exec.Command("go", "build", "-o", keycardBin, ".")
		cmd.Dir = filepath.Join("..", "..") // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build keycard: %v\n%s", err, out)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// wantsChaos reports whether -test.run can select TestChaos or
// TestReplicaChaos, so running only the fault tests does not pay for a build.
func wantsChaos() bool {
	for i, a := range os.Args {
		v, ok := strings.CutPrefix(a, "-test.run=")
		if !ok && a == "-test.run" && i+1 < len(os.Args) {
			v, ok = os.Args[i+1], true
		}
		if ok {
			re, err := regexp.Compile(strings.Split(v, "/")[0])
			return err != nil || re.MatchString("TestChaos") || re.MatchString("TestReplicaChaos")
		}
	}
	return true
}

// chaosParams are the run's size: CI defaults (defKills), or the environment.
func chaosParams(t *testing.T, defKills int) (kills int, seed uint64) {
	kills, seed = defKills, 1
	if v := os.Getenv("KEYCARD_CHAOS_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KEYCARD_CHAOS_N=%q is not a positive number", v)
		}
		kills = n
	}
	if v := os.Getenv("KEYCARD_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KEYCARD_CHAOS_SEED=%q is not a number", v)
		}
		seed = s
	}
	return kills, seed
}

// proc is the keycard child process and the world it runs in.
type proc struct {
	t      *testing.T
	emu    *slackemu.Server
	fake   *oktafake.Server
	dir    string
	db     string
	logf   *os.File
	env    []string
	cmd    *exec.Cmd
	exited chan error
	starts int
}

func (p *proc) start(ctx context.Context) {
	p.t.Helper()
	before := p.emu.Connects()
	fmt.Fprintf(p.logf, "\n===== start %d =====\n", p.starts+1)
	cmd := exec.Command(keycardBin, "serve")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.logf, p.logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.starts = cmd, p.starts+1
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p.exited = exited
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	connected := make(chan error, 1)
	go func() {
		connected <- p.emu.WaitFor(wctx, func(s *slackemu.Server) bool { return s.Connects() > before && s.Connected() > 0 })
	}()
	select {
	case err := <-connected:
		if err != nil {
			p.fail("keycard did not connect to Slack: %v", err)
		}
	case err := <-exited:
		p.exited <- err
		p.fail("keycard exited at start: %v", err)
	}
}

// kill sends SIGKILL and waits until the process is gone and Slack has
// seen its socket close (so no envelope goes to a dead socket).
func (p *proc) kill(ctx context.Context) {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.emu.WaitFor(wctx, func(s *slackemu.Server) bool { return s.Connected() == 0 }); err != nil {
		p.fail("the killed keycard's socket stayed open: %v", err)
	}
}

// stop ends keycard as an operator would (SIGTERM) and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			p.fail("keycard did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.fail("keycard did not stop within 20s of SIGTERM")
	}
	p.cmd = nil
}

// fail ends the test with the tail of keycard's log.
func (p *proc) fail(format string, args ...any) {
	p.t.Helper()
	b, _ := os.ReadFile(p.logf.Name())
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	p.t.Fatalf(format+"\n--- keycard log (tail) ---\n%s", append(args, b)...)
}

var reqID = regexp.MustCompile(`REQ-[0-9]+`)

// driver plays the people: requesters submit through the /access modal,
// approvers click in their DMs, holders give up grants on the App Home.
type driver struct {
	t     *testing.T
	emu   *slackemu.Server
	rng   *rand.Rand
	acked map[string]string // request id -> what was asked, for every submission Slack acknowledged with an id
	tried int               // submissions attempted
	stats map[string]int
	// decided are the decisions Slack acknowledged: approve clicks and deny
	// reason submissions.
	decided []decisionAck
}

// decisionAck is one approve click or deny submission that keycard
// acknowledged.
type decisionAck struct {
	user     string // the approver's Slack id
	value    string // the button's value: request id "|" step
	approve  bool
	envelope string // the acknowledged envelope (slackemu.Delivery)
	at       time.Time
}

var (
	requesters = []string{"U0ANN", "U0ERIN", "U0GUS", "U0CAROL"}
	approvers  = []string{"U0BOB", "U0CAROL", "U0DAVE"}
	policies   = []string{"grafana-viewer", "deploy", "db-admin"}
)

func (d *driver) step(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 8*time.Second)
}

// submit runs /access, picks pol and submits. It returns the request id
// when Slack got an ack carrying the confirmation (the submission is then
// committed: the bot acks it only after the store's commit).
func (d *driver) submit(ctx context.Context, user, pol string) (string, error) {
	d.tried++
	ctx, cancel := d.step(ctx)
	defer cancel()
	seen := map[string]bool{}
	for _, v := range d.emu.OpenViews(user) {
		seen[v.ID] = true
	}
	if _, err := d.emu.SlashCommand(ctx, user, "/access", ""); err != nil {
		return "", fmt.Errorf("/access: %w", err)
	}
	var v slackemu.View
	if err := d.emu.WaitFor(ctx, func(s *slackemu.Server) bool {
		vs := s.OpenViews(user)
		if len(vs) == 0 || seen[vs[len(vs)-1].ID] {
			return false
		}
		v = vs[len(vs)-1]
		return v.CallbackID == "keycard_request"
	}); err != nil {
		return "", fmt.Errorf("request modal: %w", err)
	}
	if !strings.Contains(string(v.Blocks), `"duration:`+pol+`"`) {
		if _, err := d.emu.SelectOption(ctx, user, v.ID, "keycard_role", pol); err != nil {
			return "", fmt.Errorf("pick %s: %w", pol, err)
		}
		if err := d.emu.WaitFor(ctx, func(s *slackemu.Server) bool {
			got, ok := s.View(v.ID)
			if ok && strings.Contains(string(got.Blocks), `"duration:`+pol+`"`) {
				v = got
				return true
			}
			return false
		}); err != nil {
			return "", fmt.Errorf("modal for %s: %w", pol, err)
		}
	}
	dur := "3s"
	if d.rng.IntN(4) == 0 {
		dur = "10s"
	}
	vals := slackemu.Values{
		"role":            {"keycard_role": {Selected: pol}},
		"justification":   {"keycard_justification": {Text: "chaos run"}},
		"duration:" + pol: {"keycard_duration": {Selected: dur}},
	}
	ack, err := d.emu.SubmitView(ctx, user, v.ID, vals)
	if err != nil {
		return "", fmt.Errorf("submit: %w", err)
	}
	if errs := ack.Errors(); len(errs) > 0 {
		d.stats["refused"]++
		return "", nil // refused inline (duplicate, standing access, ...): nothing was stored
	}
	id := reqID.FindString(string(ack.View()))
	if id == "" {
		d.stats["acked without id"]++ // the "one moment" view: the outcome follows by views.update
		return "", nil
	}
	d.acked[id] = user + " " + pol + " " + dur
	d.stats["acked"]++
	return id, nil
}

// approve clicks Approve (or, sometimes, Deny with a reason) on a random
// approval DM that still has buttons.
func (d *driver) approve(ctx context.Context) (bool, error) {
	ctx, cancel := d.step(ctx)
	defer cancel()
	type cand struct {
		user string
		m    slackemu.Message
	}
	var cands []cand
	for _, u := range approvers {
		for _, m := range d.emu.Messages(d.emu.DMChannel(u)) {
			for _, b := range m.Buttons() {
				if b.ActionID == "keycard_approve" {
					cands = append(cands, cand{u, m})
				}
			}
		}
	}
	if len(cands) == 0 {
		return false, nil
	}
	c := cands[d.rng.IntN(len(cands))]
	var value string
	for _, b := range c.m.Buttons() {
		if b.ActionID == "keycard_approve" {
			value = b.Value
		}
	}
	if d.rng.IntN(8) > 0 {
		ack, err := d.emu.ClickButton(ctx, c.user, c.m.Channel, c.m.TS, "keycard_approve")
		if err == nil {
			d.stats["approve clicks"]++
			d.decided = append(d.decided, decisionAck{user: c.user, value: value, approve: true, envelope: ack.EnvelopeID, at: time.Now()})
		}
		return true, err
	}
	seen := map[string]bool{}
	for _, v := range d.emu.OpenViews(c.user) {
		seen[v.ID] = true
	}
	told := len(d.emu.Ephemerals(c.user))
	if _, err := d.emu.ClickButton(ctx, c.user, c.m.Channel, c.m.TS, "keycard_deny"); err != nil {
		return true, err
	}
	var v slackemu.View
	if err := d.emu.WaitFor(ctx, func(s *slackemu.Server) bool {
		if len(s.Ephemerals(c.user)) > told {
			return true // a stale button: keycard said why instead
		}
		vs := s.OpenViews(c.user)
		if len(vs) == 0 || seen[vs[len(vs)-1].ID] {
			return false
		}
		v = vs[len(vs)-1]
		return v.CallbackID == "keycard_deny"
	}); err != nil {
		return true, fmt.Errorf("deny modal: %w", err)
	}
	if v.ID == "" {
		d.stats["stale deny clicks"]++
		return true, nil
	}
	ack, err := d.emu.SubmitView(ctx, c.user, v.ID, slackemu.Values{"reason": {"keycard_deny_reason": {Text: "not now"}}})
	if err == nil && len(ack.Errors()) == 0 {
		d.stats["deny submits"]++
		d.decided = append(d.decided, decisionAck{user: c.user, value: value, envelope: ack.EnvelopeID, at: time.Now()})
	}
	return true, err
}

// giveUp has a random requester give up a grant from their App Home.
func (d *driver) giveUp(ctx context.Context) (bool, error) {
	ctx, cancel := d.step(ctx)
	defer cancel()
	user := requesters[d.rng.IntN(len(requesters))]
	h := d.emu.Home(user)
	if h == nil {
		return false, nil
	}
	for _, b := range h.Buttons() {
		if b.ActionID == "keycard_give_up" {
			_, err := d.emu.ClickViewButton(ctx, user, h.ID, "keycard_give_up")
			if err == nil {
				d.stats["give-up clicks"]++
			}
			return true, err
		}
	}
	return false, nil
}

// act does one random thing a person would; errors are people's bad luck
// (keycard busy or a stale button), not test failures.
func (d *driver) act(ctx context.Context) {
	switch n := d.rng.IntN(10); {
	case n < 4:
		_, err := d.submit(ctx, requesters[d.rng.IntN(len(requesters))], policies[d.rng.IntN(len(policies))])
		d.note("submit", err)
	case n < 9:
		_, err := d.approve(ctx)
		d.note("click", err)
	default:
		_, err := d.giveUp(ctx)
		d.note("give up", err)
	}
}

func (d *driver) note(what string, err error) {
	if err != nil {
		d.stats[what+" failed"]++
		d.t.Logf("%s: %v", what, err)
	}
}

// killPoint is where in the lifecycle a kill lands.
type killPoint struct {
	name string
	// arm does the action the kill follows and returns how long to wait
	// before the SIGKILL.
	arm func(ctx context.Context, d *driver, w *world) time.Duration
}

type world struct {
	org *org
}

var killPoints = []killPoint{
	{"right after a submission's ack", func(ctx context.Context, d *driver, w *world) time.Duration {
		_, err := d.submit(ctx, requesters[d.rng.IntN(len(requesters))], policies[d.rng.IntN(len(policies))])
		d.note("submit", err)
		return 0
	}},
	{"right after an approval click's ack", func(ctx context.Context, d *driver, w *world) time.Duration {
		_, err := d.approve(ctx)
		d.note("click", err)
		return 0
	}},
	{"while provisioning (Okta add in flight)", func(ctx context.Context, d *driver, w *world) time.Duration {
		w.org.fake.Latency("PUT /api/v1/groups/*/users/*", 2*time.Second)
		_, err := d.submit(ctx, requesters[d.rng.IntN(len(requesters))], "grafana-viewer")
		d.note("submit", err)
		if d.rng.IntN(2) == 0 {
			_, err := d.approve(ctx)
			d.note("click", err)
		}
		return time.Duration(d.rng.IntN(1500)) * time.Millisecond
	}},
	{"around expiry (Okta removal in flight)", func(ctx context.Context, d *driver, w *world) time.Duration {
		w.org.fake.Latency("DELETE /api/v1/groups/*/users/*", time.Second)
		_, err := d.submit(ctx, requesters[d.rng.IntN(len(requesters))], "grafana-viewer")
		d.note("submit", err)
		return 2500*time.Millisecond + time.Duration(d.rng.IntN(2000))*time.Millisecond
	}},
	{"while Okta fails (5xx)", func(ctx context.Context, d *driver, w *world) time.Duration {
		w.org.fake.FailNext("/api/v1/groups/*/users/*", 1+d.rng.IntN(3), 503)
		d.act(ctx)
		d.act(ctx)
		return time.Duration(d.rng.IntN(2000)) * time.Millisecond
	}},
	{"at a random moment", func(ctx context.Context, d *driver, w *world) time.Duration {
		d.act(ctx)
		return time.Duration(d.rng.IntN(3000)) * time.Millisecond
	}},
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the keycard binary")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	kills, seed := chaosParams(t, 5)
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73))
	budget := 75*time.Second + time.Duration(kills)*20*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	t.Logf("chaos: %d kills, seed %d", kills, seed)

	st := newStage(t)
	emu, fake, o, dir, pol := st.emu, st.fake, st.org, st.dir, st.policy
	logf, err := os.Create(filepath.Join(dir, "keycard.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p := &proc{t: t, emu: emu, fake: fake, dir: dir, db: filepath.Join(dir, "keycard.db"), logf: logf, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir,
		"SLACK_BOT_TOKEN=" + slackemu.DefaultBotToken, "SLACK_APP_TOKEN=" + slackemu.DefaultAppToken, "SLACK_API_URL=" + emu.APIURL(),
		"OKTA_CLIENT_ORGURL=" + fake.URL, "OKTA_CLIENT_TOKEN=" + fake.Token(),
		"KEYCARD_DB=" + filepath.Join(dir, "keycard.db"), "KEYCARD_POLICY=" + pol, "KEYCARD_HTTP_ADDR=", "KEYCARD_LOG_LEVEL=debug",
	}}
	defer func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}()
	d := &driver{t: t, emu: emu, rng: rng, acked: map[string]string{}, stats: map[string]int{}}
	w := &world{org: o}

	p.start(ctx)
	for k := 0; k < kills; k++ {
		for range 1 + d.rng.IntN(5) {
			d.act(ctx)
		}
		kp := killPoints[d.rng.IntN(len(killPoints))]
		wait := kp.arm(ctx, d, w)
		if wait > 0 {
			select {
			case <-time.After(wait): // a random kill time, not a wait for a condition
			case <-ctx.Done():
				p.fail("out of time")
			}
		}
		t.Logf("kill %d/%d: %s (+%s)", k+1, kills, kp.name, wait)
		d.stats["kill: "+kp.name]++
		p.kill(ctx)
		fake.Latency("PUT /api/v1/groups/*/users/*", 0)
		fake.Latency("DELETE /api/v1/groups/*/users/*", 0)
		p.start(ctx)
	}
	fake.ResetFaults()

	// Let everything that holds a membership end: stop, read the store,
	// and if grants or IdP operations remain, run keycard until each
	// such request's holder is told it ended (or failed), then look again.
	var open []access.Request
	for round := 0; ; round++ {
		p.stop()
		db := openDB(t, p.db)
		open = holding(t, db.View)
		db.Close()
		if len(open) == 0 {
			break
		}
		if round == 5 {
			p.fail("after %d rounds these still hold a membership or an IdP operation: %v", round, ids(open))
		}
		p.start(ctx)
		for _, r := range open {
			if err := emu.WaitFor(ctx, func(s *slackemu.Server) bool { return endNoticed(s, r) }); err != nil {
				p.fail("waiting for %s (%s) to end: %v", r.ID, r.State, err)
			}
		}
	}
	checkInvariants(t, p.db, o, d.acked)
	keys := make([]string, 0, len(d.stats))
	for k := range d.stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "\n  %s: %d", k, d.stats[k])
	}
	t.Logf("chaos: %d kills, %d starts, %d submissions tried, %d acknowledged:%s", kills, p.starts, d.tried, len(d.acked), sb.String())
}

// slackIDOf maps an email to the Slack id of the test's people.
func slackIDOf(email string) string {
	for _, p := range people {
		if strings.EqualFold(p.login, email) {
			return p.slackID
		}
	}
	return ""
}

// endNoticed reports whether r's holder was told it ended or failed.
func endNoticed(s *slackemu.Server, r access.Request) bool {
	for _, m := range s.Messages(s.DMChannel(slackIDOf(r.Requester.Email))) {
		txt := m.PlainText()
		if strings.Contains(txt, r.ID) && (strings.Contains(txt, "has ended") || strings.Contains(txt, "could not be set up")) {
			return true
		}
	}
	return false
}

func ids(rs []access.Request) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID+" "+string(r.State))
	}
	return out
}

func openDB(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the database after keycard stopped: %v", err)
	}
	return db
}

// holding lists requests that hold (or may hold) a membership, or have an
// IdP operation queued, in either store (view is its View).
func holding[Tx interface {
	Ops(func(access.Op) error) error
	ForEachRequest(time.Time, func(*access.Request) error) error
}](t *testing.T, view func(func(Tx) error) error) []access.Request {
	t.Helper()
	var out []access.Request
	withOps := map[string]bool{}
	err := view(func(tx Tx) error {
		if err := tx.Ops(func(op access.Op) error { withOps[op.RequestID] = true; return nil }); err != nil {
			return err
		}
		return tx.ForEachRequest(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), func(r *access.Request) error {
			if r.State.HoldsMembership() || withOps[r.ID] {
				out = append(out, *r)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkInvariants is the point of the test, checked with keycard stopped:
//  1. every ended grant (expired, revoked) and every failed one has no
//     membership in Okta;
//  2. every membership of a keycard-managed group in Okta belongs to a grant
//     that holds it, or is a standing member the test created;
//  3. every submission Slack acknowledged with a request id is in the store;
//  4. the audit chain verifies;
//  5. every request ended in a state the lifecycle allows, each transition
//     audited (a grant.expired or grant.revoked event per ended grant);
//  6. no grant's membership outlives access_end + removalWindow (Okta's
//     System Log says when each membership was removed).
func checkInvariants(t *testing.T, dbPath string, o *org, acked map[string]string) {
	t.Helper()
	db := openDB(t, dbPath)
	defer db.Close()
	all, ended := readAll(t, db.View)
	checkOutcomes(t, o, all, ended, acked)
	checkMembershipEnds(t, o, all, func(time.Time, time.Time) time.Duration { return removalWindow })
	res, err := db.Verify(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Errorf("invariant 4: audit chain: %v", res.Err())
	}
}

// readAll reads every request, and how many end events (grant.expired,
// grant.revoked) each has, through either store's read transaction.
func readAll[Tx interface {
	ForEachRequest(time.Time, func(*access.Request) error) error
	Events(uint64, func(access.Event) error) error
}](t *testing.T, view func(func(Tx) error) error) (all map[string]access.Request, ended map[string]int) {
	t.Helper()
	all, ended = map[string]access.Request{}, map[string]int{}
	err := view(func(tx Tx) error {
		if err := tx.ForEachRequest(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), func(r *access.Request) error {
			all[r.ID] = *r
			return nil
		}); err != nil {
			return err
		}
		return tx.Events(0, func(e access.Event) error {
			if e.Type == access.EvGrantExpired || e.Type == access.EvGrantRevoked {
				ended[e.RequestID]++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return all, ended
}

// checkOutcomes is invariants 1, 2, 3 and 5 on the store's requests (all)
// and end events (ended) after the run.
func checkOutcomes(t *testing.T, o *org, all map[string]access.Request, ended map[string]int, acked map[string]string) {
	t.Helper()
	byState := map[access.State]int{}
	holds := map[string]bool{} // group + "/" + okta id of grants that hold a membership
	for _, r := range all {
		byState[r.State]++
		if r.State.HoldsMembership() {
			holds[r.Group+"/"+r.Requester.IdPID] = true
		}
	}
	t.Logf("requests by state: %v", byState)
	for _, r := range all {
		switch r.State {
		case access.StateExpired, access.StateRevoked, access.StateFailed:
			if o.isMember(r.Group, r.Requester.Email) && !o.standing[r.Group][r.Requester.IdPID] && !holds[r.Group+"/"+r.Requester.IdPID] {
				t.Errorf("invariant 1: %s is %s but Okta still has %s in %s", r.ID, r.State, r.Requester.Email, r.Group)
			}
			if r.State != access.StateFailed && ended[r.ID] != 1 {
				t.Errorf("invariant 5: %s is %s with %d end events, want 1", r.ID, r.State, ended[r.ID])
			}
		case access.StatePending, access.StateDenied, access.StateCancelled, access.StateTimedOut:
		default:
			t.Errorf("request %s ended the run %s: everything holding a membership should have expired", r.ID, r.State)
		}
	}
	for _, g := range managedGroups {
		for _, id := range o.fake.Members(o.groups[g]) {
			if !o.standing[g][id] && !holds[g+"/"+id] {
				t.Errorf("invariant 2: Okta has %s in %s, but no keycard grant holds it and it is not a standing member", id, g)
			}
		}
		for id := range o.standing[g] {
			found := false
			for _, m := range o.fake.Members(o.groups[g]) {
				found = found || m == id
			}
			if !found {
				t.Errorf("keycard removed the standing member %s from %s", id, g)
			}
		}
	}
	for id, what := range acked {
		if _, ok := all[id]; !ok {
			t.Errorf("invariant 3: Slack acknowledged %s (%s) but the store has no such request", id, what)
		}
	}
	if byState[access.StateExpired]+byState[access.StateRevoked] == 0 {
		t.Errorf("no grant ended during the run: the chaos exercised nothing")
	}
}

// removalWindow is how long after a grant's access_end its membership may
// still be in Okta: the removal's retry backoff through the injected 503s
// (at most three in a row: 3 + 6 + 12 s with jitter) plus the kills and
// restarts that may land meanwhile. Issue 10: a crash after the add made the
// grant run from the restart, so the membership outlived access_end by the
// whole time keycard was down.
const removalWindow = 45 * time.Second

// checkMembershipEnds is invariant 6: every removal of a keycard-managed,
// non-standing membership in Okta's System Log, at `at`, comes at most
// window(end, at) after end, the latest access_end of the holder's grants on
// that group that existed by then (a failed grant, or one revoked before it
// was active, ends when keycard gave it up).
func checkMembershipEnds(t *testing.T, o *org, all map[string]access.Request, window func(end, at time.Time) time.Duration) {
	t.Helper()
	managed := map[string]bool{}
	for _, g := range managedGroups {
		managed[g] = true
	}
	checked := 0
	var worst time.Duration // the latest removal after its access_end
	defer func() {
		t.Logf("invariant 6: %d membership removals checked against access_end; the latest came %s after it", checked, worst.Round(time.Millisecond))
	}()
	for _, ev := range o.fake.Log() {
		if ev.EventType != "group.user_membership.remove" {
			continue
		}
		var uid, group string
		for _, tg := range ev.Target {
			switch tg.Type {
			case "User":
				uid = tg.ID
			case "UserGroup":
				group = tg.DisplayName
			}
		}
		if !managed[group] || o.standing[group][uid] {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ev.Published)
		if err != nil {
			t.Fatalf("System Log time %q: %v", ev.Published, err)
		}
		checked++
		var last time.Time
		var lastID string
		for _, r := range all {
			if r.Group != group || r.Requester.IdPID != uid || r.CreatedAt.After(at) {
				continue
			}
			end := r.EndsAt // access_end: the scheduled end, or the earlier moment it was ended
			if !r.EndedAt.IsZero() && (end.IsZero() || r.EndedAt.Before(end)) {
				end = r.EndedAt
			}
			if end.After(last) {
				last, lastID = end, r.ID
			}
		}
		if last.IsZero() {
			t.Errorf("invariant 6: Okta removed %s from %s at %s, but no keycard grant had asked for it", uid, group, ev.Published)
			continue
		}
		over, w := at.Sub(last), window(last, at)
		worst = max(worst, over)
		if over > w {
			t.Errorf("invariant 6: %s's membership of %s outlived %s's access_end (%s) by %s (window %s)",
				uid, group, lastID, last.UTC().Format(time.RFC3339Nano), over.Round(time.Millisecond), w)
		}
	}
}
