// Package api is connlog's HTTP query API for security staff.
//
// It serves, under /v1, each behind the same guard (below) and with the role
// it needs:
//
//   - GET /v1/access (analyst): search the access log; GET /v1/ip/{ip}
//     (analyst): what one address did over a window;
//   - GET /v1/connections (officer): search the connection records;
//   - /v1/requisitions (officer): the register of judicial requisitions,
//     each run into a signed export package (api/requisitions.go; the
//     package is built and kept by store/legal/export);
//     an entry may give date_due, the day the answer is expected by (not
//     before date_received), and shows overdue while it is unanswered after
//     that day by the server's clock;
//   - /v1/holds (officer): legal holds, copies kept past the lifetimes
//     (api/holds.go);
//   - GET /v1/audit and GET /v1/audit/subject (auditor): the audit trail,
//     and a data subject's consultations; GET /v1/retention (auditor): the
//     retention report;
//   - GET /v1/stats/audience (stats): anonymised audience statistics;
//   - GET /v1/me and /v1/downloads (any role): who the caller is and
//     download tickets, for the web console served at /ui/ (package
//     console);
//
// and, unguarded and carrying no data, GET /v1/openapi.json (the OpenAPI 3
// document of every endpoint), /healthz, /readyz and /metrics.
//
// # Guarantees
//
// Every request to a data endpoint (any path under /v1/) by an authenticated
// caller, allowed or refused, leaves exactly one audit row in the store
// before the first byte of the response is written. If that row cannot be
// written, no data is returned: the client gets 503 with the code
// "audit_unavailable". A request without a valid credential names nobody:
// it is counted instead, one audit row per source and window with the number
// of requests (api/badcreds.go), written when the window closes and at
// shutdown, so that a flood of them costs no fsync each; a crash loses at
// most the open window's counts.
//
// A data request is answered only if, in this order:
//
//   - it carries "Authorization: Bearer <token>" whose SHA-256 matches a
//     configured [Token], or a JWT of the organisation's identity provider
//     when Config.OIDC is set, or the console's session cookie with its
//     CSRF token (else 401 "unauthenticated"): package api/auth says who
//     the caller is, and the guard (api/guard.go) asks it through one small
//     interface;
//   - the token's role allows the endpoint; admin is allowed everything
//     (else 403 "forbidden");
//   - it states a purpose, in the X-Purpose header or the purpose query
//     parameter: 3 to 200 printable characters after trimming spaces
//     (else 400 "missing_purpose");
//   - its filters are valid (else 400 "bad_request" or "window_too_large");
//   - a token limited to some sites asks only for those sites (else 403
//     "forbidden"); with no site given, the search is limited to them.
//
// Bearer tokens are never logged nor written in the audit trail; log lines
// carry no client address and no searched address.
//
// # GET /v1/access
//
// Searches the access log (role analyst). Query parameters:
//
//   - ip: an address (203.0.113.7, 2001:db8::1) or a network in CIDR
//     notation. To stop accidental full-table scans a network must be at
//     least a /8 for IPv4 and a /32 for IPv6. IPv4-mapped IPv6 addresses are
//     treated as IPv4. Host bits of a network are cleared.
//   - client: instead of ip, the exact text of a client that is not an IP
//     address, as the log wrote it ("unix:" for nginx's unix-socket
//     listener, a host name from Apache's HostnameLookups). Such rows have
//     no address: no ip search returns them.
//   - from, to: RFC 3339 times; the window is half-open [from, to), must not
//     be empty and must not exceed Config.MaxWindow. A '+' in an offset that
//     arrives unescaped (decoded as a space) is accepted.
//   - site: optional, exact virtual host name.
//   - port, path_prefix, method, status (404 or 4xx), user_agent (substring,
//     ASCII case ignored), user: optional filters.
//   - limit: optional, 1 to Config.MaxLimit rows; default Config.DefaultLimit.
//   - cursor: the next_cursor of the previous page of the same search.
//
// Unknown or repeated parameters are refused, so a misspelt filter cannot
// silently widen a search. The answer is
//
//	{"rows": [...], "count": N, "truncated": bool, "next_cursor": "..."}
//
// where truncated reports that more rows matched than the limit. Rows come
// in primary-key order (client address, then time, then Kafka position), so
// a page of a network is a range read, and next_cursor is that position,
// sealed with an HMAC under a per-process key: it cannot be forged, altered
// or used with other filters, and dies with the process. Each row has
// time (RFC 3339, UTC, milliseconds), client_ip, topic, partition, offset,
// status, bytes and request_time_ms always, and client_port, peer_ip,
// client_text, forwarded_for, server_addr, server_port, site, method, path,
// query, protocol, raw_request (a request line that is not HTTP), referer,
// user_agent, upstream, request_id, user and tls_protocol when the log line
// carried them. IPv4 addresses are written dotted-quad.
//
// # Exports
//
// With "Accept: application/x-ndjson" or "Accept: text/csv", /v1/access and
// /v1/connections stream the whole result instead of a page, row by row as
// ClickHouse produces it, up to Config.Search.MaxExportRows and within
// Config.Search.ExportTimeout. The audit row is written before the first
// byte, with rows 0; when the stream ends, a second audit row with the same
// actor, endpoint, purpose and filters records the outcome ("completed" or
// "interrupted"), the rows sent and, in its reason, the bytes and SHA-256
// of the body. The HTTP trailers X-Connlog-Rows, X-Connlog-Truncated and
// X-Connlog-Sha256 carry the same figures to the client. A failure after the
// first byte cuts the connection, so a partial export cannot pass for a
// whole one. A CSV export has one column per field of the JSON row, empty
// where the JSON leaves the field out; the access log's client_text and
// raw_request are its last two columns. Values from logs are hostile in a
// spreadsheet too: a CSV cell that would begin with = + - @ tab CR or '
// has one ' in front, so that Excel or LibreOffice shows it as text instead
// of running it as a formula (strip one leading ' for the stored value;
// NDJSON is never altered).
//
// A browser that holds its token in page memory (the web console, package
// console) cannot put it in a link; it mints a download ticket instead:
// POST /v1/downloads names the export (path, query, format) with the
// caller's token and purpose, and answers a single-use URL, valid for a
// minute and only from the caller's address. GET /v1/downloads/{ticket}
// replays the export through the guard with that token and purpose, adding
// Content-Disposition, so it is authorised and audited as the caller's.
// GET /v1/me names the caller (name, role, sites) for the console.
//
// With Config.OIDC.RedirectURL set, the console also signs in with the
// identity provider (authorization code flow with PKCE): POST
// /v1/session/oidc, GET /ui/oidc/callback, POST /v1/session/oidc/callback
// open a console session, an HttpOnly SameSite=Strict cookie accepted only
// with its X-CSRF-Token, in place of a bearer token; DELETE /v1/session
// ends it (api/auth/signin.go has the design, api/signin.go the
// endpoints, their audit rows and limits).
//
// # Other searches
//
// GET /v1/connections (role officer) searches the connection records with
// the filters of /v1/access but method and user_agent (not kept), plus
// operation (read, create, modify, delete); its window may reach
// Config.Search.ConnectionsMaxWindow (366 days). Held copies of legal holds
// answer once their originals have expired. GET /v1/ip/{ip} (analyst)
// summarises one address over a window. GET /v1/audit (auditor) searches
// the audit trail; GET /v1/audit/subject?ip= (auditor) lists the dates and
// purposes of the answered requests that covered an address, without staff
// identities. Audit endpoints and the retention report refuse site-limited
// credentials. The four searches page the same way (api/paging.go): limit,
// cursor and next_cursor as for /v1/access. The OpenAPI 3 document at
// /v1/openapi.json describes every endpoint.
//
// # Rate limit
//
// Each credential has a token bucket (Config.RateLimit): over it, 429
// "rate_limited" with Retry-After, audited like any refusal. Each source
// sending no or unknown credentials has one too (Config.BadCredentials),
// checked before anything touches the disk. The source is the TCP peer, or
// behind a proxy listed in Config.TrustedProxies, the client its
// X-Forwarded-For names (api/proxy.go).
//
// # Errors
//
// Every error is JSON: {"error": {"code": "...", "message": "..."}}. The
// codes are stable; see the Code constants.
//
// Size: about 3,600 lines of non-test code (4,750 with comments), above the
// project's 1,500 per package. Who the caller is (tokens, OIDC, the
// console's sessions) is package api/auth, and the requisition package is
// built in store/legal/export; what stays is the guard and the handlers it
// wraps. The guard (role, purpose, sites, rate limits, the counting of bad
// credentials, the audit row before the first byte) wraps every handler,
// and each handler fills in the call state (filters, rows, the answer)
// that the audit row records: splitting the handlers from the guard would
// export that state and every error code with it. The handlers themselves
// are small per endpoint (access, connections, audit, holds,
// requisitions, statistics, retention, downloads, streams, paging).
package api
