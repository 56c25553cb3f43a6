package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"keycard/access"
)

// Deactivation is one IdP lifecycle event that may mean a person left:
// Okta's user.lifecycle.deactivate or user.lifecycle.suspend.
type Deactivation struct {
	ID        string // the IdP's event id (Okta System Log uuid)
	Type      string
	UserID    string
	Published time.Time // when the IdP recorded it
}

// DeactivationFeed reads lifecycle events after a stored cursor.
type DeactivationFeed func(ctx context.Context, cursor string) ([]Deactivation, string, error)

// PollDeactivations reads the feed from its stored cursor and offboards each
// person whose account the IdP now reports as suspended or deactivated. The
// cursor advances only after the events were handled, and each event is
// handled once even when a crash replays it.
func (s *Service) PollDeactivations(ctx context.Context, name string, feed DeactivationFeed, start time.Time) (int, error) {
	key := "deactivations." + name
	cursor, err := s.Cursor(key)
	if err != nil {
		return 0, err
	}
	if cursor == "" {
		// First run: look back one SLA period, so nothing between install and
		// now is missed, without replaying the IdP's whole history.
		cursor = "since:" + start.UTC().Format(time.RFC3339)
	}
	events, next, err := feed(ctx, cursor)
	if err != nil {
		return 0, err
	}
	dir, err := s.directory()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ev := range events {
		// Offboard records the event as handled in its own transaction, so a
		// replayed event (crash before the cursor moved) is skipped there, and
		// an event whose handling failed is not marked handled.
		u, err := dir.UserByID(ctx, ev.UserID)
		if err != nil {
			if access.CodeOf(err) == access.CodeNotFound {
				continue // deleted: nothing of theirs is in the IdP any more
			}
			return n, err
		}
		if !u.Status.Offboarded() {
			continue // reactivated since
		}
		k, err := s.Offboard(ctx, u, Trigger{Source: ev.Type, IdPEventID: ev.ID, At: ev.Published})
		if err != nil {
			return n, err
		}
		n += k
	}
	if next != "" && next != cursor {
		if err := s.SetCursor(key, next); err != nil {
			return n, err
		}
	}
	return n, nil
}

// SweepHolders checks the IdP status of everyone who holds or is being
// given keycard access, and of both sides of every delegation in force, and
// offboards those suspended, deactivated or deleted: the safety net under
// the lifecycle feed (SPEC: offboarding), and the only way leavers are found
// on an IdP without one.
func (s *Service) SweepHolders(ctx context.Context) (int, error) {
	holders, err := s.Active(false)
	if err != nil {
		return 0, err
	}
	pending, err := s.pending()
	if err != nil {
		return 0, err
	}
	dir, err := s.directory()
	if err != nil {
		return 0, err
	}
	// The people to look at: every holder and requester, then both sides
	// of every delegation in force (someone with no request of their own
	// may still stand in for another, or have a stand-in).
	var people []access.Person
	for _, r := range append(holders, pending...) {
		if r.State != access.StateDeprovisioning {
			people = append(people, r.Requester)
		}
	}
	dels, err := s.DelegationsInForce()
	if err != nil {
		return 0, err
	}
	for _, d := range dels {
		people = append(people, d.From, d.To)
	}
	checked := map[string]bool{}
	n := 0
	for _, p := range people {
		id := p.IdPID
		if id == "" || checked[id] {
			continue
		}
		checked[id] = true
		u, err := dir.UserByID(ctx, id)
		if access.CodeOf(err) == access.CodeNotFound {
			u = access.User{ID: id, Email: p.Email, Status: access.StatusDeprovisioned}
		} else if err != nil {
			return n, err
		}
		if !u.Status.Offboarded() {
			continue
		}
		k, err := s.Offboard(ctx, u, Trigger{Source: "status check: " + string(u.Status)})
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

func (s *Service) pending() ([]access.Request, error) {
	var out []access.Request
	err := s.store.View(func(tx Tx) error {
		var err error
		out, err = tx.InState(access.StatePending)
		return err
	})
	return out, err
}

// Trigger says what made keycard offboard someone.
type Trigger struct {
	Source     string    // "user.lifecycle.deactivate", "status check: SUSPENDED", ...
	IdPEventID string    // the IdP's event id, when a feed reported it
	At         time.Time // when the IdP recorded the change (zero: unknown)
}

func (t Trigger) detail(u access.User, noticed time.Time) map[string]string {
	d := map[string]string{"idp_id": u.ID, "status": string(u.Status), "source": t.Source, "noticed_at": noticed.UTC().Format(time.RFC3339)}
	if t.IdPEventID != "" {
		d["idp_event_id"] = t.IdPEventID
	}
	if !t.At.IsZero() {
		d["idp_event_at"] = t.At.UTC().Format(time.RFC3339)
		d["detection_lag"] = noticed.Sub(t.At).Round(time.Second).String()
	}
	return d
}

func (t Trigger) String() string { return fmt.Sprintf("%s %s", t.Source, t.IdPEventID) }

// DocOffboarding holds one offboarding revocation's timeline (id: request id).
const DocOffboarding = "offboarding"

// OffboardRecord is the evidence of one offboarding revocation: when the IdP
// deactivated the person (the System Log event time), when keycard noticed,
// and when the IdP confirmed the removal, against the policy's SLA.
type OffboardRecord struct {
	RequestID   string        `json:"request_id"`
	Email       string        `json:"email"`
	Group       string        `json:"group"`
	Source      string        `json:"source"`
	IdPEventID  string        `json:"idp_event_id,omitempty"`
	TriggerAt   time.Time     `json:"trigger_at,omitzero"` // IdP event time; zero when only the status sweep saw it
	NoticedAt   time.Time     `json:"noticed_at"`
	ConfirmedAt time.Time     `json:"confirmed_at,omitzero"`
	SLA         time.Duration `json:"sla"`
	Lag         time.Duration `json:"lag,omitempty"` // ConfirmedAt - (TriggerAt or NoticedAt)
	Breached    bool          `json:"breached,omitempty"`
}

// offboardConfirmed completes the timeline when the IdP confirms the
// removal, and alerts when the SLA was missed.
func (s *Service) offboardConfirmed(tx Tx, r *access.Request, now time.Time) error {
	var rec OffboardRecord
	ok, err := tx.Doc(DocOffboarding, r.ID, &rec)
	if err != nil || !ok {
		return err
	}
	start := rec.TriggerAt
	if start.IsZero() {
		start = rec.NoticedAt
	}
	rec.ConfirmedAt = now
	rec.Lag = now.Sub(start)
	rec.Breached = rec.SLA > 0 && rec.Lag > rec.SLA
	if err := tx.PutDoc(DocOffboarding, r.ID, rec); err != nil {
		return err
	}
	if !rec.Breached {
		return nil
	}
	_, err = tx.Append(event(access.EvAlert, access.ActorKeycard, r, map[string]string{"kind": "offboarding_sla_breach",
		"message": fmt.Sprintf("%s's access to %s was removed %s after the identity provider deactivated them; the offboarding SLA is %s.",
			rec.Email, r.Group, rec.Lag.Round(time.Second), rec.SLA),
		"lag": rec.Lag.Round(time.Second).String(), "sla": rec.SLA.String()}))
	return err
}

// OffboardingSummary tallies the offboarding revocations confirmed in
// [from, to) for an access export's manifest: how many, how many breached
// the SLA, and the longest lag.
func (s *Service) OffboardingSummary(from, to time.Time) (map[string]any, error) {
	n, breaches := 0, 0
	var worst time.Duration
	var breached []string
	err := s.store.View(func(tx Tx) error {
		return tx.Docs(DocOffboarding, "", func(_ string, data []byte) error {
			var rec OffboardRecord
			if err := json.Unmarshal(data, &rec); err != nil {
				return err
			}
			if rec.ConfirmedAt.IsZero() || rec.ConfirmedAt.Before(from) || !rec.ConfirmedAt.Before(to) {
				return nil
			}
			n++
			if rec.Lag > worst {
				worst = rec.Lag
			}
			if rec.Breached {
				breaches++
				breached = append(breached, rec.RequestID)
			}
			return nil
		})
	})
	sort.Strings(breached)
	out := map[string]any{"offboarding_revocations": n, "offboarding_sla_breaches": breaches}
	if n > 0 {
		out["offboarding_max_lag"] = worst.Round(time.Second).String()
	}
	if len(breached) > 0 {
		out["offboarding_sla_breached_requests"] = breached
	}
	if set := s.Policy(); set != nil {
		out["offboarding_sla"] = set.OffboardingSLA.String()
	}
	return out, err
}
