// Package graphfake is a Microsoft Graph v1.0 and Entra ID token-authority
// emulator for tests: one HTTPS server on 127.0.0.1, with a certificate from
// a test CA the package makes at start (azidentity refuses a non-https
// authority), speaking the wire formats the unmodified azidentity/MSAL
// client and keycard's Graph client expect.
//
// The authority side serves what MSAL calls for a client-credentials token:
// GET /{tenant}/v2.0/.well-known/openid-configuration (issuer on the same
// host, so MSAL's issuer check passes), GET /common/discovery/instance
// (instance discovery; the real client only sends it here when pointed at a
// trusted Microsoft host, so keycard disables instance discovery for any
// other authority, see connectors/entra), and POST
// /{tenant}/oauth2/v2.0/token with client_secret, or client_assertion (a
// JWT signed by a registered certificate, RS256 or PS256, or a registered
// federated token). A wrong secret answers 401 invalid_client AADSTS7000215,
// as Entra does.
//
// The Graph side serves, under /v1.0: users by $filter (mail or
// userPrincipalName eq '...', case-insensitive, quotes doubled, joined by
// `or`), /users/{id} with $select, /users/{id}/manager, /users/delta
// (nextLink and deltaLink, `@removed` for deleted users), /groups ($filter
// displayName eq, paged), /groups/{id}/members (paged, $top ≤ 999),
// POST /groups/{id}/members/$ref (400 "One or more added object references
// already exist" for a member) and DELETE /groups/{id}/members/{id}/$ref
// (404 for a non-member). Every Graph request needs a bearer token the
// authority issued and that has not expired; errors use Graph's shape
// {"error":{"code","message","innerError":{"date","request-id",
// "client-request-id"}}}.
//
// Fault injection: FailNext (any status, Retry-After on 429/503/504),
// Throttle (429 TooManyRequests with Retry-After), Latency (held until the
// client gives up), HTMLNext (an HTML error page), TruncateNext (a JSON
// body cut short), EmptyNext (a bare {}) and LoopPages (a nextLink that
// points back at itself).
// Requests records each request with the injected clock's time and the
// status answered, so a test can prove no request came before Retry-After.
//
// Not reproduced: consistency delays (Graph is eventually consistent; the
// emulator is not), advanced queries (ConsistencyLevel: eventual, $count,
// $search), $expand, $orderby, nested groups, dynamic or role-assignable
// groups, batching, and delta's partial objects (an updated user comes back
// whole, with the selected properties).
package graphfake
