package logline

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/connlog/connlog/store"
)

// Predefined nginx formats, in nginx's own syntax.
const (
	// LogFormatMain is the "main" format of nginx's default nginx.conf.
	LogFormatMain = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"`
	// LogFormatRecommended is connlog's recommended format for sites that
	// cannot log JSON: combined plus what the connection records need.
	// Fields are separated by spaces: "addr:port" also works (the port
	// follows the last colon) but reads badly with IPv6.
	LogFormatRecommended = `$remote_addr $remote_port - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" ` +
		`$msec $request_id "$host" "$ssl_protocol" $server_addr $server_port "$http_x_forwarded_for"`
)

// logFormat is an nginx log_format compiled into a program that splits a
// line on the literal text between variables: no regular expression, one
// pass over the line, no allocation.
type logFormat struct {
	prefix []byte
	vars   []lfVar
	// json is set when the format is a JSON object (escape=json); lines are
	// then read by the JSON reader with the keys the format names.
	json *jsonFormat
	// escNone: the format declares escape=none, so values may hold raw
	// quotes and "" is what nginx writes for an absent value.
	escNone bool
}

// lfVar is one variable and the literal that follows it.
type lfVar struct {
	f     field
	name  string
	after []byte
	// fixed is the width of a fixed-width variable ($time_local), else 0.
	fixed int
	// quoted: the variable sits between double quotes, so its end is the
	// first unescaped quote (Apache writes \", nginx \x22).
	quoted bool
	// addrPort: an address followed by ':' and more (a port).
	addrPort bool
}

// compileLogFormat compiles an nginx log_format. It accepts the format as
// it appears in nginx.conf: optionally starting with "log_format NAME" and
// "escape=...", as several single- or double-quoted strings, with a final ';'.
func compileLogFormat(s string) (*logFormat, error) {
	src, escape, err := unquoteLogFormat(s)
	if err != nil {
		return nil, err
	}
	if escape == "json" || strings.HasPrefix(strings.TrimSpace(src), "{") {
		jf, err := jsonFormatFromLogFormat(src)
		if err != nil {
			return nil, err
		}
		return &logFormat{json: jf}, nil
	}
	lf := &logFormat{escNone: escape == "none"}
	var lit []byte
	hasTime, hasAddr := false, false
	for i := 0; i < len(src); {
		c := src[i]
		if c != '$' {
			lit = append(lit, c)
			i++
			continue
		}
		name, n := varName(src[i:])
		if name == "" {
			return nil, fmt.Errorf("byte %d: '$' not followed by a variable name", i)
		}
		i += n
		if len(lf.vars) == 0 {
			lf.prefix = lit
		} else {
			prev := &lf.vars[len(lf.vars)-1]
			if len(lit) == 0 {
				return nil, fmt.Errorf("$%s follows $%s with nothing between them: connlog cannot tell where one ends", name, prev.name)
			}
			prev.after = lit
		}
		lit = nil
		f := fieldByName[name]
		v := lfVar{f: f, name: name}
		if f == fTimeLocal {
			v.fixed = timeLocalLen
		}
		switch f {
		case fTimeLocal, fTimeISO8601, fMsec:
			hasTime = true
		case fRemoteAddr, fRealIPRemoteAddr:
			hasAddr = true
		}
		lf.vars = append(lf.vars, v)
	}
	if len(lf.vars) == 0 {
		return nil, errors.New("no $variable in the format")
	}
	lf.vars[len(lf.vars)-1].after = lit
	for k := range lf.vars {
		v := &lf.vars[k]
		before := lf.prefix
		if k > 0 {
			before = lf.vars[k-1].after
		}
		v.quoted = len(before) > 0 && before[len(before)-1] == '"' && len(v.after) > 0 && v.after[0] == '"'
		switch v.f {
		case fRemoteAddr, fRealIPRemoteAddr, fServerAddr, fProxyProtocolAddr:
			v.addrPort = !v.quoted && len(v.after) > 0 && v.after[0] == ':' && k+1 < len(lf.vars)
		}
	}
	var errs []error
	if !hasTime {
		errs = append(errs, errors.New("no time variable ($time_local, $time_iso8601 or $msec)"))
	}
	if !hasAddr {
		errs = append(errs, errors.New("no client address variable ($remote_addr or $realip_remote_addr)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return lf, nil
}

// varName reads "$name" or "${name}" at the start of s.
func varName(s string) (string, int) {
	if len(s) > 2 && s[1] == '{' {
		end := strings.IndexByte(s, '}')
		if end < 3 {
			return "", 0
		}
		return s[2:end], end + 1
	}
	j := 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	if j == 1 {
		return "", 0
	}
	return s[1:j], j
}

// unquoteLogFormat turns a log_format as written in nginx.conf into the
// format text, and returns the escaping it declares ("default", "json",
// "none"; "" when it declares none). Text that does not start with a quote
// is taken as is.
func unquoteLogFormat(s string) (string, string, error) {
	s = strings.TrimSpace(s)
	escape := ""
	if rest, ok := strings.CutPrefix(s, "log_format"); ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n') {
		f := strings.Fields(rest)
		if len(f) == 0 {
			return "", "", errors.New("log_format without a name")
		}
		rest = strings.TrimSpace(rest)
		rest = strings.TrimSpace(rest[len(f[0]):]) // the name
		if strings.HasPrefix(rest, "escape=") {
			e := strings.Fields(rest)[0]
			escape = strings.TrimPrefix(e, "escape=")
			rest = strings.TrimSpace(rest[len(e):])
		}
		s = rest
	}
	s = strings.TrimSuffix(strings.TrimSpace(s), ";")
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", errors.New("empty format")
	}
	if s[0] != '\'' && s[0] != '"' {
		return s, escape, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					b.WriteByte(s[j])
					continue
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return "", "", fmt.Errorf("byte %d: unterminated %c-quoted string", i, c)
			}
			i = j + 1
		default:
			return "", "", fmt.Errorf("byte %d: text outside quotes", i)
		}
	}
	return b.String(), escape, nil
}

// parse splits line by the program and fills h. st collects the fields
// that are resolved once the whole line is read.
func (lf *logFormat) parse(line []byte, h *store.Hit, st *lineState) error {
	if !bytes.HasPrefix(line, lf.prefix) {
		return perr(firstName(lf), 0, "line does not start like the log_format")
	}
	st.emptySent, st.dashIsValue = !lf.escNone, lf.escNone
	if lf.escNone {
		if err, done := lf.parseRaw(line, h, st); done {
			return err
		}
	}
	i := len(lf.prefix)
	for k := range lf.vars {
		v := &lf.vars[k]
		var end int
		switch {
		case v.fixed > 0:
			end = i + v.fixed
			if end > len(line) {
				return perr(v.name, i, "line ends inside the field")
			}
		case v.quoted:
			q, ok := closingQuote(line, i)
			if !ok {
				return perr(v.name, i, "unterminated quoted string")
			}
			end = q
		case len(v.after) == 0:
			end = len(line)
		case v.addrPort:
			// "$remote_addr:$remote_port": nginx writes IPv6 without
			// brackets, so the port follows the last colon of the token.
			tok := bytes.IndexByte(line[i:], ' ')
			if tok < 0 {
				tok = len(line) - i
			}
			j := bytes.LastIndexByte(line[i:i+tok], ':')
			if j < 0 {
				return perr(v.name, i, fmt.Sprintf("expected %q after the field", v.after))
			}
			end = i + j
		case len(v.after) == 1:
			j := bytes.IndexByte(line[i:], v.after[0])
			if j < 0 {
				return perr(v.name, i, fmt.Sprintf("expected %q after the field", v.after))
			}
			end = i + j
		default:
			j := bytes.Index(line[i:], v.after)
			if j < 0 {
				return perr(v.name, i, fmt.Sprintf("expected %q after the field", v.after))
			}
			end = i + j
		}
		if !bytes.HasPrefix(line[end:], v.after) {
			return perr(v.name, end, fmt.Sprintf("expected %q after the field", v.after))
		}
		if err := setField(v.f, line[i:end], h, st); err != nil {
			return at(err, i)
		}
		i = end + len(v.after)
	}
	if i != len(line) {
		return perr("line", i, "unexpected text after the last field")
	}
	return nil
}

func firstName(lf *logFormat) string {
	if len(lf.vars) > 0 {
		return lf.vars[0].name
	}
	return "line"
}

// closingQuote returns the index of the first double quote at or after i
// that is not escaped by an odd number of backslashes.
func closingQuote(line []byte, i int) (int, bool) {
	for j := i; j < len(line); {
		q := bytes.IndexByte(line[j:], '"')
		if q < 0 {
			return 0, false
		}
		q += j
		bs := 0
		for k := q - 1; k >= i && line[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return q, true
		}
		j = q + 1
	}
	return 0, false
}

// at shifts the position of a *ParseError by off.
func at(err error, off int) error {
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.Pos += off
	}
	return err
}

// maxRawSteps bounds the search for the readings of an escape=none line: a
// line with so many quotes that the search is longer is ambiguous anyway.
const maxRawSteps = 2000

// parseRaw reads an escape=none line, whose values may hold the format's
// own delimiters (raw quotes, spaces): it tries every place where each
// variable may end (its literal follows and its value is plausible for the
// field) and accepts the line only if exactly one reading covers it whole.
// With no reading it returns done=false so that the ordinary parse reports
// the first mismatch.
func (lf *logFormat) parseRaw(line []byte, h *store.Hit, st *lineState) (err error, done bool) {
	ends := make([]int, len(lf.vars))
	found := make([]int, len(lf.vars))
	steps, readings := 0, 0
	var walk func(k, i int)
	walk = func(k, i int) {
		if readings > 1 || steps > maxRawSteps {
			return
		}
		if k == len(lf.vars) {
			if i == len(line) {
				readings++
				copy(found, ends)
			}
			return
		}
		v := &lf.vars[k]
		try := func(end int) {
			steps++
			if plausible(v.f, line[i:end]) {
				ends[k] = end
				walk(k+1, end+len(v.after))
			}
		}
		switch {
		case v.fixed > 0:
			if i+v.fixed <= len(line) && bytes.HasPrefix(line[i+v.fixed:], v.after) {
				try(i + v.fixed)
			}
		case len(v.after) == 0:
			try(len(line))
		default:
			for j := i; j <= len(line) && readings < 2 && steps <= maxRawSteps; {
				d := bytes.Index(line[j:], v.after)
				if d < 0 {
					break
				}
				try(j + d)
				j += d + 1
			}
		}
	}
	walk(0, len(lf.prefix))
	switch {
	case steps > maxRawSteps || readings > 1:
		return perr(firstName(lf), 0, "ambiguous: raw quotes or delimiters inside values (escape=none) allow more than one reading"), true
	case readings == 0:
		return nil, false
	}
	i := len(lf.prefix)
	for k := range lf.vars {
		if err := setField(lf.vars[k].f, line[i:found[k]], h, st); err != nil {
			return at(err, i), true
		}
		i = found[k] + len(lf.vars[k].after)
	}
	return nil, true
}

// plausible reports whether v can be the value of f, for [logFormat.parseRaw]:
// numbers are digits, addresses and times hold no space or quote.
func plausible(f field, v []byte) bool {
	digitsOr := func(extra byte) bool {
		for _, c := range v {
			if (c < '0' || c > '9') && c != extra {
				return false
			}
		}
		return true
	}
	switch f {
	case fStatus:
		return len(v) == 3 && digitsOr(0)
	case fBodyBytesSent, fBytesSent, fRemotePort, fRealIPRemotePort, fProxyProtocolPort, fServerPort:
		return empty(v) || digitsOr(0)
	case fMsec, fRequestTime:
		return empty(v) || digitsOr('.')
	case fRemoteAddr, fRealIPRemoteAddr, fProxyProtocolAddr, fServerAddr, fTimeISO8601, fTimeLocal:
		return bytes.IndexByte(v, ' ') < 0 && bytes.IndexByte(v, '"') < 0 || f == fTimeLocal
	}
	return true
}
