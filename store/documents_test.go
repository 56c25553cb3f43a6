package store

import (
	"path/filepath"
	"testing"
	"time"
)

// Documents survive a reopen of the file. What a document store does
// within one run (reads, prefix scans, deletes, read-only refusals) is the
// ported conformance suite's (internal/storetest testDocuments, run on
// bbolt by TestBbolt).
func TestDocumentsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	type doc struct{ N int }
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.Update(now, func(tx *Tx) error {
		for _, id := range []string{"c2/i1", "c1/i2", "c1/i1", "c10/i1"} {
			if err := tx.PutDoc("item", id, doc{N: len(id)}); err != nil {
				return err
			}
		}
		return tx.PutDoc("campaign", "c1", doc{N: 7})
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []string
	if err := db.View(func(tx *Tx) error {
		var d doc
		if ok, err := tx.Doc("campaign", "c1", &d); !ok || err != nil || d.N != 7 {
			t.Fatalf("campaign c1 after a reopen: %v %v %+v", ok, err, d)
		}
		return tx.Docs("item", "c1/", func(id string, _ []byte) error { ids = append(ids, id); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "c1/i1" || ids[1] != "c1/i2" {
		t.Fatalf("prefix scan after a reopen %v", ids)
	}
}
