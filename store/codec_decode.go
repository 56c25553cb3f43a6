package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"keycard/access"
)

// Decoding the request format codec.go describes and writes: a decoder over
// a private copy of the stored value, and the arena that lets a walk over
// every request of a period allocate a few times per hundred rows.

var errTruncated = errors.New("truncated request encoding")

// requestDecoder reads from buf, a private copy of the stored value: the
// strings it returns share that copy's memory (one allocation per request
// instead of one per field), which is safe because nothing writes buf after
// the copy.
type requestDecoder struct {
	buf []byte
	off int
	err error
}

func (d *requestDecoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.buf[d.off:])
	if k <= 0 {
		d.err = errTruncated
		return 0
	}
	d.off += k
	return n
}

// int undoes the zig-zag encoding of binary.PutVarint over uint, as
// binary.Varint does.
func (d *requestDecoder) int() int64 {
	u := d.uint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *requestDecoder) byte() byte {
	if d.err != nil || d.off >= len(d.buf) {
		d.err = errTruncated
		return 0
	}
	d.off++
	return d.buf[d.off-1]
}

func (d *requestDecoder) str() string {
	n := d.uint()
	if d.err != nil || n == 0 {
		return ""
	}
	if n > uint64(len(d.buf)-d.off) {
		d.err = errTruncated
		return ""
	}
	s := unsafe.String(&d.buf[d.off], int(n))
	d.off += int(n)
	return s
}

func (d *requestDecoder) time() time.Time {
	switch kind := d.byte(); kind {
	case timeZero:
		return time.Time{}
	case timeUTC, timeOffset:
		sec := d.int()
		nsec := d.uint()
		if nsec >= 1e9 {
			d.err = fmt.Errorf("request encoding: %d nanoseconds", nsec)
			return time.Time{}
		}
		t := time.Unix(sec, int64(nsec))
		if kind == timeUTC {
			return t.UTC()
		}
		off := d.int()
		if off < math.MinInt32 || off > math.MaxInt32 {
			d.err = fmt.Errorf("request encoding: zone offset %d", off)
			return time.Time{}
		}
		return t.In(time.FixedZone("", int(off)))
	default:
		if d.err == nil {
			d.err = fmt.Errorf("request encoding: time kind %d", kind)
		}
		return time.Time{}
	}
}

func (d *requestDecoder) person() access.Person {
	return access.Person{Email: d.str(), Name: d.str(), SlackID: d.str(), IdPID: d.str()}
}

// count reads a slice length and refuses one the remaining bytes cannot hold
// (each element takes at least one byte), so corrupt input cannot make the
// decoder allocate without bound.
func (d *requestDecoder) count() int {
	n := d.uint()
	if d.err == nil && n > uint64(len(d.buf)-d.off) {
		d.err = errTruncated
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// mfa reads the approval_mfa state requestEncoder.mfa wrote.
func (d *requestDecoder) mfa(r *access.Request) {
	r.MFAPollAt = d.time()
	for i := range r.Steps {
		s := &r.Steps[i]
		f := d.uint()
		s.MFA = f&stepMFA != 0
		s.MFAFactor = d.str()
		s.MFANote = d.str()
		if f&stepChallenge != 0 {
			c := &access.Challenge{}
			c.Approver = d.person()
			c.Factor = d.str()
			c.Ref = d.str()
			c.UserID = d.str()
			c.SentAt = d.time()
			c.Deadline = d.time()
			c.Comment = d.str()
			c.OnBehalfOf = d.person()
			c.Delegation = d.str()
			c.PolicyHash = d.str()
			s.Challenge = c
		}
	}
}

// decodeRequest is the only place that reads a request's stored form. It
// copies v (bbolt's bytes live only as long as the transaction).
func decodeRequest(v []byte) (access.Request, error) {
	var r access.Request
	err := decodeRequestInto(&r, v, nil)
	return r, err
}

// requestArena hands out the memory of decoded requests in chunks, so a walk
// over a million requests makes a few allocations per hundred rows instead of
// five per row (internal/bench BenchmarkExportAccess profile: decodeRequest
// was 27% of the export, mostly mallocgc). A chunk is never written again
// after a request was carved from it: a value copy of a decoded request stays
// valid after the walk moves on, and the garbage collector frees a chunk once
// no request refers to it. The price is that a kept request keeps its chunk
// (at most arenaBytes plus one slab of steps and one of people) alive.
type requestArena struct {
	bytes   []byte
	steps   []access.Step
	persons []access.Person
}

// Chunk sizes: about twenty stored requests (~600 bytes, two steps, three
// candidates each) per chunk.
const (
	arenaBytes   = 16 << 10
	arenaSteps   = 64
	arenaPersons = 128
)

// copyOf returns a private copy of v.
func (a *requestArena) copyOf(v []byte) []byte {
	if a == nil || len(v) > arenaBytes/4 {
		return append([]byte(nil), v...)
	}
	if len(v) > cap(a.bytes)-len(a.bytes) {
		a.bytes = make([]byte, 0, arenaBytes)
	}
	start := len(a.bytes)
	a.bytes = append(a.bytes, v...)
	return a.bytes[start:len(a.bytes):len(a.bytes)]
}

// stepSlice returns n zeroed steps whose capacity is n, so appending to them
// cannot reach a neighbour's.
func (a *requestArena) stepSlice(n int) []access.Step {
	if a == nil {
		return make([]access.Step, n)
	}
	return carve(&a.steps, n, arenaSteps)
}

// personSlice is stepSlice for candidates.
func (a *requestArena) personSlice(n int) []access.Person {
	if a == nil {
		return make([]access.Person, n)
	}
	return carve(&a.persons, n, arenaPersons)
}

// carve takes n zeroed elements with capacity n from *pool, refilling it
// with a fresh chunk of size elements when it runs short; more than a
// quarter of a chunk gets a slice of its own.
func carve[T any](pool *[]T, n, size int) []T {
	if n > size/4 {
		return make([]T, n)
	}
	if n > cap(*pool)-len(*pool) {
		*pool = make([]T, 0, size)
	}
	start := len(*pool)
	*pool = (*pool)[:start+n]
	return (*pool)[start : start+n : start+n]
}

// Interned values of the enumerated fields: a decoded state used as a map
// key (the export's per-status counts) then holds a constant, not a chunk.
var (
	knownStates = []access.State{access.StatePending, access.StateScheduled, access.StateProvisioning, access.StateActive,
		access.StateDeprovisioning, access.StateExpired, access.StateRevoked, access.StateDenied,
		access.StateCancelled, access.StateTimedOut, access.StateFailed}
	knownDecisions = []access.Decision{access.DecisionApproved, access.DecisionDenied}
	knownReasons   = []access.Reason{access.ReasonExpired, access.ReasonRevoked, access.ReasonOffboarded}
)

func intern[T ~string](s string, known []T) T {
	for _, k := range known {
		if string(k) == s {
			return k
		}
	}
	return T(s)
}

// decodeRequestInto overwrites every field of r with the request stored in
// v. The strings and slices it sets come from arena (nil: fresh allocations)
// and share no memory with r's previous values.
func decodeRequestInto(r *access.Request, v []byte, arena *requestArena) error {
	if len(v) > 0 && v[0] == '{' {
		*r = access.Request{}
		return json.Unmarshal(v, r) // written before schema version 2
	}
	if len(v) == 0 || (v[0] != requestFormatBinary && v[0] != requestFormatV2) {
		*r = access.Request{}
		return fmt.Errorf("request encoding: unknown format (%d bytes)", len(v))
	}
	format := v[0]
	d := requestDecoder{buf: arena.copyOf(v), off: 1}
	r.ID, r.Policy, r.PolicyVersion, r.App, r.Role, r.Connector, r.Group = d.str(), d.str(), d.str(), d.str(), d.str(), d.str(), d.str()
	flags := d.uint()
	r.Privileged = flags&flagPrivileged != 0
	r.BreakGlass = flags&flagBreakGlass != 0
	r.StartAssumed = flags&flagStartAssumed != 0
	r.NotOwner = flags&flagNotOwner != 0
	r.Requester = d.person()
	r.Duration = time.Duration(d.int())
	r.Justification = d.str()
	r.Extends = d.str()
	r.ExtendedBy = d.str()
	r.RootStart = d.time()
	r.Steps = nil
	if n := d.count(); n > 0 {
		r.Steps = arena.stepSlice(n)
		for i := range r.Steps {
			s := &r.Steps[i]
			s.Rule = d.str()
			if m := d.count(); m > 0 {
				s.Candidates = arena.personSlice(m)
				for j := range s.Candidates {
					s.Candidates[j] = d.person()
				}
			}
			sf := d.uint()
			s.Escalated = sf&1 != 0
			s.Added = int(sf >> 1)
			s.Decision = intern(d.str(), knownDecisions)
			s.DecidedBy = d.person()
			s.DecidedAt = d.time()
			s.Comment = d.str()
			s.Reminded = d.time()
			if format >= requestFormatBinary {
				s.EscalatedAt = d.time()
			}
			s.OnBehalfOf, s.Delegation = access.Person{}, "" // read after StartedAt, when present
		}
	}
	r.Current = int(d.int())
	r.State = intern(d.str(), knownStates)
	r.CreatedAt, r.ExpiresAt, r.RemindAt, r.EscalateAt, r.DecidedAt = d.time(), d.time(), d.time(), d.time(), d.time()
	r.ProvisionedAt, r.EndsAt, r.WarnAt, r.EndedAt, r.DeprovisionedAt = d.time(), d.time(), d.time(), d.time(), d.time()
	r.EndReason = intern(d.str(), knownReasons)
	r.EndedBy = d.person()
	r.FailReason = d.str()
	r.AddEventID = d.str()
	r.RemoveEventID = d.str()
	r.Rev = d.uint()
	r.Kind, r.StartedAt = "", time.Time{}
	if d.err == nil && d.off < len(d.buf) {
		r.Kind = d.str()
	}
	if d.err == nil && d.off < len(d.buf) {
		r.StartedAt = d.time()
	}
	r.StartAt, r.StartRetryAt = time.Time{}, time.Time{}
	if d.err == nil && d.off < len(d.buf) {
		r.StartAt = d.time()
		r.StartRetryAt = d.time()
	}
	if d.err == nil && d.off < len(d.buf) {
		n := d.count()
		if d.err == nil && n != 0 && n != len(r.Steps) {
			d.err = fmt.Errorf("request encoding: delegated decisions for %d steps, the request has %d", n, len(r.Steps))
		}
		for i := 0; d.err == nil && n != 0 && i < len(r.Steps); i++ {
			r.Steps[i].OnBehalfOf = d.person()
			r.Steps[i].Delegation = d.str()
		}
	}
	r.MFAPollAt = time.Time{}
	if d.err == nil && d.off < len(d.buf) {
		d.mfa(r)
	}
	if d.err == nil && d.off != len(d.buf) {
		d.err = fmt.Errorf("request encoding: %d trailing bytes", len(d.buf)-d.off)
	}
	if d.err != nil {
		*r = access.Request{}
		return d.err
	}
	return nil
}
