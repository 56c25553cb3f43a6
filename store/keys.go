package store

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"time"
)

// Bucket names.
var (
	bMeta         = []byte("meta")
	bRequests     = []byte("requests_by_number")
	bIdxCreated   = []byte("idx_created")
	bIdxDue       = []byte("idx_due")
	bIdxState     = []byte("idx_state")
	bIdxUser      = []byte("idx_user")
	bIdxWaiting   = []byte("idx_waiting")
	bIdxHolders   = []byte("idx_holders")
	bEvents       = []byte("events")
	bIdxEventTime = []byte("idx_event_time")
	bOutbox       = []byte("outbox")
	bPins         = []byte("pins")
	bMsgRefs      = []byte("msgrefs")
	bCursors      = []byte("cursors")
	bSeen         = []byte("seen")
	bIdxSeenExp   = []byte("idx_seen_exp")
	bStatic       = []byte("static")
)

// bLegacyRequests is the requests bucket of schema versions 1 and 2, keyed
// by the id string ("REQ-1001"). Only the migrations read it; version 3
// moves its requests to bRequests and deletes it.
var bLegacyRequests = []byte("requests")

var allBuckets = [][]byte{
	bMeta, bRequests, bIdxCreated, bIdxDue, bIdxState, bIdxUser, bIdxWaiting, bIdxHolders,
	bEvents, bIdxEventTime, bOutbox, bPins, bMsgRefs, bCursors, bSeen, bIdxSeenExp, bStatic,
}

// Keys of the meta bucket.
var (
	keySchema      = []byte("schema")       // uint64 schema version
	keyHead        = []byte("audit_head")   // seq(8) + hash(32) + time(8)
	keyOutboxDepth = []byte("outbox_depth") // uint64: ops in the outbox
)

// requestKey is a request's key in bRequests: the n of "REQ-<n>" as 8
// big-endian bytes, so byte order is creation order and a walk over requests
// in creation order reads leaf pages one after the other. The string keys of
// schema version 2 ("REQ-1001", "REQ-10010", "REQ-1002", …) sorted
// lexicographically, so consecutive requests sat on unrelated pages and every
// row of an export was a fresh B+tree descent (internal/bench
// BenchmarkExportAccess profile: bbolt Bucket.Get 18–20% of the export).
// Only the canonical form is a key: "REQ-01001" or "REQ-+1001" would name the
// same number, so they are refused (false) and read as not found.
func requestKey(id string) ([]byte, bool) { return appendRequestKey(nil, id) }

// appendRequestKey appends requestKey(id) to dst, for walks that reuse one
// key buffer.
func appendRequestKey[S string | []byte](dst []byte, id S) ([]byte, bool) {
	const prefix = "REQ-"
	if len(id) <= len(prefix) || string(id[:len(prefix)]) != prefix || id[len(prefix)] == '0' {
		return dst, false
	}
	var n uint64
	for i := len(prefix); i < len(id); i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return dst, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return dst, false // overflows uint64
		}
		n = n*10 + d
	}
	return binary.BigEndian.AppendUint64(dst, n), true
}

// sep separates variable-length parts of index keys. Emails, connector and
// group names, states and policy names never contain a NUL byte.
const sep = 0

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

var (
	minKeyTime = time.Unix(0, math.MinInt64)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

// timeKey encodes t as 8 big-endian bytes of its Unix nanoseconds with the
// sign bit flipped, so that byte order is time order also before 1970 (the
// zero time.Time sorts first). Times outside int64 nanoseconds (before 1678,
// after 2262) are clamped.
func timeKey(t time.Time) []byte {
	var n int64
	switch {
	case t.Before(minKeyTime):
		n = math.MinInt64
	case t.After(maxKeyTime):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return u64(uint64(n) ^ (1 << 63))
}

// keyTime decodes timeKey.
func keyTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// prefixKey joins parts with sep and ends with a sep, for prefix scans.
func prefixKey(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, sep)
	}
	return b
}

// lowerEmail is the case-insensitive form used in email-keyed indexes (SPEC:
// people are joined by email; mail systems treat addresses case-insensitively
// in practice).
func lowerEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// scanPrefix calls fn with each key (and value) starting with prefix, in order.
// The slices are only valid inside the transaction.
func scanPrefix(c interface {
	Seek([]byte) ([]byte, []byte)
	Next() ([]byte, []byte)
}, prefix []byte, fn func(k, v []byte) error) error {
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}
