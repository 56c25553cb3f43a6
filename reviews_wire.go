package main

import (
	"context"

	"github.com/slack-go/slack"
	"golang.org/x/sync/errgroup"

	"keycard/bot"
	"keycard/handlers"
)

// startReviews starts the scheduled review jobs (reviews: in the policy):
// the admin access report, contractor expiry questions, the compliance
// package and certification campaigns, under the job ledger. Reports reach
// Slack through a publishing-only bot (no socket) built from the same
// environment as the serving one.
func startReviews(ctx context.Context, g *errgroup.Group, svc *handlers.Service, d deps) {
	svc.RegisterReviewExports()
	cfg, err := loadConfig()
	if err != nil || cfg.SlackBotToken == "" {
		d.log.Warn("review jobs: no Slack configuration; scheduled reports are not posted", "err", err)
		return
	}
	api := slack.New(string(cfg.SlackBotToken), slack.OptionAPIURL(cfg.SlackAPIURL))
	pub, err := bot.New(bot.Config{API: api, Core: svc, Clock: d.clock, Logger: d.log})
	if err != nil {
		d.log.Error("review jobs: publisher", "err", err)
		return
	}
	g.Go(func() error { return svc.RunReviews(ctx, pub, d.after) })
}
