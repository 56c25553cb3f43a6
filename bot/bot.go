package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"golang.org/x/sync/errgroup"

	"keycard/access"
)

// Config is everything the bot needs. API, Core, Reviews and Alerts are required.
type Config struct {
	// API is the Web API client, built with the bot token (SLACK_BOT_TOKEN),
	// slack.OptionAPIURL (SLACK_API_URL) and slack.OptionAppLevelToken
	// (SLACK_APP_TOKEN).
	API *slack.Client
	// Socket is the Socket Mode client; nil builds one from API.
	Socket *socketmode.Client
	Core   Core
	// Reviews and Alerts are the review surfaces' and the alert triage's use
	// cases (*handlers.Service is all three); required, so no button is
	// missing because a lookup quietly failed.
	Reviews ReviewCore
	Alerts  AlertCore
	// Clock supplies now for displayed times and caches, and the timers of the notifier and retries (default: system clock).
	Clock  access.Clock
	Logger *slog.Logger
	// UserCacheTTL bounds how long a Slack profile (email, time zone) and an
	// email→Slack id lookup are reused (default 10m): users.info is Tier 4
	// and users.lookupByEmail Tier 3.
	UserCacheTTL time.Duration
	// ExportDir holds CSVs while they upload (default os.TempDir()).
	ExportDir string
	// Workers bounds the goroutines doing after-ack work (default 4).
	Workers int
	// SubmitBudget is how long a modal submission waits for its use case
	// before acking with a "Submitting…" view (default 2s, inside Slack's 3s).
	SubmitBudget time.Duration
	// NotifyEvery is how often the notifier re-reads the audit log when no
	// wake-up arrives (default 2s).
	NotifyEvery time.Duration
	// DedupeTTL is how long envelope ids and clicks are remembered (default 24h).
	DedupeTTL time.Duration
	// Leading, when set, says whether this replica runs the notifier now
	// (several replicas on PostgreSQL: only the leader sends the DMs and
	// channel posts; its cursor writes are fenced by Core.SetCursor). Nil:
	// always (one replica). Every replica still answers its envelopes.
	Leading func() bool
}

// SocketReadLimit bounds one Socket Mode message (1 MiB). Slack's envelopes
// are far smaller (a view_submission carries at most a 100-block modal with
// 3000-character inputs, some hundreds of KiB); a larger message closes the
// connection and slack-go reconnects, so a misbehaving peer cannot make the
// bot buffer without bound.
const SocketReadLimit = 1 << 20

// Bot is the running Slack edge.
type Bot struct {
	cfg    Config
	api    *slack.Client
	sm     *socketmode.Client
	core   Core
	rev    ReviewCore
	alerts AlertCore
	log    *slog.Logger

	routes map[routeKey]route

	jobs     chan job
	inflight sync.WaitGroup // envelopes acked from their own goroutine
	nudgeCh  chan struct{}  // wakes the notifier after the bot changed something

	people *people
	recent *recentKeys // in-memory first line of dedupe on the socket loop

	team      atomic.Value // string: the bot's own workspace (auth.test at Run)
	connected atomic.Bool  // the Socket Mode connection is up (for /readyz)
	chanMu    sync.Mutex
	chans     map[string]string // channel name -> id (conversations.list is Tier 2)
	dms       map[string]string // Slack user id -> DM channel id
}

type job struct {
	name string
	fn   func(ctx context.Context)
}

// New checks cfg and builds a Bot; Run starts it.
func New(cfg Config) (*Bot, error) {
	if cfg.API == nil {
		return nil, errors.New("bot: Config.API is required")
	}
	if cfg.Core == nil {
		return nil, errors.New("bot: Config.Core is required")
	}
	if cfg.Reviews == nil {
		return nil, errors.New("bot: Config.Reviews is required")
	}
	if cfg.Alerts == nil {
		return nil, errors.New("bot: Config.Alerts is required")
	}
	if cfg.Socket == nil {
		cfg.Socket = socketmode.New(cfg.API, socketmode.OptionReadLimit(SocketReadLimit))
	}
	if cfg.Clock == nil {
		cfg.Clock = access.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.UserCacheTTL = positiveOr(cfg.UserCacheTTL, 10*time.Minute)
	cfg.Workers = positiveOr(cfg.Workers, 4)
	cfg.SubmitBudget = positiveOr(cfg.SubmitBudget, 2*time.Second)
	cfg.NotifyEvery = positiveOr(cfg.NotifyEvery, 2*time.Second)
	cfg.DedupeTTL = positiveOr(cfg.DedupeTTL, 24*time.Hour)
	if cfg.ExportDir == "" {
		cfg.ExportDir = os.TempDir()
	}
	b := &Bot{cfg: cfg, api: cfg.API, sm: cfg.Socket, core: cfg.Core, rev: cfg.Reviews, alerts: cfg.Alerts, log: cfg.Logger,
		jobs: make(chan job, 256), nudgeCh: make(chan struct{}, 1),
		chans: map[string]string{}, dms: map[string]string{}}
	b.people = newPeople(cfg.API, cfg.Clock, cfg.UserCacheTTL)
	b.recent = &recentKeys{ttl: 10 * time.Minute, seen: map[string]time.Time{}}
	b.routes = routeTable()
	return b, nil
}

// positiveOr is an option's value, or def when the option is left unset
// (zero, or negative, which means nothing useful for a count or a period).
func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Run serves Slack until ctx ends or the connection fails for good (a
// revoked or invalid token). On ctx's end it stops taking envelopes, then
// finishes the work already acknowledged and the notifier's current event
// before returning. Transient socket failures reconnect (slack-go backs
// off up to 5 minutes) and are logged.
func (b *Bot) Run(ctx context.Context) error {
	// Envelopes from another workspace (Slack Connect) are dropped: keycard
	// acts only for people of the workspace its token belongs to.
	team, err := b.TeamID(ctx)
	if err != nil {
		return fmt.Errorf("slack auth.test: %w", err)
	}
	b.team.Store(team)
	work := context.WithoutCancel(ctx) // acknowledged work finishes even during shutdown
	var workers sync.WaitGroup
	for range b.cfg.Workers {
		workers.Go(func() {
			for j := range b.jobs {
				b.runJob(work, j)
			}
		})
	}
	notifyCtx, stopNotify := context.WithCancel(ctx)
	defer stopNotify()
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		b.runNotifier(notifyCtx)
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := b.sm.RunContext(gctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, context.Canceled) {
			return nil
		}
		b.log.Error("slack socket mode stopped", "err", err)
		return fmt.Errorf("slack socket mode: %w", err)
	})
	g.Go(func() error { return b.loop(gctx) })
	err = g.Wait()

	b.inflight.Wait()
	close(b.jobs)
	workers.Wait()
	stopNotify()
	<-notifyDone
	return err
}

func (b *Bot) runJob(ctx context.Context, j job) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("bot job panicked", "job", j.name, "panic", p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // per-job bound on IdP and Slack calls
	defer cancel()
	j.fn(ctx)
}

// TeamID asks Slack which workspace the bot token belongs to (auth.test),
// for the source of evidence manifests.
func (b *Bot) TeamID(ctx context.Context) (string, error) {
	res, err := b.api.AuthTestContext(ctx)
	if err != nil {
		return "", err
	}
	return res.TeamID, nil
}

// Connected reports whether the Socket Mode connection is up: /readyz
// says not ready while slack-go reconnects.
func (b *Bot) Connected() bool { return b.connected.Load() }

// enqueue hands after-ack work to the bounded workers, waiting for room.
// Only goroutines other than the socket loop may call it.
func (b *Bot) enqueue(name string, fn func(ctx context.Context)) {
	b.jobs <- job{name: name, fn: fn}
}

// tryEnqueue is enqueue for the socket loop: false when the queue is full.
func (b *Bot) tryEnqueue(name string, fn func(ctx context.Context)) bool {
	select {
	case b.jobs <- job{name: name, fn: fn}:
		return true
	default:
		return false
	}
}

// nudge wakes the notifier so people see the effect of a click at once.
func (b *Bot) nudge() {
	select {
	case b.nudgeCh <- struct{}{}:
	default:
	}
}

// loop reads socket events until ctx ends; every envelope is acknowledged.
func (b *Bot) loop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case evt := <-b.sm.Events:
			b.handleSocketEvent(ctx, evt)
		}
	}
}

func (b *Bot) handleSocketEvent(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		b.connected.Store(false)
		b.log.Debug("slack: connecting")
		return
	case socketmode.EventTypeConnected:
		b.connected.Store(true)
		b.log.Info("slack: connected")
		return
	case socketmode.EventTypeConnectionError:
		b.connected.Store(false)
		b.log.Warn("slack: connection error; reconnecting", "detail", fmt.Sprint(evt.Data))
		return
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed, socketmode.EventTypeErrorBadMessage:
		b.log.Warn("slack: socket problem", "type", evt.Type, "detail", fmt.Sprint(evt.Data))
		return
	case socketmode.EventTypeInvalidAuth:
		b.connected.Store(false)
		b.log.Error("slack: invalid auth")
		return
	case socketmode.EventTypeHello:
		return
	}
	if evt.Request == nil || evt.Request.EnvelopeID == "" {
		return
	}
	in, err := decode(evt)
	if err != nil {
		b.log.Warn("slack: undecodable envelope", "type", evt.Type, "err", err)
		b.ack(evt.Request, nil)
		return
	}
	if own, _ := b.team.Load().(string); in.team != "" && own != "" && in.team != own {
		b.log.Warn("slack: envelope from another workspace dropped", "team", in.team, "own_team", own, "kind", in.key.kind, "id", in.key.id, "user", in.user)
		b.ack(evt.Request, nil)
		return
	}
	// Nothing on the socket loop touches the disk: a write here waits for an
	// fsync and for the store's write lock behind every Decide, and clicks
	// queue behind each other toward Slack's 3 s. The in-memory check catches
	// a double click or redelivery at once; the durable check (which survives
	// restarts) runs off the loop, before any work, and is batched.
	if !b.recent.first(b.cfg.Clock.Now(), in.dedupeKey(), in.clickKey()) {
		b.log.Info("slack: duplicate envelope ignored", "key", in.dedupeKey(), "retry", evt.Request.RetryAttempt)
		b.ack(evt.Request, nil)
		return
	}
	rt, ok := b.routes[in.key]
	if !ok {
		b.log.Debug("slack: no route", "kind", in.key.kind, "id", in.key.id)
		b.ack(evt.Request, nil)
		return
	}
	proceed := sync.OnceValue(func() bool { return b.firstTime(in) })
	switch {
	case rt.selfAck != nil:
		b.inflight.Go(func() {
			var once sync.Once
			ack := func(p any) { once.Do(func() { b.ack(evt.Request, p) }) }
			defer ack(nil) // never leave an envelope unacknowledged
			defer b.survive(ctx, in)
			if proceed() {
				rt.selfAck(b, context.WithoutCancel(ctx), in, ack)
			}
		})
	default:
		var payload any
		if rt.ack != nil {
			payload = rt.ack(b, in)
		}
		b.ack(evt.Request, payload)
		if rt.urgent != nil {
			b.inflight.Go(func() {
				defer b.survive(ctx, in)
				if proceed() {
					rt.urgent(b, context.WithoutCancel(ctx), in)
				}
			})
		}
		if rt.work != nil {
			ok := b.tryEnqueue(in.key.kind+":"+in.key.id, func(ctx context.Context) {
				if proceed() {
					rt.work(b, ctx, in)
				}
			})
			if !ok {
				// Never block the socket loop on a full queue: every other
				// envelope would miss its 3 s. Say so instead.
				b.log.Error("work queue full; envelope not handled", "route", in.key.kind+":"+in.key.id, "user", in.user)
				b.inflight.Go(func() {
					b.tell(context.WithoutCancel(ctx), in, "keycard is very busy right now and did not handle that; please try again in a minute.")
				})
			}
		}
	}
}

// survive is deferred by the goroutines that run urgent and selfAck routes:
// a panic there is logged and the person told, and the process lives on
// (the queue's workers do the same in runJob).
func (b *Bot) survive(ctx context.Context, in *inbound) {
	p := recover()
	if p == nil {
		return
	}
	b.log.Error("bot handler panicked", "route", in.key.kind+":"+in.key.id, "user", in.user, "panic", p)
	b.tell(context.WithoutCancel(ctx), in, panicMessage)
}

// panicMessage is what a person is told when keycard panicked on their envelope.
const panicMessage = "Something went wrong inside keycard while handling that, and it was not done. Please try again; if it keeps happening, tell your keycard admins."

// firstTime is the durable dedupe: the envelope (or event) id and the click
// are recorded in the store, so a redelivery after a restart has no effect
// either. A store failure lets the envelope through: decisions are
// compare-and-swap in handlers, so at worst a notice repeats.
func (b *Bot) firstTime(in *inbound) bool {
	first, err := b.core.FirstTime(in.dedupeKey(), b.cfg.DedupeTTL)
	if err != nil {
		b.log.Error("dedupe check failed; handling the envelope anyway", "err", err)
		return true
	}
	if first && in.clickKey() != "" {
		if ok, err := b.core.FirstTime(in.clickKey(), b.cfg.DedupeTTL); err == nil && !ok {
			first = false
		}
	}
	if !first {
		b.log.Info("slack: duplicate envelope ignored", "key", in.dedupeKey())
	}
	return first
}

func (b *Bot) ack(req *socketmode.Request, payload any) {
	var err error
	if payload == nil {
		err = b.sm.Ack(*req)
	} else {
		err = b.sm.Ack(*req, payload)
	}
	if err != nil {
		b.log.Error("slack: ack failed", "envelope", req.EnvelopeID, "err", err)
	}
}

// inbound is one decoded envelope.
type inbound struct {
	key      routeKey
	envelope string
	user     string // Slack user id (Slack-asserted)
	team     string // the workspace the envelope comes from (team_id)
	cmd      slack.SlashCommand
	cb       slack.InteractionCallback
	action   slack.BlockAction
	event    slackevents.EventsAPIEvent
	eventID  string
}

const (
	kindCommand    = "command"
	kindAction     = "action"
	kindView       = "view"
	kindSuggestion = "suggestion"
	kindEvent      = "event"
)

func decode(evt socketmode.Event) (*inbound, error) {
	in := &inbound{envelope: evt.Request.EnvelopeID}
	switch data := evt.Data.(type) {
	case slack.SlashCommand:
		in.cmd = data
		in.user = data.UserID
		in.team = data.TeamID
		in.key = routeKey{kindCommand, data.Command}
	case slack.InteractionCallback:
		in.cb = data
		in.user = data.User.ID
		in.team = data.Team.ID
		switch data.Type {
		case slack.InteractionTypeBlockActions:
			if len(data.ActionCallback.BlockActions) == 0 {
				return nil, errors.New("block_actions without actions")
			}
			in.action = *data.ActionCallback.BlockActions[0]
			in.key = routeKey{kindAction, in.action.ActionID}
		case slack.InteractionTypeViewSubmission:
			in.key = routeKey{kindView, data.View.CallbackID}
		case slack.InteractionTypeBlockSuggestion:
			in.key = routeKey{kindSuggestion, data.ActionID}
		default:
			in.key = routeKey{string(data.Type), data.CallbackID}
		}
	case slackevents.EventsAPIEvent:
		in.event = data
		in.team = data.TeamID
		if cb, ok := data.Data.(*slackevents.EventsAPICallbackEvent); ok {
			in.eventID = cb.EventID
		}
		in.key = routeKey{kindEvent, data.InnerEvent.Type}
		switch e := data.InnerEvent.Data.(type) {
		case *slackevents.AppHomeOpenedEvent:
			in.user = e.User
		case *slackevents.UserChangeEvent:
			in.user = e.User.ID
		}
	default:
		return nil, fmt.Errorf("unexpected payload %T", evt.Data)
	}
	return in, nil
}

// dedupeKey identifies a delivery: Events API retries keep their event_id
// (notes/slack.md §5), every other redelivery keeps its envelope id.
func (in *inbound) dedupeKey() string {
	if in.eventID != "" {
		return "slack:event:" + in.eventID
	}
	return "slack:envelope:" + in.envelope
}

// clickKey identifies one click (user and action_ts), so a click delivered
// twice under different envelopes still has one effect.
func (in *inbound) clickKey() string {
	if in.key.kind != kindAction || in.action.ActionTs == "" {
		return ""
	}
	return "slack:click:" + in.user + ":" + in.action.ActionTs
}

// recentKeys remembers envelope and click keys for a while, in memory.
type recentKeys struct {
	mu   sync.Mutex
	ttl  time.Duration
	seen map[string]time.Time
}

// first records keys ("" ignored) and reports whether none was seen within
// ttl. The map is swept when it grows, so memory stays bounded by the rate
// of envelopes times ttl.
func (r *recentKeys) first(now time.Time, keys ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) > 10000 {
		for k, t := range r.seen {
			if now.Sub(t) > r.ttl || t.After(now) {
				delete(r.seen, k)
			}
		}
	}
	fresh := true
	for _, k := range keys {
		if k == "" {
			continue
		}
		if t, ok := r.seen[k]; ok && now.Sub(t) <= r.ttl && !t.After(now) {
			fresh = false
		}
	}
	if fresh {
		for _, k := range keys {
			if k != "" {
				r.seen[k] = now
			}
		}
	}
	return fresh
}
