package slackemu

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func section(text string) string {
	return fmt.Sprintf(`{"type":"section","text":{"type":"mrkdwn","text":%q}}`, text)
}

func repeat(block string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = block
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func options(n, textLen, valueLen int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"text":{"type":"plain_text","text":%q},"value":%q}`,
			strings.Repeat("t", textLen), fmt.Sprintf("%0*d", valueLen, i))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func button(text, value string) string {
	return fmt.Sprintf(`{"type":"button","action_id":"a","text":{"type":"plain_text","text":%q},"value":%q}`, text, value)
}

func TestMessageBlockLimits(t *testing.T) {
	srv, _ := newTestServer(t)
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		text   string
		blocks string
		want   string // "" = accepted
		detail string // substring of response_metadata.messages
	}{
		{"50 blocks ok", "t", repeat(`{"type":"divider"}`, 50), "", ""},
		{"51 blocks", "t", repeat(`{"type":"divider"}`, 51), "invalid_blocks", "no more than 50 items"},
		{"section text 3000 ok", "t", "[" + section(long(3000)) + "]", "", ""},
		{"section text 3001", "t", "[" + section(long(3001)) + "]", "invalid_blocks", "/blocks/0/text/text"},
		{"header 151", "t", `[{"type":"header","text":{"type":"plain_text","text":"` + long(151) + `"}}]`, "invalid_blocks", "less than 151"},
		{"header mrkdwn", "t", `[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]`, "invalid_blocks", "must be plain_text"},
		{"button text 76", "t", `[{"type":"actions","elements":[` + button(long(76), "v") + `]}]`, "invalid_blocks", "/elements/0/text/text"},
		{"button value 2001", "t", `[{"type":"actions","elements":[` + button("ok", long(2001)) + `]}]`, "invalid_blocks", "/elements/0/value"},
		{"26 action elements", "t", `[{"type":"actions","elements":` + repeat(`{"type":"button","text":{"type":"plain_text","text":"b"}}`, 26) + `}]`, "invalid_blocks", "no more than 25"},
		{"option text 76", "t", `[{"type":"actions","elements":[{"type":"static_select","action_id":"s","options":` + options(1, 76, 3) + `}]}]`, "invalid_blocks", "/options/0/text/text"},
		{"option value 151", "t", `[{"type":"actions","elements":[{"type":"static_select","action_id":"s","options":` + options(1, 3, 151) + `}]}]`, "invalid_blocks", "/options/0/value"},
		{"101 options", "t", `[{"type":"actions","elements":[{"type":"static_select","action_id":"s","options":` + options(101, 3, 4) + `}]}]`, "invalid_blocks", "no more than 100"},
		{"datetimepicker 10-digit initial ok", "t", `[{"type":"actions","elements":[{"type":"datetimepicker","action_id":"d","initial_date_time":1772845200}]}]`, "", ""},
		{"datetimepicker initial in milliseconds", "t", `[{"type":"actions","elements":[{"type":"datetimepicker","action_id":"d","initial_date_time":1772845200000}]}]`, "invalid_blocks", "/elements/0/initial_date_time"},
		{"datetimepicker initial as text", "t", `[{"type":"actions","elements":[{"type":"datetimepicker","action_id":"d","initial_date_time":"2026-03-07T01:00:00Z"}]}]`, "invalid_blocks", "UNIX timestamp in seconds"},
		{"block_id 256", "t", `[{"type":"divider","block_id":"` + long(256) + `"}]`, "invalid_blocks", "/blocks/0/block_id"},
		{"duplicate block_id", "t", `[{"type":"divider","block_id":"a"},{"type":"divider","block_id":"a"}]`, "invalid_blocks", "duplicate block_id"},
		{"action_id 256", "t", `[{"type":"actions","elements":[{"type":"button","action_id":"` + long(256) + `","text":{"type":"plain_text","text":"b"}}]}]`, "invalid_blocks", "action_id"},
		{"unknown block type", "t", `[{"type":"banner"}]`, "invalid_blocks", "unsupported block type"},
		{"text 40001", long(40001), "", "msg_too_long", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"channel": {"U1"}, "text": {tc.text}}
			if tc.blocks != "" {
				form.Set("blocks", tc.blocks)
			}
			out := post(t, srv, "chat.postMessage", form, "")
			if tc.want == "" {
				if out["ok"] != true {
					t.Fatalf("rejected: %v", out)
				}
				return
			}
			if out["ok"] != false || out["error"] != tc.want {
				t.Fatalf("got %v, want error %s", out, tc.want)
			}
			if tc.detail != "" && !strings.Contains(fmt.Sprint(out["response_metadata"]), tc.detail) {
				t.Fatalf("messages %v do not mention %q", out["response_metadata"], tc.detail)
			}
		})
	}
}

func TestViewLimits(t *testing.T) {
	srv, _ := newTestServer(t)
	long := func(n int) string { return strings.Repeat("x", n) }
	input := func(id string) string {
		return `{"type":"input","block_id":"` + id + `","label":{"type":"plain_text","text":"L"},"element":{"type":"plain_text_input","action_id":"v"}}`
	}
	modal := func(title, extra, blocks string) string {
		return `{"type":"home","title":{"type":"plain_text","text":"` + title + `"}` + extra + `,"blocks":` + blocks + `}`
	}
	tests := []struct {
		name   string
		view   string
		detail string
	}{
		{"ok", modal("Home", "", repeat(`{"type":"divider"}`, 100)), ""},
		{"101 blocks", modal("Home", "", repeat(`{"type":"divider"}`, 101)), "no more than 100"},
		{"title 25", modal(long(25), "", "[]"), "/view/title/text"},
		{"private_metadata 3001", modal("H", `,"private_metadata":"`+long(3001)+`"`, "[]"), "/view/private_metadata"},
		{"callback_id 256", modal("H", `,"callback_id":"`+long(256)+`"`, "[]"), "/view/callback_id"},
		{"duplicate input block_id", modal("H", "", "["+input("r")+","+input("r")+"]"), "duplicate block_id"},
		{"input with a button", modal("H", "", `[{"type":"input","label":{"type":"plain_text","text":"L"},"element":`+button("b", "v")+`}]`), "not an input element"},
		{"modal type on home", `{"type":"modal","title":{"type":"plain_text","text":"x"},"blocks":[]}`, "/view/type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := post(t, srv, "views.publish", nil, `{"user_id":"U1","view":`+tc.view+`}`)
			if tc.detail == "" {
				if out["ok"] != true {
					t.Fatalf("rejected: %v", out)
				}
				return
			}
			if out["ok"] != false || out["error"] != "invalid_arguments" || !strings.Contains(fmt.Sprint(out["response_metadata"]), tc.detail) {
				t.Fatalf("got %v, want invalid_arguments mentioning %q", out, tc.detail)
			}
		})
	}
}

// TestLimitsThroughSlackGo checks the same limits surface as slack-go errors.
func TestLimitsThroughSlackGo(t *testing.T) {
	srv, _ := newTestServer(t)
	api := newAPI(srv)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"message with 51 blocks", func() error {
			blocks := make([]slack.Block, 51)
			for i := range blocks {
				blocks[i] = slack.NewDividerBlock()
			}
			_, _, err := api.PostMessage("U1", slack.MsgOptionText("t", false), slack.MsgOptionBlocks(blocks...))
			return err
		}, "invalid_blocks"},
		{"home view title too long is ignored for home, blocks checked", func() error {
			blocks := make([]slack.Block, 101)
			for i := range blocks {
				blocks[i] = slack.NewDividerBlock()
			}
			_, err := api.PublishView("U1", slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: blocks}}, "")
			return err
		}, "invalid_arguments"},
		{"modal submit of 25 characters", func() error {
			srv.mu.Lock()
			trig := srv.newTriggerLocked("U1")
			srv.mu.Unlock()
			_, err := api.OpenView(trig, slack.ModalViewRequest{Type: slack.VTModal, Title: plain("T"), Submit: plain(strings.Repeat("s", 25))})
			return err
		}, "invalid_arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

// A datetimepicker shows the user's own time zone: the wall-clock time a
// person picks becomes the instant in their users.info tz.
func TestLocalDateTime(t *testing.T) {
	srv := New(Options{})
	srv.AddUser(User{ID: "U1", Name: "alice", Email: "alice@example.com", TZ: "Europe/Berlin"})
	srv.AddUser(User{ID: "U2", Name: "bob", Email: "bob@example.com"})
	cases := []struct {
		user, pick string
		want       time.Time
		err        bool
	}{
		{"U1", "2026-03-07 02:00", time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC), false},
		{"U1", "2026-07-04 02:00", time.Date(2026, 7, 4, 0, 0, 0, 0, time.UTC), false}, // summer time
		{"U2", "2026-03-07 02:00", time.Date(2026, 3, 7, 2, 0, 0, 0, time.UTC), false}, // no tz: UTC
		{"U1", "Saturday 2am", time.Time{}, true},
		{"U9", "2026-03-07 02:00", time.Time{}, true},
	}
	for _, c := range cases {
		got, err := srv.LocalDateTime(c.user, c.pick)
		if (err != nil) != c.err || (!c.err && got != c.want.Unix()) {
			t.Errorf("LocalDateTime(%s, %q) = %v, %v; want %v", c.user, c.pick, time.Unix(got, 0).UTC(), err, c.want)
		}
	}
}
