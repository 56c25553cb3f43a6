// Package okta is keycard's Okta connector: the directory (users, managers,
// group members) and the provisioner (group membership) over the Okta
// Management API, through github.com/okta/okta-sdk-golang/v2 (v2.20.0), plus
// a System Log poller for offboarding signals.
//
// The v2 SDK has traps (shared/notes/okta.md), each handled here:
//   - it reads ~/.okta/okta.yaml and OKTA_* variables, so New sets every knob
//     explicitly (SSWS, cache off, retries, timeouts, HTTP client);
//   - its default cache serves stale memberships for 300 s: off;
//   - an exhausted 429 loses the response, so a RoundTripper records
//     X-Rate-Limit-Reset and the error carries access.CodeRateLimited with
//     RetryAt; the SDK itself never sleeps on a 429 (MaxRetries 0);
//   - its EOF retry loop has no cap, so every HTTP call runs under a deadline
//     (Config.Timeout);
//   - path parameters are not escaped, so ids are escaped here;
//   - a polling System Log query always has a next link: the poller stops on
//     the first empty page and returns the cursor.
//
// Errors are *access.Error: CodeNotFound (404 E0000007), CodeForbidden (401,
// 403 E0000006), CodeRateLimited (429, with RetryAt), CodeUnavailable (5xx,
// timeouts, connection errors). Messages carry Okta's errorCode and errorId,
// never the token. The connector is unscoped; main wraps it with
// connectors.Scoped.
package okta
