// Package console serves connlog's web console: static pages, embedded in the
// binary, that call the query API from the browser with the user's own
// credential. The console holds no data and no authority of its own: every
// figure it shows comes from an API request that the API authenticates,
// authorises, requires a purpose for and audits, exactly as for curl.
//
// Guarantees of the pages:
//   - no network but the API's own origin (the Content-Security-Policy
//     allows nothing else, and the pages embed their chart library);
//   - no script but the embedded files: no inline script, no eval;
//   - the bearer token lives in page memory only (no cookie, no web
//     storage), is sent as an Authorization header, and is forgotten on sign
//     out, after 15 minutes without activity, or when the tab closes;
//   - signing in with the organisation's identity provider (OIDC, when
//     api.oidc.redirect_url is set) opens a session held by the API: an
//     HttpOnly, SameSite=Strict cookie that page script cannot read, used
//     only together with its CSRF token (in page memory), ended by sign
//     out, inactivity or age (api/signin.go);
//   - every value that comes from stored logs is inserted as text, never as
//     markup.
package console
