package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresURL is the server the PostgreSQL tests use
// (KEYCARD_TEST_DATABASE_URL); without one they skip with one line.
func PostgresURL(t testing.TB) string {
	u := os.Getenv("KEYCARD_TEST_DATABASE_URL")
	if u == "" {
		t.Skip("PostgreSQL tests skipped: set KEYCARD_TEST_DATABASE_URL (CI starts a cluster)")
	}
	return u
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
