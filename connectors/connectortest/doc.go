// Package connectortest is the one conformance suite every identity
// provider connector passes (SPEC "Identity providers"; the five verbs are
// listed in the doc of package connectors). A connector plugs in with a
// small harness file in its own package's tests:
//
//	func TestConformance(t *testing.T) {
//		connectortest.Run(t, func(t *testing.T) connectortest.Harness { return newHarness(t) })
//	}
//
// Run calls newHarness once per case, so every case starts from an empty
// emulator. A Harness wraps the provider's emulator (internal/oktafake,
// internal/graphfake, …) and the connector built over it, through the real
// client and its real wire format:
//
//   - Setup, in the provider's own words: AddUser (email, name, manager,
//     department) returns the provider's user id; Deactivate puts a user in
//     the provider's offboarded state (Okta SUSPENDED, Entra accountEnabled
//     false, JumpCloud suspended); Delete removes one (false: the provider
//     has no deletion the connector can see); AddGroup, AddStandingMember
//     (a membership made outside keycard) and Members (what the IdP now
//     holds, as user ids); UnknownID is an id shaped like the provider's
//     that names nobody.
//   - Connector returns the connector under test (the directory and
//     provisioner; the suite wraps it with connectors.Scoped itself).
//     It is built with the harness Clock and a per-call deadline of at
//     most a second (so the deadline case is quick).
//   - PageSize is how many members one page of the member list holds as
//     the connector asks for them (0: no paging); the suite puts three
//     pages and one more in a group.
//   - Faults returns nil when there is no wire to fault (the static
//     connector). Otherwise RateLimitNext answers the next request with the
//     provider's rate limit and its header saying "retry after d" (Okta
//     X-Rate-Limit-Reset, Graph and JumpCloud Retry-After); FailNext
//     answers the next n requests with a 5xx; Stall holds every request
//     past the connector's deadline until Clear; Requests lists what
//     reached the emulator, each with the harness clock's time and the
//     status answered. A connector that waits (Retry-After, backoff) must
//     wait on the harness clock (entra: Config.Sleep moves it), so the
//     suite can prove that no request went out before the header said.
//   - Leavers returns the connector's leaver feed adapted to LeaverFeed
//     (cursor in, leavers and the next cursor out: the shape of
//     handlers.DeactivationFeed), or nil when it has none.
//
// The cases: a lookup by email in another case; an unknown person and id;
// an inactive person; attributes and the manager; a group's members past
// several pages; add twice; remove a non-member; the rate limit honoured;
// a Retry-After held across calls (skipped for a harness implementing
// NoCrossCallHold); a proxy's non-JSON 404 never read as "not found" or
// "removed" (needs Faults implementing PageFaults, else skipped);
// a 5xx retried with growing pauses (or reported unavailable for the
// caller's retry queue, never retried in a tight loop); a call past its
// deadline; the scope ceiling refused at the call (connectors.Scoped and
// connectors.Set) before any request; leavers found from a cursor and not
// found twice.
package connectortest
