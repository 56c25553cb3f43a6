// Package handlers holds keycard's use cases — submit, decide, provision,
// expire, revoke, give up, extend, cancel, time out, reload the policy, export
// — independent of any transport. Slack (package bot) and the command line
// call these; they never call Slack back. Everything a person should hear
// about is an audit event, and the bot reads the audit log as its outbox.
//
// handlers declares the small interfaces it needs (Store, Tx, Connectors) and
// imports neither bbolt nor slack-go. Every state change is a compare-and-swap
// of one request plus its audit event inside one store transaction; calls to
// the identity provider happen outside transactions, before (lookups) or
// through the provisioning outbox (changes).
package handlers
