// Package jumpcloud is keycard's JumpCloud connector: the directory (system
// users, managers, user-group members) and the provisioner (user-group
// membership) over JumpCloud's REST API v1 (system users) and v2 (user
// groups and their graph member edges), through a small client of our own
// over net/http: no maintained Go client is available (shared/notes/okta.md
// §6: jcapi-go is sparsely maintained swagger output, not on our proxy).
//
// The calls (see README.md for the key's role and the EU base URL):
//
//	GET  /api/systemusers?filter=email:$eq:VALUE        user by email (exact)
//	POST /api/search/systemusers  {searchFilter}        user by email, any case
//	GET  /api/systemusers/{id}                          user by id, manager
//	GET  /api/v2/usergroups?filter=name:eq:VALUE        group by name
//	GET  /api/v2/usergroups?limit&skip                  every group (Groups)
//	GET  /api/v2/usergroups/{id}/members?limit&skip     member edges
//	POST /api/v2/usergroups/{id}/members {op,type,id}   add / remove
//
// What the wire demands, and how it is met:
//   - auth is the x-api-key header, plus x-org-id for multi-tenant
//     administrators; a 401 (or 403 on a read) is reported as "the IdP
//     refused keycard's credentials", and Check makes that the start-up
//     error. Redirects are not followed: Go would forward x-api-key (a
//     custom header) to whatever host a redirect names.
//   - paging is limit/skip (at most 100 per page); a page repeating an id
//     already seen, or more than maxPages pages, is a paging loop and an
//     error naming the call, never a short list (a short member list could
//     look like a removal to a caller).
//   - filter values go through url.Values (query-escaped); the value is
//     everything after `field:op:`, so a ':' inside it is safe, and a value
//     with control characters is refused before any request.
//   - JumpCloud documents filter values as case-sensitive, so UserByEmail
//     tries the exact value, then lower case, then the search endpoint's
//     case-insensitive match filtered to an exact (case-folded) email.
//   - 429: Retry-After (seconds or an HTTP date; a minute when absent) is
//     honoured. The connector records the instant and sends nothing to
//     JumpCloud before it, on this call or any other; it waits when the
//     pause is at most Config.MaxWait, else it returns access.CodeRateLimited
//     with RetryAt for the caller's retry queue. The hold lasts at most
//     Config.MaxHold (15 minutes): a Retry-After far in the future cannot
//     keep every later call, removals included, from being sent.
//   - 5xx, connection errors and malformed answers (an HTML page,
//     truncated JSON, a body without the documented fields) are retried
//     Config.MaxRetries times with doubling pauses (Retry-After when a 503
//     carries one), then reported as access.CodeUnavailable naming the
//     call. An attempt that used its whole deadline ends the call at once
//     (CodeUnavailable): a stalled JumpCloud would stall every retry too. Membership POSTs are safe to retry: adding a member
//     twice answers 409 "Already Exists" and removing a non-member 404, both
//     success for these idempotent verbs.
//   - every HTTP exchange runs under Config.Timeout; waits run on
//     Config.Sleep, so tests move a fake clock instead of sleeping.
//   - the default transport is a clone of net/http's: HTTPS_PROXY/NO_PROXY
//     (ProxyFromEnvironment) and the system trust store (SSL_CERT_FILE,
//     SSL_CERT_DIR) apply.
//
// Status: state SUSPENDED or suspended: true is access.StatusSuspended
// (offboarded); a deleted user is access.CodeNotFound, which the holder
// sweep also treats as gone. STAGED is access.StatusStaged and
// account_locked access.StatusLockedOut.
//
// Leavers: JumpCloud has no change feed the v1/v2 APIs expose, so leavers
// are found by the holder sweep (handlers.SweepHolders reads every holder
// with UserByID and offboards the suspended and the deleted). Directory
// Insights (POST /insights/directory/v1/events, user_suspended and
// user_deleted events) would find them sooner where the key may read it;
// it is not implemented yet.
//
// The connector is unscoped; the wiring wraps it with connectors.Scoped.
// Errors are *access.Error; messages name the call and carry JumpCloud's
// status and message, never the API key.
package jumpcloud
