// Package pgstore is keycard's durable state in PostgreSQL (14 or newer),
// behind the same port as the embedded bbolt store (handlers.Store/Tx), so
// that several `keycard serve` replicas can share one database (SPEC "Beyond
// one machine", KEYCARD_DATABASE_URL).
//
// Semantics are bbolt's, checked by the one conformance suite both backends
// run (internal/storetest):
//
//   - [DB.Update] is one SERIALIZABLE transaction: a state change, its outbox
//     operation and its audit event commit together or not at all. A
//     transient failure (SQLSTATE 40001 serialization_failure, 40P01
//     deadlock_detected; classified by code, never by text) rolls back and
//     runs fn again with jittered backoff, so fn MAY RUN MORE THAN ONCE;
//     before each run the store restores the fields it assigned to caller
//     values (Request ID/Rev/CreatedAt, Op ID/CreatedAt), exactly as bbolt's
//     Batch does. fn must not make network calls (STYLE.md principle 8).
//   - [DB.Batch] is Update: PostgreSQL gains nothing from bbolt's shared
//     fsync here, and Batch's contract (fn idempotent) is met.
//   - [DB.View] is a REPEATABLE READ READ ONLY transaction: one snapshot.
//   - Round trips, not the disk, are what a networked transaction costs, so
//     a Tx sends BEGIN with its first statement, and writes whose result
//     nothing reads (the request row and its waiting rows, the outbox row,
//     the audit event with the head move) travel in one pgx batch with the
//     next statement or the COMMIT. Their errors still fail the transaction
//     before it commits. A state change as handlers makes it is three round
//     trips: BEGIN + read; CAS write + head lock; event + head + COMMIT
//     (internal/bench BenchmarkPostgresStateChange).
//
// The audit log stays ONE chain with any number of replicas: Append locks the
// single row of keycard_audit_head with SELECT … FOR UPDATE, reads the head
// (seq, hash, time), inserts seq+1 and moves the head, all in the caller's
// transaction. A second appender blocks on the row lock and, because the
// transaction is SERIALIZABLE, fails with 40001 when the first commits and is
// retried from a fresh snapshot; the primary key on seq is a second guard.
// Events are stored as bbolt stores them (access.Event.Canonical() followed by
// the 32 raw SHA-256 bytes) with the same ids (store.EventID), so the hashes,
// `keycard audit verify` (store.VerifyChain) and the events export agree on
// both backends, and a migration copies the values byte for byte. Requests
// use the same binary encoding (store.EncodeRequest) in a bytea column beside
// the columns the indexes need.
//
// Layout (schema versions 1 and 2; times are int64 Unix nanoseconds clamped like
// bbolt's keys, texts COLLATE "C" so SQL order is bbolt's byte order):
//
//	keycard_schema_migrations  version, applied_at        (migrations applied)
//	keycard_counters           name -> n                  (request numbers, op ids: transactional, no gaps)
//	keycard_requests           num, id, created_ns, state, policy, requester,
//	                           connector, grp, holds, due_ns, body
//	  indexes: (created_ns, id); (due_ns, id) WHERE due_ns IS NOT NULL;
//	           (state, policy, created_ns, id); (requester, created_ns, id);
//	           (connector, grp, created_ns, id) WHERE holds
//	keycard_waiting            (email, created_ns, id)    (WaitingOn: pending step candidates)
//	keycard_audit_head         one row: seq, hash, at_ns  (the lock appends take)
//	keycard_audit_events       seq -> at_ns, body; index (at_ns, seq) (not read by exports: at_ns is unchained, Verify holds it to the body)
//	keycard_outbox             id -> JSON op
//	keycard_pins, keycard_message_refs, keycard_cursors, keycard_seen (+ exp_ns index),
//	keycard_static, keycard_docs
//	keycard_leases             name -> holder, token, expires_ns, renewed_ns, since_ns
//	                           (schema version 2: the leader lease, lease.go)
//
// Migrations are versioned in keycard_schema_migrations and applied by Open
// under pg_advisory_lock, so replicas starting together apply each once; a
// database newer than the code is refused.
//
// Several replicas: one of them runs the singleton work, chosen by a lease
// row (lease.go: why a row and not an advisory lock; Leader runs the renew
// loop; Tx.CheckFence refuses a deposed leader's commit). `keycard migrate`
// fills an empty database from a bbolt file through DB.Load (load.go,
// package store/migrate).
//
// Backups: keycard's own `backup` writes a bbolt file and does not apply
// here. Back PostgreSQL up with the operator's tools — pg_dump (a consistent
// snapshot: `pg_dump --format=custom DBNAME`) or the managed service's
// point-in-time recovery — and restore with pg_restore; then run
// `keycard audit verify` against the restored database.
package pgstore
