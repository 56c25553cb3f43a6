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
// through the provisioning outbox (changes). The store may run a
// transaction body more than once (a PostgreSQL serialization retry, a bbolt
// Batch): a body starts from the store, never from what an earlier attempt
// left in a captured variable, and anything outside the store (a metric, a
// wake-up, a refusal's admission under the per-person limit) is settled
// after the commit (retry_test.go holds each body to it).
//
// Where things happen, by file:
//   - requests: submit.go (the request), decide.go (an approval), schedule.go
//     (expiry, reminders, escalation), provision.go (the outbox worker that
//     calls the IdP), provision_confirm.go (an add or removal the IdP
//     confirmed), provision_retry.go (provisioning retries: backoff, giving
//     up, alerts), grant_end.go (ending a grant and queueing its removal),
//     revoke.go, offboard.go, run.go (the loop); delegate.go (out-of-office
//     delegation: its rules, who a click decides for, expiry),
//     delegation_export.go.
//   - access-review campaigns: campaign.go (the documents), campaign_open.go
//     (the frozen population and its reviewers), campaign_review.go (Keep,
//     Revoke, Flag), campaign_close.go (reminders, on_timeout, close and
//     summary), campaign_export.go; the other review jobs: jobs.go, reviews.go,
//     reviews_contractor.go.
//   - evidence: exporters.go (every export kind in one table), export.go (the
//     access export), export_events.go, evidence.go (policy versions, job
//     ledger, holders), campaign_export.go; manifest.go (the manifest and
//     Export), manifest_verify.go (its verification); chain.go (request
//     records held to the audit chain). The CSV itself is written by package
//     keycard/csvw.
//   - the policy: policyload.go (recorded at start, reloaded), policychange.go
//     (change control: staged changes and their approval), policysync.go
//     (a reload made on another replica); whocan.go, conflicts.go (who can
//     reach what, separation of duties).
//   - the rest: mfa.go (step-up MFA), scheduled.go (a scheduled start),
//     leadership.go (the replica's lease), alerts.go, metrics.go, ports.go
//     (the interfaces handlers needs), service.go (the Service and its
//     options).
package handlers
