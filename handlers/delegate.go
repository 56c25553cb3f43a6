package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"keycard/access"
)

// Delegation and out-of-office (issue 15 item 2; docs/policy.md
// "Delegation"). `/access delegate @person until YYYY-MM-DD [reason]` lets
// person decide in the delegator's place until the end of that day; the
// notifier sends them the delegator's approval DMs, and Decide accepts their
// click for a step the delegator is a candidate of, recording on the step
// whom they decided for and under which delegation.
//
// The rules, each a refusal with a clear message (audited as
// delegation.refused or decision.refused):
//   - one delegation in force per delegator; a new one replaces it;
//   - nobody delegates to themselves, and the delegate must be a known,
//     active directory user;
//   - no chains: nobody who is someone's delegate may delegate away, and
//     nobody who has delegated away may be made a delegate; at the click, only
//     a delegation straight from a candidate counts;
//   - the end date is today or later and at most MaxDelegationDays after
//     today, read in the delegator's time zone;
//   - at the click a delegate never decides their own request, nor a step
//     after they (or the person they act for) decided an earlier one.

// Delegation documents (Tx.PutDoc kinds): every delegation ever made, and
// the index of those not yet ended, by delegator.
const (
	DocDelegation        = "delegation"          // id DLG-<n>
	docDelegationInForce = "delegation.in_force" // id: the delegator's lowercase email; value: the delegation id
	delegationSeqCursor  = "delegation.seq"      // the last n of DLG-<n>
	MaxDelegationDays    = 90                    // the latest end date is today + 90 days
	MaxDelegationReason  = 300                   // characters
)

// DelegateInput is a /access delegate command: the delegator (the Slack
// user and their profile email), the delegate by email, the end date as
// typed and the time zone it is read in.
type DelegateInput struct {
	SlackID, Email string
	ToEmail        string
	Until          string         // YYYY-MM-DD, the last day of the delegation
	Loc            *time.Location // the delegator's Slack time zone; nil means UTC
	Reason         string
}

// DelegationEnd reads date (YYYY-MM-DD) as the last day of a delegation in
// loc: the delegation runs to the end of that day, so it ends at midnight
// at the start of the next day in loc. It refuses a date that is not a
// date, that is before today in loc, or that is more than MaxDelegationDays
// after today.
func DelegationEnd(date string, loc *time.Location, now time.Time) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	d, err := time.ParseInLocation(time.DateOnly, strings.TrimSpace(date), loc)
	if err != nil {
		return time.Time{}, access.Errorf(access.CodeInvalid, "%q is not a date; write the last day of the delegation as YYYY-MM-DD, for example %s.", truncateRunes(date, 40), now.In(loc).AddDate(0, 0, 7).Format(time.DateOnly))
	}
	y, m, dd := now.In(loc).Date()
	today := time.Date(y, m, dd, 0, 0, 0, 0, loc)
	if d.Before(today) {
		return time.Time{}, access.Errorf(access.CodeInvalid, "%s is in the past (today is %s in %s); a delegation ends today or later.", date, today.Format(time.DateOnly), loc)
	}
	if latest := today.AddDate(0, 0, MaxDelegationDays); d.After(latest) {
		return time.Time{}, access.Errorf(access.CodeInvalid, "%s is more than %d days ahead; the latest end date is %s. Delegate again when it ends.", date, MaxDelegationDays, latest.Format(time.DateOnly))
	}
	return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc), nil
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// Delegate creates the delegator's delegation (replacing the one in force,
// if any) after the rules above. A refusal is audited (delegation.refused).
func (s *Service) Delegate(ctx context.Context, in DelegateInput) (access.Delegation, error) {
	u, err := s.identifyActor(ctx, in.SlackID, in.Email)
	if err != nil {
		return access.Delegation{}, err
	}
	from := personOf(u, in.SlackID)
	refuse := func(err error) (access.Delegation, error) {
		if aerr := s.auditRefusal(delegationRefusal(from.Email, in.ToEmail, err)); aerr != nil {
			return access.Delegation{}, aerr
		}
		return access.Delegation{}, err
	}
	reason := strings.TrimSpace(in.Reason)
	if n := utf8.RuneCountInString(reason); n > MaxDelegationReason {
		return refuse(access.Errorf(access.CodeInvalid, "The reason is %d characters long; the limit is %d.", n, MaxDelegationReason))
	}
	until, err := DelegationEnd(in.Until, in.Loc, s.clock.Now())
	if err != nil {
		return refuse(err)
	}
	if strings.TrimSpace(in.ToEmail) == "" {
		return refuse(access.Errorf(access.CodeInvalid, "Name your delegate: /access delegate @person until YYYY-MM-DD [reason]."))
	}
	if strings.EqualFold(strings.TrimSpace(in.ToEmail), u.Email) {
		return refuse(access.Errorf(access.CodeForbidden, "You cannot delegate to yourself; name someone who decides while you are away."))
	}
	dir, err := s.directory()
	if err != nil {
		return access.Delegation{}, err
	}
	tu, err := dir.UserByEmail(ctx, strings.TrimSpace(in.ToEmail))
	if access.CodeOf(err) == access.CodeNotFound {
		return refuse(access.Errorf(access.CodeUnknownUser, "The identity provider has no user with the email %s, so they cannot be your delegate.", in.ToEmail))
	}
	if err != nil {
		return access.Delegation{}, access.Wrap(access.CodeOf(err), err, "The identity provider did not answer; try again in a minute.")
	}
	if !tu.Status.CanRequest() {
		return refuse(access.Errorf(access.CodeForbidden, "%s's identity-provider account is %s, so they cannot be your delegate.", tu.Email, strings.ToLower(string(tu.Status))))
	}
	to := tu.Person()
	if to.Same(from) {
		return refuse(access.Errorf(access.CodeForbidden, "You cannot delegate to yourself; name someone who decides while you are away."))
	}
	var d access.Delegation
	err = s.updateDelegations(from.Email, to.Email, func(tx Tx, now time.Time, dels []access.Delegation) (refusal, err error) {
		var mine *access.Delegation
		for i := range dels {
			o := &dels[i]
			if !o.InForce(now) {
				if o.From.Same(from) && !o.Until.After(now) {
					// Its expiry was not recorded yet, and the index entry
					// is about to be taken: record it now, at its end.
					if err := endDelegation(tx, o, access.DelegationEndExpired, access.ActorScheduler, o.Until); err != nil {
						return nil, err
					}
				}
				continue
			}
			switch {
			case o.To.Same(from):
				return access.Errorf(access.CodeForbidden, "You are %s's delegate until %s, so you cannot delegate away (delegations do not chain). Ask %s to choose another delegate first.",
					o.From.Label(), o.Until.UTC().Format(time.RFC3339), o.From.Label()), nil
			case o.From.Same(to):
				return access.Errorf(access.CodeForbidden, "%s has delegated to %s until %s, so they cannot be your delegate (delegations do not chain). Choose someone who is in.",
					to.Label(), o.To.Label(), o.Until.UTC().Format(time.RFC3339)), nil
			case o.From.Same(from):
				mine = o
			}
		}
		if mine != nil {
			if err := endDelegation(tx, mine, access.DelegationEndReplaced, from.Email, now); err != nil {
				return nil, err
			}
		}
		seq, err := tx.Cursor(delegationSeqCursor)
		if err != nil {
			return nil, err
		}
		n, _ := strconv.ParseUint(seq, 10, 64)
		n++
		if err := tx.SetCursor(delegationSeqCursor, strconv.FormatUint(n, 10)); err != nil {
			return nil, err
		}
		d = access.Delegation{ID: "DLG-" + strconv.FormatUint(n, 10), From: from, To: to, Reason: reason, CreatedAt: now, Until: until.UTC()}
		if err := tx.PutDoc(DocDelegation, d.ID, d); err != nil {
			return nil, err
		}
		if err := tx.PutDoc(docDelegationInForce, strings.ToLower(from.Email), d.ID); err != nil {
			return nil, err
		}
		_, err = tx.Append(delegationEvent(access.EvDelegationCreated, from.Email, &d))
		return nil, err
	})
	if err != nil {
		return access.Delegation{}, err
	}
	return d, nil
}

// EndDelegation ends the delegator's delegation in force now
// (`/access delegate off`).
func (s *Service) EndDelegation(ctx context.Context, slackID, email string) (access.Delegation, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return access.Delegation{}, err
	}
	var d access.Delegation
	err = s.updateDelegations(u.Email, "", func(tx Tx, now time.Time, dels []access.Delegation) (refusal, err error) {
		for i := range dels {
			if dels[i].From.Same(u.Person()) && dels[i].InForce(now) {
				d = dels[i]
				return nil, endDelegation(tx, &d, access.DelegationEndOff, u.Email, now)
			}
		}
		return access.Errorf(access.CodeNotFound, "You have no delegation in force, so there is nothing to turn off."), nil
	})
	if err != nil {
		return access.Delegation{}, err
	}
	return d, nil
}

// updateDelegations runs fn in one transaction over the delegations the
// index holds (some may be past their end: InForce at now decides). A
// refusal fn returns is audited in the same transaction, as actor's
// delegation.refused naming the delegate to (if any), and is returned once
// the transaction commits; the writes fn made before refusing commit too.
func (s *Service) updateDelegations(actor, to string, fn func(tx Tx, now time.Time, dels []access.Delegation) (refusal, err error)) error {
	var refusal error
	var ticket refusalTicket // the refusal's audit admission, decided once
	err := s.updateTicketed(&ticket, func(tx Tx) error {
		now := tx.Now()
		dels, err := delegationsIndexed(tx)
		if err != nil {
			return err
		}
		refusal, err = fn(tx, now, dels)
		if err != nil || refusal == nil {
			return err
		}
		return s.appendRefusal(tx, &ticket, delegationRefusal(actor, to, refusal))
	})
	if err != nil {
		return err
	}
	return refusal
}

func delegationRefusal(actor, to string, why error) access.Event {
	detail := map[string]string{"why": access.MessageOf(why), "code": string(access.CodeOf(why))}
	if to != "" {
		detail["to"] = to
	}
	return access.Event{Type: access.EvDelegationRefused, Actor: actor, Subject: actor, Detail: encodeDetail(detail)}
}

func delegationEvent(t access.EventType, actor string, d *access.Delegation) access.Event {
	return access.Event{Type: t, Actor: actor, Subject: d.From.Email, Detail: encodeDetail(d.DetailOf())}
}

// endDelegation ends d at `at` for why, in tx: the record, the index and
// the delegation.ended event.
func endDelegation(tx Tx, d *access.Delegation, why, by string, at time.Time) error {
	d.EndedAt, d.EndReason, d.EndedBy = at.UTC(), why, by
	if err := tx.PutDoc(DocDelegation, d.ID, d); err != nil {
		return err
	}
	var cur string
	ok, err := tx.Doc(docDelegationInForce, strings.ToLower(d.From.Email), &cur)
	if err != nil {
		return err
	}
	if ok && cur == d.ID {
		if err := tx.DeleteDoc(docDelegationInForce, strings.ToLower(d.From.Email)); err != nil {
			return err
		}
	}
	_, err = tx.Append(delegationEvent(access.EvDelegationEnded, by, d))
	return err
}

// delegationsOf returns the delegations in force at now that p gave or
// received.
func delegationsOf(tx Tx, p access.Person, now time.Time) ([]access.Delegation, error) {
	dels, err := delegationsIndexed(tx)
	if err != nil {
		return nil, err
	}
	var out []access.Delegation
	for _, d := range dels {
		if d.InForce(now) && (d.From.Same(p) || d.To.Same(p)) {
			out = append(out, d)
		}
	}
	return out, nil
}

// delegationsIndexed reads the delegations not yet recorded as ended (some
// may be past their end: InForce decides), ordered by delegator.
func delegationsIndexed(tx Tx) ([]access.Delegation, error) {
	var ids []string
	err := tx.Docs(docDelegationInForce, "", func(_ string, data []byte) error {
		var id string
		if err := json.Unmarshal(data, &id); err != nil {
			return err
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]access.Delegation, 0, len(ids))
	for _, id := range ids {
		var d access.Delegation
		ok, err := tx.Doc(DocDelegation, id, &d)
		if err != nil {
			return nil, err
		}
		if ok && d.EndedAt.IsZero() {
			out = append(out, d)
		}
	}
	return out, nil
}

// allDelegations reads every delegation ever made, oldest first.
func allDelegations(tx Tx) ([]access.Delegation, error) {
	var out []access.Delegation
	err := tx.Docs(DocDelegation, "", func(_ string, data []byte) error {
		var d access.Delegation
		if err := json.Unmarshal(data, &d); err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	slices.SortFunc(out, func(a, b access.Delegation) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, err
}

// DelegationsInForce lists the delegations in force now, by delegator.
func (s *Service) DelegationsInForce() ([]access.Delegation, error) {
	now := s.clock.Now()
	var out []access.Delegation
	err := s.store.View(func(tx Tx) error {
		dels, err := delegationsIndexed(tx)
		for _, d := range dels {
			if d.InForce(now) {
				out = append(out, d)
			}
		}
		return err
	})
	return out, err
}

// expireDelegations records the end of every delegation whose end date has
// passed (delegation.ended, reason expired, ended_at its planned end) and
// returns the earliest end still ahead. Authorization never waits for
// this: a click checks InForce against the clock.
func (s *Service) expireDelegations() (time.Time, error) {
	now := s.clock.Now()
	var dels []access.Delegation
	if err := s.store.View(func(tx Tx) error {
		var err error
		dels, err = delegationsIndexed(tx)
		return err
	}); err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, d := range dels {
		if d.Until.After(now) {
			if next.IsZero() || d.Until.Before(next) {
				next = d.Until
			}
			continue
		}
		err := s.updateLead(func(tx Tx) error { // the scheduler's work: fenced
			var cur access.Delegation
			ok, err := tx.Doc(DocDelegation, d.ID, &cur)
			if err != nil || !ok || !cur.EndedAt.IsZero() || cur.Until.After(tx.Now()) {
				return err
			}
			return endDelegation(tx, &cur, access.DelegationEndExpired, access.ActorScheduler, cur.Until)
		})
		if err != nil {
			return time.Time{}, err
		}
	}
	return next, nil
}

// actingFor is for whom a click decides: the clicker themselves, or the
// candidate whose delegation to the clicker is in force.
type actingFor struct {
	principal  access.Person
	delegation *access.Delegation // nil for a direct decision
}

// mayDecideAs says for whom actor may decide r's current step at now,
// given the delegations not yet recorded as ended (dels): as a candidate
// themselves, else for a candidate who delegated to them by a delegation in
// force at now. Only a delegation straight from a candidate counts: a
// delegate's delegate is refused (delegations do not chain).
func mayDecideAs(r *access.Request, actor access.Person, step int, dels []access.Delegation, now time.Time) (actingFor, error) {
	direct := actingFor{principal: actor}
	st := r.Step()
	if r.State != access.StatePending || st == nil || st.IsCandidate(actor) || (step >= 0 && step != r.Current) {
		return direct, mayDecide(r, actor, actor, step)
	}
	var firstErr error
	var lapsed *access.Delegation
	for i := range dels {
		d := &dels[i]
		if !d.To.Same(actor) || !st.IsCandidate(d.From) {
			continue
		}
		if !d.InForce(now) {
			lapsed = d
			continue
		}
		err := mayDecide(r, actor, d.From, step)
		if err == nil {
			return actingFor{principal: d.From, delegation: d}, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return direct, firstErr
	}
	if actor.Same(r.Requester) {
		return direct, mayDecide(r, actor, actor, step)
	}
	if lapsed != nil {
		return direct, lapsedMessage(lapsed) // past its end, not yet recorded: "ended at" its end date
	}
	// A delegate's delegate: d1 -> actor where d1 is itself a candidate's
	// delegate, never a candidate.
	for i := range dels {
		d1 := &dels[i]
		if !d1.To.Same(actor) || !d1.InForce(now) {
			continue
		}
		for j := range dels {
			if d0 := &dels[j]; d0.To.Same(d1.From) && d0.InForce(now) && st.IsCandidate(d0.From) {
				return direct, access.Errorf(access.CodeForbidden, "%s delegated to you, but %s decides this step only as %s's delegate, and delegations do not chain: you cannot decide it.",
					d1.From.Label(), d1.From.Label(), d0.From.Label())
			}
		}
	}
	return direct, mayDecide(r, actor, actor, step)
}

// lapsedDelegation finds the latest ended delegation from a candidate of
// r's current step to actor, for a refusal that says why the DM's buttons
// no longer work.
func lapsedDelegation(tx Tx, r *access.Request, actor access.Person) (*access.Delegation, error) {
	st := r.Step()
	if st == nil || r.State != access.StatePending {
		return nil, nil
	}
	all, err := allDelegations(tx)
	if err != nil {
		return nil, err
	}
	for i := len(all) - 1; i >= 0; i-- {
		if d := &all[i]; d.To.Same(actor) && st.IsCandidate(d.From) && !d.EndedAt.IsZero() {
			return d, nil
		}
	}
	return nil, nil
}

func lapsedMessage(d *access.Delegation) error {
	why := "ended"
	switch d.EndReason {
	case access.DelegationEndOff:
		why = "was turned off by " + d.From.Label()
	case access.DelegationEndReplaced:
		why = "was replaced by " + d.From.Label()
	}
	return access.Errorf(access.CodeForbidden, "Your delegation from %s (%s) %s at %s, so you can no longer decide for them.",
		d.From.Label(), d.ID, why, d.End().UTC().Format(time.RFC3339))
}

// recordDelegated marks step i of r as decided for a.principal under
// a.delegation, and adds the decision to the delegation's record, in tx.
func recordDelegated(tx Tx, r *access.Request, i int, a actingFor) error {
	if a.delegation == nil {
		return nil
	}
	r.Steps[i].OnBehalfOf = a.principal
	r.Steps[i].Delegation = a.delegation.ID
	var d access.Delegation
	ok, err := tx.Doc(DocDelegation, a.delegation.ID, &d)
	if err != nil {
		return err
	}
	if !ok {
		return access.Errorf(access.CodeConflict, "Delegation %s is gone; try again.", a.delegation.ID)
	}
	d.Decisions = append(d.Decisions, fmt.Sprintf("%s step %d %s", r.ID, i+1, r.Steps[i].Decision))
	return tx.PutDoc(DocDelegation, d.ID, d)
}

// delegatedDetail adds who was decided for to an event's detail.
func delegatedDetail(detail map[string]any, a actingFor) map[string]any {
	if a.delegation != nil {
		detail["for"] = a.principal.Email
		detail["delegation"] = a.delegation.ID
	}
	return detail
}
