// Package access is keycard's domain vocabulary: people, requests and their
// grants, approval steps, audit events, provisioning operations, error codes,
// and the ports (interfaces) that more than one package shares.
//
// It also holds the domain's behaviour, so the use cases in handlers only
// load, call and store: a request's transitions, one method each, refusing
// the illegal ones (transition.go); the timeline rules the access export
// shows (timeline.go); and the typed detail of each audit event that is read
// back (detail.go).
//
// It imports only the standard library. Everything else in keycard points
// inward to it: policy, store, connectors and handlers all speak these types,
// and nothing here knows about bbolt, Slack or Okta.
package access
