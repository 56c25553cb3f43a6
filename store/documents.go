package store

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// bDocs holds one nested bucket per document kind. Documents are the
// evidence objects that are not requests — review campaigns and their
// items, job runs, policy versions, alerts — stored as JSON under a string
// id and read back in id order. Buckets are created on first write, so a
// store opened by an older keycard needs no migration.
var bDocs = []byte("docs")

// PutDoc stores v (JSON) as document id of kind.
func (tx *Tx) PutDoc(kind, id string, v any) error {
	if err := tx.writable(); err != nil {
		return err
	}
	data, err := EncodeDoc(kind, id, v)
	if err != nil {
		return err
	}
	root, err := tx.tx.CreateBucketIfNotExists(bDocs)
	if err != nil {
		return err
	}
	b, err := root.CreateBucketIfNotExists([]byte(kind))
	if err != nil {
		return err
	}
	return b.Put([]byte(id), data)
}

// docBucket is the bucket of documents of kind; nil when none was ever put.
func (tx *Tx) docBucket(kind string) *bolt.Bucket {
	root := tx.tx.Bucket(bDocs)
	if root == nil {
		return nil
	}
	return root.Bucket([]byte(kind))
}

// Doc reads document id of kind into v; false when absent.
func (tx *Tx) Doc(kind, id string, v any) (bool, error) {
	b := tx.docBucket(kind)
	if b == nil {
		return false, nil
	}
	data := b.Get([]byte(id))
	if data == nil {
		return false, nil
	}
	if err := DecodeDoc(kind, id, data, v); err != nil {
		return false, err
	}
	return true, nil
}

// Docs calls fn with each document of kind whose id starts with prefix, in
// id order. The bytes are a copy. ErrStop from fn stops without error.
func (tx *Tx) Docs(kind, prefix string, fn func(id string, data []byte) error) error {
	b := tx.docBucket(kind)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(string(k), append([]byte(nil), v...)); err != nil {
			if err == ErrStop {
				return nil
			}
			return err
		}
	}
	return nil
}

// DeleteDoc removes a document (absent is fine).
func (tx *Tx) DeleteDoc(kind, id string) error {
	if err := tx.writable(); err != nil {
		return err
	}
	b := tx.docBucket(kind)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(id))
}
