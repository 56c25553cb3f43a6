package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/storetest"
	pgstore "keycard/store/postgres"

	"github.com/jackc/pgx/v5/pgconn"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// TestOpenMalformedURL: a bad KEYCARD_DATABASE_URL is one error naming the
// variable, and the password never appears in it.
func TestOpenMalformedURL(t *testing.T) {
	tests := []struct{ name, url string }{
		{"not a URL", "host=db password=s3cret user=k"},
		{"wrong scheme", "mysql://k:s3cret@db:3306/keycard"},
		{"bad port", "postgres://k:s3cret@db:notaport/keycard"},
		{"broken host", "postgres://k:s3cret@[::1/keycard"},
		{"no host", "postgres:///keycard?password=s3cret"},
		{"bad option", "postgres://k:s3cret@db:5432/keycard?sslmode=sometimes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pgstore.Open(context.Background(), tt.url, pgstore.Options{})
			if err == nil {
				t.Fatal("opened")
			}
			msg := err.Error()
			if access.CodeOf(err) != access.CodeInvalid || !strings.Contains(msg, "KEYCARD_DATABASE_URL") {
				t.Errorf("err = %v (code %s), want invalid naming KEYCARD_DATABASE_URL", err, access.CodeOf(err))
			}
			if strings.Contains(msg, "s3cret") || strings.Contains(access.MessageOf(err), "s3cret") {
				t.Errorf("the password leaked: %s", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("not one line: %q", msg)
			}
		})
	}
}

// TestOpenUnreachable: a database that does not answer is CodeUnavailable,
// and the password is not in the error.
func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pgstore.Open(ctx, "postgres://k:s3cret@127.0.0.1:1/keycard?connect_timeout=2", pgstore.Options{})
	if access.CodeOf(err) != access.CodeUnavailable || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v (code %s)", err, access.CodeOf(err))
	}
}

func open(t *testing.T, url string) *pgstore.DB {
	t.Helper()
	db, err := pgstore.Open(context.Background(), url, pgstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestMigrationsRunOnceUnderTheLock: replicas starting together apply each
// migration once; a database newer than the code is refused.
func TestMigrationsRunOnceUnderTheLock(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := pgstore.Open(context.Background(), url, pgstore.Options{MaxConns: 2})
			if err == nil {
				_ = db.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
	db := open(t, url)
	ctx := context.Background()
	var n, v int
	if err := db.Pool().QueryRow(ctx, "SELECT count(*), max(version) FROM keycard_schema_migrations").Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != pgstore.SchemaVersion() || v != pgstore.SchemaVersion() {
		t.Errorf("%d migrations recorded up to version %d, want %d", n, v, pgstore.SchemaVersion())
	}
	if _, err := db.Pool().Exec(ctx, "INSERT INTO keycard_schema_migrations (version) VALUES (99)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Open(ctx, url, pgstore.Options{}); err == nil || !strings.Contains(err.Error(), "newer than this keycard") {
		t.Errorf("newer schema: %v", err)
	}
}

// TestVerifyDetectsTampering edits the tables under the store with SQL, as
// someone with write access to the database would; the sentences are the
// bbolt store's.
func TestVerifyDetectsTampering(t *testing.T) {
	admin := storetest.PostgresURL(t)
	const n = 20
	tests := []struct {
		name    string
		sql     string
		bad     uint64
		problem string
	}{
		{"flip a byte of an event", "UPDATE keycard_audit_events SET body = set_byte(body, 40, get_byte(body, 40) # 1) WHERE seq = 7", 7, "event 7 was altered"},
		{"flip a byte of the stored hash", "UPDATE keycard_audit_events SET body = set_byte(body, length(body)-1, get_byte(body, length(body)-1) # 1) WHERE seq = 12", 12, "event 12 was altered"},
		{"delete an event", "DELETE FROM keycard_audit_events WHERE seq = 9", 9, "event 9 is missing"},
		{"truncate the log", fmt.Sprintf("DELETE FROM keycard_audit_events WHERE seq = %d", n), n, "event 20 is missing: the head says"},
		{"head moved back", "UPDATE keycard_audit_head SET seq = 18", 19, "event 19 is past the head"},
		{"head hash altered", "UPDATE keycard_audit_head SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1)", n, "does not match the head"},
		// at_ns is not chained; verify holds it to the chained time (issue 10).
		{"event re-dated", "UPDATE keycard_audit_events SET at_ns = at_ns + 3600000000000 WHERE seq = 3", 3, "event 3 was re-dated: its stored time"},
		{"head re-dated", "UPDATE keycard_audit_head SET at_ns = at_ns - 1", n, "event 20 was re-dated: the head's stored time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t, storetest.FreshDatabase(t, admin))
			for i := 0; i < n; i++ {
				if err := db.Update(t0.Add(time.Duration(i)*time.Second), func(tx *pgstore.Tx) error {
					_, err := tx.Append(access.Event{Type: access.EvAlert, Detail: fmt.Sprint(i)})
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Pool().Exec(context.Background(), tt.sql); err != nil {
				t.Fatal(err)
			}
			res, err := db.Verify(1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() || res.BadSeq != tt.bad || !strings.Contains(res.Problem, tt.problem) {
				t.Errorf("verify = %+v, want bad %d %q", res, tt.bad, tt.problem)
			}
		})
	}
}

// TestEventsBetweenIgnoresAtNs: the at_ns column is not chained, so moving
// it must not move an event in or out of a period (issue 10: 6 events
// became 2 while verify passed). The period's ends are judged by the
// chained times, and verify names the re-dated event.
func TestEventsBetweenIgnoresAtNs(t *testing.T) {
	admin := storetest.PostgresURL(t)
	from, to := t0.Add(10*time.Second), t0.Add(16*time.Second) // seqs 11..16
	ns := func(t time.Time) int64 { return t.UnixNano() }
	tests := []struct {
		name string
		sql  string
		bad  uint64
	}{
		{"inside moved past the end", fmt.Sprintf("UPDATE keycard_audit_events SET at_ns = %d WHERE seq = 13", ns(to.Add(time.Hour))), 13},
		{"first moved before the start", fmt.Sprintf("UPDATE keycard_audit_events SET at_ns = %d WHERE seq = 11", ns(t0)), 11},
		{"after moved into the period", fmt.Sprintf("UPDATE keycard_audit_events SET at_ns = %d WHERE seq = 17", ns(from)), 17},
		{"before moved into the period", fmt.Sprintf("UPDATE keycard_audit_events SET at_ns = %d WHERE seq = 10", ns(from)), 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t, storetest.FreshDatabase(t, admin))
			for i := 0; i < 20; i++ {
				if err := db.Update(t0.Add(time.Duration(i)*time.Second), func(tx *pgstore.Tx) error {
					_, err := tx.Append(access.Event{Type: access.EvAlert, Detail: fmt.Sprint(i)})
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Pool().Exec(context.Background(), tt.sql); err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			if err := db.View(func(tx *pgstore.Tx) error {
				return tx.EventsBetween(from, to, func(e access.Event) error {
					seqs = append(seqs, e.Seq)
					return nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(seqs) != "[11 12 13 14 15 16]" {
				t.Errorf("events in the period: %v, want seqs 11 to 16", seqs)
			}
			res, err := db.Verify(1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() || res.BadSeq != tt.bad || !strings.Contains(res.Problem, "re-dated") {
				t.Errorf("verify = %+v, want event %d re-dated", res, tt.bad)
			}
		})
	}
}

// TestSwallowedSerializationFailureIsRetried: a fn that hides a 40001 from
// a statement (and returns nil) is still run again, not committed half
// done: the store remembers the database's error.
func TestSwallowedSerializationFailureIsRetried(t *testing.T) {
	db := open(t, storetest.FreshDatabase(t, storetest.PostgresURL(t)))
	runs := 0
	err := db.Update(t0, func(tx *pgstore.Tx) error {
		runs++
		if runs == 1 {
			// What a serialization failure looks like to the statement
			// that hits it, raised by the server itself.
			_ = tx.Raise("40001")
			return nil
		}
		return tx.SetCursor("c", "v")
	})
	if err != nil || runs != 2 {
		t.Fatalf("err %v after %d runs, want success on the second", err, runs)
	}
	_ = db.View(func(tx *pgstore.Tx) error {
		if v, _ := tx.Cursor("c"); v != "v" {
			t.Errorf("cursor = %q", v)
		}
		return nil
	})
}

// TestRetryable classifies by SQLSTATE, never by text.
func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40001", Message: "anything"}, true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{fmt.Errorf("store: put: %w", &pgconn.PgError{Code: "40001"}), true},
		{&pgconn.PgError{Code: "23505", Message: "could not serialize access"}, false},
		{errors.New("could not serialize access due to concurrent update"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := pgstore.Retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %v", tt.err, got)
		}
	}
}

// TestRetriesRunOutAsUnavailable: a transaction that keeps failing with a
// deadlock is given up after the configured retries as CodeUnavailable.
func TestRetriesRunOutAsUnavailable(t *testing.T) {
	url := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	db, err := pgstore.Open(context.Background(), url, pgstore.Options{Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs := 0
	err = db.Update(t0, func(tx *pgstore.Tx) error { runs++; return tx.Raise("40P01") })
	if access.CodeOf(err) != access.CodeUnavailable || runs != 4 {
		t.Errorf("err %v (code %s) after %d runs", err, access.CodeOf(err), runs)
	}
}

// TestReadsUseIndexes: with many requests and few matching, the scheduler's
// and handlers' reads are index reads, not scans of the requests table.
func TestReadsUseIndexes(t *testing.T) {
	db := open(t, storetest.FreshDatabase(t, storetest.PostgresURL(t)))
	const n = 5000
	err := db.Update(t0, func(tx *pgstore.Tx) error {
		for i := 0; i < n; i++ {
			r := &access.Request{
				Policy: fmt.Sprint("p", i%500), Connector: "okta", Group: fmt.Sprint("app-p", i%500),
				Requester: access.Person{Email: fmt.Sprintf("u%d@x", i%1000)},
				State:     access.StateExpired,
			}
			if i%50 == 0 {
				r.State = access.StatePending
				r.ExpiresAt = t0.Add(time.Duration(i) * time.Hour)
				r.Steps = []access.Step{{Rule: "users", Candidates: []access.Person{{Email: fmt.Sprintf("carol%d@x", i%20)}}}}
			}
			if i%100 == 1 {
				r.State = access.StateActive
				r.EndsAt = t0.Add(time.Duration(i) * time.Minute)
			}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := db.Pool().Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	for _, q := range pgstore.IndexedReads {
		t.Run(q.Name, func(t *testing.T) {
			rows, err := db.Pool().Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			p := strings.Join(plan, "\n")
			if strings.Contains(p, "Seq Scan on keycard_requests") || !strings.Contains(p, "Index") {
				t.Errorf("%s is not an index read:\n%s", q.Name, p)
			}
		})
	}
}

// TestDocsPagesAndSeenPrunes: a prefix walk longer than one page sees every
// document once, in order; each Seen call deletes at most 16 expired keys.
func TestDocsPagesAndSeenPrunes(t *testing.T) {
	db := open(t, storetest.FreshDatabase(t, storetest.PostgresURL(t)))
	const docs = 2500
	if err := db.Update(t0, func(tx *pgstore.Tx) error {
		for i := 0; i < docs; i++ {
			if err := tx.PutDoc("item", fmt.Sprintf("c1/%05d", i), i); err != nil {
				return err
			}
		}
		if err := tx.PutDoc("item", "c2/00000", 0); err != nil {
			return err
		}
		for i := 0; i < 40; i++ {
			if _, err := tx.Seen(fmt.Sprint("env-", i), time.Minute); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = db.View(func(tx *pgstore.Tx) error {
		return tx.Docs("item", "c1/", func(id string, _ []byte) error { got = append(got, id); return nil })
	})
	if len(got) != docs || got[0] != "c1/00000" || got[docs-1] != fmt.Sprintf("c1/%05d", docs-1) {
		t.Fatalf("walked %d documents (%v … )", len(got), got[:min(3, len(got))])
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order at %d: %s after %s", i, got[i], got[i-1])
		}
	}
	if err := db.Update(t0.Add(2*time.Minute), func(tx *pgstore.Tx) error {
		_, err := tx.Seen("env-new", time.Minute)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Pool().QueryRow(context.Background(), "SELECT count(*) FROM keycard_seen").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 40-16+1 {
		t.Errorf("%d dedupe keys after one prune, want %d", n, 40-16+1)
	}
}

// TestForEachRequestPagesUseTheIndex: ForEachRequest's page is one index
// range even in a generic plan (which PostgreSQL may pick for a prepared
// statement after five runs): the "after" key is in the index condition,
// not a filter, so a million-row export does not rescan the index from its
// start for each page.
func TestForEachRequestPagesUseTheIndex(t *testing.T) {
	db := open(t, storetest.FreshDatabase(t, storetest.PostgresURL(t)))
	err := db.Update(t0, func(tx *pgstore.Tx) error {
		for i := 0; i < 3000; i++ {
			r := &access.Request{Policy: "p", State: access.StateExpired, CreatedAt: t0.Add(time.Duration(i) * time.Second)}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, stmt := range []string{"ANALYZE", "SET plan_cache_mode = force_generic_plan", "PREPARE page AS " + pgstore.RequestPage} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Exec(ctx, "DEALLOCATE page; RESET plan_cache_mode")
	var plan []string
	rows, err := conn.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE page(9000000000000000000, %d, 'REQ-3000', 1000)", t0.Add(2000*time.Second).UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(plan, "\n")
	if !strings.Contains(p, "Index Cond: ((created_ns < $1) AND (ROW(created_ns, id) > ROW($2") || strings.Contains(p, "Filter:") {
		t.Errorf("the page's after-key is not in the index condition of its generic plan:\n%s", p)
	}
}
