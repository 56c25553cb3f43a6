package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"keycard/access"
)

// Alert triage (CC7.2): the security channel acknowledges and resolves each
// alert; who, when and the outcome are audit events, so they are exported
// with the events and an auditor can sample alerts with their triage.

// Alert triage states.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// DocAlertState holds each alert's triage state (id: 20-digit event seq).
const DocAlertState = "alert_state"

// AlertState is where an alert is in its triage.
type AlertState struct {
	Seq     uint64    `json:"seq"`
	State   string    `json:"state"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome,omitempty"`
}

// alertTypes are the events the security channel is shown as alerts.
var alertTypes = map[access.EventType]bool{
	access.EvAlert: true, access.EvIdentityMismatch: true, access.EvProvisionAlert: true,
	access.EvGrantFailed: true, access.EvPolicyEmergency: true, access.EvPolicyStaged: true,
}

// IsAlert reports whether an event is shown to the security channel as an
// alert that can be acknowledged and resolved.
func IsAlert(t access.EventType) bool { return alertTypes[t] }

// MaxOutcome bounds the outcome text of a resolution.
const MaxOutcome = 1000

// TriageAlert acknowledges (resolve=false) or resolves an alert. Only keycard
// admins may, checked in the directory now; the alert is looked up by its
// audit sequence number in the store, never trusted from the button.
func (s *Service) TriageAlert(ctx context.Context, slackID, email string, seq uint64, resolve bool, outcome string) (AlertState, error) {
	outcome = strings.TrimSpace(outcome)
	if len(outcome) > MaxOutcome {
		return AlertState{}, access.Errorf(access.CodeInvalid, "The outcome is %d characters long; the limit is %d.", len(outcome), MaxOutcome)
	}
	u, err := s.identifyActor(ctx, slackID, email)
	if err != nil {
		return AlertState{}, err
	}
	admin, err := s.IsAdmin(ctx, u)
	if err != nil {
		return AlertState{}, err
	}
	if !admin {
		return AlertState{}, access.Errorf(access.CodeForbidden, "Only a keycard admin can acknowledge or resolve alerts.")
	}
	var st AlertState
	var refusal error
	var ticket refusalTicket // the refusal's audit admission, decided once
	err = s.updateTicketed(&ticket, func(tx Tx) error {
		// A retried attempt (PostgreSQL serialization failure) decides
		// afresh: st too, or the rolled-back attempt's own acknowledgement
		// would read as "already acknowledged" (tx.Doc leaves st alone when
		// nothing is stored).
		refusal, st = nil, AlertState{}
		ev, err := tx.Event(seq)
		if err != nil {
			return err
		}
		if !IsAlert(ev.Type) {
			return access.Errorf(access.CodeInvalid, "Event %d is not an alert.", seq)
		}
		if aboutMe(ev, u) {
			// Someone else closes an alert about you: the person who caused
			// it (an emergency policy change, a flag, a failing grant of
			// theirs) cannot acknowledge it away.
			refusal = access.Errorf(access.CodeForbidden, "This alert is about your own action or access; another keycard admin must acknowledge or resolve it.")
			return s.appendRefusal(tx, &ticket, access.Event{Type: access.EvDecisionRefused, Actor: u.Email, Subject: ev.Subject, Policy: ev.Policy, RequestID: ev.RequestID,
				Detail: encodeDetail(map[string]any{"why": access.MessageOf(refusal), "alert_seq": seq})})
		}
		id := fmt.Sprintf("%020d", seq)
		if _, err := tx.Doc(DocAlertState, id, &st); err != nil {
			return err
		}
		switch {
		case st.State == AlertResolved:
			return access.Errorf(access.CodeConflict, "This alert was already resolved by %s.", st.By)
		case !resolve && st.State == AlertAcknowledged:
			return access.Errorf(access.CodeConflict, "This alert was already acknowledged by %s.", st.By)
		}
		st = AlertState{Seq: seq, State: AlertAcknowledged, By: u.Email, At: tx.Now().UTC(), Outcome: outcome}
		t := access.EvAlertAcknowledged
		if resolve {
			st.State, t = AlertResolved, access.EvAlertResolved
		}
		if err := tx.PutDoc(DocAlertState, id, st); err != nil {
			return err
		}
		_, err = tx.Append(access.Event{Type: t, Actor: u.Email, Subject: ev.Subject, Policy: ev.Policy, RequestID: ev.RequestID,
			Detail: encodeDetail(map[string]any{"alert_seq": seq, "alert_type": ev.Type, "outcome": outcome})})
		return err
	})
	if err == nil && refusal != nil {
		return AlertState{}, refusal
	}
	return st, err
}

// aboutMe reports whether the alert ev is about u: u caused it (its actor,
// e.g. who applied an emergency policy change or staged one) or it is about
// u's access (its subject). keycard's own actors are nobody's.
func aboutMe(ev access.Event, u access.User) bool {
	for _, who := range []string{ev.Actor, ev.Subject} {
		if who == "" || who == access.ActorKeycard || who == access.ActorScheduler {
			continue
		}
		// A stated name may carry a note: "bob@example.com (stated)".
		who = strings.TrimSpace(strings.SplitN(who, " ", 2)[0])
		if strings.EqualFold(who, u.Email) || (u.Login != "" && strings.EqualFold(who, u.Login)) {
			return true
		}
	}
	return false
}

// AlertStateOf reads an alert's triage state (open when never triaged).
func (s *Service) AlertStateOf(seq uint64) (AlertState, error) {
	st := AlertState{Seq: seq, State: AlertOpen}
	err := s.store.View(func(tx Tx) error {
		_, err := tx.Doc(DocAlertState, fmt.Sprintf("%020d", seq), &st)
		return err
	})
	return st, err
}

// Event reads one audit event (the bot re-renders an alert from it).
func (s *Service) Event(seq uint64) (access.Event, error) {
	var e access.Event
	err := s.store.View(func(tx Tx) error {
		var err error
		e, err = tx.Event(seq)
		return err
	})
	return e, err
}
