// Package store is keycard's durable state: one bbolt file that holds the
// access requests (each carrying its grant), the secondary indexes the
// scheduler and handlers read, the provisioning outbox, the hash-chained
// audit log, identity pins, Slack message references, cursors, envelope
// dedupe keys and the memberships of static connectors.
//
// Why one bbolt file: a state change, the IdP operation it needs and its audit
// event must land together or not at all (SPEC "Every transition is one audit
// event"), and bbolt gives fully serializable read-write transactions with a
// single writer. Every write goes through [DB.Update] or [DB.Batch] with the
// single time of the transaction, so the store never reads the wall clock.
//
// Layout (all keys big-endian so that bbolt's byte order is numeric order):
//
//	meta           schema version, audit head (seq, hash, time), outbox depth
//	requests_by_number  n of "REQ-<n>" (8 bytes) -> binary request (codec.go
//	               writes it, codec_decode.go reads it; migrations.go);
//	               creation order, so export walks read pages in sequence
//	idx_created    created-time + id               (ForEachRequest, exports)
//	idx_due        NextDue + id                    (Due: O(due), not O(requests))
//	idx_state      state 0 policy 0 created + id   (InState, CountInState)
//	idx_user       lower(email) 0 created + id     (RequestsOfUser)
//	idx_waiting    lower(email) 0 created + id     (WaitingOn: pending step candidates)
//	idx_holders    connector 0 group 0 created + id (Holders: states that hold membership)
//	events         seq -> canonical encoding + 32 raw hash bytes
//	idx_event_time time + seq                      (written, not read: exports walk events, which the chain covers)
//	outbox         op id -> JSON
//	pins, msgrefs, cursors, seen, idx_seen_exp, static
//
// What both backends apply lives once, in shared.go, and the PostgreSQL
// store (store/postgres) calls it: the request and event encodings, the
// audit chain check (VerifyChain, which DB.Verify also runs), the search
// for a period's first event, the checks and JSON of pins, message refs,
// outbox ops and documents, and the undo log of a retried transaction.
//
// bbolt's contract shapes the API (go.etcd.io/bbolt doc.go): bytes read from
// the memory map are valid only inside their transaction, so every getter
// copies; only one read-write transaction runs at a time, so no network call
// may happen inside one; and the file lock is taken with a timeout so a second
// keycard on the same file fails fast instead of hanging.
package store
