package handlers

import (
	"strconv"
	"sync"
	"time"

	"keycard/access"
)

// Refused clicks and exports are audited, but one person must not be able
// to flood the hash chain and the disk by clicking (issue 10): at most
// RefusalBurst refusal events per person per RefusalWindow are appended;
// the rest are counted, logged, and summed up in one event (detail
// "suppressed") at that person's first refusal after the window closes, or
// by the service loop (FlushRefusals) once the window has closed, and at
// shutdown, so a count is not lost when the person never refuses again.
const (
	RefusalBurst  = 10
	RefusalWindow = time.Minute
)

type refusalWindow struct {
	start      time.Time
	n          int // refusals in the window, audited or not
	suppressed int
	typ        access.EventType // the last refusal's type, for the summary
}

type refusalLimiter struct {
	mu  sync.Mutex
	per map[string]*refusalWindow
}

// admit reports whether a refusal by actor at now is audited, and the
// number suppressed in actor's previous window (to audit as a summary)
// when that window has closed.
func (l *refusalLimiter) admit(actor string, typ access.EventType, now time.Time) (ok bool, summary int, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[string]*refusalWindow{}
	}
	if len(l.per) > 10000 { // bounded memory: forget closed windows with nothing to report
		for k, w := range l.per {
			if now.Sub(w.start) >= RefusalWindow && w.suppressed == 0 {
				delete(l.per, k)
			}
		}
	}
	w := l.per[actor]
	if w == nil || now.Sub(w.start) >= RefusalWindow || now.Before(w.start) {
		if w != nil {
			summary, since = w.suppressed, w.start
		}
		w = &refusalWindow{start: now}
		l.per[actor] = w
	}
	w.n++
	w.typ = typ
	if w.n > RefusalBurst {
		w.suppressed++
		return false, summary, since
	}
	return true, summary, since
}

// pendingSummary is one person's count of suppressed refusals to audit.
type pendingSummary struct {
	actor string
	typ   access.EventType
	n     int
	since time.Time
}

// drain takes the suppressed counts of closed windows (all windows when
// all is set, at shutdown) and forgets those windows.
func (l *refusalLimiter) drain(now time.Time, all bool) []pendingSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []pendingSummary
	for k, w := range l.per {
		if !all && now.Sub(w.start) < RefusalWindow && !now.Before(w.start) {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, pendingSummary{actor: k, typ: w.typ, n: w.suppressed, since: w.start})
		}
		delete(l.per, k)
	}
	return out
}

func isRefusal(t access.EventType) bool {
	return t == access.EvDecisionRefused || t == access.EvExportRefused
}

func summaryEvent(typ access.EventType, actor string, n int, since time.Time) access.Event {
	return access.Event{Type: typ, Actor: actor, Subject: actor,
		Detail: encodeDetail(map[string]string{"suppressed": strconv.Itoa(n), "window_start": since.UTC().Format(time.RFC3339),
			"why": "more refusals by this person than the audit rate limit allows; counted, not each recorded"})}
}

// refusalTicket is one refusal's admission under the per-person limit,
// decided once: a transaction that runs again (Batch) does not count the
// refusal twice.
type refusalTicket struct {
	done, ok bool
	summary  int
	since    time.Time
}

// admitRefusal decides t once and reports whether anything is to be
// appended.
func (s *Service) admitRefusal(t *refusalTicket, e access.Event) bool {
	if !t.done {
		t.ok, t.summary, t.since = s.refusals.admit(e.Actor, e.Type, s.clock.Now())
		t.done = true
		if !t.ok {
			s.log.Warn("refusal not audited: over the per-person limit", "actor", e.Actor, "type", e.Type, "limit", RefusalBurst, "per", RefusalWindow)
		}
	}
	return t.ok || t.summary > 0
}

// appendRefusal appends a refusal event inside the caller's transaction,
// within the per-person limit, with the summary of the person's previous
// window first. Handlers that refuse a click inside their own transaction
// use it instead of tx.Append, so every refusal path is limited.
func (s *Service) appendRefusal(tx Tx, t *refusalTicket, e access.Event) error {
	s.admitRefusal(t, e)
	if t.summary > 0 {
		if _, err := tx.Append(summaryEvent(e.Type, e.Actor, t.summary, t.since)); err != nil {
			return err
		}
	}
	if !t.ok {
		return nil
	}
	_, err := tx.Append(e)
	return err
}

// auditRefusal appends a refusal event within the per-person limit, with the
// summary of the previous window first, in one transaction.
func (s *Service) auditRefusal(e access.Event) error {
	var t refusalTicket
	if !s.admitRefusal(&t, e) {
		return nil // nothing to write: no transaction for a suppressed click
	}
	return s.update(func(tx Tx) error { return s.appendRefusal(tx, &t, e) })
}

// FlushRefusals audits the suppressed counts of closed refusal windows
// (every window when shutdown is set), so a count is recorded even when
// the person never refuses again or keycard stops. Service.Run calls it on
// each pass and when it ends.
func (s *Service) FlushRefusals(shutdown bool) error {
	pending := s.refusals.drain(s.clock.Now(), shutdown)
	if len(pending) == 0 {
		return nil
	}
	return s.update(func(tx Tx) error {
		for _, p := range pending {
			if _, err := tx.Append(summaryEvent(p.typ, p.actor, p.n, p.since)); err != nil {
				return err
			}
		}
		return nil
	})
}
