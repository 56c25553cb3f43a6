package handlers

import (
	"context"
	"sort"
	"time"

	"keycard/access"
	"keycard/policy"
)

// Get reads one request.
func (s *Service) Get(id string) (access.Request, error) {
	var r access.Request
	err := s.store.View(func(tx Tx) error {
		var err error
		r, err = tx.Request(id)
		return err
	})
	return r, err
}

// Mine lists a person's requests and grants, newest first.
func (s *Service) Mine(email string) ([]access.Request, error) {
	var out []access.Request
	err := s.store.View(func(tx Tx) error {
		var err error
		out, err = tx.RequestsOfUser(email)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, err
}

// WaitingOn lists the pending requests whose current step this person may decide.
func (s *Service) WaitingOn(email string) ([]access.Request, error) {
	var out []access.Request
	err := s.store.View(func(tx Tx) error {
		var err error
		out, err = tx.WaitingOn(email)
		return err
	})
	return out, err
}

// Active lists every grant in force (active or being provisioned); only
// privileged ones when privilegedOnly.
func (s *Service) Active(privilegedOnly bool) ([]access.Request, error) {
	var out []access.Request
	err := s.store.View(func(tx Tx) error {
		rs, err := tx.InState(access.StateActive, access.StateProvisioning, access.StateDeprovisioning)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if !privilegedOnly || r.Privileged {
				out = append(out, r)
			}
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		if out[i].Role != out[j].Role {
			return out[i].Role < out[j].Role
		}
		return out[i].EndsAt.Before(out[j].EndsAt)
	})
	return out, err
}

// Requestable lists the policies u may request now.
func (s *Service) Requestable(u access.User) []*policy.Policy {
	return s.Policy().Requestable(u)
}

// Events calls fn for each audit event after seq, in order (the notifier's
// outbox feed).
func (s *Service) Events(after uint64, fn func(access.Event) error) error {
	return s.store.View(func(tx Tx) error { return tx.Events(after, fn) })
}

// Cursor reads a named cursor (e.g. the notifier's last delivered seq).
func (s *Service) Cursor(name string) (string, error) {
	var v string
	err := s.store.View(func(tx Tx) error {
		var err error
		v, err = tx.Cursor(name)
		return err
	})
	return v, err
}

// SetCursor stores a named cursor. Only singleton work keeps cursors (the
// notifier, the job ledger, the leaver feeds), so the write is fenced.
func (s *Service) SetCursor(name, value string) error {
	return s.store.Update(s.clock.Now(), s.fenced(func(tx Tx) error { return tx.SetCursor(name, value) }))
}

// Extend asks for more time on an active grant: a new request through the
// policy's approval chain that continues where the grant ends.
func (s *Service) Extend(ctx context.Context, grantID string, in SubmitInput) (access.Request, error) {
	g, err := s.Get(grantID)
	if err != nil {
		return access.Request{}, err
	}
	in.Policy = g.Policy
	in.Extends = grantID
	return s.Submit(ctx, in)
}

// FirstTime records key and reports whether it was not seen within ttl: the
// bot uses it so a redelivered envelope or a double click has one effect.
func (s *Service) FirstTime(key string, ttl time.Duration) (bool, error) {
	var seen bool
	err := s.store.Batch(s.clock.Now(), func(tx Tx) error {
		var err error
		seen, err = tx.Seen(key, ttl)
		return err
	})
	return !seen, err
}

// RecordMessage remembers a Slack message posted about a request.
func (s *Service) RecordMessage(ref access.MessageRef) error {
	return s.store.Update(s.clock.Now(), func(tx Tx) error { return tx.PutMessageRef(ref) })
}

// Messages lists the Slack messages posted about a request.
func (s *Service) Messages(requestID string) ([]access.MessageRef, error) {
	var out []access.MessageRef
	err := s.store.View(func(tx Tx) error {
		var err error
		out, err = tx.MessageRefs(requestID)
		return err
	})
	return out, err
}
