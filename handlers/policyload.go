package handlers

import (
	"keycard/access"
	"keycard/policy"
)

// The policy file in force: recorded at start (RecordPolicyLoaded) and
// swapped on a reload (ReloadPolicy). Change control over a reload is in
// policychange.go, its spread to other replicas in policysync.go.

// ReloadPolicy swaps in a new policy set. An invalid file keeps the old
// policy running and is audited (policy.rejected) with the reason; a changed
// file is audited as policy.changed with old and new hash and what changed.
func (s *Service) ReloadPolicy(load func() (*policy.Set, error), actor string) (*policy.Set, error) {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	old := s.Policy()
	next, err := load()
	if err != nil {
		_ = s.audit(access.Event{Type: access.EvPolicyRejected, Actor: actor,
			Detail: encodeDetail(map[string]string{"hash": old.Hash, "error": err.Error()})})
		return old, err
	}
	if next.Hash == old.Hash {
		return old, nil
	}
	if err := s.refuseStranding(old, next, actor); err != nil {
		return old, err
	}
	if err := s.reconnect(next); err != nil {
		_ = s.audit(access.Event{Type: access.EvPolicyRejected, Actor: actor,
			Detail: encodeDetail(map[string]string{"hash": old.Hash, "error": err.Error()})})
		return old, err
	}
	var stranded []string
	err = s.update(func(tx Tx) error {
		// Checked again in the swap's own transaction: a grant approved
		// since refuseStranding read the store must not be stranded.
		var err error
		if stranded, err = strandedGrants(tx, next); err != nil || len(stranded) > 0 {
			return err
		}
		if err := tx.SetCursor("policy.hash", next.Hash); err != nil {
			return err
		}
		changes := policy.Diff(old, next)
		ev, err := tx.Append(access.Event{Type: access.EvPolicyChanged, Actor: actor,
			Detail: encodeDetail(map[string]any{"old": old.Hash, "new": next.Hash, "changes": changes})})
		if err != nil {
			return err
		}
		return recordPolicyVersion(tx, PolicyVersion{Hash: next.Hash, Path: next.Path, From: ev.Time, LoadedBy: actor, Changes: changes, EventSeq: ev.Seq, Text: string(next.Raw)})
	})
	if err == nil && len(stranded) > 0 {
		err = s.rejectStranding(old, next, actor, stranded)
	}
	if err != nil {
		_ = s.reconnect(old)
		return old, err
	}
	s.swapPolicy(next)
	return next, nil
}

// RecordPolicyLoaded audits the policy in force at start when it differs from
// the last one the audit log knows (policy.loaded on first start,
// policy.changed when the file changed while keycard was down).
func (s *Service) RecordPolicyLoaded(actor string) error {
	set := s.Policy()
	changed := false
	err := s.update(func(tx Tx) error {
		changed = false // a retried attempt (PostgreSQL serialization failure) decides afresh
		last, err := tx.Cursor("policy.hash")
		if err != nil {
			return err
		}
		if last == set.Hash {
			return nil
		}
		if err := tx.SetCursor("policy.hash", set.Hash); err != nil {
			return err
		}
		changed = last != ""
		t := access.EvPolicyLoaded
		detail := map[string]any{"new": set.Hash, "path": set.Path}
		changes := []string{"first policy loaded"}
		if last != "" {
			t = access.EvPolicyChanged
			detail["old"] = last
			changes = []string{"policy file changed while keycard was stopped"}
			detail["changes"] = changes
		}
		ev, err := tx.Append(access.Event{Type: t, Actor: actor, Detail: encodeDetail(detail)})
		if err != nil {
			return err
		}
		return recordPolicyVersion(tx, PolicyVersion{Hash: set.Hash, Path: set.Path, From: ev.Time, LoadedBy: actor, Changes: changes, EventSeq: ev.Seq, Text: string(set.Raw)})
	})
	if err == nil && changed {
		// The file changed while keycard was stopped: pending requests it
		// no longer holds end now, as after a reload.
		s.cancelOrphans()
	}
	return err
}
