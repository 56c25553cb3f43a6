package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"keycard/bot"
	"keycard/handlers"
	"keycard/internal/fakeclock"
	"keycard/internal/slackemu"
	"keycard/internal/storetest"
)

// wrappedCore is a Core a test wraps around the service.
type wrappedCore struct{ *handlers.Service }

// TestManualDeps: the test knobs of Deps (what bot/e2e_test.go, chaos and
// bench boot with). New builds the bot before Run and hands the Core
// wrapper the service; Bolt is the bbolt file (nil with PostgreSQL); Manual
// takes no lease on PostgreSQL (no loop would renew it); Run in Manual runs
// the Slack edge until ctx ends and returns nil.
func TestManualDeps(t *testing.T) {
	admin := os.Getenv("KEYCARD_TEST_DATABASE_URL")
	clearEnv(t)
	if admin != "" {
		t.Setenv("KEYCARD_TEST_DATABASE_URL", admin)
	}
	stores := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"bbolt", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return storetest.FreshDatabase(t, storetest.PostgresURL(t)) }},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			url := st.url(t)
			dir := t.TempDir()
			orig, err := os.ReadFile("../../docs/examples/policy-static.yaml")
			if err != nil {
				t.Fatal(err)
			}
			emu := slackemu.New(slackemu.Options{Logf: t.Logf})
			defer emu.Close()
			cfg := Config{Policy: filepath.Join(dir, "policy.yaml"), DB: filepath.Join(dir, "keycard.db"), DatabaseURL: Secret(url), LeaseTTL: 10 * time.Second,
				SlackBotToken: slackemu.DefaultBotToken, SlackAppToken: slackemu.DefaultAppToken, SlackAPIURL: emu.APIURL()}
			if err := os.WriteFile(cfg.Policy, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			var wrapped int
			var gotSvc *handlers.Service
			ready := make(chan *handlers.Service, 1)
			srv, err := New(cfg, Deps{Clock: fakeclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), Manual: true, NoSync: true,
				Core:  func(s *handlers.Service) bot.Core { wrapped++; gotSvc = s; return wrappedCore{s} },
				Ready: func(s *handlers.Service) { ready <- s }})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if srv.Bot() == nil {
				t.Fatal("Bot() is nil before Run")
			}
			if wrapped != 1 || gotSvc != srv.Service() {
				t.Fatalf("the Core wrapper ran %d times (want 1) on %p (want the service %p)", wrapped, gotSvc, srv.Service())
			}
			if (srv.Bolt() == nil) != (url != "") {
				t.Fatalf("Bolt() = %v with database URL %q", srv.Bolt(), url)
			}
			if srv.leader != nil || !srv.Service().IsLeader() {
				t.Fatal("Manual took a lease: nothing would renew it")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			select {
			case s := <-ready:
				if s != srv.Service() {
					t.Fatal("Ready got another service")
				}
			case err := <-done:
				t.Fatalf("Run ended at start: %v", err)
			}
			if err := emu.WaitConnected(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}
