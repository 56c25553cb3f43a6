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

	bolt "go.etcd.io/bbolt"
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

// requestsToBinary is the migration to schema version 2: it rewrites every
// request stored as JSON in the binary encoding. It runs once, inside the
// Update that opens a version-1 file; indexes do not change. Version 2 still
// kept requests in the legacy bucket, keyed by id string.
func requestsToBinary(btx *bolt.Tx) error {
	b := btx.Bucket(bLegacyRequests)
	if b == nil {
		return nil // a new file: nothing was stored before version 3
	}
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(v) > 0 && v[0] == '{' {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		r, err := decodeRequest(b.Get(k))
		if err != nil {
			return fmt.Errorf("request %s: %w", k, err)
		}
		v, err := encodeRequest(&r)
		if err != nil {
			return fmt.Errorf("request %s: %w", k, err)
		}
		if err := b.Put(k, v); err != nil {
			return fmt.Errorf("request %s: %w", k, err)
		}
	}
	return nil
}

// requestsByNumber is the migration to schema version 3: it moves every
// request from the legacy bucket (keyed by the id string) to bRequests
// (keyed by requestKey), keeps the bucket's sequence so ids keep counting
// where they were, and deletes the legacy bucket. Values and indexes do not
// change. Like every migration it runs inside the Update that opens the
// file, so a crash half way leaves the file at version 2.
func requestsByNumber(btx *bolt.Tx) error {
	old := btx.Bucket(bLegacyRequests)
	if old == nil {
		return nil
	}
	b := btx.Bucket(bRequests)
	err := old.ForEach(func(k, v []byte) error {
		key, ok := requestKey(string(k))
		if !ok {
			return fmt.Errorf("request id %q is not REQ-<n>", k)
		}
		if b.Get(key) != nil {
			return fmt.Errorf("request %s stored twice", k)
		}
		return b.Put(key, v)
	})
	if err != nil {
		return err
	}
	if err := b.SetSequence(max(b.Sequence(), old.Sequence())); err != nil {
		return err
	}
	return btx.DeleteBucket(bLegacyRequests)
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
