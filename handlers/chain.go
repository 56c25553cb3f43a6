package handlers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"keycard/access"
)

// The access export is built from request records, which the hash chain
// does not cover: rewriting a record's justification or approver in
// keycard.db changed the evidence while `audit verify` still passed (issue
// 10, Medium). So every audit event about a request carries, in its detail,
// the digest of the request's evidence fields as stored at that moment
// ("record", RecordDigest), and the access export holds each record to the
// digest of the last chained event about it (accessCrossCheck).
//
// The digest is injected by the store wrapper every Service transaction
// goes through (attestingStore), not by each transition: a transition
// written later cannot forget it.

// recordKey is the detail key of the record digest. encodeWithRecord
// always writes it last, so the export reads it from the detail's end
// (recordOf) instead of decoding every event's JSON.
const recordKey = "record"

// RecordDigest is the hex SHA-256 of the fields of r the access export
// shows or derives its cells from (AccessHeader; Request.AsOf and Request.AccessStart),
// length-prefixed in a fixed order so no two records encode alike.
//
// The encoding is frozen: events already in the chain attest it. A field
// the export starts to show needs a new encoding under a new detail key
// (say "record_v2"), with the check accepting the version an event names;
// changing this one would fail every export of older records.
func RecordDigest(r *access.Request) string {
	sum := sha256.Sum256(appendRecord(nil, r))
	return hex.EncodeToString(sum[:])
}

func appendRecord(b []byte, r *access.Request) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	tm := func(t time.Time) {
		if t.IsZero() {
			b = append(b, 0)
			return
		}
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	}
	num := func(n int64) { b = binary.AppendVarint(b, n) }
	b = append(b, 1) // encoding version
	str(r.ID)
	str(string(r.Kind))
	str(r.Requester.Name)
	str(r.Requester.Email)
	str(r.App)
	str(r.Role)
	str(r.Policy)
	str(r.PolicyVersion)
	tm(r.CreatedAt)
	str(r.Justification)
	num(int64(r.Duration))
	str(string(r.State))
	num(int64(r.Current))
	tm(r.DecidedAt)
	tm(r.ProvisionedAt)
	tm(r.EndsAt)
	tm(r.EndedAt)
	tm(r.DeprovisionedAt)
	str(string(r.EndReason))
	str(r.EndedBy.Email)
	num(int64(len(r.Steps)))
	for i := range r.Steps {
		st := &r.Steps[i]
		str(st.Rule)
		num(int64(len(st.Candidates)))
		for _, c := range st.Candidates {
			str(c.Email)
		}
		str(string(st.Decision))
		str(st.DecidedBy.Email)
		tm(st.DecidedAt)
		str(st.Comment)
		if st.Escalated {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		tm(st.EscalatedAt)
		num(int64(st.Added))
	}
	// What provisioning learnt (issue 10): an assumed start and a standing
	// membership change access_start and approval_chain in the export.
	tm(r.StartedAt)
	flag := byte(0)
	if r.StartAssumed {
		flag |= 1
	}
	if r.NotOwner {
		flag |= 2
	}
	b = append(b, flag)
	// Decisions under a delegation (issue 15 item 2) show in approval_chain,
	// so they are attested too. The section is written only when some step
	// has one: every record without one encodes exactly as before, so the
	// digests already in the chain still match, and a record with one
	// cannot encode like a record without (its bytes continue).
	delegated := false
	for i := range r.Steps {
		if r.Steps[i].OnBehalfOf.Email != "" || r.Steps[i].Delegation != "" {
			delegated = true
		}
	}
	if delegated {
		b = append(b, 'D')
		for i := range r.Steps {
			str(r.Steps[i].OnBehalfOf.Email)
			str(r.Steps[i].Delegation)
		}
	}
	// approval_mfa (issue 15 item 1): approval_chain shows "MFA required" and
	// the verifying factor, so they are attested too; written only when some
	// step has MFA, for the same reason as the delegation section.
	mfa := false
	for i := range r.Steps {
		if r.Steps[i].MFA || r.Steps[i].MFAFactor != "" {
			mfa = true
		}
	}
	if mfa {
		b = append(b, 'M')
		for i := range r.Steps {
			if r.Steps[i].MFA {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			str(r.Steps[i].MFAFactor)
		}
	}
	return b
}

// encodeWithRecord returns detail (a compact JSON object, or "") with the
// record digest as its last member, replacing any earlier one.
func encodeWithRecord(detail, digest string) string {
	tail := `"` + recordKey + `":"` + digest + `"}`
	if detail == "" {
		return "{" + tail
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(detail), &m) != nil {
		// Not an object (keycard writes none): keep it whole, beside.
		raw, _ := json.Marshal(detail)
		return `{"detail":` + string(raw) + "," + tail
	}
	delete(m, recordKey)
	if len(m) == 0 {
		return "{" + tail
	}
	b, err := json.Marshal(m) // sorted keys: deterministic
	if err != nil {
		return detail
	}
	return string(b[:len(b)-1]) + "," + tail
}

// recordOf reads the record digest encodeWithRecord put at the end of an
// event's detail. In valid JSON the quote before the key cannot be an
// escaped quote inside a string, so the suffix is the last member, written
// by keycard.
func recordOf(detail string) (digest string, ok bool) {
	const n = 64 // hex SHA-256
	suffix := len(`"`+recordKey+`":"`) + n + len(`"}`)
	if len(detail) < suffix+1 || !strings.HasSuffix(detail, `"}`) {
		return "", false
	}
	head := detail[len(detail)-suffix:]
	if !strings.HasPrefix(head, `"`+recordKey+`":"`) {
		return "", false
	}
	if c := detail[len(detail)-suffix-1]; c != ',' && c != '{' {
		return "", false
	}
	// The digest's hex is checked where it is decoded (attestation, and
	// any comparison with RecordDigest's lowercase hex).
	return head[len(`"`+recordKey+`":"`) : len(head)-2], true
}

// attestingStore wraps the Store every Service transaction uses so that
// each event about a request carries the record digest (see above).
type attestingStore struct{ Store }

func (s attestingStore) Update(now time.Time, fn func(Tx) error) error {
	return s.Store.Update(now, func(tx Tx) error { return fn(&attestingTx{Tx: tx}) })
}

func (s attestingStore) Batch(now time.Time, fn func(Tx) error) error {
	return s.Store.Batch(now, func(tx Tx) error { return fn(&attestingTx{Tx: tx}) })
}

// attestingTx injects the stored record's digest into every event with a
// request id, as the record stands when the event is appended (so a
// transition puts its record before appending its event, as they all do).
type attestingTx struct{ Tx }

func (tx *attestingTx) Append(e access.Event) (access.Event, error) {
	if e.RequestID != "" {
		r, err := tx.Tx.Request(e.RequestID)
		switch {
		case err == nil:
			e.Detail = encodeWithRecord(e.Detail, RecordDigest(&r))
		case access.CodeOf(err) != access.CodeNotFound:
			return e, err
		}
	}
	return tx.Tx.Append(e)
}

// requestNumber is the n of "REQ-<n>" (false for other ids).
func requestNumber(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, "REQ-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	// Only the canonical spelling: "REQ-01005" is not request 1005, so a
	// forged record cannot mark 1005 as reached.
	return n, err == nil && strconv.FormatUint(n, 10) == s
}

// recordIndex holds, per request number, the first 16 bytes of the record
// digest of the last chained event about the request, and one byte of
// flags: 17 bytes a request (17 MB for a million; the export's peak heap is
// about twice what it keeps live, since the collector lets the heap grow to
// twice the live heap before it runs). 128 bits leave no practical second
// preimage. Request numbers are dense from 1001, so the index is an array
// in fixed blocks allocated as numbers appear: a million requests take 245
// blocks of 4,096 and growing never copies (a doubling slice held the old
// and new arrays at once, internal/bench BenchmarkPostgresExport).
//
// The seq of the attesting event is not kept for dense numbers (it was 16
// more bytes a request, and the export's peak heap went over its 64 MiB
// budget at a million requests): only an error message and a request the
// walk did not reach need it, and attestingSeqs finds it again by walking
// the chain once more.
type recordIndex struct {
	tx     Tx
	head   uint64         // the chain walked: 1..head
	bound  uint64         // the first seq at or after the export's To
	blocks []*recordBlock // by request number >> recordBlockBits; nil: none in it
	sparse map[uint64]recordAt
	// What the export's walk reached (complete), for sparse numbers.
	visitedSparse map[uint64]bool
}

const (
	recordBlockBits = 12
	recordBlockSize = 1 << recordBlockBits
)

// recordBlock is recordBlockSize consecutive request numbers.
type recordBlock struct {
	digest [recordBlockSize][16]byte // zero: no attestation
	flags  [recordBlockSize]uint8
}

const (
	recordPut     = 1 << iota // some event attested it (the first one set early)
	recordEarly               // its first attesting event (request.submitted) is before bound
	recordVisited             // the export's walk reached it
)

// recordAt is one request's attestation; seq is 0 when not known yet
// (dense numbers: attestingSeqs).
type recordAt struct {
	digest [16]byte
	seq    uint64
	first  uint64 // sparse numbers only
}

// maxDenseRequest bounds the dense index: request numbers are sequential
// from 1001, so only a forged id lands above it.
const maxDenseRequest = 1 << 24

// chainedRecords walks the audit chain by seq up to head (the chain itself,
// not an index; a gap is an error) and indexes each request's last record
// digest; bound is the first seq at or after the export's To (firstSeqFrom).
func chainedRecords(tx Tx, head, bound uint64) (*recordIndex, error) {
	ix := &recordIndex{tx: tx, head: head, bound: bound}
	err := tx.EventDetails(head, func(seq uint64, requestID, detail []byte) error {
		if n, v, ok := attestation(requestID, detail); ok {
			ix.put(n, v, seq)
		}
		return nil
	})
	if err != nil {
		return nil, walkError(err)
	}
	return ix, nil
}

func walkError(err error) error {
	return access.Wrap(access.CodeInternal, err, "The audit log could not be walked for the export (run `keycard audit verify`).")
}

// attestation reads the request number and record digest an event attests
// (false: none). chainedRecords and attestingSeqs must read alike.
func attestation(requestID, detail []byte) (uint64, [16]byte, bool) {
	var v [16]byte
	if len(requestID) == 0 {
		return 0, v, false
	}
	d, ok := recordOf(unsafeString(detail))
	if !ok {
		return 0, v, false
	}
	n, ok := requestNumber(unsafeString(requestID))
	if !ok {
		return 0, v, false
	}
	if _, err := hex.Decode(v[:], bytesOf(d[:32])); err != nil {
		return 0, v, false
	}
	return n, v, true
}

// attestingSeqs fills in the seq of the last chained event attesting each
// of ats' request numbers, in one more walk of the chain. The digest it
// attests must be the one indexed: the chain cannot change inside the
// export's read transaction, so a difference is a bug, not tampering.
func (ix *recordIndex) attestingSeqs(ats map[uint64]*recordAt) error {
	err := ix.tx.EventDetails(ix.head, func(seq uint64, requestID, detail []byte) error {
		if n, v, ok := attestation(requestID, detail); ok {
			if at := ats[n]; at != nil && v == at.digest {
				at.seq = seq
			}
		}
		return nil
	})
	if err != nil {
		return walkError(err)
	}
	for n, at := range ats {
		if at.seq == 0 {
			return access.Errorf(access.CodeInternal, "REQ-%d: the audit chain's attestation was not found again for the export.", n)
		}
	}
	return nil
}

// unsafeString views b as a string without copying; the string must not
// outlive b (here: one EventDetails callback).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// block is the block holding dense number n and n's place in it; nil when
// no number of that block was put.
func (ix *recordIndex) block(n uint64) (*recordBlock, int) {
	bi := n >> recordBlockBits
	if bi >= uint64(len(ix.blocks)) {
		return nil, 0
	}
	return ix.blocks[bi], int(n & (recordBlockSize - 1))
}

func (ix *recordIndex) put(n uint64, d [16]byte, seq uint64) {
	if n >= maxDenseRequest {
		if ix.sparse == nil {
			ix.sparse = map[uint64]recordAt{}
		}
		first := seq
		if old, ok := ix.sparse[n]; ok {
			first = old.first
		}
		ix.sparse[n] = recordAt{d, seq, first}
		return
	}
	bi := int(n >> recordBlockBits)
	if bi >= len(ix.blocks) {
		ix.blocks = append(ix.blocks, make([]*recordBlock, bi+1-len(ix.blocks))...)
	}
	b := ix.blocks[bi]
	if b == nil {
		b = new(recordBlock)
		ix.blocks[bi] = b
	}
	i := int(n & (recordBlockSize - 1))
	b.digest[i] = d
	if b.flags[i]&recordPut == 0 {
		b.flags[i] |= recordPut
		if seq < ix.bound {
			b.flags[i] |= recordEarly
		}
	}
}

func (ix *recordIndex) get(n uint64) (recordAt, bool) {
	if n < maxDenseRequest {
		if b, i := ix.block(n); b != nil && b.digest[i] != ([16]byte{}) {
			return recordAt{digest: b.digest[i]}, true
		}
		return recordAt{}, false
	}
	v, ok := ix.sparse[n]
	return v, ok
}

// check holds r to its attestation; scratch is a reusable buffer.
func (ix *recordIndex) check(r *access.Request, scratch *[]byte, c *RecordCheck) error {
	n, _ := requestNumber(r.ID)
	at, ok := ix.get(n)
	if !ok {
		c.Unattested++
		return nil
	}
	*scratch = appendRecord((*scratch)[:0], r)
	sum := sha256.Sum256(*scratch)
	if [16]byte(sum[:16]) != at.digest {
		if at.seq == 0 {
			if err := ix.attestingSeqs(map[uint64]*recordAt{n: &at}); err != nil {
				return err
			}
		}
		return access.Errorf(access.CodeIntegrity, "%s: the stored request record does not match the record audit event %d attests (its justification, decisions or times were changed outside keycard); the export stops rather than show it.", r.ID, at.seq)
	}
	c.Checked++
	return nil
}

// visit notes that the export's walk reached request r (emitted or
// filtered out).
func (ix *recordIndex) visit(id string) {
	n, ok := requestNumber(id)
	if !ok {
		return
	}
	if n < maxDenseRequest {
		if b, i := ix.block(n); b != nil {
			b.flags[i] |= recordVisited
		}
		return
	}
	if _, attested := ix.sparse[n]; attested {
		if ix.visitedSparse == nil {
			ix.visitedSparse = map[uint64]bool{}
		}
		ix.visitedSparse[n] = true
	}
}

// unreachedBatch is how many requests the walk did not reach complete
// judges per extra walk of the chain (attestingSeqs): none in an untouched
// store, and a bounded map when the creation index lost many keys.
var unreachedBatch = 4096

// complete checks, after the access export walked the creation index
// (which the chain does not cover), that the walk reached every request
// the chain attests whose request.submitted falls before p.To: deleting
// one idx_created key, or a record and its key, silently dropped a row
// (issue 10 review). A request it did not reach is judged on its attested
// record (held to its digest first) or, when the record is gone, on its
// last attested event; one the export should have shown is a CodeIntegrity
// error naming it.
func (ix *recordIndex) complete(p ExportParams, scratch *[]byte) error {
	var batch []uint64
	judge := func() error {
		ats := make(map[uint64]*recordAt, len(batch))
		for _, n := range batch {
			at, _ := ix.get(n)
			ats[n] = &at
		}
		if err := ix.attestingSeqs(ats); err != nil {
			return err
		}
		for _, n := range batch { // in number order, as before
			if err := ix.unreached(p, n, *ats[n], scratch); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	for bi, b := range ix.blocks {
		if b == nil {
			continue
		}
		for i := range b.digest {
			if b.digest[i] == ([16]byte{}) || b.flags[i]&(recordEarly|recordVisited) != recordEarly {
				continue
			}
			batch = append(batch, uint64(bi)<<recordBlockBits|uint64(i))
			if len(batch) == unreachedBatch {
				if err := judge(); err != nil {
					return err
				}
			}
		}
	}
	if len(batch) > 0 {
		if err := judge(); err != nil {
			return err
		}
	}
	for _, n := range slices.Sorted(maps.Keys(ix.sparse)) {
		if at := ix.sparse[n]; at.first < ix.bound && !ix.visitedSparse[n] {
			if err := ix.unreached(p, n, at, scratch); err != nil {
				return err
			}
		}
	}
	return nil
}

// unreached judges one attested request the export's walk did not reach.
func (ix *recordIndex) unreached(p ExportParams, n uint64, at recordAt, scratch *[]byte) error {
	tx := ix.tx
	id := "REQ-" + strconv.FormatUint(n, 10)
	r, err := tx.Request(id)
	switch {
	case err == nil:
		if err := ix.check(&r, scratch, &RecordCheck{}); err != nil {
			return err
		}
		if !r.CreatedAt.Before(p.To) || accessExcluded(&r, p) {
			return nil
		}
		return access.Errorf(access.CodeIntegrity, "%s: the audit chain attests this request (event %d) in the export's period, but the export's walk of the request index did not reach it (an index key was removed outside keycard); the export stops rather than leave it out.", id, at.seq)
	case access.CodeOf(err) != access.CodeNotFound:
		return err
	}
	e, err := tx.Event(at.seq)
	if err != nil {
		return access.Wrap(access.CodeInternal, err, "The audit log could not be read for the export (run `keycard audit verify`).")
	}
	if p.Policy != "" && e.Policy != "" && e.Policy != p.Policy {
		return nil
	}
	if endsRequest[e.Type] && e.Time.Before(p.From) {
		return nil
	}
	return access.Errorf(access.CodeIntegrity, "%s: the audit chain attests this request (event %d) in the export's period, but its stored record is gone (deleted outside keycard); the export stops rather than leave it out.", id, at.seq)
}

// endsRequest are the events after which a request's lifecycle is over
// (access.Request.LifecycleEnd): a request whose last attested event is
// one of them, before the period, does not belong in it.
var endsRequest = map[access.EventType]bool{
	access.EvRequestDenied: true, access.EvRequestCancelled: true, access.EvRequestTimedOut: true,
	access.EvGrantFailed: true, access.EvGrantExpired: true, access.EvGrantRevoked: true,
}

// firstSeqFrom is the first seq up to head whose event is at or after t
// (head+1 when none): events are in time order by seq, so a binary search.
func firstSeqFrom(tx Tx, t time.Time, head uint64) (uint64, error) {
	lo, hi := uint64(1), head+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := tx.Event(mid)
		if err != nil {
			return 0, access.Wrap(access.CodeInternal, err, "The audit log could not be read for the export (run `keycard audit verify`).")
		}
		if e.Time.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// bytesOf views s as bytes without copying; the bytes are only read.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
