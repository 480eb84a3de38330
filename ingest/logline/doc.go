// Package logline reads web-server access-log lines into [store.Hit]s.
//
// One constructor, [New], builds a [Parser] from a [Config]: the format of
// each topic (the registry of format names: auto, combined, common,
// apache_combined, main, json, log_format; [Formats] lists them), an nginx
// log_format compiled into a splitter, JSON keys, trusted proxies, the
// secret query parameters to redact and the operation rules.
// [Config.WithFormat] reads every topic as one format, as `connlog parse`
// does. [ParseCombined] is the combined reader alone, without
// configuration. [ParseStream] and [AppendJSON] are `connlog parse`'s
// output.
//
// The format families and where they are read:
//
//   - combined (combined, common, apache_combined and their variants):
//     parse.go, by hand, without allocating;
//   - nginx log_format (main, the recommended format, any configured
//     one): logformat.go compiles it into a program of literals and fields;
//   - JSON (escape=json, and shippers' envelopes around any line):
//     jsonline.go and envelope.go; syslog headers: syslog.go.
//
// All of them fill a Hit through the same field table (fields.go). Then
// [Parser.Parse] resolves the client through the trusted proxies
// (proxy.go), redacts secrets (redact.go) and classifies the operation
// (classify.go). Errors for bad input wrap [ErrMalformed]; a [*ParseError]
// names the field, the byte and the reason, never the line's bytes.
//
// Size: about 3,650 lines of non-test code, above the project's 1,500 per
// package, on purpose: every file is one step of reading one line, and they
// share the unexported per-line state (lineState) and field table on the
// hot path (0 allocations per combined line); split into packages, that
// state would have to be exported and passed across package boundaries.
//
// # Log lines: what is stored
//
// Every line a real nginx or Apache writes is stored as it says, or
// quarantined with a reason; a line that could be read two ways is never
// stored as a guess. The rules, one per kind of awkward line (the tests
// TestRealNginxLines, with Debian's nginx writing combined, escape=none
// and escape=json for the same requests, and TestApacheAndRareLines hold
// them to it):
//
//   - Quotes inside values. nginx's default escaping writes '"' as \x22,
//     Apache as \"; every other quote is a delimiter, and "\xNN" escapes
//     are stored as written. With escape=none (and some Apache setups)
//     quotes are written raw. A combined line the escaping rules cannot
//     read is read from both ends as plain combined or common: the request
//     ends at a quote followed by a status and a byte count, the user agent
//     at the last quote, referer and agent are split at `" "`; if exactly
//     one reading remains it is stored, otherwise the line is quarantined
//     as "ambiguous". Auto-detection assumes escaped values, so it cannot
//     tell a raw `" "` at the end of a user agent from an extra trailing
//     field: for escape=none logs, give the whole directive as
//     kafka.parse.log_format (`log_format NAME escape=none '...';`): every
//     way of splitting the line is then tried and only a line with exactly
//     one reading is stored.
//   - Clients that are not IP addresses. nginx writes "unix:" for
//     $remote_addr on a unix-socket listener, Apache's %h is a host name
//     with HostnameLookups on. Such a line is stored with the address
//     columns empty (::) and the text in client_text ([store.Hit.ClientText]),
//     searchable with GET /v1/access?client=unix: (store.AccessQuery.Client).
//     A $server_addr of "unix:/path" leaves server_addr empty. Host names
//     are accepted only where Apache writes them (the combined parser).
//   - User names with spaces. The ident field is "-" (nginx always, Apache
//     without identd): the client is the token before the first " - " that
//     reads as a client, the user is everything up to " [time]".
//   - Zero is a value. Status 000 (no answer sent), 009 (HTTP/0.9), 0 bytes
//     and a request time of 0.000 are values the line carries
//     ([store.Hit.Has]); `connlog parse` shows them. A field the format does
//     not have is absent from its output. Apache's "-" for bytes is 0.
//   - Requests that are not HTTP. A $request that is not "METHOD target
//     [HTTP/x.y]" (the method an HTTP token; the target a path, "*", an
//     absolute URL, or an authority for CONNECT) — TLS handshakes or SSH
//     banners sent to a plain-HTTP port, binary junk — is stored in
//     raw_request as the log wrote it (escapes kept; JSON strings decoded),
//     secret query parameters redacted, with method, path, query and
//     protocol empty, so path searches see only real requests. A JSON
//     line that gives such a request and a $server_protocol anyway (nginx
//     leaves it empty for one) contradicts itself and is quarantined.
//   - A JSON line that gives a key connlog reads twice, or an envelope that
//     gives its "message" (or "log") twice, is quarantined: nginx and the
//     shippers write each key once, and JSON readers disagree on which of
//     two values wins, so the record would depend on the reader.
//   - Empty is not absent. With nginx's default escaping "-" means no
//     Referer (User-Agent) header and "" a header sent empty; both the text
//     and has_referer (has_user_agent) are stored, and `connlog parse`
//     writes "referer":"" for the second and nothing for the first.
//     escape=json and escape=none write "" for both, so there "" is absent.
//   - Strict JSON. A JSON line (escape=json, shipper envelopes) with an
//     escape JSON does not have (\x22 from nginx's default escaping, \a, a
//     short \u) or a raw control byte inside a string is quarantined with
//     the reason. Lines that are not valid UTF-8 (escape=json passes bytes
//     >= 0x80 through raw) are quarantined with their bytes as they are;
//     `connlog parse` shows such bytes as U+FFFD and says so in an
//     "invalid_utf8" key. Lines with control bytes (escape=none) are
//     quarantined too.
//
// Parsed strings alias the bytes of the line they came from (no copy on the
// hot path), so a [store.Hit] is valid only as long as those bytes are not
// modified or reused.
package logline
