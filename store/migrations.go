package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The schema migrations of the request bucket (store.go's migrations table
// runs them, each inside the Update that opens an older file).

// requestsToBinary is the migration to schema version 2: it rewrites every
// request stored as JSON in the binary encoding. It runs once, inside the
// Update that opens a version-1 file; indexes do not change. Version 2 still
// kept requests in the legacy bucket, keyed by id string.
func requestsToBinary(btx *bolt.Tx) error {
	b := btx.Bucket(bLegacyRequests)
	if b == nil {
		return nil // a new file: nothing was stored before version 3
	}
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(v) > 0 && v[0] == '{' {
			keys = append(keys, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		r, err := decodeRequest(b.Get(k))
		if err != nil {
			return fmt.Errorf("request %s: %w", k, err)
		}
		v, err := encodeRequest(&r)
		if err != nil {
			return fmt.Errorf("request %s: %w", k, err)
		}
		if err := b.Put(k, v); err != nil {
			return fmt.Errorf("request %s: %w", k, err)
		}
	}
	return nil
}

// requestsByNumber is the migration to schema version 3: it moves every
// request from the legacy bucket (keyed by the id string) to bRequests
// (keyed by requestKey), keeps the bucket's sequence so ids keep counting
// where they were, and deletes the legacy bucket. Values and indexes do not
// change. Like every migration it runs inside the Update that opens the
// file, so a crash half way leaves the file at version 2.
func requestsByNumber(btx *bolt.Tx) error {
	old := btx.Bucket(bLegacyRequests)
	if old == nil {
		return nil
	}
	b := btx.Bucket(bRequests)
	err := old.ForEach(func(k, v []byte) error {
		key, ok := requestKey(string(k))
		if !ok {
			return fmt.Errorf("request id %q is not REQ-<n>", k)
		}
		if b.Get(key) != nil {
			return fmt.Errorf("request %s stored twice", k)
		}
		return b.Put(key, v)
	})
	if err != nil {
		return err
	}
	if err := b.SetSequence(max(b.Sequence(), old.Sequence())); err != nil {
		return err
	}
	return btx.DeleteBucket(bLegacyRequests)
}
