// Package storetest is the one conformance suite every keycard store runs:
// the embedded bbolt store (package store) and PostgreSQL (store/postgres)
// pass the same tests through the same port, handlers.Store/Tx, so the use
// cases cannot tell them apart. The tests are the bbolt store's own (ported,
// ported_*.go) plus those only several processes can fail: concurrent appends
// from two handles on one database ("replicas") make one chain.
//
// The PostgreSQL half needs a server: KEYCARD_TEST_DATABASE_URL names one
// (.ci/run starts a throwaway PostgreSQL 15 cluster and sets it), and each
// test gets a fresh database with a random name, dropped at cleanup.
// Without it those tests skip with one line.
package storetest
