// Package access is keycard's domain vocabulary: people, requests and their
// grants, approval steps, audit events, provisioning operations, error codes,
// and the ports (interfaces) that more than one package shares.
//
// It imports only the standard library. Everything else in keycard points
// inward to it: policy, store, connectors and handlers all speak these types,
// and nothing here knows about bbolt, Slack or Okta.
package access
