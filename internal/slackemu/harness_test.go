package slackemu

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"keycard/internal/fakeclock"
)

func newTestServer(t *testing.T) (*Server, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) // moves trigger_ids past their expiry
	srv := New(Options{PingInterval: 50 * time.Millisecond, AckTimeout: 500 * time.Millisecond, Clock: clock.Now, Logf: t.Logf})
	t.Cleanup(srv.Close)
	srv.AddUser(User{ID: "U1", Name: "alice", RealName: "Alice A", Email: "alice@example.com", TZ: "Europe/Berlin"})
	srv.AddUser(User{ID: "U2", Name: "bob", RealName: "Bob B", Email: "bob@example.com", TZ: "America/New_York"})
	return srv, clock
}

func newAPI(srv *Server) *slack.Client {
	return slack.New(DefaultBotToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(DefaultAppToken))
}

// startBot runs a socketmode client against srv; handle is called for every
// event on one goroutine. It returns once the socket is connected.
func startBot(t *testing.T, srv *Server, handle func(*socketmode.Client, socketmode.Event)) *slack.Client {
	t.Helper()
	api := newAPI(srv)
	sm := socketmode.New(api)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sm.RunContext(ctx) })
	wg.Go(func() {
		for {
			select {
			case evt := <-sm.Events:
				handle(sm, evt)
			case <-ctx.Done():
				return
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := srv.WaitConnected(wctx); err != nil {
		t.Fatalf("bot never connected: %v", err)
	}
	return api
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}
