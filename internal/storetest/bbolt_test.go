package storetest

import (
	"path/filepath"
	"testing"

	"keycard/internal/adapt"
	"keycard/store"
)

// TestBbolt runs the suite against the embedded store in t.TempDir().
func TestBbolt(t *testing.T) {
	Run(t, func(t *testing.T) *DB {
		db, err := store.Open(filepath.Join(t.TempDir(), "keycard.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return &DB{Store: adapt.Store(db), VerifyFn: db.Verify, Static: db}
	})
}
