package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/policy"
	"keycard/store"
	pgstore "keycard/store/postgres"
)

// Several replicas on PostgreSQL (SPEC "Beyond one machine").
//
// Every replica answers Slack, from its own Socket Mode connection, against
// the shared store. One replica at a time — the holder of the lease row
// LeaseName (pgstore.Leader: renewed every TTL/3, a fencing token raised at
// each new term) — runs the singleton work: the scheduler and the outbox
// worker (handlers.Service.Run, gated on the lease), the notifier (bot
// Config.Leading), the offboarding feeds and sweep, the review jobs, the
// baselines and the audit stream (started for each term and cancelled when
// it ends: runLeader). Each of their commits checks the lease in the same
// transaction (handlers.Leadership.Fence), so a replica that lost its term —
// cut off from the database, or paused past its lease — commits nothing
// more, and the work is done again by the new leader (connector calls are
// idempotent; a DM may be re-posted).
//
// Work another replica commits (an approval handled on a standby enqueues
// an outbox op; a request it accepts gives the notifier an event to send)
// reaches the leader by a short poll on the clock (replicaPoll for the
// worker and the policy version; the notifier's NotifyEvery), not by
// LISTEN/NOTIFY: a poll needs only the Store port, cannot miss a
// notification while the connection is down, and costs a few indexed
// reads a second — cheap beside a person's click.

// LeaseName is the lease row the replicas compete for.
const LeaseName = "leader"

// replicaPoll is how often the leader re-reads work that other replicas
// committed and every replica re-reads the policy version in force.
const replicaPoll = time.Second

// newPostgres opens KEYCARD_DATABASE_URL (waiting for it when it does not
// answer yet), refuses a bbolt file at KEYCARD_DB that was never copied into
// it, and assembles the server with a lease.
func newPostgres(ctx context.Context, cfg Config, d Deps, file *policy.Set) (*Server, error) {
	db, err := openPostgres(ctx, cfg, d)
	if err != nil {
		return nil, err
	}
	if err := checkNoSplit(cfg.DB, db); err != nil {
		db.Close()
		return nil, err
	}
	if takeover := cfg.LeaseTTL + cfg.LeaseTTL/3; takeover > 15*time.Second {
		d.Logger.Warn("KEYCARD_LEASE_TTL is longer than 11.25s: a dead leader may be replaced later than the 15 seconds keycard promises", "lease_ttl", cfg.LeaseTTL, "takeover_within", takeover)
	}
	s := &Server{cfg: cfg, d: d, pg: db, st: adapt.Postgres(db), roles: make(chan struct{}, 1)}
	if d.Manual {
		// No loop runs, so nothing would take the lease: one replica.
		if err := s.assemble(file, db, Verifier(db), handlers.SoleReplica{}); err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	s.leader = pgstore.NewLeader(db, LeaseName, holderID(), pgstore.LeaderOptions{TTL: cfg.LeaseTTL, Clock: d.Clock, After: d.Clock.After,
		OnChange: func(bool, uint64) {
			select {
			case s.roles <- struct{}{}:
			default:
			}
		}})
	if err := s.assemble(file, db, Verifier(db), adapt.Leader(s.leader)); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openPostgres connects, retrying an unreachable database with backoff
// (1 s doubling to 30 s, on the clock) until ctx ends; any other failure (a
// malformed URL, a schema newer than this keycard) stops start-up at once.
func openPostgres(ctx context.Context, cfg Config, d Deps) (*pgstore.DB, error) {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		db, err := pgstore.Open(ctx, string(cfg.DatabaseURL), pgstore.Options{})
		if err == nil {
			return db, nil
		}
		if access.CodeOf(err) != access.CodeUnavailable || ctx.Err() != nil {
			return nil, fmt.Errorf("KEYCARD_DATABASE_URL: %s", oneLine(err))
		}
		d.Logger.Warn("PostgreSQL does not answer yet; retrying", "attempt", attempt, "retry_in", wait, "err", oneLine(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("KEYCARD_DATABASE_URL: stopped while waiting for PostgreSQL: %s", oneLine(err))
		case <-d.Clock.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// oneLine is err's message on one line: pgx lists each address it dialled
// on a line of its own, and start-up errors are one line. The coded
// message already carries the cause.
func oneLine(err error) string {
	msg := err.Error()
	var ae *access.Error
	if errors.As(err, &ae) && ae.Msg != "" {
		msg = ae.Msg
	}
	return strings.Join(strings.Fields(msg), " ")
}

// checkNoSplit refuses to start on PostgreSQL while KEYCARD_DB names a bbolt
// file whose history the database does not hold: the operator would be
// leaving live grants (to expire, to remove) and audit events behind in the
// file. `keycard migrate` copies the chain byte for byte, so the database
// holds the file's history exactly when its event at the file's head seq
// has the file's head hash (hash-linked: equal there means equal before).
// A file with no events holds nothing to lose. The file is opened with a
// short lock timeout, so a bbolt keycard still running on it is named.
func checkNoSplit(path string, db *pgstore.DB) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("KEYCARD_DB: %w", err)
	}
	file, err := store.Open(path, store.Options{Timeout: 2 * time.Second})
	if access.CodeOf(err) == access.CodeUnavailable {
		return fmt.Errorf("KEYCARD_DB %s is locked by another process (a keycard serve on bbolt?) and KEYCARD_DATABASE_URL is set: stop it and run keycard migrate --to \"$KEYCARD_DATABASE_URL\" --db %s first", path, path)
	}
	if err != nil {
		return fmt.Errorf("KEYCARD_DB: %w", err)
	}
	var seq uint64
	var hash string
	err = file.View(func(tx *store.Tx) error {
		seq, hash, _ = tx.Head()
		return nil
	})
	file.Close()
	if err != nil || seq == 0 {
		return err
	}
	var have access.Event
	err = db.View(func(tx *pgstore.Tx) error {
		var err error
		have, err = tx.Event(seq)
		return err
	})
	switch {
	case err == nil && have.Hash == hash:
		return nil
	case err != nil && access.CodeOf(err) != access.CodeNotFound:
		return fmt.Errorf("KEYCARD_DATABASE_URL: %w", err)
	}
	return fmt.Errorf("KEYCARD_DB %s holds keycard's history (%d audit events) and KEYCARD_DATABASE_URL points at a database that does not: "+
		"run keycard migrate --to \"$KEYCARD_DATABASE_URL\" --db %s to copy it, or move the file away to start the database without it", path, seq, path)
}

// holderID names this process in the lease: host, pid and a random part
// (a restarted process with a reused pid is a new holder).
func holderID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// leaderJobs are the singleton jobs run for each of this replica's terms as leader.
type leaderJobs struct {
	jobs []func(context.Context) error
}

// add registers a job (before Run's supervisor starts).
func (t *leaderJobs) add(fn func(context.Context) error) { t.jobs = append(t.jobs, fn) }

// runLeader keeps the lease and starts the singleton jobs when this replica
// becomes leader, cancelling them (and waiting for them) when it stops
// being leader. It also checks the role on the clock every TTL/5 while
// leading: a term ends by the clock (pgstore.Leader.IsLeader) even when the
// renewal it waits on hangs. A job's error is fatal, as before.
func (s *Server) runLeader(ctx context.Context, t *leaderJobs) error {
	svc, log := s.svc, s.d.Logger
	lctx, stopLease := context.WithCancel(ctx)
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		_ = s.leader.Run(lctx)
	}()
	defer func() {
		stopLease()
		<-leaseDone
	}()
	var (
		endTerm context.CancelFunc
		running chan error // the term's jobs' result; nil once read
	)
	stop := func() error {
		if endTerm == nil {
			return nil
		}
		endTerm()
		var err error
		if running != nil {
			err = <-running
		}
		endTerm, running = nil, nil
		svc.LeadershipChanged(false)
		return err
	}
	check := s.cfg.LeaseTTL / 5
	for {
		leading := s.leader.IsLeader()
		switch {
		case leading && endTerm == nil:
			log.Info("this replica is the leader now: it runs the scheduler, the outbox worker, the notifier and the other singleton work", "holder", s.leader.Holder(), "token", s.leader.Token())
			var tctx context.Context
			tctx, endTerm = context.WithCancel(ctx)
			g, gctx := errgroup.WithContext(tctx)
			for _, job := range t.jobs {
				g.Go(func() error { return job(gctx) })
			}
			running = make(chan error, 1)
			go func() { running <- g.Wait() }()
			svc.LeadershipChanged(true) // catch up at once
		case !leading && endTerm != nil:
			log.Warn("this replica is a standby now: its term as leader ended", "holder", s.leader.Holder())
			if err := stop(); err != nil {
				return err
			}
		}
		var wake <-chan time.Time
		if endTerm != nil {
			wake = s.d.Clock.After(check)
		}
		select {
		case <-ctx.Done():
			return stop()
		case <-s.roles:
		case <-wake:
		case err := <-running:
			// Every job of the term ended by itself (they end only with
			// their context, TakeBaselines aside): fatal when one failed.
			running = nil
			if err != nil {
				_ = stop()
				return err
			}
		}
	}
}
