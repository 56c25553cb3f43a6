package access

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// EventType names an audit event. Every lifecycle transition is exactly one
// event; refusals where a person acted are audited too.
type EventType string

// Audit event types.
const (
	EvRequestSubmitted EventType = "request.submitted" // pending; detail: steps
	EvRequestRefused   EventType = "request.refused"   // a person asked and was refused; detail: code, why
	EvStepApproved     EventType = "step.approved"     // a step was approved (not the last)
	EvRequestApproved  EventType = "request.approved"  // the last step approved (or auto/break-glass): provisioning
	EvRequestDenied    EventType = "request.denied"
	EvRequestCancelled EventType = "request.cancelled"
	EvRequestTimedOut  EventType = "request.timed_out"
	EvRequestReminded  EventType = "request.reminded"  // approvers re-pinged
	EvRequestEscalated EventType = "request.escalated" // escalate_to added
	EvDecisionRefused  EventType = "decision.refused"  // a click by someone who may not decide
	EvMFAChallenged    EventType = "mfa.challenged"    // an Approve on an approval_mfa step sent a push; detail: step, factor
	EvMFAFailed        EventType = "mfa.failed"        // the push was rejected or timed out; the step stays undecided; detail: outcome

	EvGrantStarting     EventType = "grant.starting"     // a scheduled grant's start came: re-checked, IdP add queued
	EvGrantActive       EventType = "grant.active"       // IdP confirmed the add; the clock starts
	EvGrantFailed       EventType = "grant.failed"       // provisioning gave up
	EvGrantExpiring     EventType = "grant.expiring"     // expiring-soon notice due
	EvGrantEnding       EventType = "grant.ending"       // ended by keycard; removal queued (detail: reason)
	EvGrantExpired      EventType = "grant.expired"      // IdP confirmed removal after expiry
	EvGrantRevoked      EventType = "grant.revoked"      // IdP confirmed removal after revoke/offboarding (or, before a scheduled start, none was needed)
	EvGrantExtended     EventType = "grant.extended"     // an approved extension took over this grant
	EvProvisionRetrying EventType = "provision.retrying" // an IdP call failed; detail: attempt, error
	EvProvisionAlert    EventType = "provision.alert"    // a removal keeps failing: people must look

	EvPolicyLoaded      EventType = "policy.loaded"  // first load
	EvPolicyChanged     EventType = "policy.changed" // detail: old, new hash, what changed
	EvPolicyRejected    EventType = "policy.rejected"
	EvPolicyStaged      EventType = "policy.staged"    // change_approval: waits for a second admin
	EvPolicyApproved    EventType = "policy.approved"  // a second admin approved the staged version
	EvPolicyEmergency   EventType = "policy.emergency" // applied without approval (emergency path)
	EvIdentityPinned    EventType = "identity.pinned"
	EvIdentityMismatch  EventType = "identity.mismatch"
	EvUserOffboarded    EventType = "user.offboarded"
	EvExportCreated     EventType = "export.created"
	EvExportRefused     EventType = "export.refused"
	EvAlert             EventType = "alert"              // something the security channel must see
	EvAlertAcknowledged EventType = "alert.acknowledged" // detail: alert_seq, who
	EvAlertResolved     EventType = "alert.resolved"     // detail: alert_seq, outcome

	EvDelegationCreated EventType = "delegation.created" // detail: DelegationDetail
	EvDelegationEnded   EventType = "delegation.ended"   // detail: DelegationDetail with reason
	EvDelegationRefused EventType = "delegation.refused" // a person's /access delegate was refused; detail: why
)

// System actors (Event.Actor when no person acted).
const (
	ActorKeycard   = "keycard"
	ActorScheduler = "scheduler"
)

// Event is one entry of the append-only, hash-chained audit log.
type Event struct {
	Seq       uint64    `json:"seq"`
	ID        string    `json:"id"`
	Time      time.Time `json:"time"` // UTC, nanoseconds
	Type      EventType `json:"type"`
	Actor     string    `json:"actor"`   // email of the person who acted, or a system actor
	Subject   string    `json:"subject"` // email of the person the event is about
	Policy    string    `json:"policy,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Detail    string    `json:"detail,omitempty"` // compact JSON object
	PrevHash  string    `json:"prev_hash"`        // hex SHA-256 of the previous event; GenesisHash for the first
	Hash      string    `json:"hash"`             // hex SHA-256 of the canonical encoding
}

// GenesisHash is the prev_hash of the first event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Canonical is the byte encoding the hash covers: a version byte, then each
// field length-prefixed (uvarint) in a fixed order, time as int64 Unix
// nanoseconds. Length prefixes make the encoding unambiguous: no two
// different events encode alike.
func (e *Event) Canonical() []byte {
	b := make([]byte, 0, 128+len(e.Detail))
	b = append(b, 1) // encoding version
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	for _, s := range []string{e.ID, string(e.Type), e.Actor, e.Subject, e.Policy, e.RequestID, e.Detail, e.PrevHash} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// ComputeHash returns the hex SHA-256 of the canonical encoding.
func (e *Event) ComputeHash() string {
	sum := sha256.Sum256(e.Canonical())
	return hex.EncodeToString(sum[:])
}

// Seal sets PrevHash and Hash given the previous event's hash.
func (e *Event) Seal(prev string) {
	e.PrevHash = prev
	e.Hash = e.ComputeHash()
}

// Verify checks e against the previous hash and the expected sequence number.
func (e *Event) Verify(prev string, seq uint64) error {
	switch {
	case e.Seq != seq:
		return fmt.Errorf("event %d: sequence gap (expected %d)", e.Seq, seq)
	case e.PrevHash != prev:
		return fmt.Errorf("event %d: prev_hash %.12s… does not match the previous event's hash %.12s…", e.Seq, e.PrevHash, prev)
	case e.ComputeHash() != e.Hash:
		return fmt.Errorf("event %d: content does not match its hash (the event was altered)", e.Seq)
	}
	return nil
}

// ParseCanonical decodes bytes produced by Canonical. Hash is left empty:
// it is stored beside the encoding, not inside it.
func ParseCanonical(b []byte) (Event, error) {
	var e Event
	if len(b) < 17 || b[0] != 1 {
		return e, fmt.Errorf("audit event: unknown encoding (%d bytes)", len(b))
	}
	e.Seq = binary.BigEndian.Uint64(b[1:9])
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[9:17]))).UTC()
	b = b[17:]
	fields := []*string{&e.ID, (*string)(&e.Type), &e.Actor, &e.Subject, &e.Policy, &e.RequestID, &e.Detail, &e.PrevHash}
	for i, f := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return e, fmt.Errorf("audit event %d: field %d truncated", e.Seq, i)
		}
		*f = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	if len(b) != 0 {
		return e, fmt.Errorf("audit event %d: %d trailing bytes", e.Seq, len(b))
	}
	return e, nil
}
