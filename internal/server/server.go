package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/sync/errgroup"

	"keycard/access"
	"keycard/bot"
	"keycard/handlers"
	"keycard/handlers/auditstream"
	"keycard/internal/adapt"
	"keycard/internal/buildinfo"
	"keycard/policy"
	"keycard/store"
	pgstore "keycard/store/postgres"
)

// Deps are what tests and the demo replace: the clock, timers and logger,
// and a few test knobs. The zero value of every knob is what keycard serve
// does.
type Deps struct {
	Logger *slog.Logger // nil: discard
	Clock  access.Clock // its After is every loop's timer; nil: the system clock
	// Ready, when set, receives the running service once started.
	Ready func(*handlers.Service)

	// Manual, when set, runs none of the use cases' background loops: Run
	// proves the IdPs' credentials, then runs only the Slack edge (Socket
	// Mode, the notifier, the workspace's name for manifests) until ctx
	// ends. The scheduler and outbox worker (Service.Run), the review jobs,
	// offboarding, the groups' baselines, SIGHUP reloads, backups, the
	// audit stream and the ops listener do not run, and with PostgreSQL no
	// lease is taken (one replica): a test calls Tick, RunOutbox,
	// ReviewTick, TakeBaselines... itself at its fake clock's now.
	Manual bool
	// Core, when set, wraps the use cases the bot's routes call (a test
	// injects a slow or failing Submit, Decide...). The review and alert
	// surfaces still reach the service itself.
	Core func(*handlers.Service) bot.Core
	// ExportDir, SubmitBudget and NotifyEvery tune the bot (bot.Config);
	// zero: the bot's defaults.
	ExportDir    string
	SubmitBudget time.Duration
	NotifyEvery  time.Duration
	// NoSync skips fsync on every bbolt commit (store.Options.NoSync): a
	// crash may lose the last commits. Tests only.
	NoSync bool
}

// Server is keycard serve, assembled: the store, the connectors, the use
// cases, the Slack edge and the ops listener. New builds it, Run runs it
// under one errgroup, Close releases the database.
type Server struct {
	cfg    Config
	d      Deps
	bolt   *store.DB   // the bbolt file; nil with PostgreSQL
	pg     *pgstore.DB // nil with bbolt
	st     handlers.Store
	leader *pgstore.Leader // the lease with PostgreSQL; nil with bbolt
	roles  chan struct{}   // the lease's role changed (with PostgreSQL)
	set    *policy.Set
	file   *policy.Set
	svc    *handlers.Service
	bot    *bot.Bot
	conns  *ConnectorSet
	token  string
}

// New is NewContext without a context: start-up cannot be cancelled while
// it waits for PostgreSQL.
func New(cfg Config, d Deps) (*Server, error) { return NewContext(context.Background(), cfg, d) }

// NewContext is config -> policy -> store -> connectors -> handlers. It
// makes no network call but to the database (with KEYCARD_DATABASE_URL it
// waits, with backoff, until PostgreSQL answers or ctx ends); Run proves the
// IdPs' credentials, then starts the bot.
func NewContext(ctx context.Context, cfg Config, d Deps) (*Server, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = access.SystemClock{}
	}
	file, err := policy.Load(cfg.Policy)
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseURL != "" {
		return newPostgres(ctx, cfg, d, file)
	}
	db, err := store.Open(cfg.DB, store.Options{NoSync: d.NoSync})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, d: d, bolt: db, st: adapt.Store(db)}
	if err := s.assemble(file, db, Verifier(db), handlers.SoleReplica{}); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) assemble(file *policy.Set, static adapt.StaticStore, verify handlers.ChainVerifier, lead handlers.Leadership) error {
	cfg, d, st := s.cfg, s.d, s.st
	// A restart must not bypass change_approval: with it in force and the
	// file changed meanwhile, the last approved version keeps running.
	set, stage, err := handlers.InForce(st, file)
	if err != nil {
		return err
	}
	// Nor may it bypass the refusal of a change that would strand a live
	// grant outside its scope or policy: the last version keeps running.
	var stranded []string
	if !stage {
		prev, s, err := handlers.KeepAtStart(st, file)
		if err != nil {
			return err
		}
		if prev != nil {
			set, stranded = prev, s
		}
	}
	conns, err := BuildConnectors(set, cfg, static, d.Clock)
	if err != nil {
		return err
	}
	opt := handlers.Options{Logger: d.Logger, Verify: verify, Instance: Instance(set, cfg),
		Reconnect: reconnect(conns, cfg, static, d.Clock), Leadership: lead}
	if s.pg != nil {
		opt.Poll = replicaPoll
	}
	svc := handlers.New(st, conns, set, d.Clock, opt)
	if stage {
		d.Logger.Warn("the policy file changed while keycard was stopped and change_approval is in force: the last approved version stays in force; the file is staged for a second admin",
			"in_force", set.Hash, "staged", file.Hash)
		if err := svc.StageAtStart(file); err != nil {
			return err
		}
	} else if len(stranded) > 0 {
		refused := svc.RejectAtStart(file, stranded)
		d.Logger.Warn("the policy file changed while keycard was stopped and would strand live grants: the last version stays in force",
			"in_force", set.Hash, "file", file.Hash, "refusal", access.MessageOf(refused))
	} else if err := svc.RecordPolicyLoaded(access.ActorKeycard); err != nil {
		return err
	}
	token, err := opsToken(cfg.DB)
	if err != nil {
		return err
	}
	where := cfg.DB
	if s.pg != nil {
		where = "postgres://" + s.pg.Where()
	}
	var leading func() bool
	if s.leader != nil {
		leading = svc.IsLeader
	}
	b, err := newBot(cfg, svc, d, leading)
	if err != nil {
		return err
	}
	d.Logger.Info("keycard starting", "version", buildinfo.Get().Short(), "policy", cfg.Policy, "policy_hash", set.Hash, "db", where, "slack_api", cfg.SlackAPIURL)
	s.set, s.file, s.svc, s.bot, s.conns, s.token = set, file, svc, b, conns, token
	return nil
}

// Service is the running use cases (tests and the demo drive it).
func (s *Server) Service() *handlers.Service { return s.svc }

// Bot is the Slack edge Run runs (built by New: a test may publish a
// report through it, or run a review job with it, before or while Run runs).
func (s *Server) Bot() *bot.Bot { return s.bot }

// Bolt is the bbolt store, for tests that read it below the use cases
// (static memberships, outbox ops); nil with PostgreSQL.
func (s *Server) Bolt() *store.DB { return s.bolt }

// Close releases the database. Call it after Run returns.
func (s *Server) Close() error {
	if s.pg != nil {
		return s.pg.Close()
	}
	return s.bolt.Close()
}

// Run is keycard serve after New: the IdPs' credentials are proved, then the
// workers, the bot and the ops listener run under one errgroup that ends on
// the first fatal error or ctx. With PostgreSQL the lease decides which
// replica runs the singleton work (see leading).
func (s *Server) Run(ctx context.Context) error {
	cfg, d, svc, conns, b := s.cfg, s.d, s.svc, s.conns, s.bot
	if err := checkConnectors(ctx, conns, func(name string, err error) {
		d.Logger.Warn("the identity provider did not answer keycard's start-up check; readiness reports it until it does", "connector", name, "err", err)
	}); err != nil {
		return err
	}
	if d.Manual {
		return s.runManual(ctx)
	}
	feeds := conns.feeds
	hasIdP := len(feeds) > 0 || len(conns.checks) > 0
	ops := &opsServer{connected: b.Connected, token: s.token, svc: svc, ping: s.ping, hasIdP: hasIdP, started: d.Clock.Now(), policyPath: cfg.Policy,
		backup: backupConfig{Dir: cfg.BackupDir, Every: cfg.BackupEvery, Keep: cfg.BackupKeep}, replicated: s.pg != nil}
	if s.bolt != nil {
		ops.backupTo = s.bolt.Backup
	}

	g, ctx := errgroup.WithContext(ctx)
	// single runs singleton work: always with bbolt (one process holds the
	// file), only during this replica's terms as leader with PostgreSQL.
	single := func(fn func(context.Context) error) { g.Go(func() error { return fn(ctx) }) }
	var terms *leaderJobs
	if s.leader != nil {
		terms = &leaderJobs{}
		single = terms.add
		// Every replica follows a reload made on another one.
		g.Go(func() error { return svc.RunPolicySync(ctx, replicaPoll) })
	}
	// svc.Run gates the scheduler and the outbox worker on the lease itself
	// (every replica flushes its own refusal summaries).
	g.Go(func() error { return svc.Run(ctx) })
	single(func(ctx context.Context) error {
		// Who is in each policy group now is the baseline that tells standing
		// members from members added outside keycard later.
		if err := svc.TakeBaselines(ctx); err != nil && ctx.Err() == nil {
			d.Logger.Warn("could not record the policy groups' standing members yet; retried at the next holders snapshot", "err", err)
		}
		return nil
	})
	g.Go(func() error { return reloadOnHUP(ctx, svc, cfg.Policy, d.Logger) })
	single(func(ctx context.Context) error { return svc.RunOffboarding(ctx, feeds) })
	if cfg.BackupDir != "" && s.bolt != nil {
		g.Go(func() error { return backupLoop(ctx, svc, s.bolt, ops.backup, d.Logger) })
	}
	if cfg.HTTPAddr != "" {
		srv := &http.Server{Addr: cfg.HTTPAddr, Handler: ops.handler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("KEYCARD_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	s.runBot(ctx, g)
	if err := startAuditStream(ctx, g, single, svc, handlers.FencedStore(s.st, svc.Leadership()), d); err != nil {
		return err
	}
	// The scheduled review jobs (reviews: in the policy): the admin access
	// report, contractor expiry questions, the compliance package and
	// certification campaigns, under the job ledger. Reports reach Slack
	// through the serving bot.
	single(func(ctx context.Context) error { return svc.RunReviews(ctx, b) })
	if terms != nil {
		// Every singleton job is registered: take part in the lease.
		g.Go(func() error { return s.runLeader(ctx, terms) })
	}
	if d.Ready != nil {
		d.Ready(svc)
	}
	err := g.Wait()
	if s.leader != nil {
		// A clean stop hands the lease over at once: a standby takes over at
		// its next poll instead of after the TTL.
		if rerr := s.leader.Resign(); rerr != nil {
			d.Logger.Warn("could not release the leader lease; a standby takes over when it expires", "err", rerr)
		}
	}
	d.Logger.Info("keycard stopped", "err", err)
	return err
}

// runBot runs the Slack edge in g: the bot, and naming the workspace.
func (s *Server) runBot(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return s.bot.Run(ctx) })
	g.Go(func() error {
		// Best effort: manifests name the Slack workspace once Slack says which it is.
		if team, err := s.bot.TeamID(ctx); err == nil {
			s.svc.SetSlackTeam(team)
		} else if ctx.Err() == nil {
			s.d.Logger.Warn("auth.test failed; manifests will not name the Slack team", "err", err)
		}
		return nil
	})
}

// runManual is Run with Deps.Manual: the Slack edge only.
func (s *Server) runManual(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	s.runBot(ctx, g)
	if s.d.Ready != nil {
		s.d.Ready(s.svc)
	}
	err := g.Wait()
	s.d.Logger.Info("keycard stopped", "err", err)
	return err
}

// ping is readiness's check that the store answers.
func (s *Server) ping() error {
	if s.pg != nil {
		return s.pg.Ping(5 * time.Second)
	}
	return s.st.View(func(handlers.Tx) error { return nil })
}

// newBot builds the Slack edge: Socket Mode with the app token, the Web API
// with the bot token at SLACK_API_URL. leading (nil: always) gates the
// notifier to the leader.
func newBot(cfg Config, svc *handlers.Service, d Deps, leading func() bool) (*bot.Bot, error) {
	api := slack.New(string(cfg.SlackBotToken),
		slack.OptionAPIURL(cfg.SlackAPIURL),
		slack.OptionAppLevelToken(string(cfg.SlackAppToken)))
	var core bot.Core = svc
	if d.Core != nil {
		core = d.Core(svc)
	}
	return bot.New(bot.Config{API: api, Core: core, Reviews: svc, Alerts: svc, Clock: d.Clock, Logger: d.Logger, Leading: leading,
		ExportDir: d.ExportDir, SubmitBudget: d.SubmitBudget, NotifyEvery: d.NotifyEvery})
}

// reloadOnHUP reloads the policy file on SIGHUP; an invalid file keeps the
// old policy and says why.
func reloadOnHUP(ctx context.Context, svc *handlers.Service, path string, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			next, staged, err := svc.ChangePolicy(handlers.PolicyChange{Load: func() (*policy.Set, error) { return policy.Load(path) }, By: "SIGHUP"})
			switch {
			case err != nil:
				log.Error("policy reload refused; the previous policy stays in force", "err", err)
			case staged:
				log.Info("policy change staged: change_approval requires a second admin to approve it in Slack", "in_force", next.Hash)
			default:
				log.Info("policy in force", "hash", next.Hash)
			}
		}
	}
}

// startAuditStream runs the optional stream of every audit event to a SIEM
// (KEYCARD_AUDIT_STREAM_*): at least once from a durable cursor, never in
// the way of a Slack interaction.
func startAuditStream(ctx context.Context, g *errgroup.Group, single func(func(context.Context) error), svc *handlers.Service, st handlers.Store, d Deps) error {
	cfg, err := auditstream.ParseConfig(func(k string) string { v, _ := LookupEnv(k); return v })
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	stream, err := auditstream.Setup(cfg, st, auditstream.Options{Clock: d.Clock, Wake: svc.StreamWake(), Logger: d.Logger,
		Instance: host, Version: buildinfo.Get().Short()}, auditstream.SinkOptions{Stdout: os.Stdout})
	if err != nil || stream == nil {
		return err
	}
	d.Logger.Info("audit stream on", "stream", cfg)
	svc.SetStreamLag(func() (handlers.StreamLag, error) {
		l, err := stream.Lag()
		return handlers.StreamLag{Events: l.Events, Oldest: l.Oldest, Failures: l.Failures}, err
	})
	// One cursor, so one streamer: the leader's (every replica's own
	// stream would deliver each event once per replica).
	g.Go(func() error {
		<-ctx.Done()
		return stream.Close()
	})
	single(stream.Run)
	return nil
}
