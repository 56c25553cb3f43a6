package bot

import (
	"testing"
	"time"

	"keycard/access"
)

func TestParseExport(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	exists := func(n string) bool { return n == "prod-db-admin" }
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	cases := []struct {
		name, text string
		kind, pol  string
		from, to   time.Time
		code       access.Code
	}{
		{"default: 90 whole days up to and including today", "", "access", "", day("2025-12-03"), day("2026-03-03"), ""},
		{"policy", "prod-db-admin", "access", "prod-db-admin", day("2025-12-03"), day("2026-03-03"), ""},
		{"policy and dates", "prod-db-admin 2025-01-01 2025-12-31", "access", "prod-db-admin", day("2025-01-01"), day("2026-01-01"), ""},
		{"dates only", "2025-01-01 2025-03-31", "access", "", day("2025-01-01"), day("2025-04-01"), ""},
		{"events", "events 2026-01-01", "events", "", day("2026-01-01"), day("2026-03-03"), ""},
		{"unknown policy", "nope", "", "", time.Time{}, time.Time{}, access.CodeUnknownPolicy},
		{"bad date", "prod-db-admin 2025-13-01", "", "", time.Time{}, time.Time{}, access.CodeInvalid},
		{"empty period", "2025-02-01 2025-01-01", "", "", time.Time{}, time.Time{}, access.CodeInvalid},
		{"holders now", "holders", "holders", "", time.Time{}, time.Time{}, ""},
		{"policies: all history", "policies", "policies", "", time.Time{}, time.Time{}, ""},
		{"jobs in a period", "jobs 2026-01-01 2026-01-31", "jobs", "", day("2026-01-01"), day("2026-02-01"), ""},
		{"campaign without id", "campaign", "", "", time.Time{}, time.Time{}, access.CodeInvalid},
		{"who-can", "who-can", "who-can", "", time.Time{}, time.Time{}, ""},
		{"who-can one policy", "who-can prod-db-admin", "who-can", "prod-db-admin", time.Time{}, time.Time{}, ""},
		{"who-can unknown policy", "who-can nope", "", "", time.Time{}, time.Time{}, access.CodeUnknownPolicy},
		{"delegations: all history", "delegations", "delegations", "", time.Time{}, time.Time{}, ""},
		{"delegations in a period", "delegations 2026-01-01 2026-01-31", "delegations", "", day("2026-01-01"), day("2026-02-01"), ""},
		{"too many", "events 2025-01-01 2025-02-01 2025-03-01", "", "", time.Time{}, time.Time{}, access.CodeInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := parseExport(c.text, now, exists)
			if c.code != "" {
				if access.CodeOf(err) != c.code {
					t.Fatalf("err %v, want code %s", err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.kind != c.kind || a.params.Policy != c.pol || !a.params.From.Equal(c.from) || !a.params.To.Equal(c.to) {
				t.Fatalf("got %+v", a)
			}
		})
	}
}

func TestDecisionValue(t *testing.T) {
	cases := []struct {
		name, in string
		id       string
		step     int
	}{
		{"round trip", decisionValue("REQ-1", 2), "REQ-1", 2},
		{"no step", "REQ-1", "REQ-1", -1},
		{"bad step", "REQ-1|x", "REQ-1", -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, step := parseDecisionValue(c.in)
			if id != c.id || step != c.step {
				t.Fatalf("got %q %d", id, step)
			}
		})
	}
}
