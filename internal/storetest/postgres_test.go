package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"keycard/handlers"
	"keycard/internal/adapt"
	pgstore "keycard/store/postgres"

	"github.com/jackc/pgx/v5"
)

// TestPostgres runs the suite against a real PostgreSQL server, each test in
// a fresh database dropped at cleanup. .ci/run starts a throwaway cluster and
// sets KEYCARD_TEST_DATABASE_URL.
func TestPostgres(t *testing.T) {
	admin := os.Getenv("KEYCARD_TEST_DATABASE_URL")
	if admin == "" {
		t.Skip("PostgreSQL tests skipped: set KEYCARD_TEST_DATABASE_URL (CI starts a cluster)")
	}
	Run(t, func(t *testing.T) *DB {
		u := FreshDatabase(t, admin)
		open := func(t *testing.T) *pgstore.DB {
			db, err := pgstore.Open(context.Background(), u, pgstore.Options{MaxConns: 8})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		}
		db := open(t)
		return &DB{
			Store: adapt.Postgres(db), VerifyFn: db.Verify, Static: db,
			Replica: func(t *testing.T) handlers.Store { return adapt.Postgres(open(t)) },
		}
	})
}

// FreshDatabase creates an empty database with a random name on the server
// at admin and returns its URL; it is dropped when t ends.
func FreshDatabase(t testing.TB, admin string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "keycard_test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to KEYCARD_TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
