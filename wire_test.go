package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
	"keycard/internal/fakeclock"
	"keycard/policy"
	"keycard/store"
)

// A policy reload rebuilds the scoped connectors: a connector the reload
// adds is built and works, a scope it narrows holds at once, and a pending
// request whose policy it removed is never approved or provisioned (issue
// 10, "Medium — a policy reload does not reach pending requests or the
// scope ceiling").
func TestReloadRebuildsConnectors(t *testing.T) {
	ctx := context.Background()
	orig, err := os.ReadFile("docs/examples/policy-static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse("policy.yaml", orig)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "keycard.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	conns, _, err := buildConnectors(set, Config{}, db, clock)
	if err != nil {
		t.Fatal(err)
	}
	svc := handlers.New(adapt.Store(db), conns, set, clock, handlers.Options{Reconnect: reconnect(conns, Config{}, db, clock)})
	r, err := svc.Submit(ctx, handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "prod-db-admin", Duration: time.Hour, Justification: "INC-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decide(ctx, handlers.DecideInput{RequestID: r.ID, Step: 0, SlackID: "UBOB", Email: "bob@example.com", Approve: true}); err != nil {
		t.Fatal(err)
	}

	// The reload: prod-* leaves lab's scope, prod-db-admin is deleted, and
	// a second static connector with its own policy is added.
	text := strings.Replace(string(orig), `groups: ["app-*", "prod-*"]`, `groups: ["app-*"]`, 1)
	start, end := strings.Index(text, "  - name: prod-db-admin\n"), strings.Index(text, "  - name: grafana-viewer\n")
	text = text[:start] + text[end:]
	text = strings.Replace(text, "\nprofiles:", `
  lab2:
    type: static
    scope:
      groups: ["wiki-*"]
    users:
      - {email: ann@example.com, name: Ann Lee}
    groups:
      - {name: wiki-editors, members: []}

profiles:`, 1)
	text = strings.Replace(text, "\nauditors:", `
  - name: wiki-editor
    app: Wiki
    role: Editor
    group: wiki-editors
    connector: lab2
    eligible: [everyone]
    approval: auto
    duration: {default: 1h, max: 2h}
    justification: optional

auditors:`, 1)
	next, err := svc.ReloadPolicy(func() (*policy.Set, error) { return policy.Parse("policy.yaml", []byte(text)) }, "SIGHUP")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Policy() != next {
		t.Fatal("the reload did not take effect")
	}

	// The narrowed scope holds at once.
	lab, _ := conns.Provisioner("lab")
	if _, err := lab.AddMember(ctx, "prod-db-admins", "ann"); access.CodeOf(err) != access.CodeOutOfScope {
		t.Fatalf("add to prod-db-admins after the scope was narrowed: %v", err)
	}
	// The pending prod request is refused and never provisioned.
	_, err = svc.Decide(ctx, handlers.DecideInput{RequestID: r.ID, Step: 1, SlackID: "UCAROL", Email: "carol@example.com", Approve: true})
	if access.CodeOf(err) != access.CodeConflict {
		t.Fatalf("carol's approval after the reload: %v", err)
	}
	if _, err := svc.RunOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Get(r.ID); got.State != access.StateCancelled {
		t.Fatalf("the prod request is %s, want cancelled", got.State)
	}
	// The connector added by the reload is built and provisions.
	w, err := svc.Submit(ctx, handlers.SubmitInput{SlackID: "UANN", Email: "ann@example.com", Policy: "wiki-editor", Duration: time.Hour})
	if err != nil {
		t.Fatalf("request through the connector the reload added: %v", err)
	}
	if _, err := svc.RunOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Get(w.ID); got.State != access.StateActive {
		t.Fatalf("wiki-editor grant is %s (%s), want active", got.State, got.FailReason)
	}
}
