// Package policy loads, validates and evaluates keycard's policy file: the
// YAML that says which connectors exist and what they may change, who may ask
// for which application role, who must approve, for how long, and when the
// scheduled reviews run (SPEC "Policy file (YAML)").
//
// The file is decoded into yaml.Node trees rather than structs so that every
// refusal names file:line and the field path, and so that unknown keys are
// errors: a misspelt `requst_ttl` silently ignored would leave a control off
// without anyone noticing, which is the failure an auditor looks for. Parse
// collects every problem and reports them all at once, in line order.
//
// Everything here is pure: evaluation takes the requester and an
// access.Directory port, never a clock or a network client of its own. The
// package imports the standard library, keycard/access, the YAML decoder and
// robfig/cron (to validate schedules with the same parser the scheduler uses).
// It embeds the time zone database (time/tzdata) so that a `reviews.timezone`
// accepted by `keycard policy check` on a laptop is also accepted in a minimal
// container image without /usr/share/zoneinfo.
package policy
