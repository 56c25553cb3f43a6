package pgstore

import (
	"context"
	"fmt"
)

// schemaLock is the pg_advisory_lock key migrations run under ("keycard" in
// ASCII), so replicas starting together apply each migration once.
const schemaLock int64 = 0x6b6579636172640a

// migrations[v] brings the schema from version v-1 to v, in one transaction.
var migrations = []string{
	0: "",
	1: `
CREATE TABLE keycard_counters (name text COLLATE "C" PRIMARY KEY, n bigint NOT NULL);
INSERT INTO keycard_counters (name, n) VALUES ('requests', 0), ('outbox', 0);

CREATE TABLE keycard_requests (
	num        bigint PRIMARY KEY,
	id         text COLLATE "C" NOT NULL UNIQUE,
	created_ns bigint NOT NULL,
	state      text COLLATE "C" NOT NULL,
	policy     text COLLATE "C" NOT NULL,
	requester  text COLLATE "C" NOT NULL,
	connector  text COLLATE "C" NOT NULL,
	grp        text COLLATE "C" NOT NULL,
	holds      boolean NOT NULL,
	due_ns     bigint,
	body       bytea NOT NULL
);
CREATE INDEX keycard_requests_created ON keycard_requests (created_ns, id);
CREATE INDEX keycard_requests_due ON keycard_requests (due_ns, id) WHERE due_ns IS NOT NULL;
CREATE INDEX keycard_requests_state ON keycard_requests (state, policy, created_ns, id);
CREATE INDEX keycard_requests_user ON keycard_requests (requester, created_ns, id) WHERE requester <> '';
CREATE INDEX keycard_requests_holders ON keycard_requests (connector, grp, created_ns, id) WHERE holds;

CREATE TABLE keycard_waiting (
	email      text COLLATE "C" NOT NULL,
	created_ns bigint NOT NULL,
	id         text COLLATE "C" NOT NULL,
	PRIMARY KEY (email, created_ns, id)
);
CREATE INDEX keycard_waiting_id ON keycard_waiting (id);

CREATE TABLE keycard_audit_head (
	one   boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq   bigint NOT NULL,
	hash  bytea NOT NULL,
	at_ns bigint NOT NULL
);
INSERT INTO keycard_audit_head (one, seq, hash, at_ns) VALUES (true, 0, ''::bytea, 0);

CREATE TABLE keycard_audit_events (
	seq   bigint PRIMARY KEY,
	at_ns bigint NOT NULL,
	body  bytea NOT NULL
);
CREATE INDEX keycard_audit_events_time ON keycard_audit_events (at_ns, seq);

CREATE TABLE keycard_outbox (id bigint PRIMARY KEY, body json NOT NULL);
CREATE TABLE keycard_pins (slack_id text COLLATE "C" PRIMARY KEY, body json NOT NULL);
CREATE TABLE keycard_message_refs (
	request_id text COLLATE "C" NOT NULL,
	kind       text COLLATE "C" NOT NULL,
	step       bigint NOT NULL,
	slack_user text COLLATE "C" NOT NULL,
	body       json NOT NULL,
	PRIMARY KEY (request_id, kind, step, slack_user)
);
CREATE TABLE keycard_cursors (name text COLLATE "C" PRIMARY KEY, value text NOT NULL);
CREATE TABLE keycard_seen (key text COLLATE "C" PRIMARY KEY, at_ns bigint NOT NULL, exp_ns bigint NOT NULL);
CREATE INDEX keycard_seen_exp ON keycard_seen (exp_ns, key);
CREATE TABLE keycard_static (
	connector text COLLATE "C" NOT NULL,
	grp       text COLLATE "C" NOT NULL,
	user_id   text COLLATE "C" NOT NULL,
	PRIMARY KEY (connector, grp, user_id)
);
CREATE TABLE keycard_docs (
	kind text COLLATE "C" NOT NULL,
	id   text COLLATE "C" NOT NULL,
	body json NOT NULL,
	PRIMARY KEY (kind, id)
);
`,
	// 2: the leader lease (lease.go): one row per lease name, its holder,
	// the fencing token (raised on every new term) and the expiry.
	2: `
CREATE TABLE keycard_leases (
	name       text COLLATE "C" PRIMARY KEY,
	holder     text COLLATE "C" NOT NULL,
	token      bigint NOT NULL,
	expires_ns bigint NOT NULL,
	renewed_ns bigint NOT NULL,
	since_ns   bigint NOT NULL
);
`,
}

// SchemaVersion is the schema this code reads and writes.
func SchemaVersion() int { return len(migrations) - 1 }

// migrate applies the missing migrations under the advisory lock; a database
// whose schema is newer than this code is refused.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", schemaLock); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", schemaLock); err != nil {
			// A lock we cannot release must not go back to the pool.
			_ = conn.Conn().Close(context.Background())
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS keycard_schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return err
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM keycard_schema_migrations").Scan(&have); err != nil {
		return err
	}
	target := SchemaVersion()
	if have > target {
		return fmt.Errorf("the database has schema version %d, newer than this keycard understands (%d)", have, target)
	}
	for v := have + 1; v <= target; v++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("migration to schema version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO keycard_schema_migrations (version) VALUES ($1)", v); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("migration to schema version %d: %w", v, err)
		}
	}
	return nil
}
