// Command keycard is a Slack-first bot for just-in-time, time-bound access
// with a tamper-evident audit log. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"keycard/internal/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs one subcommand and returns the process exit code.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serveCmd(ctx, args, stderr)
	case "policy":
		err = policyCmd(ctx, args, stdout)
	case "export":
		err = exportCmd(ctx, args, stdout, stderr)
	case "audit":
		err = auditCmd(ctx, args, stdout, stderr)
	case "backup":
		err = backupCmd(ctx, args, stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args, stdout, stderr)
	case "demo":
		err = demoCmd(ctx, args, stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, buildinfo.Get().String())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError("unknown command %q", cmd)
	}
	if err == nil {
		return 0
	}
	if ec, ok := err.(exitCode); ok {
		return int(ec)
	}
	fmt.Fprintln(stderr, "keycard:", err)
	if _, ok := err.(usageErr); ok {
		fmt.Fprint(stderr, usage)
		return 2
	}
	return 1
}
