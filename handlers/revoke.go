package handlers

import (
	"context"
	"errors"

	"keycard/access"
)

// Revoke ends a grant early: the holder may give up their own grant, an admin
// may revoke anyone's. Authorization is decided here, from the store and the
// directory, never from what the caller carries.
func (s *Service) Revoke(ctx context.Context, id, slackID, email string) (access.Request, error) {
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return access.Request{}, err
	}
	var r access.Request
	if err := s.store.View(func(tx Tx) error {
		r, err = tx.Request(id)
		return err
	}); err != nil {
		if access.CodeOf(err) == access.CodeNotFound {
			return access.Request{}, access.Errorf(access.CodeNotFound, "There is no grant %s.", id)
		}
		return access.Request{}, err
	}
	actor := personOf(u, slackID)
	if !r.Requester.Same(actor) {
		admin, err := s.IsAdmin(ctx, u)
		if err != nil {
			return access.Request{}, access.Wrap(access.CodeOf(err), err, "Could not check whether you are a keycard admin; try again in a minute.")
		}
		if !admin {
			_ = s.audit(event(access.EvDecisionRefused, u.Email, &r, map[string]string{"why": "revoke by someone who is neither the holder nor an admin"}))
			return access.Request{}, access.Errorf(access.CodeForbidden, "Only the holder of %s or a keycard admin can revoke it.", id)
		}
	}
	err = s.update(func(tx Tx) error {
		r, err = tx.Request(id)
		if err != nil {
			return err
		}
		_, err := endAccess(tx, &r, access.ReasonRevoked, actor, u.Email)
		return err
	})
	if errors.Is(err, errStale) {
		return r, access.Errorf(access.CodeConflict, "%s is %s, so there is nothing to revoke.", id, r.ExportStatus())
	}
	return r, err
}

// docDeactivationHandled records each IdP lifecycle event offboarding has
// handled (id: the IdP event id), in the same transaction as its effects.
const docDeactivationHandled = "deactivation_handled"

// Offboard ends everything a person has: grants are revoked with reason
// offboarded, pending requests are cancelled, and pending requests of others
// where this person was the only possible approver of the current step are
// reported to the security channel. It is idempotent: a second call finds
// nothing left to end and records nothing.
func (s *Service) Offboard(ctx context.Context, who access.User, why Trigger) (int, error) {
	n := 0
	err := s.updateLead(func(tx Tx) error {
		n = 0 // a retried attempt (PostgreSQL serialization failure) counts afresh
		if why.IdPEventID != "" {
			var done Trigger
			if ok, err := tx.Doc(docDeactivationHandled, why.IdPEventID, &done); err != nil || ok {
				return err // handled before: a replay changes nothing
			}
			if err := tx.PutDoc(docDeactivationHandled, why.IdPEventID, why); err != nil {
				return err
			}
		}
		mine, err := requestsOf(tx, who)
		if err != nil {
			return err
		}
		waiting, err := tx.WaitingOn(who.Email)
		if err != nil {
			return err
		}
		now := tx.Now()
		dels, err := delegationsOf(tx, who.Person(), now)
		if err != nil {
			return err
		}
		if len(mine) == 0 && len(waiting) == 0 && len(dels) == 0 {
			return nil // nothing of theirs in keycard: nothing to record
		}
		if _, err := tx.Append(access.Event{Type: access.EvUserOffboarded, Actor: access.ActorKeycard, Subject: who.Email,
			Detail: encodeDetail(why.detail(who, now))}); err != nil {
			return err
		}
		// Their delegations end with them, both ways: a departed delegator's
		// delegate decides for nobody, and a departed delegate is no
		// one's stand-in (the click refuses either anyway; the record, the
		// App Home and the delegations export now say so too).
		for i := range dels {
			if err := endDelegation(tx, &dels[i], access.DelegationEndOffboarded, access.ActorKeycard, now); err != nil {
				return err
			}
		}
		for i := range mine {
			r, err := tx.Request(mine[i].ID) // re-read: ending one grant may have ended its siblings
			if err != nil {
				return err
			}
			switch r.State {
			case access.StateActive, access.StateProvisioning:
				if err := endGrant(tx, &r, access.ReasonOffboarded, access.Person{}, access.ActorKeycard); err != nil {
					return err
				}
				rec := OffboardRecord{RequestID: r.ID, Email: who.Email, Group: r.Group, Source: why.Source, IdPEventID: why.IdPEventID,
					TriggerAt: why.At, NoticedAt: now}
				if set := s.Policy(); set != nil {
					rec.SLA = set.OffboardingSLA
				}
				if err := tx.PutDoc(DocOffboarding, r.ID, rec); err != nil {
					return err
				}
				n++
			case access.StateScheduled:
				// Not started: nothing was added, so nothing is removed.
				if err := withdraw(tx, &r, access.ReasonOffboarded, access.Person{}, access.ActorKeycard, "requester offboarded before the scheduled start"); err != nil {
					return err
				}
				n++
			case access.StatePending:
				if err := r.Cancel(now); err != nil {
					return err
				}
				if err := tx.PutRequest(&r); err != nil {
					return err
				}
				if _, err := tx.Append(event(access.EvRequestCancelled, access.ActorKeycard, &r, map[string]string{"reason": "requester offboarded"})); err != nil {
					return err
				}
				n++
			}
		}
		for _, r := range waiting {
			if st := r.Step(); st != nil && len(st.Candidates) == 1 {
				if _, err := tx.Append(event(access.EvAlert, access.ActorKeycard, &r, access.Alert{Kind: "approver_offboarded",
					Message: who.Email + " was the only possible approver of the current step and has been offboarded; the request cannot move until someone acts."})); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return n, err
}

// requestsOf lists a person's live requests and grants (pending,
// scheduled, provisioning, active) by email and by IdP id: the IdP may have renamed
// them since they asked, and offboarding must still find everything.
func requestsOf(tx Tx, who access.User) ([]access.Request, error) {
	byEmail, err := tx.RequestsOfUser(who.Email)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []access.Request
	add := func(r access.Request) {
		if seen[r.ID] {
			return
		}
		switch r.State {
		case access.StatePending, access.StateScheduled, access.StateProvisioning, access.StateActive:
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	for _, r := range byEmail {
		add(r)
	}
	if who.ID != "" {
		live, err := tx.InState(access.StatePending, access.StateScheduled, access.StateProvisioning, access.StateActive)
		if err != nil {
			return nil, err
		}
		for _, r := range live {
			if r.Requester.IdPID == who.ID {
				add(r)
			}
		}
	}
	return out, nil
}
