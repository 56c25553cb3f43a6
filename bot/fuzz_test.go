package bot

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

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
			case handlers.KindAccess, handlers.KindEvents, handlers.KindHolders, handlers.KindPolicies, handlers.KindJobs, handlers.KindCampaign:
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
