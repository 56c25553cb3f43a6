// Package jumpcloudfake is a JumpCloud API emulator for tests: a loopback
// plain-HTTP server (the connector allows http:// on loopback only) that
// speaks the subset of JumpCloud's v1 and v2 wire formats keycard's
// connector calls, so connectors/jumpcloud is tested through its real
// client.
//
// Served:
//   - v1 GET /api/systemusers: `filter=FIELD:$eq:VALUE` (repeatable, ANDed;
//     values case-sensitive as JumpCloud documents; also $ne and $in with
//     `|`-separated values), `fields` (space-separated projection, `_id`
//     always kept), `limit` (default 10, at most 100) and `skip` paging, and
//     the `{"totalCount": N, "results": [...]}` body;
//   - v1 POST /api/search/systemusers with `searchFilter` {searchTerm,
//     fields} (case-insensitive partial match), `limit`, `skip`, `fields`;
//   - v1 GET /api/systemusers/{id}: _id, email, username, firstname,
//     lastname, displayname, state (ACTIVATED, SUSPENDED, STAGED),
//     suspended, activated, account_locked, manager (a user id),
//     department, jobTitle, employeeType, company, location, costCenter,
//     employeeIdentifier, attributes [{name, value}], created;
//   - v2 GET /api/v2/usergroups (`filter=name:eq:VALUE`, limit/skip, a bare
//     JSON array) and GET /api/v2/usergroups/{id};
//   - v2 GET /api/v2/usergroups/{id}/members: graph edges
//     [{"attributes":{}, "from":{...}, "to":{"id","type":"user"}}], limit/skip;
//   - v2 POST /api/v2/usergroups/{id}/members with {"op":"add"|"remove",
//     "type":"user","id":…}: 204 on a change; adding an existing member
//     answers 409 "Already Exists" and removing a non-member 404 (what
//     JumpCloud's graph association API is reported to answer; it could not
//     be checked against the live service offline, and the connector treats
//     both as success, so a 204 there would work too).
//
// Auth is the `x-api-key` header (401 {"message":"Unauthorized"} otherwise);
// when Options.OrgID is set, `x-org-id` must match too (401 as well).
// v1 errors are {"message": …}; v2 errors are {"code", "message", "status"}.
//
// Tests drive it in Go: AddUser, Suspend, SetState, Delete, AddGroup,
// GroupID, AddMember, RemoveMember, Members; faults: FailNext (5xx),
// FailNextHTML (any status with a proxy's text/html page),
// RateLimitNext (429 with Retry-After and X-RateLimit-*), Latency (held until
// the client gives up), Malform (an HTML error page or truncated JSON with a
// 200), PageLoop (list endpoints ignore `skip`: every page is the first),
// ResetFaults. Requests records each request with the clock's time and the
// status answered. Timestamps come from an injected clock; ids are
// deterministic (24 hex digits, like JumpCloud's ObjectIds). Safe for
// concurrent use.
package jumpcloudfake
