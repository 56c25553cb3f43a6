package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/fakeclock"
	"keycard/internal/idptest"
	"keycard/internal/slackemu"
	"keycard/internal/storetest"
	"keycard/policy"
	"keycard/store"
	"keycard/store/migrate"
	pgstore "keycard/store/postgres"
)

const replicaPolicy = `version: 1
directory: okta
connectors:
  okta:
    type: okta
    scope:
      groups: ["app-*"]
profiles:
  everyone: {}
policies:
  - name: db-read
    app: Database
    role: Reader
    group: app-db-readers
    eligible: [everyone]
    approval:
      - manager
    duration: {default: 2m, max: 1h}
    justification: optional
admins: {group: keycard-admins}
`

// Slack users of the replica tests.
const (
	rAnn   = "U0ANN"
	rBob   = "U0BOB"
	rCarol = "U0CAROL"
)

// replica is one running keycard serve.
type replica struct {
	name   string
	srv    *Server
	cancel context.CancelFunc
	done   chan error
}

func (r *replica) svc() *handlers.Service { return r.srv.Service() }

// stop cancels the replica's Run and waits for it (a clean stop: the
// lease is released).
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("%s: Run: %v", r.name, err)
	}
	r.srv.Close()
}

// readyz is the replica's /readyz answer.
func (r *replica) readyz() (int, string) {
	o := &opsServer{svc: r.svc(), ping: r.srv.ping, replicated: r.srv.pg != nil}
	rec := httptest.NewRecorder()
	o.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// get is the body of a GET on the replica's ops listener.
func (r *replica) get(path string) string {
	o := &opsServer{svc: r.svc(), ping: r.srv.ping, replicated: r.srv.pg != nil}
	rec := httptest.NewRecorder()
	o.handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Body.String()
}

// post is a POST with the replica's ops token.
func (r *replica) post(path string) (int, string) {
	o := &opsServer{svc: r.svc(), ping: r.srv.ping, replicated: r.srv.pg != nil, token: r.srv.token}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", path, nil)
	req.Header.Set("Authorization", "Bearer "+r.srv.token)
	o.handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// replicaWorld is a PostgreSQL database, the Slack and Okta emulators and
// one fake clock that every replica's timers wait on.
type replicaWorld struct {
	t      *testing.T
	ctx    context.Context
	url    string
	clock  *fakeclock.Clock
	emu    *slackemu.Server
	okta   *idptest.World
	policy string
	dir    string
}

func newReplicaWorld(t *testing.T) *replicaWorld {
	admin := storetest.PostgresURL(t)
	clearEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	w := &replicaWorld{t: t, ctx: ctx, url: storetest.FreshDatabase(t, admin), dir: t.TempDir(),
		clock: fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))}
	w.okta = idptest.Okta(w.clock.Now, []idptest.Person{
		{Email: "ann@example.com", Name: "Ann Lee", Manager: "bob@example.com", Department: "Engineering"},
		{Email: "bob@example.com", Name: "Bob Stone", Department: "Engineering"},
		{Email: "carol@example.com", Name: "Carol Diaz", Manager: "bob@example.com", Department: "Security"},
	}, []idptest.Group{{Name: "app-db-readers"}, {Name: "app-wiki-editors"}, {Name: "keycard-admins", Members: []string{"bob@example.com"}}})
	t.Cleanup(w.okta.Close)
	w.emu = slackemu.New(slackemu.Options{Logf: t.Logf})
	t.Cleanup(w.emu.Close)
	w.emu.AddUser(slackemu.User{ID: rAnn, Name: "ann", RealName: "Ann Lee", Email: "ann@example.com"})
	w.emu.AddUser(slackemu.User{ID: rBob, Name: "bob", RealName: "Bob Stone", Email: "bob@example.com"})
	w.emu.AddUser(slackemu.User{ID: rCarol, Name: "carol", RealName: "Carol Diaz", Email: "carol@example.com"})
	w.policy = filepath.Join(w.dir, "policy.yaml")
	if err := os.WriteFile(w.policy, []byte(replicaPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// config is serve's configuration for a replica reaching the database at url.
func (w *replicaWorld) config(name, url string) Config {
	return Config{SlackBotToken: slackemu.DefaultBotToken, SlackAppToken: slackemu.DefaultAppToken, SlackAPIURL: w.emu.APIURL(),
		OktaOrgURL: w.okta.Env["OKTA_CLIENT_ORGURL"], OktaToken: Secret(w.okta.Env["OKTA_CLIENT_TOKEN"]),
		Policy: w.policy, DB: filepath.Join(w.dir, name+".db"), DatabaseURL: Secret(url), LeaseTTL: 10 * time.Second, BackupEvery: time.Hour}
}

// start boots a replica on url and runs it.
func (w *replicaWorld) start(name, url string) *replica {
	w.t.Helper()
	log := slog.New(slog.NewTextHandler(prefixWriter{w.t, name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := NewContext(w.ctx, w.config(name, url), Deps{Logger: log, Clock: w.clock})
	if err != nil {
		w.t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	r := &replica{name: name, srv: srv, cancel: cancel, done: make(chan error, 1)}
	connected := w.emu.Connects()
	go func() { r.done <- srv.Run(ctx) }()
	w.until(name+"'s Slack socket", func() bool { return w.emu.Connects() > connected })
	return r
}

// until moves the fake clock in small steps until cond holds: every loop
// of every replica waits on that clock, so time passes only here.
func (w *replicaWorld) until(what string, cond func() bool) {
	w.t.Helper()
	w.untilStep(what, 200*time.Millisecond, cond)
}

func (w *replicaWorld) untilStep(what string, step time.Duration, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("waited in vain for %s (fake clock at %s)", what, w.clock.Now().Format(time.TimeOnly))
		}
		w.clock.Advance(step)
		time.Sleep(3 * time.Millisecond) // let the woken goroutines run
	}
}

// leaders lists the replicas that lead now.
func leaders(rs ...*replica) []string {
	var out []string
	for _, r := range rs {
		if r.svc().IsLeader() {
			out = append(out, r.name)
		}
	}
	return out
}

// submit has user request db-read through Slack; the envelopes of the
// modal go to whichever replica Slack picks.
func (w *replicaWorld) submit(r *replica, user, email string) access.Request {
	w.t.Helper()
	if _, err := w.emu.SlashCommand(w.ctx, user, "/access", ""); err != nil {
		w.t.Fatal(err)
	}
	var v slackemu.View
	w.until("the request modal", func() bool {
		views := w.emu.OpenViews(user)
		if len(views) == 0 {
			return false
		}
		v = views[len(views)-1]
		return v.CallbackID == "keycard_request" && strings.Contains(string(v.Blocks), `"duration:db-read"`)
	})
	ack, err := w.emu.SubmitView(w.ctx, user, v.ID, slackemu.Values{
		"role":             {"keycard_role": {Selected: "db-read"}},
		"justification":    {"keycard_justification": {Text: "INC-7"}},
		"duration:db-read": {"keycard_duration": {Selected: "2m"}},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if errs := ack.Errors(); len(errs) > 0 {
		w.t.Fatalf("submission refused: %v", errs)
	}
	var req access.Request
	w.until(email+"'s request in the store", func() bool {
		mine, err := r.svc().Mine(email)
		if err == nil && len(mine) > 0 {
			req = mine[0]
			return true
		}
		return false
	})
	return req
}

// approvalDMs are the approval messages (with buttons) in user's DM that
// name request id.
func (w *replicaWorld) approvalDMs(user, id string) []slackemu.Message {
	var out []slackemu.Message
	for _, m := range w.emu.Messages(w.emu.DMChannel(user)) {
		if strings.Contains(m.PlainText(), id) {
			for _, b := range m.Buttons() {
				if b.ActionID == "keycard_approve" {
					out = append(out, m)
					break
				}
			}
		}
	}
	return out
}

func countEvents(t *testing.T, svc *handlers.Service, typ access.EventType, id string) int {
	t.Helper()
	n := 0
	if err := svc.Events(0, func(e access.Event) error {
		if e.Type == typ && (id == "" || e.RequestID == id) {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplicas runs two keycard serve replicas on one PostgreSQL database
// against the Slack and Okta emulators (SPEC "Beyond one machine"): one
// leads; Slack's envelopes are answered by both; an approval handled on
// the standby is provisioned by the leader; a redelivered envelope has one
// effect; a policy change reaches the other replica; the database lost
// under the leader makes its readiness fail and its Slack answers say
// keycard is unavailable while the standby takes over within the lease; the
// deposed leader's commits are refused; a clean stop hands over at once;
// and due work (an expiry) is done by whoever leads.
func TestReplicas(t *testing.T) {
	w := newReplicaWorld(t)
	proxy := newCutProxy(t, w.url)
	a := w.start("a", proxy.url)
	w.until("a to lead", func() bool { return a.svc().IsLeader() })
	b := w.start("b", w.url)
	defer func() {
		for _, r := range []*replica{a, b} {
			if r != nil {
				r.cancel()
			}
		}
	}()
	w.until("b to read the lease", func() bool { return b.srv.leader.Age() > 0 })
	if got := leaders(a, b); len(got) != 1 || got[0] != "a" {
		t.Fatalf("leaders %v, want exactly a", got)
	}
	for _, c := range []struct {
		r    *replica
		role string
	}{{a, "role: leader"}, {b, "role: standby"}} {
		if code, body := c.r.readyz(); code != 200 || !strings.Contains(body, c.role) {
			t.Fatalf("%s /readyz: %d %q, want 200 with %q", c.r.name, code, body, c.role)
		}
	}

	for _, c := range []struct {
		r      *replica
		leader string
	}{{a, "keycard_leader 1"}, {b, "keycard_leader 0"}} {
		if m := c.r.get("/metrics"); !strings.Contains(m, c.leader+"\n") || !strings.Contains(m, "keycard_lease_age_seconds ") {
			t.Fatalf("%s /metrics lacks %q or the lease age", c.r.name, c.leader)
		}
	}
	if code, body := a.post("/backup"); code != 409 || !strings.Contains(body, "pg_dump") {
		t.Fatalf("POST /backup with PostgreSQL: %d %q", code, body)
	}

	// A request made and approved through Slack, whichever replica gets
	// each envelope; the one approval DM comes from the leader's notifier.
	req := w.submit(b, rAnn, "ann@example.com")
	w.until("bob's approval DM", func() bool { return len(w.approvalDMs(rBob, req.ID)) > 0 })
	if n := len(w.approvalDMs(rBob, req.ID)); n != 1 {
		t.Errorf("bob got %d approval DMs for one step", n)
	}
	dm := w.approvalDMs(rBob, req.ID)[0]
	ack, err := w.emu.ClickButton(w.ctx, rBob, dm.Channel, dm.TS, "keycard_approve")
	if err != nil {
		t.Fatal(err)
	}
	// Slack redelivers the click to the other connection (round robin):
	// the shared dedupe gives it no effect there.
	if _, err := w.emu.Redeliver(w.ctx, ack.EnvelopeID); err != nil {
		t.Fatal(err)
	}
	w.until("ann's grant in Okta", func() bool { return w.okta.IsMember("app-db-readers", "ann@example.com") })
	w.until("ann's grant active", func() bool { g, _ := b.svc().Get(req.ID); return g.State == access.StateActive })
	if n := countEvents(t, a.svc(), access.EvRequestApproved, req.ID); n != 1 {
		t.Errorf("%d approval events for one click delivered twice", n)
	}
	if n := len(w.emu.Messages(w.emu.DMChannel(rBob))); n != 1 {
		t.Errorf("bob has %d DMs, want the one approval ask (updated in place)", n)
	}

	// The shared dedupe directly: a key seen on one replica is seen on the other.
	if first, err := a.svc().FirstTime("envelope:E1", time.Hour); err != nil || !first {
		t.Fatalf("first sight on a: %v %v", first, err)
	}
	if first, err := b.svc().FirstTime("envelope:E1", time.Hour); err != nil || first {
		t.Fatalf("redelivery to b: first=%v %v, want seen", first, err)
	}

	// An approval handled on the standby enqueues the add; the leader's
	// poll finds and provisions it (the standby never runs the worker).
	carol := w.submit(a, rCarol, "carol@example.com")
	if _, err := b.svc().Decide(w.ctx, handlers.DecideInput{RequestID: carol.ID, Step: 0, SlackID: rBob, Email: "bob@example.com", Approve: true}); err != nil {
		t.Fatalf("approve on the standby: %v", err)
	}
	w.until("carol's grant in Okta", func() bool { return w.okta.IsMember("app-db-readers", "carol@example.com") })
	w.until("carol's grant active", func() bool { g, _ := b.svc().Get(carol.ID); return g.State == access.StateActive })
	if n := countEvents(t, a.svc(), access.EvGrantActive, carol.ID); n != 1 {
		t.Errorf("%d grant.active events for carol's grant", n)
	}

	// A policy change applied on the standby reaches the leader.
	text := strings.Replace(replicaPolicy, "admins: {group: keycard-admins}", `  - name: wiki-edit
    app: Wiki
    role: Editor
    group: app-wiki-editors
    eligible: [everyone]
    approval: auto
    duration: {default: 1h, max: 8h}
admins: {group: keycard-admins}`, 1)
	if err := os.WriteFile(w.policy, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	next, _, err := b.svc().ChangePolicy(handlers.PolicyChange{Load: func() (*policy.Set, error) { return policy.Load(w.policy) }, By: "SIGHUP"})
	if err != nil {
		t.Fatal(err)
	}
	w.until("the new policy on a", func() bool { return a.svc().Policy().Hash == next.Hash })
	if _, ok := a.svc().Policy().Policy("wiki-edit"); !ok {
		t.Fatal("a swapped to a policy without wiki-edit")
	}

	// The database lost under the leader.
	tok := a.srv.leader.Token()
	proxy.cut()
	code, body := a.readyz()
	if code != 503 || !strings.Contains(body, "PostgreSQL unreachable") || strings.Contains(body, "sekret") {
		t.Fatalf("a /readyz with the database cut: %d %q", code, body)
	}
	unavailable := func() bool {
		for _, m := range w.emu.Ephemerals(rAnn) {
			if strings.Contains(m.PlainText(), pgstore.Unavailable) {
				return true
			}
		}
		return false
	}
	// Slack spreads envelopes over both sockets: one of two reaches a.
	for i := 0; i < 2; i++ {
		if _, err := w.emu.SlashCommand(w.ctx, rAnn, "/access", "list"); err != nil {
			t.Fatal(err)
		}
	}
	w.until("ann told keycard is unavailable", unavailable)
	cutAt := w.clock.Now()
	w.until("b to take over", func() bool { return b.svc().IsLeader() })
	if took := w.clock.Now().Sub(cutAt); took > 10*time.Second+10*time.Second/3+time.Second {
		t.Errorf("takeover took %s on the clock, more than the lease allows", took)
	}
	if a.svc().IsLeader() {
		t.Fatal("a still leads after b took over")
	}
	proxy.restore()
	// The deposed leader's late writes are refused, by its clock and by
	// the token: the term it held is over.
	if err := a.svc().SetCursor("job.late.success", "x"); access.CodeOf(err) != access.CodeConflict {
		t.Errorf("a's singleton write after losing the lease: %v, want a conflict", err)
	}
	err = a.srv.pg.Update(w.clock.Now(), func(tx *pgstore.Tx) error { return tx.CheckFence(LeaseName, tok) })
	if access.CodeOf(err) != access.CodeConflict {
		t.Errorf("a commit fenced with a's old token: %v, want a conflict", err)
	}
	w.until("a ready again, as standby", func() bool {
		code, body := a.readyz()
		return code == 200 && strings.Contains(body, "role: standby")
	})

	// Due work resumes under the new leader: ann's 2-minute grant ends and
	// is removed from Okta.
	w.untilStep("ann's grant removed at its end", time.Second, func() bool {
		g, _ := a.svc().Get(req.ID)
		return g.State == access.StateExpired
	})
	if w.okta.IsMember("app-db-readers", "ann@example.com") {
		t.Error("ann's expired grant is still in Okta")
	}
	if g, _ := a.svc().Get(req.ID); g.State != access.StateExpired || g.DeprovisionedAt.After(g.EndsAt.Add(15*time.Second)) {
		t.Errorf("ann's grant: %s, removed at %s for an end at %s", g.State, g.DeprovisionedAt, g.EndsAt)
	}

	// A clean stop of the leader hands the lease over at the standby's next poll.
	b.stop(t)
	stopAt := w.clock.Now()
	b = nil
	w.until("a to lead after b stopped", func() bool { return a.svc().IsLeader() })
	if took := w.clock.Now().Sub(stopAt); took > 10*time.Second/3+time.Second {
		t.Errorf("takeover after a clean stop took %s", took)
	}
	a.stop(t)
	a = nil
	res, err := func() (bool, error) {
		db, err := pgstore.Open(w.ctx, w.url, pgstore.Options{MaxConns: 2})
		if err != nil {
			return false, err
		}
		defer db.Close()
		r, err := db.Verify(1, nil)
		return r.OK(), err
	}()
	if err != nil || !res {
		t.Fatalf("the audit chain after the run: ok=%v %v", res, err)
	}
}

// cutProxy is a loopback TCP proxy in front of PostgreSQL whose link the
// test can cut (every connection closed, new ones refused at once) and
// restore.
type cutProxy struct {
	t      *testing.T
	url    string
	target string
	ln     net.Listener
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, dbURL string) *cutProxy {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, target: u.Host, ln: ln, conns: map[net.Conn]bool{}}
	u.Host = ln.Addr().String()
	p.url = u.String()
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes every proxied connection and refuses new ones.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

type prefixWriter struct {
	t    *testing.T
	name string
}

func (w prefixWriter) Write(b []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestPostgresConfig: the configuration errors of serving from PostgreSQL,
// each one line naming the variable, none repeating the password.
func TestPostgresConfig(t *testing.T) {
	for _, c := range []struct {
		name, want string
		env        map[string]string
	}{
		{"not a URL", "KEYCARD_DATABASE_URL is malformed", map[string]string{"KEYCARD_DATABASE_URL": "host=db user=keycard password=sekret"}},
		{"wrong scheme", "KEYCARD_DATABASE_URL is malformed", map[string]string{"KEYCARD_DATABASE_URL": "mysql://keycard:sekret@db:3306/keycard"}},
		{"no host", "KEYCARD_DATABASE_URL is malformed", map[string]string{"KEYCARD_DATABASE_URL": "postgres://keycard:sekret@/keycard"}},
		{"bad escape", "KEYCARD_DATABASE_URL is malformed", map[string]string{"KEYCARD_DATABASE_URL": "postgres://keycard:se%zzkret@db/keycard"}},
		{"backups of a database", "KEYCARD_BACKUP_DIR", map[string]string{"KEYCARD_DATABASE_URL": "postgres://keycard:sekret@db/keycard", "KEYCARD_BACKUP_DIR": "/var/backups"}},
		{"lease too short", "KEYCARD_LEASE_TTL", map[string]string{"KEYCARD_LEASE_TTL": "100ms"}},
		{"lease unreadable", "KEYCARD_LEASE_TTL", map[string]string{"KEYCARD_LEASE_TTL": "soon"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := LoadConfig()
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "sekret") {
				t.Fatalf("error %v, want one line with %q and no password", err, c.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("KEYCARD_DATABASE_URL", "postgres://keycard:sekret@db:5432/keycard?sslmode=verify-full")
		cfg, err := LoadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.LeaseTTL != 10*time.Second || cfg.DatabaseURL.String() != "[redacted]" {
			t.Fatalf("%+v", cfg)
		}
	})
}

// TestPostgresStart: an unreachable database is waited for (each retry
// logged, stopped by ctx); a bbolt file at KEYCARD_DB is refused unless
// keycard migrate copied it into the database.
func TestPostgresStart(t *testing.T) {
	admin := os.Getenv("KEYCARD_TEST_DATABASE_URL")
	clearEnv(t)
	if admin != "" {
		t.Setenv("KEYCARD_TEST_DATABASE_URL", admin)
	}
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	orig, _ := os.ReadFile("../../docs/examples/policy-static.yaml")
	if err := os.WriteFile(pol, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		var logs syncBuffer
		clock := fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := Config{Policy: pol, DB: filepath.Join(t.TempDir(), "none.db"), DatabaseURL: Secret("postgres://keycard:sekret@" + addr + "/keycard?connect_timeout=2"), LeaseTTL: 10 * time.Second}
		done := make(chan error, 1)
		go func() {
			_, err := NewContext(ctx, cfg, Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Clock: clock})
			done <- err
		}()
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(logs.String(), "PostgreSQL does not answer yet; retrying") < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("no retries logged: %s", logs.String())
			}
			clock.Advance(time.Second)
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		err = <-done
		if err == nil || !strings.Contains(err.Error(), "KEYCARD_DATABASE_URL") || strings.Contains(err.Error(), "sekret") || strings.Contains(logs.String(), "sekret") {
			t.Fatalf("stopped with %v; logs %s", err, logs.String())
		}
		if !strings.Contains(logs.String(), "attempt=3") || !strings.Contains(logs.String(), "retry_in=4s") {
			t.Fatalf("retries do not back off: %s", logs.String())
		}
	})

	admin = storetest.PostgresURL(t)
	t.Run("bbolt file not migrated", func(t *testing.T) {
		url := storetest.FreshDatabase(t, admin)
		file := seedDB(t)
		cfg := Config{Policy: pol, DB: file, DatabaseURL: Secret(url), LeaseTTL: 10 * time.Second}
		_, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Clock: fakeclock.New(time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC))})
		if err == nil || !strings.Contains(err.Error(), "KEYCARD_DB "+file) || !strings.Contains(err.Error(), "keycard migrate") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("start with an unmigrated bbolt file: %v", err)
		}
	})
	t.Run("bbolt file migrated", func(t *testing.T) {
		url := storetest.FreshDatabase(t, admin)
		file := seedDB(t)
		src, err := store.Open(file, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dst, err := pgstore.Open(context.Background(), url, pgstore.Options{MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, err = migrate.Copy(context.Background(), src, dst, nil)
		src.Close()
		dst.Close()
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Policy: pol, DB: file, DatabaseURL: Secret(url), LeaseTTL: 10 * time.Second}
		srv, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Clock: fakeclock.New(time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC))})
		if err != nil {
			t.Fatalf("start after keycard migrate: %v", err)
		}
		if n := len(mustMine(t, srv.Service(), "u1@example.com")); n != 1 {
			t.Fatalf("the migrated request is not served: %d", n)
		}
		srv.Close()
		// The file moves on after the copy (a bbolt keycard ran again on
		// it): its new history is not in the database, so it is refused.
		src, err = store.Open(file, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = src.Update(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC), func(tx *store.Tx) error {
			_, err := tx.Append(access.Event{Type: access.EvAlert, Actor: access.ActorKeycard})
			return err
		})
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler), Clock: fakeclock.New(time.Date(2026, 11, 3, 11, 0, 0, 0, time.UTC))}); err == nil || !strings.Contains(err.Error(), "keycard migrate") {
			t.Fatalf("start with a file that moved on after the copy: %v", err)
		}
	})
}

func mustMine(t *testing.T, svc *handlers.Service, email string) []access.Request {
	t.Helper()
	rs, err := svc.Mine(email)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReplicaResumesAfterOutage: one replica on PostgreSQL loses its
// database: it stops leading by its own clock (nobody else may lead
// either), readiness fails; when the database is back it leads again and is
// ready, with no restart.
func TestReplicaResumesAfterOutage(t *testing.T) {
	w := newReplicaWorld(t)
	proxy := newCutProxy(t, w.url)
	a := w.start("a", proxy.url)
	defer a.stop(t)
	w.until("a to lead", func() bool { return a.svc().IsLeader() })
	proxy.cut()
	w.until("a to step down", func() bool { return !a.svc().IsLeader() })
	if code, body := a.readyz(); code != 503 || !strings.Contains(body, "role: standby") {
		t.Fatalf("/readyz during the outage: %d %q", code, body)
	}
	proxy.restore()
	w.until("a to lead again", func() bool { return a.svc().IsLeader() })
	w.until("a ready again", func() bool { code, _ := a.readyz(); return code == 200 })
}
