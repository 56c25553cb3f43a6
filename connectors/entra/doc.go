// Package entra is keycard's Microsoft Entra ID connector: the directory
// (people, their status, attributes and manager), the provisioner (group
// membership) and the leaver feed, over Microsoft Graph v1.0.
//
// Tokens come from azidentity (client secret, certificate, workload
// identity federation, or managed identity when no credential is set), so
// the SDK's own environment names apply (AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH,
// AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST). Instance discovery is
// disabled: MSAL would otherwise send it to login.microsoftonline.com for
// any authority it does not know (a private or test authority), and for the
// Microsoft clouds it knows MSAL skips it anyway.
//
// Graph itself goes through a small client of our own over net/http (the
// msgraph SDK is far larger than the nine calls keycard makes): every
// exchange has its own deadline; 429, 503 and 504 wait for Retry-After
// (never sending before it) and other 5xx back off, a bounded number of
// times, then the error carries access.CodeRateLimited (with RetryAt) or
// CodeUnavailable; an HTML page, a truncated body or a page loop is an
// error naming the call, never a panic and never a removal. Graph's error
// JSON is decoded into access codes. A bearer token is only ever sent to
// the configured Graph host: a nextLink or deltaLink elsewhere is refused.
//
// Calls: GET /users?$filter=mail eq '…' or userPrincipalName eq '…',
// GET /users/{id}, GET /users/{id}/manager, GET /groups?$filter=displayName
// eq '…', GET /groups, GET /groups/{id}/members, POST and DELETE
// /groups/{id}/members/…/$ref, GET /users/delta. See README.md for the
// Graph application permissions they need.
package entra
