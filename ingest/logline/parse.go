package logline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/connlog/connlog/store"
)

// ErrMalformed is the sentinel wrapped by every error a parser returns for a
// line it cannot understand. Callers branch on it with errors.Is to tell bad
// input (quarantine the line) from an outage.
var ErrMalformed = errors.New("malformed log line")

// ErrUnknownFormat is wrapped by the error [New] and [Config.Validate]
// return for a format name they do not know.
var ErrUnknownFormat = errors.New("unknown log format")

// ParseError says what is wrong with a line and where. It wraps
// [ErrMalformed]. Its message never contains bytes from the line, so it is
// safe to log and to store as a quarantine reason.
type ParseError struct {
	// Field is the log field being parsed, in nginx variable terms without
	// the '$' (e.g. "remote_addr", "time_local", "request", "status").
	Field string
	// Pos is the byte offset in the line (after the trailing newline was
	// stripped) where the problem was found.
	Pos int
	// Reason says what was expected.
	Reason string
}

// Error implements error.
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s at byte %d: %s", e.Field, e.Pos, e.Reason)
}

// Unwrap returns [ErrMalformed].
func (e *ParseError) Unwrap() error { return ErrMalformed }

func perr(field string, pos int, reason string) error {
	return &ParseError{Field: field, Pos: pos, Reason: reason}
}

// Format names of [Config.Formats], besides those in config.go.
const (
	// FormatCombined is nginx's and Apache's "combined" format, with the
	// variants described at [ParseCombined].
	FormatCombined = "combined"
	// FormatCommon is Apache's "common" log format (combined without referer
	// and user agent). It is parsed by [ParseCombined], which accepts both.
	FormatCommon = "common"
)

// str returns a string that aliases b without copying. The caller must not
// modify b while the string is in use.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b)) //nolint:gosec // G103: the zero-copy view the hot path needs; the comment above says when it is safe
}

// trimEOL strips one trailing "\n" or "\r\n" (rsyslog appends one).
func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

// ParseCombined parses an nginx/Apache "combined" line
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//
// into h, which it resets first. It also accepts what real files contain:
//
//   - the "common" format (no referer and user agent);
//   - extra trailing fields after the user agent (e.g. "-" or a quoted
//     X-Forwarded-For), or after the byte count of a common line, which are
//     ignored; each is a quoted string or a word without quotes;
//   - an X-Forwarded-For list before remote_addr, bare ("a, b, c - -") or
//     quoted (`"a, b" c - -`), as in Filebeat's test files: the last address
//     before the ident field is the TCP peer (PeerIP), the addresses before
//     it are kept verbatim in ForwardedFor. Until trusted proxies are
//     configurable, ClientIP is PeerIP;
//   - a virtual host before remote_addr (Apache vhost_combined, "host[:port]"),
//     stored in Site and ServerPort;
//   - a client that is not an IP address: nginx's "unix:" (a unix-socket
//     listener) or a host name (Apache's %h with HostnameLookups on), kept
//     in ClientText with no address;
//   - a remote_user with spaces: the ident field is "-", and the user is
//     everything between it and " [time_local]";
//   - an empty or "-" request (Method, Path and Protocol stay empty), and a
//     request that is not "METHOD target [HTTP/x.y]" (TLS bytes or an SSH
//     banner sent to a plain-HTTP port), which is kept whole in RawRequest
//     with Method, Path and Protocol empty;
//   - "-" for bytes (Apache's way of writing 0), IPv6 peers, any UTC offset;
//   - quotes written raw inside the request, referer or user agent (nginx
//     escape=none, some Apache setups): a line that the escaping rules
//     cannot read is read from both ends as plain combined or common; if
//     more than one reading remains, it is an error ("ambiguous"), never a
//     guess.
//
// "-" for the referer or user agent means no such header; "" means the
// header was sent empty (h.Has records it). Escapes such as \xNN are left as
// they are. One trailing "\n" or "\r\n" is stripped. The time is converted to
// UTC; IPv4-mapped IPv6 peers are unmapped. The path and query are split at
// the first '?' (Query excludes it).
//
// Strings in h alias line: h is valid as long as line's bytes are. It does
// not allocate for a well-formed line, and is safe for concurrent use.
func ParseCombined(line []byte, h *store.Hit) error {
	*h = store.Hit{}
	_, err := parseCombined(line, h)
	return err
}

// parseCombined is [ParseCombined] into a zero h (the caller resets it:
// [Parser.Parse] already has); it also returns the index in the trimmed
// line after the last field it read (the user agent, the referer or the
// byte count), where extra trailing fields start.
func parseCombined(line []byte, h *store.Hit) (end int, err error) {
	line = trimEOL(line)
	if len(line) == 0 {
		return 0, perr("line", 0, "empty line")
	}

	// Everything before " [" is: [prefix] remote_addr ident remote_user.
	tb := timeBracket(line)
	if tb < 0 {
		return 0, perr("time_local", len(line), "missing [time_local]")
	}
	if tb == 0 || line[tb-1] != ' ' {
		return 0, perr("time_local", tb, "expected a space before [time_local]")
	}
	if err := parsePrefix(line[:tb-1], h); err != nil {
		return 0, err
	}

	// [dd/Mon/yyyy:HH:MM:SS +zzzz]
	i := tb + 1
	if len(line)-i < timeLocalLen+1 || line[i+timeLocalLen] != ']' {
		return 0, perr("time_local", i, "expected dd/Mon/yyyy:HH:MM:SS +zzzz]")
	}
	t, off, reason := parseTimeLocal(line[i : i+timeLocalLen])
	if reason != "" {
		return 0, perr("time_local", i+off, reason)
	}
	h.EventTime = t
	i += timeLocalLen + 1

	// "$request"
	if i+1 >= len(line) || line[i] != ' ' || line[i+1] != '"' {
		return 0, perr("request", i, `expected " \"" after time`)
	}
	end, err = combinedTail(line, i+1, h)
	if err == nil {
		return end, nil
	}
	// The escaping rules cannot read the line: quotes written raw
	// (escape=none)? Read it from both ends, or say why not.
	keep := *h
	switch end2, n := rawQuotesTail(line, i+1, h); {
	case n == 1:
		return end2, nil
	case n > 1:
		*h = keep
		return 0, perr("request", i+1, "ambiguous: raw quotes inside the request, referer or user agent allow more than one reading")
	}
	*h = keep
	return 0, err
}

// timeBracket returns the index of the '[' that opens [$time_local]: the
// first one followed by the time's shape, so that a '[' in the user name
// does not count; -1 if there is no '[' at all, else the first '['.
func timeBracket(line []byte) int {
	first := bytes.IndexByte(line, '[')
	for j := first; j >= 0; {
		if j+timeLocalLen+1 < len(line) && line[j+timeLocalLen+1] == ']' && line[j+3] == '/' && line[j+7] == '/' && j > 0 && line[j-1] == ' ' {
			return j
		}
		k := bytes.IndexByte(line[j+1:], '[')
		if k < 0 {
			break
		}
		j += 1 + k
	}
	return first
}

// combinedTail reads `"$request" $status $bytes ["$referer" "$agent"]
// [extra fields]` from line[q] == '"', as written by a server that escapes
// quotes inside values (nginx's default, Apache): every unescaped quote is a
// delimiter. It returns the index after the last field it stored.
func combinedTail(line []byte, q int, h *store.Hit) (int, error) {
	rs, re, i, ok := quoted(line, q)
	if !ok {
		return 0, perr("request", q, "unterminated quoted string")
	}
	// $status
	if i+4 > len(line) || line[i] != ' ' {
		return 0, perr("status", i, "expected a space and a 3-digit status")
	}
	i++
	st, ok := digits3(line[i : i+3])
	if !ok {
		return 0, perr("status", i, "expected a 3-digit status")
	}
	i += 3
	// $body_bytes_sent
	if i+1 >= len(line) || line[i] != ' ' {
		return 0, perr("body_bytes_sent", i, "expected a space and bytes sent")
	}
	i++
	j := i
	for j < len(line) && line[j] != ' ' {
		j++
	}
	var n uint64
	if !(j-i == 1 && line[i] == '-') {
		if n, ok = parseUint(line[i:j]); !ok {
			return 0, perr("body_bytes_sent", i, "expected a decimal number or -")
		}
	}
	splitRequest(line[rs:re], h)
	h.Status, h.BytesSent = st, n
	h.Has |= store.HasStatus | store.HasBytes
	i = j

	// Common format ends here; combined goes on with two quoted strings.
	if i+1 < len(line) && line[i+1] == '"' {
		s, e, next, ok := quoted(line, i+1)
		if !ok {
			return 0, perr("http_referer", i+1, "unterminated quoted string")
		}
		if next+1 >= len(line) || line[next] != ' ' || line[next+1] != '"' {
			return 0, perr("http_referer", next, `expected " \"" and the user agent after the referer`)
		}
		us, ue, next2, ok := quoted(line, next+1)
		if !ok {
			return 0, perr("http_user_agent", next+1, "unterminated quoted string")
		}
		setHeaders(line[s:e], line[us:ue], h)
		i = next2
	}
	if err := extraFields(line, i); err != nil {
		return 0, err
	}
	return i, nil
}

// setHeaders stores the referer and user agent of a combined line: "-" is
// no header, "" a header sent empty.
func setHeaders(ref, ua []byte, h *store.Hit) {
	if !(len(ref) == 1 && ref[0] == '-') {
		h.Referer = str(ref)
		h.Has |= store.HasReferer
	}
	if !(len(ua) == 1 && ua[0] == '-') {
		h.UserAgent = str(ua)
		h.Has |= store.HasUserAgent
	}
}

// extraFields checks what follows the last field: nothing, or fields after
// a space, each a quoted string (its closing quote followed by a space or
// the end) or a word without quotes. Anything else means the quotes were
// not read right.
func extraFields(line []byte, i int) error {
	for i < len(line) {
		if line[i] != ' ' {
			return perr("line", i, "unexpected text after the last field")
		}
		i++
		if i < len(line) && line[i] == '"' {
			_, _, next, ok := quoted(line, i)
			if !ok || (next < len(line) && line[next] != ' ') {
				return perr("line", i, "malformed quoted field after the last field")
			}
			i = next
			continue
		}
		for i < len(line) && line[i] != ' ' {
			if line[i] == '"' {
				return perr("line", i, "stray quote after the last field")
			}
			i++
		}
	}
	return nil
}

// rawQuotesTail reads the tail of a line whose values may hold raw quotes,
// from both ends: plain common (`"$request" $status $bytes` to the end) or
// plain combined (... `"$referer" "$agent"` with the agent's quote last),
// without extra fields. Every quote may end the request if a status and a
// byte count follow it; every `" "` may separate referer and agent. It
// returns how many readings there are (stopping at 2) and, for exactly
// one, fills h with it.
func rawQuotesTail(line []byte, q int, h *store.Hit) (end int, readings int) {
	last := len(line) - 1
	// The two rightmost `" "` (referer/agent separators): a reading needs
	// one at or after the referer's start, so these two say how many
	// readings a request end gives, in one pass over the line.
	sep1, sep2 := -1, -1
	for p := last - 3; p > q; p-- {
		if line[p] == '"' && line[p+1] == ' ' && line[p+2] == '"' {
			if sep1 < 0 {
				sep1 = p
			} else {
				sep2 = p
				break
			}
		}
	}
	var req, ref, ua []byte
	var status uint16
	var n uint64
	for c := q + 1; c < len(line) && readings < 2; c++ {
		if line[c] != '"' {
			continue
		}
		st, bytesSent, after, ok := statusBytes(line, c+1)
		if !ok {
			continue
		}
		if after == len(line) { // common
			readings++
			req, ref, ua, status, n = line[q+1:c], nil, nil, st, bytesSent
			continue
		}
		if after+1 >= len(line) || line[after] != ' ' || line[after+1] != '"' || line[last] != '"' || after+1 == last {
			continue
		}
		o := after + 2 // first byte of the referer
		if sep2 >= o {
			readings += 2
		} else if sep1 >= o {
			readings++
			req, ref, ua, status, n = line[q+1:c], line[o:sep1], line[sep1+3:last], st, bytesSent
		}
	}
	if readings != 1 {
		return 0, readings
	}
	*h = store.Hit{EventTime: h.EventTime, ClientIP: h.ClientIP, PeerIP: h.PeerIP, ClientText: h.ClientText,
		ForwardedFor: h.ForwardedFor, Site: h.Site, ServerPort: h.ServerPort, User: h.User}
	splitRequest(req, h)
	h.Status, h.BytesSent = status, n
	h.Has |= store.HasStatus | store.HasBytes
	if ua != nil {
		setHeaders(ref, ua, h)
	}
	return len(line), 1
}

// statusBytes reads " DDD bytes" at line[i:], bytes ending at a space or
// the end of the line.
func statusBytes(line []byte, i int) (status uint16, n uint64, end int, ok bool) {
	if i+5 > len(line) || line[i] != ' ' || line[i+4] != ' ' {
		return 0, 0, 0, false
	}
	if status, ok = digits3(line[i+1 : i+4]); !ok {
		return 0, 0, 0, false
	}
	j := i + 5
	for j < len(line) && line[j] != ' ' {
		j++
	}
	if !(j-(i+5) == 1 && line[i+5] == '-') {
		if n, ok = parseUint(line[i+5 : j]); !ok {
			return 0, 0, 0, false
		}
	}
	return status, n, j, true
}

// dash returns "" for the "-" nginx writes for an empty value.
func dash(b []byte) string {
	if len(b) == 1 && b[0] == '-' {
		return ""
	}
	return str(b)
}

// parsePrefix parses "[xff-list|vhost] remote_addr ident remote_user". The
// ident is "-" (nginx always writes it so, Apache unless identd is on): the
// client is the token before the first " - " that reads as a client, and
// the user is everything after it, spaces included. Without such a " - ",
// the last two tokens are ident and user.
func parsePrefix(pre []byte, h *store.Hit) error {
	clientEnd, userStart, sp := -1, -1, -1
	var (
		addr netip.Addr
		text string
		ok   bool
	)
	k := 0
	// The usual line, "addr - user": the first " - " is at the first space,
	// so the client is the first token (what the loop below finds, without
	// its search for " - ").
	if s0 := bytes.IndexByte(pre, ' '); s0 > 0 && s0+3 <= len(pre) && pre[s0+1] == '-' && pre[s0+2] == ' ' {
		if addr, text, ok = parseClient(pre[:s0]); ok {
			clientEnd, userStart = s0, s0+3
		} else {
			k = s0 + 1
		}
	}
	for clientEnd < 0 && k+3 <= len(pre) {
		d := bytes.Index(pre[k:], []byte(" - "))
		if d < 0 {
			break
		}
		d += k
		sp = bytes.LastIndexByte(pre[:d], ' ')
		if addr, text, ok = parseClient(pre[sp+1 : d]); ok {
			clientEnd, userStart = d, d+3
			break
		}
		k = d + 1
	}
	if clientEnd < 0 {
		sp = bytes.LastIndexByte(pre, ' ')
		if sp < 0 {
			return perr("remote_user", 0, "expected remote_addr, ident and remote_user before [time_local]")
		}
		userStart = sp + 1
		sp = bytes.LastIndexByte(pre[:sp], ' ')
		if sp < 0 {
			return perr("remote_user", 0, "expected remote_addr, ident and remote_user before [time_local]")
		}
		// pre[sp+1:...] is the ident, which nothing stores.
		clientEnd = sp
		sp = bytes.LastIndexByte(pre[:clientEnd], ' ')
		if addr, text, ok = parseClient(pre[sp+1 : clientEnd]); !ok {
			return perr("remote_addr", sp+1, "not an IP address, \"unix:\" or a host name")
		}
	}
	h.User = dash(pre[userStart:])
	h.PeerIP, h.ClientIP, h.ClientText = addr, addr, text
	if sp < 0 {
		return nil
	}
	rest := bytes.TrimRight(pre[:sp], " ,")
	switch {
	case len(rest) == 0:
		return nil
	case rest[0] == '"':
		if len(rest) < 2 || rest[len(rest)-1] != '"' {
			return perr("http_x_forwarded_for", 0, "unterminated quoted string")
		}
		h.ForwardedFor = dash(rest[1 : len(rest)-1])
	case bytes.IndexByte(rest, ',') >= 0:
		h.ForwardedFor = str(rest)
	case bytes.IndexByte(rest, ' ') >= 0:
		return perr("remote_addr", 0, "unexpected fields before remote_addr")
	default:
		if _, err := netip.ParseAddr(str(rest)); err == nil {
			h.ForwardedFor = str(rest) // a one-address X-Forwarded-For
			return nil
		}
		// Apache vhost_combined: "%v:%p %h ..." or "%v %h ...".
		host := rest
		if c := bytes.LastIndexByte(rest, ':'); c > 0 {
			if port, ok := parseUint(rest[c+1:]); ok && port <= 65535 {
				host = rest[:c]
				h.ServerPort = uint16(port)
			}
		}
		h.Site = str(host)
	}
	return nil
}

// parseClient reads a client as servers write it: an IP address (IPv4-mapped
// IPv6 unmapped), or, returned as text, nginx's "unix:" for a unix-socket
// listener or a host name (Apache's %h with HostnameLookups on: letters,
// digits, '-', '_' and '.', with at least one letter, at most 253 bytes).
func parseClient(b []byte) (addr netip.Addr, text string, ok bool) {
	if a, ok := parseAddr(b); ok {
		return a.Unmap(), "", true
	}
	if string(b) == "unix:" {
		return netip.Addr{}, str(b), true
	}
	if len(b) == 0 || len(b) > 253 || b[0] == '-' || b[0] == '.' {
		return netip.Addr{}, "", false
	}
	letter := false
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return netip.Addr{}, "", false
		}
	}
	return netip.Addr{}, str(b), letter
}

// quoted scans a quoted string starting at line[i] == '"', honouring
// backslash escapes (Apache writes \" and \\; nginx writes \xNN). It returns
// the content bounds and the index after the closing quote. A quote is
// escaped when an odd number of backslashes precedes it, which lets the scan
// jump from quote to quote with IndexByte instead of visiting every byte.
func quoted(line []byte, i int) (start, end, next int, ok bool) {
	if i >= len(line) || line[i] != '"' {
		return 0, 0, 0, false
	}
	start = i + 1
	for j := start; j < len(line); {
		q := bytes.IndexByte(line[j:], '"')
		if q < 0 {
			break
		}
		q += j
		bs := 0
		for k := q - 1; k >= start && line[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return start, q, q + 1, true
		}
		j = q + 1
	}
	return 0, 0, 0, false
}

// splitRequest fills Method, Path, Query and Protocol from "$request", or
// RawRequest when it is not an HTTP request line: "METHOD target" with an
// optional "HTTP/..." last, where the method is a token and the target is
// a path, "*", an absolute URL or (CONNECT) an authority.
func splitRequest(req []byte, h *store.Hit) {
	if len(req) == 0 || (len(req) == 1 && req[0] == '-') {
		return
	}
	sp := bytes.IndexByte(req, ' ')
	if sp <= 0 || !isToken(req[:sp]) {
		h.RawRequest = str(req)
		return
	}
	method, uri, proto := req[:sp], req[sp+1:], []byte(nil)
	if last := bytes.LastIndexByte(uri, ' '); last >= 0 {
		if !bytes.HasPrefix(uri[last+1:], []byte("HTTP/")) {
			h.RawRequest = str(req)
			return
		}
		proto, uri = uri[last+1:], uri[:last]
	}
	if !isTarget(method, uri) {
		h.RawRequest = str(req)
		return
	}
	h.Method, h.Protocol = str(method), str(proto)
	if q := bytes.IndexByte(uri, '?'); q >= 0 {
		h.Query = str(uri[q+1:])
		uri = uri[:q]
	}
	h.Path = str(uri)
}

// isTarget reports whether uri is an HTTP request target (RFC 9112 3.2).
func isTarget(method, uri []byte) bool {
	switch {
	case len(uri) == 0:
		return false
	case uri[0] == '/':
		return true
	case len(uri) == 1 && uri[0] == '*':
		return true
	case string(method) == "CONNECT":
		return bytes.IndexByte(uri, ' ') < 0
	}
	s := bytes.Index(uri, []byte("://"))
	if s <= 0 {
		return false
	}
	for _, c := range uri[:s] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isToken reports whether b is an HTTP token (RFC 9110 tchar), as a method is.
func isToken(b []byte) bool {
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return len(b) > 0
}

// tchar marks the bytes of an HTTP token (RFC 9110 tchar).
var tchar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

func digits3(b []byte) (uint16, bool) {
	var n uint16
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint16(c-'0')
	}
	return n, true
}

// parseUint parses a non-empty decimal number without sign, rejecting overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	if len(b) < 20 {
		// At most 19 digits cannot overflow: no check per digit.
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + uint64(c-'0')
		}
		return n, true
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// timeLocalLen is len("07/Dec/2016:11:05:07 +0100").
const timeLocalLen = 26

// parseTimeLocal parses nginx's $time_local by hand (time.Parse is slow and
// allocates). On error it returns the offset of the bad part and a reason.
func parseTimeLocal(b []byte) (t time.Time, off int, reason string) {
	_ = b[25] // one bounds check
	day, ok1 := num2(b[0], b[1])
	y1, ok2a := num2(b[7], b[8])
	y2, ok2b := num2(b[9], b[10])
	year, ok2 := y1*100+y2, ok2a && ok2b
	hour, ok3 := num2(b[12], b[13])
	minute, ok4 := num2(b[15], b[16])
	sec, ok5 := num2(b[18], b[19])
	zh, ok6 := num2(b[22], b[23])
	zm, ok7 := num2(b[24], b[25])
	switch {
	case b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ':
		return t, 0, "expected dd/Mon/yyyy:HH:MM:SS +zzzz"
	case !ok1, !ok2, !ok3, !ok4, !ok5:
		return t, 0, "expected digits in dd/Mon/yyyy:HH:MM:SS"
	case b[21] != '+' && b[21] != '-', !ok6, !ok7:
		return t, 21, "expected a UTC offset +hhmm or -hhmm"
	}
	month := monthNum(b[3:6])
	switch {
	case month == 0:
		return t, 3, "unknown month name"
	case year < 1970 || year > 2299:
		// ClickHouse DateTime64 stops at 2299; before 1970 is a broken clock.
		return t, 7, "year out of range 1970-2299"
	case day < 1 || day > daysIn(month, year):
		return t, 0, "day out of range for the month"
	case hour > 23 || minute > 59 || sec > 59:
		return t, 12, "time of day out of range"
	case zh > 23 || zm > 59:
		return t, 22, "UTC offset out of range"
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	zone := int64(zh*3600 + zm*60)
	if b[21] == '-' {
		zone = -zone
	}
	return time.Unix(secs-zone, 0).UTC(), 0, ""
}

// num2 reads two decimal digits.
func num2(a, b byte) (int, bool) {
	a, b = a-'0', b-'0' // a byte below '0' wraps past 9
	return int(a)*10 + int(b), a <= 9 && b <= 9
}

func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func monthNum(b []byte) int {
	switch uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return 1
	case 'F'<<16 | 'e'<<8 | 'b':
		return 2
	case 'M'<<16 | 'a'<<8 | 'r':
		return 3
	case 'A'<<16 | 'p'<<8 | 'r':
		return 4
	case 'M'<<16 | 'a'<<8 | 'y':
		return 5
	case 'J'<<16 | 'u'<<8 | 'n':
		return 6
	case 'J'<<16 | 'u'<<8 | 'l':
		return 7
	case 'A'<<16 | 'u'<<8 | 'g':
		return 8
	case 'S'<<16 | 'e'<<8 | 'p':
		return 9
	case 'O'<<16 | 'c'<<8 | 't':
		return 10
	case 'N'<<16 | 'o'<<8 | 'v':
		return 11
	case 'D'<<16 | 'e'<<8 | 'c':
		return 12
	}
	return 0
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date (Howard Hinnant's algorithm), for year >= 1.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= 0 here
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// CheckBytes returns why msg is not handed to a parser at all, or "": it
// is longer than maxBytes (max_line_bytes), binary (a control byte other
// than tab, or a line end other than the last "\n" or "\r\n") or not valid
// UTF-8. Web servers escape such bytes in their logs, so a message
// carrying them is not a log line: the pipeline quarantines it with this
// reason.
func CheckBytes(msg []byte, maxBytes int) string {
	if len(msg) > maxBytes {
		return fmt.Sprintf("line of %d bytes exceeds max_line_bytes %d", len(msg), maxBytes)
	}
	ascii := true
	// Eight bytes at a time while they are all printable ASCII (0x20 to
	// 0x7e), the usual log line; a word holding anything else is looked at
	// byte by byte. With every byte below 0x80, w-0x20… &^ w flags exactly
	// the bytes below 0x20 and w+0x01… exactly 0x7f; a byte of 0x80 or more
	// is flagged by w itself (and may flag its neighbours through carries,
	// which only sends the word to the byte-by-byte check).
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(msg); i += 8 {
		w := binary.LittleEndian.Uint64(msg[i:])
		if ((w-0x20*ones)&^w|(w+ones)|w)&highs == 0 {
			continue
		}
		if r := checkBytes(msg, i, i+8, &ascii); r != "" {
			return r
		}
	}
	if r := checkBytes(msg, i, len(msg), &ascii); r != "" {
		return r
	}
	if !ascii && !utf8.Valid(msg) {
		return "invalid UTF-8"
	}
	return ""
}

// checkBytes is CheckBytes on msg[from:to], one byte at a time; it clears
// *ascii at a byte of 0x80 or more.
func checkBytes(msg []byte, from, to int, ascii *bool) string {
	for i := from; i < to; i++ {
		c := msg[i]
		if c < 0x20 && c != '\t' && !(c == '\n' && i == len(msg)-1) && !(c == '\r' && i >= len(msg)-2) || c == 0x7f {
			return fmt.Sprintf("binary data: control byte 0x%02x at byte %d", c, i)
		}
		if c >= 0x80 {
			*ascii = false
		}
	}
	return ""
}

// parseAddr is netip.ParseAddr on bytes, with a fast path for the usual
// dotted IPv4 address ("192.0.2.1"): it accepts and rejects exactly what
// netip does (four decimal fields 0-255, no leading zeros), and leaves
// every other text (IPv6, zones, errors) to netip.
func parseAddr(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	i := 0
	for f := range 4 {
		if f > 0 {
			if i >= len(b) || b[i] != '.' {
				return parseAddrSlow(b)
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && i-start < 3 && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + int(b[i]-'0')
			i++
		}
		if i == start || v > 255 || (i-start > 1 && b[start] == '0') {
			return parseAddrSlow(b)
		}
		ip[f] = byte(v)
	}
	if i != len(b) {
		return parseAddrSlow(b)
	}
	return netip.AddrFrom4(ip), true
}

// parseAddrSlow leaves to netip what can be an IPv6 address: a ':' and,
// before a zone's '%', only hex digits, ':' and '.'. Anything else is not
// an address for netip either (the dotted IPv4 form is parseAddr's), and
// is refused here without building netip's error, an allocation per try
// (a line that is not combined gets several).
func parseAddrSlow(b []byte) (netip.Addr, bool) {
	colon := false
	for _, c := range b {
		if c == '%' {
			break
		}
		switch {
		case c == ':':
			colon = true
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '.':
		default:
			return netip.Addr{}, false
		}
	}
	if !colon {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(str(b))
	return a, err == nil
}
