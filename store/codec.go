package store

import (
	"encoding/binary"
	"time"

	"keycard/access"
)

// Requests are stored in a compact binary encoding, not JSON. The access
// export reads every request of the period; with encoding/json, decoding was
// four fifths of its time (internal/bench BenchmarkExportAccess profile:
// encoding/json.Unmarshal 2.43 s of 3.10 s, ~23 µs a request) and the export
// ran at under 5% of raw encoding/csv, against a budget of 50%.
//
// The encoding is a format byte, then every field of access.Request in
// declaration order: strings as uvarint length + bytes, integers as varints,
// the booleans as one flag varint, times as a kind byte (0 zero, 1 UTC,
// 2 with a fixed offset) + varint Unix seconds + uvarint nanoseconds
// (+ varint offset seconds). TestRequestCodecCoversEveryField fills every
// field by reflection, so a field added to access.Request and forgotten here
// fails a test instead of vanishing from the store.
//
// Values written before schema version 2 are JSON (they start with '{');
// decodeRequest still reads them and the version-2 migration rewrites them.
const requestFormatBinary byte = 3

// requestFormatV2 is the binary format before steps carried EscalatedAt;
// still read.
const requestFormatV2 byte = 2

// Flag bits of the boolean fields.
const (
	flagPrivileged = 1 << iota
	flagBreakGlass
	flagStartAssumed
	flagNotOwner
)

// Time kinds.
const (
	timeZero byte = iota
	timeUTC
	timeOffset
)

type requestEncoder struct{ b []byte }

func (e *requestEncoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *requestEncoder) int(n int64)   { e.b = binary.AppendVarint(e.b, n) }
func (e *requestEncoder) uint(n uint64) { e.b = binary.AppendUvarint(e.b, n) }

func (e *requestEncoder) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, timeZero)
		return
	}
	// A zero offset is stored as UTC, as its RFC 3339 "Z" was in JSON.
	_, off := t.Zone()
	kind := timeUTC
	if off != 0 {
		kind = timeOffset
	}
	e.b = append(e.b, kind)
	e.int(t.Unix())
	e.uint(uint64(t.Nanosecond()))
	if kind == timeOffset {
		e.int(int64(off))
	}
}

func (e *requestEncoder) person(p access.Person) {
	e.str(p.Email)
	e.str(p.Name)
	e.str(p.SlackID)
	e.str(p.IdPID)
}

// encodeRequest is the only place that writes a request's stored form.
func encodeRequest(r *access.Request) ([]byte, error) {
	e := requestEncoder{b: make([]byte, 0, 384+len(r.Justification))}
	e.b = append(e.b, requestFormatBinary)
	for _, s := range []string{r.ID, r.Policy, r.PolicyVersion, r.App, r.Role, r.Connector, r.Group} {
		e.str(s)
	}
	var flags uint64
	if r.Privileged {
		flags |= flagPrivileged
	}
	if r.BreakGlass {
		flags |= flagBreakGlass
	}
	if r.StartAssumed {
		flags |= flagStartAssumed
	}
	if r.NotOwner {
		flags |= flagNotOwner
	}
	e.uint(flags)
	e.person(r.Requester)
	e.int(int64(r.Duration))
	e.str(r.Justification)
	e.str(r.Extends)
	e.str(r.ExtendedBy)
	e.time(r.RootStart)
	e.uint(uint64(len(r.Steps)))
	for i := range r.Steps {
		s := &r.Steps[i]
		e.str(s.Rule)
		e.uint(uint64(len(s.Candidates)))
		for _, c := range s.Candidates {
			e.person(c)
		}
		sf := uint64(s.Added) << 1 // bit 0: escalated; the rest: how many approvers the escalation added
		if s.Escalated {
			sf |= 1
		}
		e.uint(sf)
		e.str(string(s.Decision))
		e.person(s.DecidedBy)
		e.time(s.DecidedAt)
		e.str(s.Comment)
		e.time(s.Reminded)
		e.time(s.EscalatedAt) // format 3
	}
	e.int(int64(r.Current))
	e.str(string(r.State))
	for _, t := range []time.Time{r.CreatedAt, r.ExpiresAt, r.RemindAt, r.EscalateAt, r.DecidedAt,
		r.ProvisionedAt, r.EndsAt, r.WarnAt, r.EndedAt, r.DeprovisionedAt} {
		e.time(t)
	}
	e.str(string(r.EndReason))
	e.person(r.EndedBy)
	e.str(r.FailReason)
	e.str(r.AddEventID)
	e.str(r.RemoveEventID)
	e.uint(r.Rev)
	e.str(r.Kind)       // added after Rev: older records end at Rev and decode with Kind ""
	e.time(r.StartedAt) // added after Kind: older records end at Kind and decode with a zero StartedAt
	// Added after StartedAt (scheduled access): older records end at
	// StartedAt and decode with zero StartAt and StartRetryAt.
	e.time(r.StartAt)
	e.time(r.StartRetryAt)
	// Decisions taken under a delegation (issue 15 item 2), added after
	// StartRetryAt and written only when some step has one or the MFA
	// section follows (then as a count of 0 when none): older records, and
	// every record with neither, end at StartRetryAt.
	mfa := hasMFA(r)
	if delegatedSteps(r) {
		e.uint(uint64(len(r.Steps)))
		for i := range r.Steps {
			e.person(r.Steps[i].OnBehalfOf)
			e.str(r.Steps[i].Delegation)
		}
	} else if mfa {
		e.uint(0)
	}
	if mfa {
		// Added after the delegation section, only when a step asks for
		// MFA: records without it end before and decode with no MFA state.
		e.mfa(r)
	}
	return e.b, nil
}

// Step flag bits of the MFA block.
const (
	stepMFA = 1 << iota
	stepChallenge
)

func hasMFA(r *access.Request) bool {
	if !r.MFAPollAt.IsZero() {
		return true
	}
	for i := range r.Steps {
		if s := &r.Steps[i]; s.MFA || s.Challenge != nil || s.MFAFactor != "" || s.MFANote != "" {
			return true
		}
	}
	return false
}

// mfa writes the approval_mfa state: the next poll, then per step its flag,
// factor, note and the challenge in flight.
func (e *requestEncoder) mfa(r *access.Request) {
	e.time(r.MFAPollAt)
	for i := range r.Steps {
		s := &r.Steps[i]
		var f uint64
		if s.MFA {
			f |= stepMFA
		}
		if s.Challenge != nil {
			f |= stepChallenge
		}
		e.uint(f)
		e.str(s.MFAFactor)
		e.str(s.MFANote)
		if c := s.Challenge; c != nil {
			e.person(c.Approver)
			e.str(c.Factor)
			e.str(c.Ref)
			e.str(c.UserID)
			e.time(c.SentAt)
			e.time(c.Deadline)
			e.str(c.Comment)
			e.person(c.OnBehalfOf)
			e.str(c.Delegation)
			e.str(c.PolicyHash)
		}
	}
}

// delegatedSteps reports whether some step of r was decided under a
// delegation (the codec's optional delegation section).
func delegatedSteps(r *access.Request) bool {
	for i := range r.Steps {
		if s := &r.Steps[i]; s.OnBehalfOf != (access.Person{}) || s.Delegation != "" {
			return true
		}
	}
	return false
}
