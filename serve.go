package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"keycard/access"
	"keycard/handlers"
	"keycard/handlers/auditstream"
	"keycard/internal/adapt"
	"keycard/internal/buildinfo"
	"keycard/policy"
	"keycard/store"
)

// serveCmd runs the bot with the environment's configuration.
func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 {
		return usageError("serve takes no arguments; configure it with environment variables")
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if missing := cfg.missingForServe(); len(missing) > 0 {
		return fmt.Errorf("cannot serve: set %s (see README: Configuration)", strings.Join(missing, " and "))
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := newLogger(stderr, level, cfg.LogFormat)
	return run(ctx, cfg, deps{log: log, clock: access.SystemClock{}, after: time.After})
}

// deps are what tests and the demo replace: the clock, timers and logger.
type deps struct {
	log   *slog.Logger
	clock access.Clock
	after func(time.Duration) <-chan time.Time
	// ready, when set, receives the running service once started.
	ready func(*handlers.Service)
}

// run is keycard serve: config -> policy -> store -> connectors -> handlers
// -> bot, under one errgroup that ends on the first fatal error or ctx.
func run(ctx context.Context, cfg Config, d deps) error {
	file, err := policy.Load(cfg.Policy)
	if err != nil {
		return err
	}
	db, err := store.Open(cfg.DB, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	// A restart must not bypass change_approval: with it in force and the
	// file changed meanwhile, the last approved version keeps running.
	set, stage, err := handlers.InForce(adapt.Store(db), file)
	if err != nil {
		return err
	}
	// Nor may it bypass the refusal of a change that would strand a live
	// grant outside its scope or policy: the last version keeps running.
	var stranded []string
	if !stage {
		prev, s, err := handlers.KeepAtStart(adapt.Store(db), file)
		if err != nil {
			return err
		}
		if prev != nil {
			set, stranded = prev, s
		}
	}
	conns, _, err := buildConnectors(set, cfg, db, d.clock)
	if err != nil {
		return err
	}
	svc := handlers.New(adapt.Store(db), conns, set, d.clock, handlers.Options{Logger: d.log, Verify: verifier(db), Instance: instance(set, cfg),
		Reconnect: reconnect(conns, cfg, db, d.clock)})
	if stage {
		d.log.Warn("the policy file changed while keycard was stopped and change_approval is in force: the last approved version stays in force; the file is staged for a second admin",
			"in_force", set.Hash, "staged", file.Hash)
		if err := svc.StageAtStart(file); err != nil {
			return err
		}
	} else if len(stranded) > 0 {
		refused := svc.RejectAtStart(file, stranded)
		d.log.Warn("the policy file changed while keycard was stopped and would strand live grants: the last version stays in force",
			"in_force", set.Hash, "file", file.Hash, "refusal", access.MessageOf(refused))
	} else if err := svc.RecordPolicyLoaded(access.ActorKeycard); err != nil {
		return err
	}
	token, err := opsToken(cfg.DB)
	if err != nil {
		return err
	}
	d.log.Info("keycard starting", "version", buildinfo.Get().Short(), "policy", cfg.Policy, "policy_hash", set.Hash, "db", cfg.DB, "slack_api", cfg.SlackAPIURL)

	if err := checkConnectors(ctx, conns, func(name string, err error) {
		d.log.Warn("the identity provider did not answer keycard's start-up check; readiness reports it until it does", "connector", name, "err", err)
	}); err != nil {
		return err
	}
	feeds := conns.feeds
	hasIdP := len(feeds) > 0 || len(conns.checks) > 0
	b, err := newBot(cfg, svc, d)
	if err != nil {
		return err
	}
	ops := &opsServer{connected: b.Connected, token: token, svc: svc, db: db, hasIdP: hasIdP, started: d.clock.Now(), policyPath: cfg.Policy,
		backup: backupConfig{Dir: cfg.BackupDir, Every: cfg.BackupEvery, Keep: cfg.BackupKeep}}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(ctx, d.after) })
	g.Go(func() error {
		// Who is in each policy group now is the baseline that tells standing
		// members from members added outside keycard later.
		if err := svc.TakeBaselines(ctx); err != nil {
			d.log.Warn("could not record the policy groups' standing members yet; retried at the next holders snapshot", "err", err)
		}
		return nil
	})
	g.Go(func() error { return reloadOnHUP(ctx, svc, cfg.Policy, d.log) })
	g.Go(func() error { return offboardLoop(ctx, svc, feeds, d.after, d.log) })
	if cfg.BackupDir != "" {
		g.Go(func() error { return backupLoop(ctx, svc, db, ops.backup, d.after, d.log) })
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
	g.Go(func() error { return b.Run(ctx) })
	g.Go(func() error {
		// Best effort: manifests name the Slack workspace once Slack says which it is.
		if team, err := b.TeamID(ctx); err == nil {
			svc.SetSlackTeam(team)
		} else if ctx.Err() == nil {
			d.log.Warn("auth.test failed; manifests will not name the Slack team", "err", err)
		}
		return nil
	})
	if err := startAuditStream(ctx, g, svc, adapt.Store(db), d); err != nil {
		return err
	}
	startReviews(ctx, g, svc, b, d)
	if d.ready != nil {
		d.ready(svc)
	}
	err = g.Wait()
	d.log.Info("keycard stopped", "err", err)
	return err
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
func startAuditStream(ctx context.Context, g *errgroup.Group, svc *handlers.Service, st handlers.Store, d deps) error {
	cfg, err := auditstream.ParseConfig(func(k string) string { v, _ := lookupEnv(k); return v })
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	stream, err := auditstream.Setup(cfg, st, auditstream.Options{Clock: d.clock, After: d.after, Wake: svc.StreamWake(), Logger: d.log,
		Instance: host, Version: buildinfo.Get().Short()}, auditstream.SinkOptions{Stdout: os.Stdout})
	if err != nil || stream == nil {
		return err
	}
	d.log.Info("audit stream on", "stream", cfg)
	svc.SetStreamLag(func() (handlers.StreamLag, error) {
		l, err := stream.Lag()
		return handlers.StreamLag{Events: l.Events, Oldest: l.Oldest, Failures: l.Failures}, err
	})
	g.Go(func() error {
		<-ctx.Done()
		return stream.Close()
	})
	g.Go(func() error { return stream.Run(ctx) })
	return nil
}
