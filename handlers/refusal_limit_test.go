package handlers_test

import (
	"strings"
	"testing"

	"keycard/access"
	"keycard/handlers"
)

// TestRefusalAuditIsRateLimited: one person's refused exports are audited up
// to RefusalBurst per RefusalWindow; the rest are counted and summed up in
// one event when the window has closed, so clicking cannot flood the chain
// (issue 10). Another person is not affected.
func TestRefusalAuditIsRateLimited(t *testing.T) {
	e := newEnv(t)
	refusals := func(actor string) (n int, summary string) {
		t.Helper()
		if err := e.svc.Events(0, func(ev access.Event) error {
			if ev.Type == access.EvExportRefused && ev.Actor == actor {
				n++
				if strings.Contains(ev.Detail, "suppressed") {
					summary = ev.Detail
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n, summary
	}
	for range handlers.RefusalBurst + 25 {
		if err := e.svc.RecordExportRefused("mallory@example.com", "all", "not an auditor"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.RecordExportRefused("ann@example.com", "all", "not an auditor"); err != nil {
		t.Fatal(err)
	}
	if n, _ := refusals("mallory@example.com"); n != handlers.RefusalBurst {
		t.Fatalf("%d refusals audited in one window, want %d", n, handlers.RefusalBurst)
	}
	if n, _ := refusals("ann@example.com"); n != 1 {
		t.Fatalf("ann's refusal: %d events, want 1", n)
	}
	e.clock.Advance(handlers.RefusalWindow)
	if err := e.svc.RecordExportRefused("mallory@example.com", "all", "not an auditor"); err != nil {
		t.Fatal(err)
	}
	n, summary := refusals("mallory@example.com")
	if n != handlers.RefusalBurst+2 || !strings.Contains(summary, `"suppressed":"25"`) {
		t.Fatalf("after the window: %d events (want %d), summary %q", n, handlers.RefusalBurst+2, summary)
	}
	e.verify()
}
