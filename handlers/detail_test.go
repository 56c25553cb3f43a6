package handlers

import (
	"strings"
	"testing"

	"keycard/access"
)

// The typed details (access/detail.go) write the bytes the maps they
// replaced wrote: events already in the chain hold those bytes, and the
// events export shows them. An event about a request gets the record digest
// (encodeWithRecord, which sorts its keys); an event about no request is
// written as encodeDetail makes it.
func TestTypedDetailsEncodeAsTheMapsDid(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	steps := []access.Step{{Rule: "manager", Candidates: []access.Person{{Email: "bob@example.com", Name: "Bob <b&b>"}}}}
	cases := []struct {
		name      string
		typed     any
		was       any
		onRequest bool
	}{
		{"alert", access.Alert{Kind: "provisioning_failed", Message: "Could not add a@x to g <prod> & more: \"quoted\" é"},
			map[string]string{"kind": "provisioning_failed", "message": "Could not add a@x to g <prod> & more: \"quoted\" é"}, true},
		{"alert about no request", access.Alert{Kind: "policy_emergency", Message: "x"},
			map[string]string{"kind": "policy_emergency", "message": "x"}, false},
		{"alert with an empty message", access.Alert{Kind: "k"}, map[string]string{"kind": "k", "message": ""}, false},
		{"grant failed", access.GrantFailed{Attempts: 8, Error: "okta: 500"}, map[string]any{"attempts": 8, "error": "okta: 500"}, true},
		{"submitted", access.Submitted{Duration: "4h", Steps: []string{"manager (1 candidates)"}, Justification: "INC-1 <db>", Asked: [][]string{{"bob@example.com"}}},
			map[string]any{"duration": "4h", "steps": []string{"manager (1 candidates)"}, "justification": "INC-1 <db>", "asked": [][]string{{"bob@example.com"}}}, true},
		{"submitted auto", access.Submitted{Duration: "1h", Steps: []string{}, Asked: [][]string{}},
			map[string]any{"duration": "1h", "steps": []string{}, "justification": "", "asked": [][]string{}}, true},
		{"submitted extension", access.Submitted{Duration: "1h", Steps: []string{}, Asked: [][]string{}, Extends: "REQ-1001"},
			map[string]any{"duration": "1h", "steps": []string{}, "justification": "", "asked": [][]string{}, "extends": "REQ-1001"}, true},
		{"submitted break-glass", access.Submitted{Duration: "1h", Steps: []string{"self (break-glass) (1 candidates)"}, Asked: [][]string{{"a@x"}},
			BreakGlassChain: &access.BreakGlassChain{BreakGlass: true, NormalChain: steps}},
			map[string]any{"duration": "1h", "steps": []string{"self (break-glass) (1 candidates)"}, "justification": "", "asked": [][]string{{"a@x"}},
				"break_glass": true, "normal_chain": steps}, true},
		{"submitted break-glass, normal chain unresolved", access.Submitted{Duration: "1h", Steps: []string{}, Asked: [][]string{},
			BreakGlassChain: &access.BreakGlassChain{BreakGlass: true}},
			map[string]any{"duration": "1h", "steps": []string{}, "justification": "", "asked": [][]string{}, "break_glass": true, "normal_chain": []access.Step(nil)}, true},
		{"campaign reminded", access.CampaignReminded{Campaign: "CMP-1", DueAt: "2026-03-01T00:00:00Z", Waiting: map[string]int{"b@x": 2, "a@x": 1}},
			map[string]any{"campaign": "CMP-1", "waiting": map[string]int{"b@x": 2, "a@x": 1}, "due_at": "2026-03-01T00:00:00Z"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := encodeDetail(c.typed), encodeDetail(c.was)
			if c.onRequest {
				got, want = encodeWithRecord(got, digest), encodeWithRecord(want, digest)
			}
			if got != want {
				t.Fatalf("typed detail\n%s\ndiffers from what keycard wrote\n%s", got, want)
			}
		})
	}
}

// What was written decodes back into the type, and a detail that is not
// the type's shape is an error with a code, not a silent zero value.
func TestDecodeDetail(t *testing.T) {
	e := access.Event{Seq: 7, Type: access.EvGrantFailed, Detail: encodeWithRecord(encodeDetail(access.GrantFailed{Attempts: 3, Error: "boom"}), strings.Repeat("0", 64))}
	a, err := access.AlertOf(e)
	if err != nil || a.Message != "boom" {
		t.Fatalf("AlertOf(grant.failed) = %+v, %v", a, err)
	}
	var s access.Submitted
	if err := access.DecodeDetail(access.Event{Detail: `{"asked":"not a list"}`}, &s); access.CodeOf(err) != access.CodeInvalid {
		t.Fatalf("a malformed detail: %v", err)
	}
	if err := access.DecodeDetail(access.Event{}, &s); err != nil {
		t.Fatalf("no detail: %v", err)
	}
}
