// Package static is the SPEC's `static` connector: an identity provider
// described in the policy file itself (users with managers and attributes,
// groups with standing members), for the demo, tests and small teams.
//
// The file's group members are standing access: keycard never removes
// access it did not grant, so RemoveMember leaves them. Memberships keycard
// grants live in the store (the Memberships port, satisfied by *store.DB),
// so they survive restarts. The package imports only access: the policy
// package maps its YAML into User and Group.
package static
