package handlers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/handlers"
	"keycard/internal/adapt"
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

// faultStore makes one armed Update (after skip others) fail in one of two
// ways: "lost ack" commits and then reports an error, as a PostgreSQL
// COMMIT whose answer was lost; "down" fails without running the body, as
// a database that cannot be reached.
type faultStore struct {
	handlers.Store
	mu    sync.Mutex
	mode  string // "", "lost ack" or "down"
	skip  int
	fired bool
}

func (s *faultStore) arm(mode string, skip int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode, s.skip = mode, skip
}

func (s *faultStore) Update(now time.Time, fn func(handlers.Tx) error) error {
	s.mu.Lock()
	mode := s.mode
	if mode != "" && s.skip > 0 {
		s.skip--
		mode = ""
	}
	if mode != "" {
		s.mode, s.fired = "", true
	}
	s.mu.Unlock()
	unavailable := access.Wrap(access.CodeUnavailable, errors.New("connection reset by peer"), "keycard is unavailable, try again in a minute.")
	switch mode {
	case "down":
		return unavailable
	case "lost ack":
		if err := s.Store.Update(now, fn); err != nil {
			return err
		}
		return unavailable
	}
	return s.Store.Update(now, fn)
}

// suppressedSummaries returns the details of bob's delegation-refusal
// summaries in the audit log.
func suppressedSummaries(e *env) []string {
	var out []string
	for _, ev := range e.allEvents() {
		if ev.Type == access.EvDelegationRefused && strings.Contains(ev.Detail, `"suppressed"`) {
			out = append(out, ev.Detail)
		}
	}
	return out
}

// A suppressed-refusal count is written once, whatever the store does
// around it (review findings): a refusal whose commit was acknowledged as
// failed but did commit keeps its admission (its summary is not written a
// second time by the flush), and a flush the database refuses keeps its
// counts for the next flush.
func TestRefusalSummaryWrittenOnce(t *testing.T) {
	for _, c := range []struct {
		name string
		// fault arms the store after bob's first window closed.
		fault func(e *env, fs *faultStore)
	}{
		{"the next refusal's commit answer is lost", func(e *env, fs *faultStore) {
			fs.arm("lost ack", 1) // Identify's own transaction goes first
			if _, err := e.delegate("bob@example.com", "frank@example.com", "2026-11-09", nil, ""); access.CodeOf(err) != access.CodeUnavailable {
				e.t.Fatalf("refusal with a lost commit answer: %v", err)
			}
		}},
		{"the first flush finds the database down", func(e *env, fs *faultStore) {
			fs.arm("down", 0)
			if err := e.svc.FlushRefusals(false); access.CodeOf(err) != access.CodeUnavailable {
				e.t.Fatalf("flush with the database down: %v", err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustDelegate("frank@example.com", "carol@example.com", "2026-11-09")
			fs := &faultStore{Store: adapt.Store(e.db)}
			e.svc = handlers.New(fs, e.conns, e.set, e.clock, handlers.Options{BackoffBase: time.Second, BackoffMax: time.Minute})
			for i := 0; i < handlers.RefusalBurst+2; i++ {
				if _, err := e.delegate("bob@example.com", "frank@example.com", "2026-11-09", nil, ""); access.CodeOf(err) != access.CodeForbidden {
					t.Fatalf("refusal %d: %v", i+1, err)
				}
			}
			e.clock.Advance(handlers.RefusalWindow)
			c.fault(e, fs)
			if !fs.fired {
				t.Fatal("the armed fault never fired")
			}
			if err := e.svc.FlushRefusals(true); err != nil {
				t.Fatal(err)
			}
			if got := suppressedSummaries(e); len(got) != 1 || !strings.Contains(got[0], `"suppressed":"2"`) {
				t.Fatalf("summaries of bob's 2 suppressed refusals: %q; want exactly one", got)
			}
		})
	}
}
