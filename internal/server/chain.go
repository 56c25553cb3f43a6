package server

import (
	"keycard/access"
	"keycard/handlers"
	"keycard/store"
)

// ChainStore is a store whose audit chain can be walked and verified:
// *store.DB (bbolt) or *pgstore.DB.
type ChainStore interface {
	Verify(from uint64, fn func(access.Event) error) (store.VerifyResult, error)
}

// Verifier walks the audit chain for export manifests: the events through
// upTo, the last one's hash, and the chain's problem when it breaks at or
// before upTo.
func Verifier(db ChainStore) handlers.ChainVerifier {
	return func(upTo uint64) (uint64, string, string, error) {
		return verifyThrough(db, upTo)
	}
}

// verifyThrough is the one walk both use: the chain from its first event
// through seq; a break after seq is not this walk's problem.
func verifyThrough(db ChainStore, seq uint64) (count uint64, last, problem string, err error) {
	res, err := db.Verify(1, func(e access.Event) error {
		last = e.Hash
		if e.Seq >= seq {
			return store.ErrStop
		}
		return nil
	})
	problem = res.Problem
	if res.BadSeq > seq {
		problem = "" // a break after the report's head is not this report's
	}
	return res.Count, last, problem, err
}
