package store

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"keycard/access"
)

// firstRequestNumber makes request ids start at REQ-1001: ids of the same
// length for the first nine thousand requests, and no "REQ-1" that reads like
// a test fixture in an auditor's sample.
const firstRequestNumber = 1000

// Request reads one request. CodeNotFound when absent.
func (tx *Tx) Request(id string) (access.Request, error) {
	r, ok, err := tx.getRequest(id)
	if err != nil {
		return access.Request{}, err
	}
	if !ok {
		return access.Request{}, access.Errorf(access.CodeNotFound, "Request %s was not found.", id)
	}
	return r, nil
}

func (tx *Tx) getRequest(id string) (access.Request, bool, error) {
	key, ok := requestKey(id)
	if !ok {
		return access.Request{}, false, nil
	}
	v := tx.tx.Bucket(bRequests).Get(key)
	if v == nil {
		return access.Request{}, false, nil
	}
	r, err := decodeRequest(v)
	if err != nil {
		return access.Request{}, false, fmt.Errorf("store: request %s: %w", id, err)
	}
	return r, true, nil
}

// PutRequest creates or updates a request.
//
// Create (r.ID == ""): assigns ID "REQ-<n>" from the bucket sequence
// (starting at REQ-1001), CreatedAt = tx.Now() when zero, and Rev = 1.
//
// Update: compare-and-swap on Rev. The stored Rev must equal r.Rev, else
// CodeConflict ("changed by someone else"): another decision, click or
// worker won the race and the caller must re-read. Then r.Rev is incremented
// and stored. Every index is moved from the stored version to the new one.
// An unknown id is CodeNotFound.
func (tx *Tx) PutRequest(r *access.Request) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if r == nil {
		return access.Errorf(access.CodeInvalid, "store: nil request")
	}
	b := tx.tx.Bucket(bRequests)
	var old *access.Request
	origID, origRev, origCreated := r.ID, r.Rev, r.CreatedAt
	if r.ID == "" {
		n, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("store: request sequence: %w", err)
		}
		r.ID = "REQ-" + strconv.FormatUint(n+firstRequestNumber, 10)
		if r.CreatedAt.IsZero() {
			r.CreatedAt = tx.now
		}
		r.Rev = 1
	} else {
		prev, ok, err := tx.getRequest(r.ID)
		if err != nil {
			return err
		}
		if !ok {
			return access.Errorf(access.CodeNotFound, "Request %s was not found.", r.ID)
		}
		if prev.Rev != r.Rev {
			return access.Wrap(access.CodeConflict,
				fmt.Errorf("stored rev %d, caller has rev %d", prev.Rev, r.Rev),
				"Request %s was changed by someone else; look again and retry.", r.ID)
		}
		old = &prev
		r.Rev++
	}
	tx.undo.Add(func() { r.ID, r.Rev, r.CreatedAt = origID, origRev, origCreated })

	v, err := encodeRequest(r)
	if err != nil {
		return fmt.Errorf("store: encode request %s: %w", r.ID, err)
	}
	key, ok := requestKey(r.ID)
	if !ok {
		return access.Errorf(access.CodeInternal, "store: request id %q is not REQ-<n>", r.ID)
	}
	if err := b.Put(key, v); err != nil {
		return fmt.Errorf("store: put request %s: %w", r.ID, err)
	}
	if old != nil {
		for _, e := range requestIndexes(old) {
			if err := tx.tx.Bucket(e.bucket).Delete(e.key); err != nil {
				return fmt.Errorf("store: unindex request %s: %w", r.ID, err)
			}
		}
	}
	for _, e := range requestIndexes(r) {
		if err := tx.tx.Bucket(e.bucket).Put(e.key, nil); err != nil {
			return fmt.Errorf("store: index request %s: %w", r.ID, err)
		}
	}
	return nil
}

type indexEntry struct {
	bucket []byte
	key    []byte
}

// createdSuffix ends every request index key: creation time then id, so a
// prefix scan returns requests in creation order.
func createdSuffix(r *access.Request) []byte {
	return append(timeKey(r.CreatedAt), r.ID...)
}

// requestIndexes lists the index keys r has in its current state.
func requestIndexes(r *access.Request) []indexEntry {
	suffix := createdSuffix(r)
	with := func(prefix []byte) []byte { return append(prefix, suffix...) }
	out := []indexEntry{
		{bIdxCreated, suffix},
		{bIdxState, with(prefixKey(string(r.State), r.Policy))},
	}
	if due := r.NextDue(); !due.IsZero() {
		out = append(out, indexEntry{bIdxDue, append(timeKey(due), r.ID...)})
	}
	if email := lowerEmail(r.Requester.Email); email != "" {
		out = append(out, indexEntry{bIdxUser, with(prefixKey(email))})
	}
	if r.State.HoldsMembership() {
		out = append(out, indexEntry{bIdxHolders, with(prefixKey(r.Connector, r.Group))})
	}
	for _, email := range WaitingEmails(r) {
		out = append(out, indexEntry{bIdxWaiting, with(prefixKey(email))})
	}
	return out
}

// requestsAt loads the requests whose index keys start with prefix; the id is
// everything after prefix and the 8-byte creation time.
func (tx *Tx) requestsAt(bucket, prefix []byte) ([]access.Request, error) {
	var out []access.Request
	err := scanPrefix(tx.tx.Bucket(bucket).Cursor(), prefix, func(k, _ []byte) error {
		r, err := tx.indexed(k[len(prefix)+8:])
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// indexed loads a request an index points at; a dangling index entry is
// corruption, not "not found".
func (tx *Tx) indexed(id []byte) (access.Request, error) {
	r, ok, err := tx.getRequest(string(id))
	if err != nil {
		return r, err
	}
	if !ok {
		return r, fmt.Errorf("store: index points at missing request %q", id)
	}
	return r, nil
}

// Due returns up to limit requests (all when limit <= 0) whose NextDue is
// at or before now, earliest first. It reads the due index only as far as
// now, so its cost is O(due), not O(requests).
func (tx *Tx) Due(now time.Time, limit int) ([]access.Request, error) {
	end := timeKey(now)
	var out []access.Request
	c := tx.tx.Bucket(bIdxDue).Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) <= 0; k, _ = c.Next() {
		if limit > 0 && len(out) >= limit {
			break
		}
		r, err := tx.indexed(k[8:])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// NextDue is the earliest NextDue of any request, so the scheduler can sleep
// until then; false when nothing is scheduled.
func (tx *Tx) NextDue() (time.Time, bool) {
	k, _ := tx.tx.Bucket(bIdxDue).Cursor().First()
	if k == nil {
		return time.Time{}, false
	}
	return keyTime(k[:8]), true
}

// RequestsOfUser returns every request made by email (case-insensitive), in
// creation order, in any state.
func (tx *Tx) RequestsOfUser(email string) ([]access.Request, error) {
	email = lowerEmail(email)
	if email == "" {
		return nil, nil
	}
	return tx.requestsAt(bIdxUser, prefixKey(email))
}

// Holders returns the requests on connector/group whose state holds (or may
// hold) the IdP membership, in creation order. keycard removes a membership
// only when the last of them ends (SPEC "Two grants that map to the same IdP
// group keep the membership until the last one ends").
func (tx *Tx) Holders(connector, group string) ([]access.Request, error) {
	return tx.requestsAt(bIdxHolders, prefixKey(connector, group))
}

// WaitingOn returns the pending requests whose current step lists email
// (case-insensitive) as a candidate, in creation order.
func (tx *Tx) WaitingOn(email string) ([]access.Request, error) {
	email = lowerEmail(email)
	if email == "" {
		return nil, nil
	}
	return tx.requestsAt(bIdxWaiting, prefixKey(email))
}

// InState returns the requests in any of states, in creation order.
func (tx *Tx) InState(states ...access.State) ([]access.Request, error) {
	var out []access.Request
	seen := map[access.State]bool{}
	c := tx.tx.Bucket(bIdxState).Cursor()
	for _, s := range states {
		if seen[s] {
			continue
		}
		seen[s] = true
		prefix := prefixKey(string(s))
		err := scanPrefix(c, prefix, func(k, _ []byte) error {
			// key: state 0 policy 0 created(8) id
			rest := k[len(prefix):]
			i := bytes.IndexByte(rest, sep)
			if i < 0 || len(rest) < i+1+8 {
				return fmt.Errorf("store: malformed state index key %q", k)
			}
			r, err := tx.indexed(rest[i+1+8:])
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// CountInState counts the requests in state by policy, from the state index
// keys alone (no request is decoded), for metrics.
func (tx *Tx) CountInState(state access.State) (map[string]int, error) {
	out := map[string]int{}
	prefix := prefixKey(string(state))
	err := scanPrefix(tx.tx.Bucket(bIdxState).Cursor(), prefix, func(k, _ []byte) error {
		rest := k[len(prefix):]
		i := bytes.IndexByte(rest, sep)
		if i < 0 {
			return fmt.Errorf("store: malformed state index key %q", k)
		}
		out[string(rest[:i])]++
		return nil
	})
	return out, err
}

// ForEachRequest streams every request created before createdBefore in
// (CreatedAt, ID) order straight from a cursor over the creation index, so an
// export over years of requests runs in bounded memory. fn returning ErrStop
// ends the walk without error; fn must not write through this transaction.
//
// The *access.Request passed to fn is the same value on every call,
// overwritten with the next request: it is valid only during the callback. A
// caller that keeps a request must copy it; a value copy (*r) is enough,
// because the strings and slices it refers to are never reused.
//
// Requests are keyed in creation order (requestKey), so the walk follows the
// index with a second cursor that usually finds the next request on the same
// leaf page (Next) and descends from the root (Seek) only when the index and
// the key order disagree: requests created with an explicit earlier
// CreatedAt, or two created in the same instant whose ids sort differently
// as strings ("REQ-10000" before "REQ-9999").
func (tx *Tx) ForEachRequest(createdBefore time.Time, fn func(*access.Request) error) error {
	end := timeKey(createdBefore)
	c := tx.tx.Bucket(bIdxCreated).Cursor()
	rc := tx.tx.Bucket(bRequests).Cursor()
	var r access.Request
	var arena requestArena
	var at []byte // the key rc is on, nil before the first Seek
	var key []byte
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) < 0; k, _ = c.Next() {
		var ok bool
		key, ok = appendRequestKey(key[:0], k[8:])
		if !ok {
			return fmt.Errorf("store: malformed creation index key %q", k)
		}
		var v []byte
		if at != nil {
			at, v = rc.Next()
		}
		if at == nil || !bytes.Equal(at, key) {
			at, v = rc.Seek(key)
			if !bytes.Equal(at, key) {
				return fmt.Errorf("store: index points at missing request %q", k[8:])
			}
		}
		if err := decodeRequestInto(&r, v, &arena); err != nil {
			return fmt.Errorf("store: request %s: %w", k[8:], err)
		}
		if err := fn(&r); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}
