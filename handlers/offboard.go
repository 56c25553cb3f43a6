package handlers

import (
	"context"
	"fmt"
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
		first, err := s.FirstTime("deactivation:"+ev.ID, 90*24*time.Hour)
		if err != nil {
			return n, err
		}
		if !first {
			continue
		}
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
// given keycard access, and offboards those suspended or deactivated: the
// safety net under the lifecycle feed (SPEC: offboarding).
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
	checked := map[string]bool{}
	n := 0
	for _, r := range append(holders, pending...) {
		id := r.Requester.IdPID
		if id == "" || checked[id] || r.State == access.StateDeprovisioning {
			continue
		}
		checked[id] = true
		u, err := dir.UserByID(ctx, id)
		if access.CodeOf(err) == access.CodeNotFound {
			u = access.User{ID: id, Email: r.Requester.Email, Status: access.StatusDeprovisioned}
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
