// Package oktafake is an Okta Management API emulator for tests: a loopback
// HTTP server that speaks the wire format the unmodified okta-sdk-golang/v2
// (v2.20.0) client expects, so keycard's Okta connector is tested through the
// real SDK rather than a mock of it.
//
// It reproduces the behaviour the connector depends on and the traps recorded
// in shared/notes/okta.md: `Authorization: SSWS <token>` (401 E0000011
// otherwise); a JSON Content-Type on every body (the SDK refuses other types);
// Okta's error shape (errorCode, errorSummary, errorLink, errorId,
// errorCauses) with 404 E0000007 for unknown ids; X-Rate-Limit-* and Date on
// every response; `limit` + opaque `after` paging with one Link header per
// relation (a comma-joined header makes the v2 SDK loop forever on page 1);
// idempotent membership PUT/DELETE answering 204, 403 E0000006 on APP_GROUP
// and BUILT_IN groups; a System Log whose polling queries (no `until`) always
// carry a next link.
//
// Tests drive it in Go: AddUser, SetStatus, AddGroup, AddMember, Members,
// Log, and fault injection with FailNext (5xx), RateLimitNext (429 E0000047
// with X-Rate-Limit-Reset and Date) and Latency (held until the client gives
// up, so timeout tests never sleep). Requests records what the SDK sent.
// Timestamps come from an injected clock.
package oktafake
