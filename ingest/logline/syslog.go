package logline

import (
	"bytes"
	"net/netip"
)

// stripSyslog removes the syslog header that rsyslog and syslog-ng prepend
// when no template is set, and that nginx's own "syslog:" sender writes:
//
//	<190>Nov 22 10:00:00 web1 nginx: LINE                (RFC 3164, nginx → rsyslog)
//	2026-11-22T10:00:00.123+01:00 web1 nginx-access: LINE  (rsyslog, syslog-ng ISODATE)
//	Nov 22 10:00:00 web1 nginx[123]: LINE                (RFC 3164 without PRI)
//	<190>1 2026-11-22T10:00:00Z web1 nginx - - - LINE    (RFC 5424)
//
// The tag may lack its colon (rsyslog's imfile Tag="nginx-access"); syslog-ng
// reading a file writes no tag. It returns the line (aliasing msg), the
// sender's host, and ok=false when msg does not start with a syslog header.
func stripSyslog(msg []byte) (line, host []byte, ok bool) {
	i := 0
	pri := false
	if len(msg) > 0 && msg[0] == '<' {
		j := 1
		for j < len(msg) && j <= 4 && msg[j] >= '0' && msg[j] <= '9' {
			j++
		}
		if j == 1 || j >= len(msg) || msg[j] != '>' {
			return nil, nil, false
		}
		i, pri = j+1, true
	}
	if pri && len(msg) > i+2 && msg[i] == '1' && msg[i+1] == ' ' {
		return strip5424(msg, i+2)
	}
	switch n := syslogTime(msg[i:]); {
	case n > 0:
		i += n
	default:
		return nil, nil, false
	}
	if i >= len(msg) || msg[i] != ' ' {
		return nil, nil, false
	}
	i++
	sp := bytes.IndexByte(msg[i:], ' ')
	if sp <= 0 {
		return nil, nil, false
	}
	host = msg[i : i+sp]
	rest := msg[i+sp+1:]
	return skipTag(rest), host, true
}

// skipTag drops "tag: ", "tag[pid]: " or a colon-less tag before the line.
func skipTag(rest []byte) []byte {
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return rest
	}
	tok := rest[:sp]
	if tok[len(tok)-1] == ':' {
		return rest[sp+1:]
	}
	if looksLikeLineStart(tok) {
		return rest
	}
	next := rest[sp+1:]
	if n := bytes.IndexByte(next, ' '); n > 0 && looksLikeLineStart(next[:n]) {
		return next
	}
	if len(next) > 0 && next[0] == '{' {
		return next
	}
	return rest
}

// looksLikeLineStart reports whether tok can begin an access-log line: an
// address (possibly followed by ',' or ':port'), a quote or a JSON object.
func looksLikeLineStart(tok []byte) bool {
	if tok[0] == '{' || tok[0] == '"' {
		return true
	}
	tok = bytes.TrimRight(tok, ",")
	for _, c := range tok {
		// Only these bytes make up an address; checking first saves the
		// allocation of netip's error for a tag such as "nginx-access".
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':' || c == '[' || c == ']' || c == '%') {
			return false
		}
	}
	if _, err := netip.ParseAddr(str(tok)); err == nil {
		return true
	}
	if _, err := netip.ParseAddrPort(str(tok)); err == nil {
		return true
	}
	return false
}

// strip5424 skips "TIMESTAMP HOST APP PROCID MSGID SD " of RFC 5424.
func strip5424(msg []byte, i int) (line, host []byte, ok bool) {
	var tok [5][]byte
	for k := range tok {
		sp := bytes.IndexByte(msg[i:], ' ')
		if sp <= 0 {
			return nil, nil, false
		}
		tok[k] = msg[i : i+sp]
		i += sp + 1
	}
	// structured data: "-" or one or more [id k="v"] elements
	if i < len(msg) && msg[i] == '-' {
		i++
	} else {
		for i < len(msg) && msg[i] == '[' {
			end := i + 1
			for end < len(msg) && msg[end] != ']' {
				if msg[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(msg) {
				return nil, nil, false
			}
			i = end + 1
		}
	}
	if i < len(msg) && msg[i] == ' ' {
		i++
	}
	line = bytes.TrimPrefix(msg[i:], []byte("\xef\xbb\xbf"))
	host = tok[1]
	if len(host) == 1 && host[0] == '-' {
		host = nil
	}
	return line, host, true
}

// syslogTime returns the length of a syslog timestamp at the start of b:
// RFC 3164 "Mmm dd HH:MM:SS" (day space-padded) or RFC 3339, else 0.
func syslogTime(b []byte) int {
	if len(b) >= 15 && monthNum(b[0:3]) != 0 && b[3] == ' ' &&
		(b[4] == ' ' || b[4] >= '0' && b[4] <= '9') && b[5] >= '0' && b[5] <= '9' && b[6] == ' ' &&
		b[9] == ':' && b[12] == ':' && isDigits(b[7:9]) && isDigits(b[10:12]) && isDigits(b[13:15]) {
		return 15
	}
	if len(b) >= 20 && isDigits(b[0:4]) && b[4] == '-' && isDigits(b[5:7]) && b[7] == '-' && isDigits(b[8:10]) && b[10] == 'T' {
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			return 0
		}
		if _, reason := parseISO8601(b[:sp]); reason != "" {
			return 0
		}
		return sp
	}
	return 0
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
