// Package connectors holds keycard's identity-provider connectors (one
// sub-package per IdP: okta, entra, jumpcloud, static), the one conformance
// suite they all pass (connectortest), and what every connector shares:
// the scope ceiling and the registry main builds from the policy (scope.go,
// set.go), and the helpers of the network connectors (shared.go: Redact,
// IsLoopback, ValidateBaseURL, the defaults, TimerSleep, HTTPClient,
// GroupCache, Hold).
//
// Every connector does the same five things (SPEC "Identity providers"):
//
//  1. Find a person by email, ignoring case, with their status (an
//     offboarded status for a suspended or disabled account; CodeNotFound
//     for an unknown or deleted one), their attributes for `profiles.where`
//     and their manager (access.Directory: UserByEmail, UserByID, Manager).
//  2. Find a group by name, and change only groups inside the connector's
//     scope: the ceiling is enforced here, by Scoped, at every call.
//  3. List a group's members, following every page to the end
//     (access.Directory.GroupMembers; listing all groups is the optional
//     GroupLister power).
//  4. Add and remove one member, idempotently: adding a member or removing
//     a non-member succeeds (access.Provisioner). A connector never removes
//     anything it was not asked to remove, and the callers only ask to
//     remove what a keycard grant added.
//  5. Report people who left (offboarding) from a stored cursor: events
//     after the cursor and the next cursor, each leaver once
//     (LifecycleEvents, adapted by the wiring to handlers.DeactivationFeed);
//     a connector without a feed relies on the holder sweep.
//
// And every connector that talks to a network: bounds each call with a
// deadline; honours the provider's rate-limit header (never sending before
// it says, or returning CodeRateLimited with RetryAt); turns 5xx into
// CodeUnavailable (retried with backoff by the connector or by the
// caller's queue); reports an answer that is not what the API documents as
// an error naming the call, never a panic and never a removal; redacts its
// secrets from String and LogValue; and accepts plain http only on a
// loopback address.
//
// Scoped is the one place the ceiling is enforced (SPEC: "A change outside a
// connector's scope is refused even if a policy asks for it"). Set hands out
// only scoped provisioners, so no caller can reach an IdP's raw write path.
package connectors
