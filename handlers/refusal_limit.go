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
// "suppressed") at that person's first refusal after the window closes.
const (
	RefusalBurst  = 10
	RefusalWindow = time.Minute
)

type refusalWindow struct {
	start      time.Time
	n          int // refusals in the window, audited or not
	suppressed int
}

type refusalLimiter struct {
	mu  sync.Mutex
	per map[string]*refusalWindow
}

// admit reports whether a refusal by actor at now is audited, and the
// number suppressed in actor's previous window (to audit as a summary)
// when that window has closed.
func (l *refusalLimiter) admit(actor string, now time.Time) (ok bool, summary int, since time.Time) {
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
	if w.n > RefusalBurst {
		w.suppressed++
		return false, summary, since
	}
	return true, summary, since
}

func isRefusal(t access.EventType) bool {
	return t == access.EvDecisionRefused || t == access.EvExportRefused
}

// auditRefusal appends a refusal event within the per-person limit, with the
// summary of the previous window first, in one transaction.
func (s *Service) auditRefusal(e access.Event) error {
	ok, summary, since := s.refusals.admit(e.Actor, s.clock.Now())
	if !ok {
		s.log.Warn("refusal not audited: over the per-person limit", "actor", e.Actor, "type", e.Type, "limit", RefusalBurst, "per", RefusalWindow)
	}
	if !ok && summary == 0 {
		return nil
	}
	return s.update(func(tx Tx) error {
		if summary > 0 {
			if _, err := tx.Append(access.Event{Type: e.Type, Actor: e.Actor, Subject: e.Actor,
				Detail: encodeDetail(map[string]string{"suppressed": strconv.Itoa(summary), "window_start": since.UTC().Format(time.RFC3339),
					"why": "more refusals by this person than the audit rate limit allows; counted, not each recorded"})}); err != nil {
				return err
			}
		}
		if !ok {
			return nil
		}
		_, err := tx.Append(e)
		return err
	})
}
