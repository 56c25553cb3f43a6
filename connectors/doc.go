// Package connectors holds keycard's identity-provider connectors (one
// sub-package per IdP: okta, static) and the two things every connector
// shares: the scope ceiling and the registry main builds from the policy.
//
// Scoped is the one place the ceiling is enforced (SPEC: "A change outside a
// connector's scope is refused even if a policy asks for it"). Set hands out
// only scoped provisioners, so no caller can reach an IdP's raw write path.
package connectors
