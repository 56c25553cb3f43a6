package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"keycard/access"

	"github.com/jackc/pgx/v5"
)

// Why a lease row and not a session advisory lock (issue 13): an advisory
// lock belongs to a server session, so a replica cut off from PostgreSQL
// cannot tell when it lost the lock — the server frees it only when it
// notices the dead TCP connection (keepalive: minutes), and the replica may
// still believe it leads. A row with an expiry gives both sides the same
// deadline: the holder knows from its own clock when its term ends (it steps
// down at ttl - margin, before anyone may take over at ttl), and every change
// of holder raises a fencing token that singleton work checks at commit
// (Tx.CheckFence), so even a leader that was paused past its term cannot
// commit a late write. The times are the callers' (injected clocks), so the
// replicas' clocks must agree to well within the margin (NTP); the token,
// not the clock, is what keeps a late write out.

// Lease acquires or renews the lease name for holder at now, for ttl, in one
// statement: the row is taken when it is free, expired (expires <= now) or
// already holder's. The fencing token is raised whenever a new term starts
// (another holder, or holder again after its lease lapsed or was released)
// and kept while holder renews an unexpired lease. held is false, with the
// current token, when someone else holds it.
func (db *DB) Lease(name, holder string, ttl time.Duration, now time.Time) (token uint64, held bool, err error) {
	if name == "" || holder == "" || ttl <= 0 {
		return 0, false, access.Errorf(access.CodeInvalid, "lease: name, holder and a positive ttl are required")
	}
	n := ns(now)
	exp := ns(now.Add(ttl))
	var tok int64
	var who string
	// A renewal that takes longer than the lease is worth nothing; do not
	// let a hung connection hold the loop past it (IsLeader does not wait
	// for the loop: it reads the clock).
	ctx, cancel := context.WithTimeout(db.ctx, ttl)
	defer cancel()
	// ON CONFLICT DO UPDATE locks the row and evaluates WHERE on its latest
	// version, so two replicas racing for a free lease serialise here and
	// exactly one wins; the loser's RETURNING is empty. It runs as its own
	// autocommit statement: a lease must not wait behind a long transaction.
	err = db.pool.QueryRow(ctx, `
INSERT INTO keycard_leases AS l (name, holder, token, expires_ns, renewed_ns, since_ns)
VALUES ($1, $2, 1, $4, $3, $3)
ON CONFLICT (name) DO UPDATE SET
	holder = excluded.holder,
	token = CASE WHEN l.holder = excluded.holder AND l.expires_ns > $3 THEN l.token ELSE l.token + 1 END,
	since_ns = CASE WHEN l.holder = excluded.holder AND l.expires_ns > $3 THEN l.since_ns ELSE excluded.since_ns END,
	expires_ns = excluded.expires_ns,
	renewed_ns = excluded.renewed_ns
WHERE l.holder = excluded.holder OR l.expires_ns <= $3
RETURNING token, holder`, name, holder, n, exp).Scan(&tok, &who)
	if err == nil {
		return uint64(tok), true, nil
	}
	if !isNoRows(err) {
		return 0, false, access.Wrap(access.CodeUnavailable, err, "lease %s: %s", name, safeErr(err))
	}
	err = db.pool.QueryRow(ctx, "SELECT token FROM keycard_leases WHERE name = $1", name).Scan(&tok)
	if err != nil && !isNoRows(err) {
		return 0, false, access.Wrap(access.CodeUnavailable, err, "lease %s: %s", name, safeErr(err))
	}
	return uint64(tok), false, nil
}

// Release ends holder's term with token at once (a clean shutdown), so a
// standby can take over at its next check instead of waiting for the ttl.
// Releasing a lease held by someone else, or a term that already ended, does
// nothing.
func (db *DB) Release(name, holder string, token uint64, now time.Time) error {
	if token > math.MaxInt64 {
		return nil
	}
	_, err := db.pool.Exec(db.ctx, `UPDATE keycard_leases SET expires_ns = $4
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires_ns > $4`, name, holder, int64(token), ns(now))
	if err != nil {
		return access.Wrap(access.CodeUnavailable, err, "release lease %s: %s", name, safeErr(err))
	}
	return nil
}

// LeaseInfo is a lease row as stored.
type LeaseInfo struct {
	Holder  string
	Token   uint64
	Expires time.Time
	Renewed time.Time
	Since   time.Time // when the current term began
}

// LeaseState reads the lease row; false when nobody ever took it.
func (db *DB) LeaseState(name string) (LeaseInfo, bool, error) {
	var li LeaseInfo
	var tok, exp, ren, since int64
	err := db.pool.QueryRow(db.ctx, "SELECT holder, token, expires_ns, renewed_ns, since_ns FROM keycard_leases WHERE name = $1", name).
		Scan(&li.Holder, &tok, &exp, &ren, &since)
	if isNoRows(err) {
		return li, false, nil
	}
	if err != nil {
		return li, false, access.Wrap(access.CodeUnavailable, err, "lease %s: %s", name, safeErr(err))
	}
	li.Token, li.Expires, li.Renewed, li.Since = uint64(tok), nsTime(exp), nsTime(ren), nsTime(since)
	return li, true, nil
}

// CheckFence, inside the Update that commits singleton work, fails with
// CodeConflict unless token is still the lease's current token and the term
// has not expired at the transaction's time. It reads the row FOR SHARE, so
// a takeover (which updates the row) waits for this transaction to commit or
// makes it fail with a serialization error and run again — and then see the
// new token: a deposed leader's late write is refused, never interleaved.
func (tx *Tx) CheckFence(name string, token uint64) error {
	if err := tx.writable(); err != nil {
		return err
	}
	var cur, exp int64
	var holder string
	ok, err := tx.one("SELECT token, holder, expires_ns FROM keycard_leases WHERE name = $1 FOR SHARE", []any{name}, &cur, &holder, &exp)
	if err != nil {
		return fmt.Errorf("store: lease %s: %w", name, err)
	}
	switch {
	case !ok:
		return access.Errorf(access.CodeConflict, "This replica does not hold the %s lease (nobody does).", name)
	case token == 0 || uint64(cur) != token:
		return access.Errorf(access.CodeConflict, "This replica's %s lease (token %d) was taken over by %s (token %d).", name, token, holder, cur)
	case exp <= ns(tx.now):
		return access.Errorf(access.CodeConflict, "This replica's %s lease (token %d) expired at %s.", name, token, nsTime(exp).Format(time.RFC3339Nano))
	}
	return nil
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
