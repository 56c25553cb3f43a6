package main

import (
	"context"

	"golang.org/x/sync/errgroup"

	"keycard/handlers"
)

// startReviews starts the scheduled review jobs (issue 4 fills this in).
func startReviews(ctx context.Context, g *errgroup.Group, svc *handlers.Service, d deps) {}
