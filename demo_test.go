package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `keycard demo` (the README's first command) and checks that
// each person saw their part and the evidence verified.
func TestDemo(t *testing.T) {
	var png []byte
	demoChartOut = func(b []byte) { png = b }
	defer func() { demoChartOut = nil }()
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
	// The chart of the demo's data: a golden rendering, checked in and
	// viewable (issue 14 item 6); go test . -update-demo-chart rewrites it.
	golden := filepath.Join("testdata", "demo-chart.golden.png")
	if *updateDemoChart {
		if err := os.WriteFile(golden, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(png, want) {
		t.Errorf("the demo's chart differs from %s (go test . -run TestDemo -update-demo-chart, then look at it)", golden)
	}
}

var updateDemoChart = flag.Bool("update-demo-chart", false, "rewrite testdata/demo-chart.golden.png")
