package handlers

import (
	"context"
	"time"

	"keycard/access"
	"keycard/policy"
)

// Policy reload across replicas (SPEC "Beyond one machine": a reload on one
// replica reaches all of them). The version in force lives in the store:
// the "policy.hash" cursor, moved in the same transaction that records the
// version (DocPolicyVersion, with the file's text) and its audit event. Each
// replica reads the cursor on a short clock-driven poll (RunPolicySync) and,
// when another replica moved it, swaps to the stored text. A poll, not
// LISTEN/NOTIFY: it needs nothing from the backend beyond the Store port,
// and a replica that was cut off from the database catches up at its next
// read instead of depending on a notification it may have missed. One
// indexed read of one row every few seconds costs nothing.

// SyncPolicy swaps to the policy version recorded in the store when it is
// not the one this replica runs (another replica reloaded or approved a
// change). It reports whether it swapped. The stored text is what was
// audited, so it is parsed, not this replica's copy of the file; a version
// recorded without its text is read from its path when the file there still
// has the recorded hash.
func (s *Service) SyncPolicy() (bool, error) {
	s.policyMu.Lock()
	defer s.policyMu.Unlock()
	cur := s.Policy()
	var hash string
	var last PolicyVersion
	err := s.store.View(func(tx Tx) error {
		var err error
		if hash, err = tx.Cursor("policy.hash"); err != nil || hash == "" || (cur != nil && hash == cur.Hash) {
			return err
		}
		last, err = lastPolicyVersion(tx)
		return err
	})
	if err != nil || hash == "" || (cur != nil && hash == cur.Hash) {
		return false, err
	}
	if last.Hash != hash {
		// The cursor and the version are written in one transaction; a
		// mismatch is an older store that never recorded the version.
		return false, access.Errorf(access.CodeIntegrity, "the policy in force (%.12s…) has no recorded version to load", hash)
	}
	var next *policy.Set
	if last.Text != "" {
		next, err = policy.Parse(last.Path, []byte(last.Text))
	} else {
		next, err = policy.Load(last.Path)
	}
	if err != nil {
		return false, err
	}
	if next.Hash != hash {
		return false, access.Errorf(access.CodeConflict, "the policy file %s no longer has the hash in force (%.12s…)", last.Path, hash)
	}
	if err := s.reconnect(next); err != nil {
		return false, err
	}
	s.swapPolicy(next)
	return true, nil
}

// RunPolicySync runs SyncPolicy every `every` until ctx ends (every replica
// runs it; with one replica there is nothing to sync and main does not).
func (s *Service) RunPolicySync(ctx context.Context, every time.Duration) error {
	var failing string
	for {
		old := s.Policy()
		swapped, err := s.SyncPolicy()
		switch {
		case err != nil && access.MessageOf(err) != failing:
			failing = access.MessageOf(err)
			s.log.Error("could not load the policy another replica put in force; this replica keeps its policy until it can", "err", err)
		case err == nil:
			failing = ""
		}
		if swapped && old != nil {
			s.log.Info("policy in force changed on another replica; swapped to it", "old", old.Hash, "hash", s.Policy().Hash)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(every):
		}
	}
}
