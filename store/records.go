package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"keycard/access"
)

// Pin reads the identity pin of a Slack user; false when none was made yet.
func (tx *Tx) Pin(slackID string) (access.Pin, bool, error) {
	v := tx.tx.Bucket(bPins).Get([]byte(slackID))
	if v == nil {
		return access.Pin{}, false, nil
	}
	p, err := DecodePin(slackID, v)
	return p, err == nil, err
}

// PutPin stores the pairing of a Slack user and an IdP user (SPEC "Identity
// is pinned"). It overwrites: refusing a mismatch is the caller's decision.
func (tx *Tx) PutPin(p access.Pin) error {
	if err := tx.writable(); err != nil {
		return err
	}
	v, err := EncodePin(p, tx.now)
	if err != nil {
		return err
	}
	return tx.tx.Bucket(bPins).Put([]byte(p.SlackID), v)
}

// messageRefKey is request id, kind, step (8 bytes) and Slack user, so each
// approver's DM for each step has its own ref and all refs of a request are
// one prefix scan.
func messageRefKey(ref access.MessageRef) []byte {
	k := prefixKey(ref.RequestID, ref.Kind)
	k = binary.BigEndian.AppendUint64(k, uint64(int64(ref.Step)))
	k = append(k, sep)
	return append(k, ref.SlackUser...)
}

// PutMessageRef records (or replaces) where a message about a request was
// posted, so it can be updated later.
func (tx *Tx) PutMessageRef(ref access.MessageRef) error {
	if err := tx.writable(); err != nil {
		return err
	}
	v, err := EncodeMessageRef(ref)
	if err != nil {
		return err
	}
	return tx.tx.Bucket(bMsgRefs).Put(messageRefKey(ref), v)
}

// MessageRefs returns every message ref of a request, ordered by kind, step
// and Slack user.
func (tx *Tx) MessageRefs(requestID string) ([]access.MessageRef, error) {
	var out []access.MessageRef
	err := scanPrefix(tx.tx.Bucket(bMsgRefs).Cursor(), prefixKey(requestID), func(_, v []byte) error {
		ref, err := DecodeMessageRef(requestID, v)
		if err != nil {
			return err
		}
		out = append(out, ref)
		return nil
	})
	return out, err
}

// Cursor reads a named position (e.g. the Okta System Log poller's "since");
// "" when unset.
func (tx *Tx) Cursor(name string) (string, error) {
	return string(tx.tx.Bucket(bCursors).Get([]byte(name))), nil
}

// SetCursor stores a named position; "" deletes it.
func (tx *Tx) SetCursor(name, value string) error {
	if err := tx.writable(); err != nil {
		return err
	}
	b := tx.tx.Bucket(bCursors)
	if value == "" {
		return b.Delete([]byte(name))
	}
	return b.Put([]byte(name), []byte(value))
}

// seenPrunePerCall bounds the expired dedupe keys one Seen call deletes, so
// pruning never makes a click's transaction slow; at one envelope per call it
// removes keys faster than they are added.
const seenPrunePerCall = 16

// Seen records key at tx.Now() and reports whether it was already recorded
// within ttl before: Slack redelivers an Events API / Socket Mode envelope
// that was not acked in 3 seconds (with a retry attempt header) and people
// double-click buttons, and each must take effect once. A duplicate keeps its
// first record time. Each call also deletes a few expired keys.
func (tx *Tx) Seen(key string, ttl time.Duration) (bool, error) {
	if err := tx.writable(); err != nil {
		return false, err
	}
	seen := tx.tx.Bucket(bSeen)
	exp := tx.tx.Bucket(bIdxSeenExp)
	if err := tx.pruneSeen(); err != nil {
		return false, err
	}
	k := []byte(key)
	if v := seen.Get(k); len(v) == 16 {
		at := keyTime(v[:8])
		// A record from the future (the clock stepped back) also counts as
		// seen: letting a click through twice is the worse mistake.
		if tx.now.Sub(at) < ttl {
			return true, nil
		}
		if err := exp.Delete(append(append([]byte(nil), v[8:16]...), k...)); err != nil {
			return false, err
		}
	}
	expKey := timeKey(tx.now.Add(ttl))
	v := append(timeKey(tx.now), expKey...)
	if err := seen.Put(k, v); err != nil {
		return false, fmt.Errorf("store: seen %s: %w", key, err)
	}
	if err := exp.Put(append(expKey, k...), nil); err != nil {
		return false, fmt.Errorf("store: seen %s: %w", key, err)
	}
	return false, nil
}

// pruneSeen deletes up to seenPrunePerCall keys whose ttl has passed.
func (tx *Tx) pruneSeen() error {
	now := timeKey(tx.now)
	var expired [][]byte
	c := tx.tx.Bucket(bIdxSeenExp).Cursor()
	for k, _ := c.First(); k != nil && len(expired) < seenPrunePerCall && bytes.Compare(k[:8], now) <= 0; k, _ = c.Next() {
		expired = append(expired, append([]byte(nil), k...))
	}
	seen := tx.tx.Bucket(bSeen)
	for _, k := range expired {
		if err := c.Bucket().Delete(k); err != nil {
			return err
		}
		if v := seen.Get(k[8:]); len(v) == 16 && bytes.Equal(v[8:16], k[:8]) {
			if err := seen.Delete(k[8:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// StaticMembers lists the user ids in a static connector's group, sorted.
func (tx *Tx) StaticMembers(connector, group string) ([]string, error) {
	prefix := prefixKey(connector, group)
	var out []string
	err := scanPrefix(tx.tx.Bucket(bStatic).Cursor(), prefix, func(k, _ []byte) error {
		out = append(out, string(k[len(prefix):]))
		return nil
	})
	return out, err
}

// SetStaticMember adds (member) or removes a user id in a static connector's
// group; both are idempotent, like an IdP's membership calls.
func (tx *Tx) SetStaticMember(connector, group, userID string, member bool) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if userID == "" {
		return access.Errorf(access.CodeInvalid, "store: static member without a user id")
	}
	k := append(prefixKey(connector, group), userID...)
	b := tx.tx.Bucket(bStatic)
	if member {
		return b.Put(k, nil)
	}
	return b.Delete(k)
}
