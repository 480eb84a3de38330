package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/connlog/connlog/store"
)

// ErrMalformed is the sentinel wrapped by every error a parser returns for a
// line it cannot understand. Callers branch on it with errors.Is to tell bad
// input (quarantine the line) from an outage.
var ErrMalformed = errors.New("malformed log line")

// ErrUnknownFormat is returned by [NewParser] for a format name it does not know.
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

// Parser parses one log line into a caller-owned [store.Hit].
//
// Parse resets h before filling it. Strings stored in h may alias line, so h
// is valid only as long as line's bytes are not modified. An error for bad
// input wraps [ErrMalformed] (usually as a [*ParseError]). Implementations
// must be safe for concurrent use with distinct lines and Hits.
type Parser interface {
	Parse(line []byte, h *store.Hit) error
}

// ParserFunc adapts a function to the [Parser] interface.
type ParserFunc func(line []byte, h *store.Hit) error

// Parse calls f(line, h).
func (f ParserFunc) Parse(line []byte, h *store.Hit) error { return f(line, h) }

// Format names accepted by [NewParser].
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
	return unsafe.String(unsafe.SliceData(b), len(b))
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
//     X-Forwarded-For), which are ignored;
//   - an X-Forwarded-For list before remote_addr, bare ("a, b, c - -") or
//     quoted (`"a, b" c - -`), as in Filebeat's test files: the last address
//     before the ident field is the TCP peer (PeerIP), the addresses before
//     it are kept verbatim in ForwardedFor. Until trusted proxies are
//     configurable, ClientIP is PeerIP;
//   - a virtual host before remote_addr (Apache vhost_combined, "host[:port]"),
//     stored in Site and ServerPort;
//   - an empty or "-" request (Method, Path and Protocol stay empty), and a
//     request that is not "METHOD URI [PROTOCOL]" (e.g. TLS bytes sent to a
//     plain-HTTP port), which is kept whole in Path so the SOC still sees
//     what was sent;
//   - "-" for bytes (Apache's way of writing 0), IPv6 peers, any UTC offset.
//
// Escapes such as \xNN are left as they are. One trailing "\n" or "\r\n" is
// stripped. The time is converted to UTC; IPv4-mapped IPv6 peers are
// unmapped. The path and query are split at the first '?' (Query excludes
// it). A peer that is not an IP address (a hostname) is an error.
//
// Strings in h alias line: h is valid as long as line's bytes are. It does
// not allocate for a well-formed line, and is safe for concurrent use.
func ParseCombined(line []byte, h *store.Hit) error {
	_, err := parseCombined(line, h)
	return err
}

// parseCombined is [ParseCombined]; it also returns the index in the
// trimmed line after the last field it read (the user agent, the referer or
// the byte count), where extra trailing fields start.
func parseCombined(line []byte, h *store.Hit) (end int, err error) {
	*h = store.Hit{}
	line = trimEOL(line)
	if len(line) == 0 {
		return 0, perr("line", 0, "empty line")
	}

	// Everything before " [" is: [prefix] remote_addr ident remote_user.
	tb := bytes.IndexByte(line, '[')
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
	rs, re, next, ok := quoted(line, i+1)
	if !ok {
		return 0, perr("request", i+1, "unterminated quoted string")
	}
	splitRequest(line[rs:re], h)
	i = next

	// $status
	if i+4 > len(line) || line[i] != ' ' {
		return 0, perr("status", i, "expected a space and a 3-digit status")
	}
	i++
	st, ok := digits3(line[i : i+3])
	if !ok {
		return 0, perr("status", i, "expected a 3-digit status")
	}
	h.Status = st
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
	if !(j-i == 1 && line[i] == '-') {
		n, ok := parseUint(line[i:j])
		if !ok {
			return 0, perr("body_bytes_sent", i, "expected a decimal number or -")
		}
		h.BytesSent = n
	}
	i = j

	// Common format ends here; combined goes on with two quoted strings.
	// Anything after them (or anything unquoted here) is an extra field.
	if i+1 < len(line) && line[i+1] == '"' {
		s, e, next, ok := quoted(line, i+1)
		if !ok {
			return 0, perr("http_referer", i+1, "unterminated quoted string")
		}
		h.Referer = dash(line[s:e])
		i = next
		if i+1 < len(line) && line[i] == ' ' && line[i+1] == '"' {
			s, e, next, ok := quoted(line, i+1)
			if !ok {
				return 0, perr("http_user_agent", i+1, "unterminated quoted string")
			}
			h.UserAgent = dash(line[s:e])
			i = next
		}
	}
	return i, nil
}

// dash returns "" for the "-" nginx writes for an empty value.
func dash(b []byte) string {
	if len(b) == 1 && b[0] == '-' {
		return ""
	}
	return str(b)
}

// parsePrefix parses "[xff-list|vhost] remote_addr ident remote_user".
func parsePrefix(pre []byte, h *store.Hit) error {
	end := len(pre)
	sp := bytes.LastIndexByte(pre, ' ')
	if sp < 0 {
		return perr("remote_user", 0, "expected remote_addr, ident and remote_user before [time_local]")
	}
	h.User = dash(pre[sp+1 : end])
	end = sp
	sp = bytes.LastIndexByte(pre[:end], ' ')
	if sp < 0 {
		return perr("remote_user", 0, "expected remote_addr, ident and remote_user before [time_local]")
	}
	// pre[sp+1:end] is the ident ("-"), which nothing stores.
	end = sp
	sp = bytes.LastIndexByte(pre[:end], ' ')
	peer := pre[sp+1 : end]
	addr, err := netip.ParseAddr(str(peer))
	if err != nil {
		return perr("remote_addr", sp+1, "not an IP address")
	}
	addr = addr.Unmap()
	h.PeerIP = addr
	h.ClientIP = addr
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

// splitRequest fills Method, Path, Query and Protocol from "$request".
func splitRequest(req []byte, h *store.Hit) {
	if len(req) == 0 || (len(req) == 1 && req[0] == '-') {
		return
	}
	sp := bytes.IndexByte(req, ' ')
	if sp <= 0 || !isToken(req[:sp]) {
		h.Path = str(req)
		return
	}
	h.Method = str(req[:sp])
	uri := req[sp+1:]
	if last := bytes.LastIndexByte(uri, ' '); last >= 0 && bytes.HasPrefix(uri[last+1:], []byte("HTTP/")) {
		h.Protocol = str(uri[last+1:])
		uri = uri[:last]
	}
	if q := bytes.IndexByte(uri, '?'); q >= 0 {
		h.Query = str(uri[q+1:])
		uri = uri[:q]
	}
	h.Path = str(uri)
}

// isToken reports whether b is an HTTP token (RFC 9110 tchar), as a method is.
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return len(b) > 0
}

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
	day, ok1 := num(b[0:2])
	year, ok2 := num(b[7:11])
	hour, ok3 := num(b[12:14])
	minute, ok4 := num(b[15:17])
	sec, ok5 := num(b[18:20])
	zh, ok6 := num(b[22:24])
	zm, ok7 := num(b[24:26])
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
