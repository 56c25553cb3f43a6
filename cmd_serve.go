package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"keycard/access"
	"keycard/internal/server"
)

// serveCmd runs the bot with the environment's configuration.
func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 {
		return usageError("serve takes no arguments; configure it with environment variables")
	}
	cfg, err := server.LoadConfig()
	if err != nil {
		return err
	}
	if missing := cfg.MissingForServe(); len(missing) > 0 {
		return fmt.Errorf("cannot serve: set %s (see README: Configuration)", strings.Join(missing, " and "))
	}
	level, _ := server.ParseLevel(cfg.LogLevel)
	log := newLogger(stderr, level, cfg.LogFormat)
	srv, err := server.NewContext(ctx, cfg, server.Deps{Logger: log, Clock: access.SystemClock{}})
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Run(ctx)
}
