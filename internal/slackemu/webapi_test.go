package slackemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestWebAPIMethods(t *testing.T) {
	srv, _ := newTestServer(t)
	api := newAPI(srv)
	general := srv.AddChannel("general")
	for i := range 4 {
		srv.AddChannel(fmt.Sprintf("chan-%d", i))
	}

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"auth.test", func(t *testing.T) {
			r, err := api.AuthTest()
			if err != nil || r.TeamID != DefaultTeamID || r.UserID != "U0KEYBOT" || r.BotID != "B0KEYBOT" {
				t.Fatalf("AuthTest = %+v, %v", r, err)
			}
		}},
		{"wrong token is invalid_auth", func(t *testing.T) {
			_, err := slack.New("xoxb-wrong", slack.OptionAPIURL(srv.APIURL())).AuthTest()
			if err == nil || err.Error() != "invalid_auth" {
				t.Fatalf("err = %v, want invalid_auth", err)
			}
		}},
		{"app token cannot call bot methods", func(t *testing.T) {
			_, err := slack.New(DefaultAppToken, slack.OptionAPIURL(srv.APIURL())).AuthTest()
			if err == nil || err.Error() != "invalid_auth" {
				t.Fatalf("err = %v, want invalid_auth", err)
			}
		}},
		{"users.info", func(t *testing.T) {
			u, err := api.GetUserInfo("U1")
			if err != nil {
				t.Fatal(err)
			}
			if u.TZ != "Europe/Berlin" || u.TZOffset != 3600 || u.Profile.Email != "alice@example.com" || u.RealName != "Alice A" {
				t.Fatalf("user = %+v", u)
			}
		}},
		{"users.info unknown", func(t *testing.T) {
			if _, err := api.GetUserInfo("U404"); err == nil || err.Error() != "user_not_found" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"users.lookupByEmail", func(t *testing.T) {
			u, err := api.GetUserByEmail("BOB@example.com")
			if err != nil || u.ID != "U2" || u.TZOffset != -5*3600 {
				t.Fatalf("user = %+v, %v", u, err)
			}
			if _, err := api.GetUserByEmail("nobody@example.com"); err == nil || err.Error() != "users_not_found" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"conversations.open is stable per user", func(t *testing.T) {
			c1, _, already, err := api.OpenConversation(&slack.OpenConversationParameters{Users: []string{"U1"}})
			if err != nil || !strings.HasPrefix(c1.ID, "D") {
				t.Fatalf("open = %+v, %v", c1, err)
			}
			c2, _, already2, err := api.OpenConversation(&slack.OpenConversationParameters{Users: []string{"U1"}})
			if err != nil || c2.ID != c1.ID || !already2 || (already && c1.ID == "") {
				t.Fatalf("second open = %+v %v, %v", c2, already2, err)
			}
			if c1.ID != srv.DMChannel("U1") {
				t.Fatalf("DMChannel = %s, want %s", srv.DMChannel("U1"), c1.ID)
			}
		}},
		{"conversations.list pages by cursor", func(t *testing.T) {
			var names []string
			cursor := ""
			for range 10 {
				chans, next, err := api.GetConversations(&slack.GetConversationsParameters{Cursor: cursor, Limit: 2, Types: []string{"public_channel"}})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range chans {
					names = append(names, c.Name)
				}
				if cursor = next; cursor == "" {
					break
				}
			}
			if got := strings.Join(names, ","); got != "general,chan-0,chan-1,chan-2,chan-3" {
				t.Fatalf("channels = %s", got)
			}
		}},
		{"conversations.info", func(t *testing.T) {
			c, err := api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: general})
			if err != nil || c.Name != "general" {
				t.Fatalf("info = %+v, %v", c, err)
			}
			if _, err := api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: "C404"}); err == nil || err.Error() != "channel_not_found" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"chat.postMessage to channel, DM and user id", func(t *testing.T) {
			dm := srv.DMChannel("U2")
			var last string
			for _, ch := range []string{general, dm, "U2"} {
				c, ts, err := api.PostMessage(ch, slack.MsgOptionText("hello "+ch, false))
				if err != nil {
					t.Fatalf("post %s: %v", ch, err)
				}
				if ch == "U2" && c != dm {
					t.Fatalf("channel = %s, want DM %s", c, dm)
				}
				if ts <= last {
					t.Fatalf("ts %s not after %s", ts, last)
				}
				last = ts
			}
			if got := srv.Messages("U2"); len(got) != 2 || got[1].Text != "hello U2" {
				t.Fatalf("DM messages = %+v", got)
			}
			if _, _, err := api.PostMessage("C404", slack.MsgOptionText("x", false)); err == nil || err.Error() != "channel_not_found" {
				t.Fatalf("err = %v", err)
			}
			if _, _, err := api.PostMessage(general); err == nil || err.Error() != "no_text" {
				t.Fatalf("empty message err = %v", err)
			}
		}},
		{"chat.update keeps blocks unless given, chat.delete removes", func(t *testing.T) {
			_, ts, err := api.PostMessage(general, slack.MsgOptionText("req", false), slack.MsgOptionBlocks(
				slack.NewSectionBlock(plain("Request #1"), nil, nil),
				slack.NewActionBlock("req_1", slack.NewButtonBlockElement("approve", "1", plain("Approve")))))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := api.UpdateMessage(general, ts, slack.MsgOptionText("req (seen)", false)); err != nil {
				t.Fatal(err)
			}
			m, _ := srv.Message(general, ts)
			if m.Text != "req (seen)" || len(m.Buttons()) != 1 || !m.Edited {
				t.Fatalf("after text update: %+v", m)
			}
			if _, _, _, err := api.UpdateMessage(general, ts, slack.MsgOptionBlocks(slack.NewSectionBlock(plain("Approved"), nil, nil))); err != nil {
				t.Fatal(err)
			}
			m, _ = srv.Message(general, ts)
			if len(m.Buttons()) != 0 || m.PlainText() != "Approved" {
				t.Fatalf("after blocks update: %q %+v", m.PlainText(), m.Buttons())
			}
			if _, _, err := api.DeleteMessage(general, ts); err != nil {
				t.Fatal(err)
			}
			if _, ok := srv.Message(general, ts); ok {
				t.Fatal("message still there after delete")
			}
			if _, _, _, err := api.UpdateMessage(general, ts, slack.MsgOptionText("x", false)); err == nil || err.Error() != "message_not_found" {
				t.Fatalf("update deleted: %v", err)
			}
		}},
		{"chat.postEphemeral", func(t *testing.T) {
			ts, err := api.PostEphemeral(general, "U1", slack.MsgOptionText("only you", false))
			if err != nil || ts == "" {
				t.Fatalf("ephemeral = %q, %v", ts, err)
			}
			eph := srv.Ephemerals("U1")
			if len(eph) == 0 || eph[len(eph)-1].Text != "only you" || eph[len(eph)-1].Channel != general {
				t.Fatalf("ephemerals = %+v", eph)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
	if srv.Calls("chat.postMessage") == 0 || srv.CallCounts()["auth.test"] == 0 {
		t.Fatalf("call counters = %v", srv.CallCounts())
	}
}

func TestUploadFile(t *testing.T) {
	srv, _ := newTestServer(t)
	api := newAPI(srv)
	ch := srv.AddChannel("audit")
	csv := "request_id,user\n1,alice\n"
	f, err := api.UploadFile(slack.UploadFileParameters{Filename: "grants.csv", FileSize: len(csv), Content: csv,
		Title: "Grants", Channel: ch, InitialComment: "Monthly export"})
	if err != nil {
		t.Fatal(err)
	}
	files := srv.Files()
	if len(files) != 1 {
		t.Fatalf("files = %+v", files)
	}
	got := files[0]
	if got.ID != f.ID || got.Name != "grants.csv" || got.Title != "Grants" || got.Channel != ch ||
		got.InitialComment != "Monthly export" || string(got.Content) != csv {
		t.Fatalf("file = %+v", got)
	}
	msgs := srv.Messages(ch)
	if len(msgs) != 1 || msgs[0].Text != "Monthly export" || len(msgs[0].Files) != 1 {
		t.Fatalf("share message = %+v", msgs)
	}
	if srv.Calls("upload") != 1 {
		t.Fatalf("upload calls = %d", srv.Calls("upload"))
	}
}

func TestFaultInjection(t *testing.T) {
	srv, _ := newTestServer(t)
	api := newAPI(srv)
	tests := []struct {
		name  string
		setup func()
		check func(t *testing.T, err error)
	}{
		{"429 becomes RateLimitedError with Retry-After", func() { srv.RateLimit("chat.postMessage", 1, 2*time.Second) },
			func(t *testing.T, err error) {
				var rl *slack.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
					t.Fatalf("err = %#v, want RateLimitedError{2s}", err)
				}
			}},
		{"FailNext returns the error code", func() { srv.FailNext("chat.postMessage", 1, "fatal_error") },
			func(t *testing.T, err error) {
				if err == nil || err.Error() != "fatal_error" {
					t.Fatalf("err = %v", err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			_, _, err := api.PostMessage("U1", slack.MsgOptionText("x", false))
			tc.check(t, err)
			if _, _, err := api.PostMessage("U1", slack.MsgOptionText("x", false)); err != nil {
				t.Fatalf("next call still failing: %v", err)
			}
		})
	}
}

// post sends a raw Web API call, for payloads slack-go would refuse to build.
func post(t *testing.T, srv *Server, method string, form url.Values, jsonBody string) map[string]any {
	t.Helper()
	var req *http.Request
	var err error
	if jsonBody != "" {
		req, err = http.NewRequest(http.MethodPost, srv.APIURL()+method, strings.NewReader(jsonBody))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+DefaultBotToken)
		}
	} else {
		form.Set("token", DefaultBotToken)
		req, err = http.NewRequest(http.MethodPost, srv.APIURL()+method, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
