package main

import (
	"context"

	"keycard/handlers"
)

// runBot connects to Slack and serves until ctx ends.
func runBot(ctx context.Context, cfg Config, svc *handlers.Service, d deps) error {
	<-ctx.Done()
	return nil
}

func demoCmd(ctx context.Context, args []string, stdout interface{ Write([]byte) (int, error) }) error {
	return errNotYet
}
