// Code ported from the bbolt store's own tests (store/*_test.go), so that
// both backends are held to the semantics bbolt already had. Keep them in
// step: a behaviour the bbolt tests pin belongs here too. They are grouped by
// topic: ported_requests.go, ported_audit.go, ported_records.go and
// ported_tx.go; this file lists them for Run.

package storetest

import "testing"

// ported lists the ported tests by name, for Run.
var ported = []struct {
	name string
	run  func(*testing.T, Opener)
}{
	{"PutRequestCreateAndCAS", testPutRequestCreateAndCAS},
	{"IndexesFollowLifecycle", testIndexesFollowLifecycle},
	{"DueIsOrderedAndBounded", testDueIsOrderedAndBounded},
	{"ForEachRequest", testForEachRequest},
	{"RequestsOfUserCaseInsensitive", testRequestsOfUserCaseInsensitive},
	{"ForEachRequestOrderAndCopies", testForEachRequestOrderAndCopies},
	{"RequestNonCanonicalIDNotFound", testRequestNonCanonicalIDNotFound},
	{"AppendSealsAndChains", testAppendSealsAndChains},
	{"EventsAndEventsBetween", testEventsAndEventsBetween},
	{"VerifyIntactChain", testVerifyIntactChain},
	{"Outbox", testOutbox},
	{"Pins", testPins},
	{"MessageRefs", testMessageRefs},
	{"Cursors", testCursors},
	{"Seen", testSeen},
	{"StaticMembers", testStaticMembers},
	{"Documents", testDocuments},
	{"UpdateRollsBackStateAndEvent", testUpdateRollsBackStateAndEvent},
	{"BatchRetriesKeepCAS", testBatchRetriesKeepCAS},
	{"ReadOnlyTxRefusesWrites", testReadOnlyTxRefusesWrites},
}
