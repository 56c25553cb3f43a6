package bot

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"keycard/access"
	"keycard/handlers"
)

// FuzzSlashText: whatever follows /access or /export, parsing never panics,
// and what it accepts is a well-formed request.
func FuzzSlashText(f *testing.F) {
	for _, s := range []string{"", "list", "revoke REQ-1001", "help", "bogus", "events 2026-01-01 2026-02-01",
		"prod-db-admin 2025-01-01 2025-12-31", "holders 2026-01-31T17:00:00Z", "campaign C-1", "jobs", "policies x y z",
		"2026-02-30", "\x00\u202e", "campaign"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	exists := func(n string) bool { return n == "prod-db-admin" }
	f.Fuzz(func(t *testing.T, text string) {
		a, err := parseExport(text, now, exists)
		if err == nil {
			switch a.kind {
			case handlers.KindAccess, handlers.KindEvents, handlers.KindHolders, handlers.KindPolicies, handlers.KindJobs, handlers.KindCampaign,
				handlers.KindWhoCan, handlers.KindDelegations:
			default:
				t.Fatalf("%q parsed to unknown kind %q", text, a.kind)
			}
			if !a.params.From.IsZero() && !a.params.From.Before(a.params.To) {
				t.Fatalf("%q parsed to an empty period %v..%v", text, a.params.From, a.params.To)
			}
			if a.params.Policy != "" && !exists(a.params.Policy) {
				t.Fatalf("%q accepted unknown policy %q", text, a.params.Policy)
			}
		}
		payload := (&Bot{}).ackAccessCommand(&inbound{cmd: slack.SlashCommand{Text: text}})
		if payload != nil {
			if _, err := json.Marshal(payload); err != nil {
				t.Fatalf("ack payload for %q does not encode: %v", text, err)
			}
		}
	})
}

// FuzzInteractionPayload: any interactive payload Slack (or anyone able to
// reach the socket) could deliver decodes without panicking, and the values
// keycard reads from it (button value, modal state) parse safely. The button
// value is only a pointer: whatever it says, handlers re-checks the clicker.
func FuzzInteractionPayload(f *testing.F) {
	seeds := []string{
		`{"type":"block_actions","user":{"id":"U1"},"actions":[{"type":"button","action_id":"keycard_approve","block_id":"b","value":"REQ-1001|0","action_ts":"1.2"}]}`,
		`{"type":"block_actions","user":{"id":"U1"},"actions":[]}`,
		`{"type":"view_submission","user":{"id":"U1"},"view":{"id":"V1","callback_id":"keycard_request","state":{"values":{"role":{"keycard_role":{"type":"static_select","selected_option":{"value":"prod-db-admin"}}}}}}}`,
		`{"type":"block_suggestion","user":{"id":"U1"},"action_id":"keycard_role_search","value":"pro"}`,
		`{"type":"view_closed","user":{"id":"U1"},"view":{"id":"V1"}}`,
		`{"type":"block_actions","actions":[{"action_id":"keycard_deny","value":"REQ-1|-9999999999999999999999"}]}`,
		`{"type":"view_submission","user":{"id":"U1"},"view":{"id":"V1","callback_id":"keycard_request","state":{"values":{"start":{"keycard_start":{"type":"radio_buttons","selected_option":{"value":"later"}}},"start_at":{"keycard_start_at":{"type":"datetimepicker","selected_date_time":1772845200}}}}}}`,
		`{"type":"view_submission","user":{"id":"U1"},"view":{"id":"V1","callback_id":"keycard_request","state":{"values":{"start":{"keycard_start":{"type":"radio_buttons","selected_option":{"value":"later"}}},"start_at":{"keycard_start_at":{"type":"datetimepicker","selected_date_time":-9223372036854775808}}}}}}`,
		`{"type":"view_submission","user":{"id":"U1"},"view":{"id":"V1","callback_id":"keycard_request","state":{"values":{"start":{"keycard_start":{"type":"radio_buttons","selected_option":{"value":"later"}}},"start_at":{"keycard_start_at":{"type":"datetimepicker","selected_date_time":null}}}}}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var cb slack.InteractionCallback
		if err := json.Unmarshal(raw, &cb); err != nil {
			return // slack-go rejects it before keycard sees it
		}
		evt := socketmode.Event{Type: socketmode.EventTypeInteractive, Data: cb, Request: &socketmode.Request{EnvelopeID: "e1"}}
		in, err := decode(evt)
		if err != nil {
			return
		}
		id, step := parseDecisionValue(in.action.Value)
		if !strings.HasPrefix(in.action.Value, id) {
			t.Fatalf("decision value %q parsed to %q/%d", in.action.Value, id, step)
		}
		_ = in.dedupeKey()
		_ = in.clickKey()
		if v := &in.cb.View; v != nil {
			_, _ = stateValue(v, blkRole, actRoleStat)
			_ = hasBlock(v, blkJustify)
			// "Start later" gives a time or a problem, never both; "now" neither.
			start, problem := readStart(v)
			later := v.State != nil && v.State.Values[blkStart][actStart].SelectedOption.Value == startLater
			if later && start.IsZero() == (problem == "") || !later && (!start.IsZero() || problem != "") {
				t.Fatalf("later %v: start %v, problem %q", later, start, problem)
			}
		}
	})
}

// FuzzDelegateText: whatever follows /access delegate, parsing never
// panics; what it accepts is off, or exactly one well-formed person (a
// Slack user id or an email) with a date word; and the date, read in any
// of a few time zones, is either refused or an end after now and at most
// 91 days ahead. The committed corpus is testdata/fuzz/FuzzDelegateText.
func FuzzDelegateText(f *testing.F) {
	for _, s := range []string{"delegate off", "delegate OFF", "delegate", "delegate <@U0BOB|bob> until 2026-03-06 Conference week",
		"delegate <@W123> until 2026-03-02", "delegate <mailto:carol@example.com|carol@example.com> until 2026-06-01 leave",
		"delegate carol@example.com until 2026-03-31", "delegate @carol until 2026-03-06", "delegate <@U0BOB until 2026-03-06",
		"delegate <@u0bob> until 2026-03-06", "delegate <@U0BOB> 2026-03-06", "delegate <@U0BOB> until", "delegate <@U0BOB> until 2026-02-30",
		"delegate <@U0BOB> until 2027-12-31", "delegate <@U0BOB>until 2026-03-06", "delegate <@U0BOB> until\t2026-03-06\n\u202e", "delegate <>",
		"delegate <mailto:|> until 2026-03-06", "delegate a@b@c.d until 2026-03-06", "delegate <@U0BOB|a>b> until 2026-03-06 x"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("UTC-12", -12*3600), time.FixedZone("UTC+14", 14*3600)}
	f.Fuzz(func(t *testing.T, text string) {
		a, err := parseDelegate(text)
		if err != nil {
			if access.MessageOf(err) == "" {
				t.Fatalf("%q refused without a message", text)
			}
			return
		}
		if a.off {
			if a.slackID != "" || a.email != "" || a.until != "" {
				t.Fatalf("%q: off with arguments %+v", text, a)
			}
			return
		}
		if (a.slackID == "") == (a.email == "") {
			t.Fatalf("%q: want exactly one of a Slack id and an email, got %+v", text, a)
		}
		if a.slackID != "" && !slackUserID(a.slackID) {
			t.Fatalf("%q: bad Slack id %q", text, a.slackID)
		}
		if a.email != "" && (!strings.Contains(a.email, "@") || strings.ContainsAny(a.email, " \t\r\n<>|")) {
			t.Fatalf("%q: bad email %q", text, a.email)
		}
		if a.until == "" || strings.ContainsAny(a.until, " \t\r\n") {
			t.Fatalf("%q: bad date word %q", text, a.until)
		}
		for _, loc := range zones {
			end, err := handlers.DelegationEnd(a.until, loc, now)
			if err != nil {
				continue
			}
			if !end.After(now) || end.Sub(now) > 92*24*time.Hour {
				t.Fatalf("%q in %s: end %v is not after now or too far", text, loc, end)
			}
		}
	})
}
