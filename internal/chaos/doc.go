// Package chaos holds keycard's fault-tolerance tests; it has no non-test
// code. They run the real Okta connector (okta-sdk-golang/v2) against
// internal/oktafake and the real slack-go client against internal/slackemu,
// and prove each recovery mechanism by a test that fails without it:
//
//   - Okta 429 (E0000047 with X-Rate-Limit-Reset): the provisioning worker
//     waits for the reset instead of bursting (Okta's rate-limit guide asks
//     clients to wait until X-Rate-Limit-Reset);
//   - Okta 5xx and calls that outlive the connector's per-call deadline,
//     during add and during remove: retried with backoff, a removal never
//     gives up, and a grant is never shown ended while Okta still holds the
//     membership (SPEC "Lifecycle");
//   - the SIGKILL chaos test (chaos_test.go): the keycard binary is killed
//     at random points of the lifecycle and restarted, then the invariants
//     are checked against the Okta emulator and the database. See
//     docs/chaos.md for what it checks and how to run a larger run.
//
// The Slack-side faults (429 with Retry-After, ok:false errors, socket
// disconnects mid-flow) are in bot/e2e_fault_test.go, beside the bot's other
// end-to-end tests whose helpers they share.
package chaos
