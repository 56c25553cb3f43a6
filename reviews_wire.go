package main

import (
	"context"

	"golang.org/x/sync/errgroup"

	"keycard/bot"
	"keycard/handlers"
)

// startReviews starts the scheduled review jobs (reviews: in the policy):
// the admin access report, contractor expiry questions, the compliance
// package and certification campaigns, under the job ledger. Reports reach
// Slack through the serving bot.
func startReviews(ctx context.Context, g *errgroup.Group, svc *handlers.Service, pub *bot.Bot, d deps) {
	g.Go(func() error { return svc.RunReviews(ctx, pub, d.after) })
}
