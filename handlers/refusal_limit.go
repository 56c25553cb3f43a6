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

// An identity mismatch is audited (and so alerted) at most MismatchBurst
// times per Slack user per MismatchWindow: a person who edits their Slack
// profile (user_change) or clicks again cannot flood the security channel.
const (
	MismatchBurst  = 3
	MismatchWindow = time.Hour
)

type refusalWindow struct {
	start      time.Time
	n          int // refusals in the window, audited or not
	suppressed int
	last       access.Event // the last one's type, actor and subject, for the summary
}

// refusalLimiter counts events per key (a person's email, a Slack id) in
// fixed windows. Zero burst/window mean RefusalBurst/RefusalWindow; keyName,
// when set, names the key in the summary's detail.
type refusalLimiter struct {
	burst   int
	window  time.Duration
	keyName string

	mu  sync.Mutex
	per map[string]*refusalWindow
	// kept are summaries drained by an admission whose refusal did not
	// commit (undo): drain hands them out with the closed windows.
	kept []pendingSummary
}

func (l *refusalLimiter) limits() (int, time.Duration) {
	if l.burst <= 0 || l.window <= 0 {
		return RefusalBurst, RefusalWindow
	}
	return l.burst, l.window
}

// admit reports whether a refusal by actor at now is audited, and the
// number suppressed in actor's previous window (to audit as a summary)
// when that window has closed. start is the window the refusal counts in.
func (l *refusalLimiter) admit(actor string, e access.Event, now time.Time) (ok bool, summary int, since, start time.Time) {
	burst, window := l.limits()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[string]*refusalWindow{}
	}
	if len(l.per) > 10000 { // bounded memory: forget closed windows with nothing to report
		for k, w := range l.per {
			if now.Sub(w.start) >= window && w.suppressed == 0 {
				delete(l.per, k)
			}
		}
	}
	w := l.per[actor]
	if w == nil || now.Sub(w.start) >= window || now.Before(w.start) {
		if w != nil {
			summary, since = w.suppressed, w.start
		}
		w = &refusalWindow{start: now}
		l.per[actor] = w
	}
	w.n++
	w.last = access.Event{Type: e.Type, Actor: e.Actor, Subject: e.Subject}
	if w.n > burst {
		w.suppressed++
		return false, summary, since, w.start
	}
	return true, summary, since, w.start
}

// undo takes back t's admission, whose refusal was not committed: a
// transaction the store ran again and whose committed attempt did not
// refuse, or one that failed. The refusal no longer counts in its window
// (if that window is still current), and the previous window's summary the
// admission drained is kept for drain, so FlushRefusals records it: it is
// no longer anywhere else.
func (l *refusalLimiter) undo(t *refusalTicket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.per[t.key]; w != nil && w.start.Equal(t.window) && w.n > 0 {
		w.n--
		if !t.ok && w.suppressed > 0 {
			w.suppressed--
		}
	}
	if t.summary.n > 0 {
		l.kept = append(l.kept, t.summary)
	}
}

// keep holds p for the next drain.
func (l *refusalLimiter) keep(p pendingSummary) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kept = append(l.kept, p)
}

// pendingSummary is one person's count of suppressed refusals to audit.
type pendingSummary struct {
	key   string
	last  access.Event
	n     int
	since time.Time
}

// drain takes the suppressed counts of closed windows (all windows when
// all is set, at shutdown) and forgets those windows.
func (l *refusalLimiter) drain(now time.Time, all bool) []pendingSummary {
	_, window := l.limits()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.kept
	l.kept = nil
	for k, w := range l.per {
		if !all && now.Sub(w.start) < window && !now.Before(w.start) {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, pendingSummary{key: k, last: w.last, n: w.suppressed, since: w.start})
		}
		delete(l.per, k)
	}
	return out
}

func isRefusal(t access.EventType) bool {
	return t == access.EvDecisionRefused || t == access.EvExportRefused || t == access.EvDelegationRefused
}

// summary is the event that records p's suppressed count.
func (l *refusalLimiter) summary(p pendingSummary) access.Event {
	if l.keyName == "" { // a refusal: about the person who refused
		return access.Event{Type: p.last.Type, Actor: p.key, Subject: p.key,
			Detail: encodeDetail(map[string]string{"suppressed": strconv.Itoa(p.n), "window_start": p.since.UTC().Format(time.RFC3339),
				"why": "more refusals by this person than the audit rate limit allows; counted, not each recorded"})}
	}
	return access.Event{Type: p.last.Type, Actor: p.last.Actor, Subject: p.last.Subject,
		Detail: encodeDetail(map[string]string{l.keyName: p.key, "suppressed": strconv.Itoa(p.n), "window_start": p.since.UTC().Format(time.RFC3339),
			"why": "the same event repeated more often than the audit rate limit allows; counted, not each recorded"})}
}

// refusalTicket is one refusal's admission under the per-person limit,
// decided once: a transaction that runs again (Batch, a PostgreSQL
// serialization retry) does not count the refusal twice. A transaction
// that may refuse runs through updateTicketed, which takes the admission
// back when the refusal is not what committed.
type refusalTicket struct {
	done, ok bool
	summary  pendingSummary

	limiter *refusalLimiter
	key     string
	window  time.Time // the start of the window the refusal counted in
	used    bool      // the current attempt appended through the ticket
}

// admitRefusal decides t once and reports whether anything is to be
// appended.
func (s *Service) admitRefusal(t *refusalTicket, e access.Event) bool {
	return s.admitLimited(&s.refusals, e.Actor, t, e)
}

// admitLimited decides t once under l for key.
func (s *Service) admitLimited(l *refusalLimiter, key string, t *refusalTicket, e access.Event) bool {
	if !t.done {
		var n int
		var since time.Time
		t.ok, n, since, t.window = l.admit(key, e, s.clock.Now())
		t.done, t.limiter, t.key = true, l, key
		if n > 0 {
			t.summary = pendingSummary{key: key, last: e, n: n, since: since}
		}
		if !t.ok {
			burst, window := l.limits()
			s.log.Warn("event not audited: over its rate limit", "key", key, "type", e.Type, "limit", burst, "per", window)
		}
	}
	return t.ok || t.summary.n > 0
}

// appendLimited appends e inside tx under l for key, with the summary of
// key's previous window first.
func (s *Service) appendLimited(tx Tx, l *refusalLimiter, key string, t *refusalTicket, e access.Event) error {
	s.admitLimited(l, key, t, e)
	t.used = true
	if t.summary.n > 0 {
		if _, err := tx.Append(l.summary(t.summary)); err != nil {
			return err
		}
	}
	if !t.ok {
		return nil
	}
	_, err := tx.Append(e)
	return err
}

// appendRefusal appends a refusal event inside the caller's transaction,
// within the per-person limit, with the summary of the person's previous
// window first. Handlers that refuse a click inside their own transaction
// use it instead of tx.Append, so every refusal path is limited.
func (s *Service) appendRefusal(tx Tx, t *refusalTicket, e access.Event) error {
	return s.appendLimited(tx, &s.refusals, e.Actor, t, e)
}

// updateTicketed is update for a transaction that may refuse through t
// (appendRefusal, appendLimited). The store may run fn more than once; t is
// decided at the first refusal and kept, so when the attempt that commits
// did not refuse (or nothing commits), the admission is taken back:
// the person's window does not count a refusal that is not in the log, and
// the summary of their previous window it drained is recorded by
// FlushRefusals instead of being lost.
//
// Taken back only when the refusal is surely not in the log: the attempt
// that committed did not refuse, or the body itself failed (so it rolled
// back). A commit whose outcome is unknown — the body succeeded but the
// store reports an error, as when the connection drops at COMMIT — keeps
// the admission: a summary counted twice would overstate the evidence.
func (s *Service) updateTicketed(t *refusalTicket, fn func(Tx) error) error {
	var a attempt
	err := s.update(a.run(func(tx Tx) error {
		t.used = false
		return fn(tx)
	}))
	if t.done && ((err == nil && !t.used) || a.rolledBack(err)) {
		t.limiter.undo(t)
	}
	return err
}

// attempt watches a transaction body the store runs, to tell after the
// store returned an error whether the body's writes are surely not in it:
// the body never ran, or its last run failed (so it rolled back). A body
// that succeeded while the store still reports an error may have been
// committed (the connection dropped at COMMIT).
type attempt struct {
	ran     bool
	bodyErr error
}

func (a *attempt) run(fn func(Tx) error) func(Tx) error {
	return func(tx Tx) error {
		a.ran = true
		a.bodyErr = fn(tx)
		return a.bodyErr
	}
}

func (a *attempt) rolledBack(err error) bool { return err != nil && (!a.ran || a.bodyErr != nil) }

// auditRefusal appends a refusal event within the per-person limit, with the
// summary of the previous window first, in one transaction.
func (s *Service) auditRefusal(e access.Event) error {
	var t refusalTicket
	if !s.admitRefusal(&t, e) {
		return nil // nothing to write: no transaction for a suppressed click
	}
	return s.updateTicketed(&t, func(tx Tx) error { return s.appendRefusal(tx, &t, e) })
}

// FlushRefusals audits the suppressed counts of closed refusal windows
// (every window when shutdown is set), so a count is recorded even when
// the person never refuses again or keycard stops. Service.Run calls it on
// each pass and when it ends.
func (s *Service) FlushRefusals(shutdown bool) error {
	type drained struct {
		l *refusalLimiter
		p pendingSummary
	}
	var out []drained
	for _, l := range []*refusalLimiter{&s.refusals, &s.mismatches} {
		for _, p := range l.drain(s.clock.Now(), shutdown) {
			out = append(out, drained{l, p})
		}
	}
	if len(out) == 0 {
		return nil
	}
	var a attempt
	err := s.update(a.run(func(tx Tx) error {
		for _, d := range out {
			if _, err := tx.Append(d.l.summary(d.p)); err != nil {
				return err
			}
		}
		return nil
	}))
	if a.rolledBack(err) {
		// Surely not written (the body failed, so it rolled back): the
		// counts wait for the next flush instead of being lost. After an
		// unknown commit outcome they are not kept, as in updateTicketed.
		for _, d := range out {
			d.l.keep(d.p)
		}
	}
	return err
}
