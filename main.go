// Command keycard is a Slack-first bot for just-in-time, time-bound access
// with a tamper-evident audit log. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
		err = exportCmd(args, stdout, stderr)
	case "audit":
		err = auditCmd(args, stdout, stderr)
	case "backup":
		err = backupCmd(ctx, args, stdout, stderr)
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

const usage = `usage:
  keycard [serve]                    run the bot (needs SLACK_BOT_TOKEN, SLACK_APP_TOKEN)
  keycard policy check [FILE]        validate the policy file and summarise each policy
  keycard policy import --connector NAME [--out FILE] [--policy FILE]
                                     write a starting policy from the groups inside a connector's scope
  keycard policy apply --by EMAIL [--emergency --reason TEXT]
                                     reload the policy in the running keycard (staged for a second
                                     admin's approval when the policy says change_approval: true)
  keycard export [--kind access|events] [--policy P] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--db PATH]
                                     CSV to stdout (--events is short for --kind events)
  keycard audit verify [--db PATH]   check the audit hash chain; exit 1 on any break
  keycard backup [--db PATH] [--dir DIR]
                                     hot copy of the database (asks a running keycard over KEYCARD_HTTP_ADDR)
  keycard demo                       the whole lifecycle offline, against a built-in Slack emulator
  keycard version
`

type usageErr string

func (e usageErr) Error() string { return string(e) }

func usageError(format string, args ...any) error { return usageErr(fmt.Sprintf(format, args...)) }

// exitCode ends the command with a code after it printed its own message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// newLogger builds the process logger (text or JSON on stderr).
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
