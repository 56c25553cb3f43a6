package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

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

// Issue 10 review item 8: refusals appended inside a handler's own
// transaction (a forged Approve click) are limited like the others, and a
// suppressed count is audited by FlushRefusals once the window closes (or
// at shutdown), even when the person never refuses again.
func TestRefusedClicksAreRateLimitedAndFlushed(t *testing.T) {
	e := newEnv(t)
	r, err := e.submit("ann@example.com", "prod-db-admin", 2*time.Hour, "incident")
	if err != nil {
		t.Fatal(err)
	}
	count := func() (n int, summary string) {
		t.Helper()
		if err := e.svc.Events(0, func(ev access.Event) error {
			if ev.Type == access.EvDecisionRefused && ev.Actor == "mallory@example.com" {
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
	for range 50 {
		_, err := e.decide(r.ID, 0, "mallory@example.com", true, "")
		wantCode(t, err, access.CodeForbidden)
	}
	if n, _ := count(); n != handlers.RefusalBurst {
		t.Fatalf("%d forged clicks audited, want %d", n, handlers.RefusalBurst)
	}
	// Still inside the window: nothing to flush yet.
	if err := e.svc.FlushRefusals(false); err != nil {
		t.Fatal(err)
	}
	if n, _ := count(); n != handlers.RefusalBurst {
		t.Fatalf("flushed inside the window: %d events", n)
	}
	e.clock.Advance(handlers.RefusalWindow)
	if err := e.svc.FlushRefusals(false); err != nil {
		t.Fatal(err)
	}
	n, summary := count()
	if n != handlers.RefusalBurst+1 || !strings.Contains(summary, `"suppressed":"40"`) {
		t.Fatalf("after the window: %d events, summary %q", n, summary)
	}
	// At shutdown an open window's count is flushed too.
	for range handlers.RefusalBurst + 3 {
		_, err := e.decide(r.ID, 0, "mallory@example.com", true, "")
		wantCode(t, err, access.CodeForbidden)
	}
	if err := e.svc.FlushRefusals(true); err != nil {
		t.Fatal(err)
	}
	if n, summary := count(); n != 2*handlers.RefusalBurst+2 || !strings.Contains(summary, `"suppressed":"3"`) {
		t.Fatalf("at shutdown: %d events, summary %q", n, summary)
	}
	e.verify()
}

// Issue 10 review item 8: one Slack user whose email leads to another IdP
// account cannot flood the chain and the security channel with
// identity.mismatch alerts by clicking or editing their profile; the rest
// are counted and summed up once the window closes.
func TestIdentityMismatchAlertsAreRateLimited(t *testing.T) {
	e := newEnv(t)
	if _, err := e.submit("ann@example.com", "grafana-viewer", 0, ""); err != nil {
		t.Fatal(err)
	}
	e.idp.mu.Lock()
	old := e.idp.users["00uann"]
	delete(e.idp.users, "00uann")
	old.ID = "00uimpostor"
	e.idp.users[old.ID] = old
	e.idp.mu.Unlock()
	for range 20 {
		err := e.svc.Recheck(context.Background(), "UANN", "ann@example.com")
		wantCode(t, err, access.CodeIdentityMismatch)
	}
	count := func() (n int, summary string) {
		for _, ev := range e.allEvents() {
			if ev.Type == access.EvIdentityMismatch {
				n++
				if strings.Contains(ev.Detail, "suppressed") {
					summary = ev.Detail
				}
			}
		}
		return n, summary
	}
	if n, _ := count(); n != handlers.MismatchBurst {
		t.Fatalf("%d mismatch alerts, want %d", n, handlers.MismatchBurst)
	}
	e.clock.Advance(handlers.MismatchWindow)
	if err := e.svc.FlushRefusals(false); err != nil {
		t.Fatal(err)
	}
	if n, summary := count(); n != handlers.MismatchBurst+1 || !strings.Contains(summary, `"suppressed":"17"`) || !strings.Contains(summary, `"slack_id":"UANN"`) {
		t.Fatalf("after the window: %d events, summary %q", n, summary)
	}
	e.verify()
}

func (e *env) allEvents() []access.Event {
	e.t.Helper()
	var out []access.Event
	if err := e.svc.Events(0, func(ev access.Event) error { out = append(out, ev); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return out
}
