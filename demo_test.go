package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo runs `keycard demo` (the README's first command) and checks that
// each person saw their part and the evidence verified.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := demoCmd(context.Background(), nil, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[Bob Stone · DM", "[Approve] [Deny]", "Approved by <@U0BOB>", "Approved by <@U0CAROL>",
		"You now have *Production Database · Admin*", "[Extend] [Give up now]", "has ended: it expired",
		"REQ-1001,Ann Lee,ann@example.com,Production Database,Admin,prod-db-admin", ",expired,expired,",
		"audit chain ok:", `"report": "access"`, `"slack_team": "T0KEYCARD"`, "matches its manifest (1 rows",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out.String())
	}
}
