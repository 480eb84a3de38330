package logline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/connlog/connlog/store"
)

// errEnvelope is what the JSON reader returns for an object with a
// "message" or "log" string it does not map: a shipper's envelope, which
// [Parser.Parse] unwraps. It never leaves Parse.
var errEnvelope = errors.New("shipper envelope")

// jsonFormat reads one JSON object per line, as nginx writes with
// `log_format NAME escape=json '{"key":"$variable",...}'`. keys maps a JSON
// key to the field it holds.
type jsonFormat struct {
	keys map[string]field
	// table is keys for lookups: every member of every JSON line is looked
	// up, and a Go map (hashing the whole key) was a third of the time.
	table keyTable
}

// keyTable maps JSON keys to fields by open addressing, hashing only a
// key's length and three of its bytes. Built once; safe for concurrent
// reads.
type keyTable struct {
	slots []keySlot // a power of two, at most half full
	mask  uint32
}

type keySlot struct {
	key string
	f   field
	// bit is this key's own bit, for telling a key met twice in one line.
	bit  uint64
	used bool
}

// maxJSONKeys is how many keys a JSON format may map: one bit each in the
// mask [jsonFormat.parse] keeps of the keys a line has given.
const maxJSONKeys = 64

func newKeyTable(keys map[string]field) (keyTable, error) {
	if len(keys) > maxJSONKeys {
		return keyTable{}, fmt.Errorf("a JSON format maps %d keys; at most %d are read", len(keys), maxJSONKeys)
	}
	n := 8
	for n < 2*len(keys) {
		n *= 2
	}
	t := keyTable{slots: make([]keySlot, n), mask: uint32(n - 1)}
	bit := uint64(1)
	for k, f := range keys {
		i := keyHash(k) & t.mask
		for t.slots[i].used {
			i = (i + 1) & t.mask
		}
		t.slots[i] = keySlot{key: k, f: f, bit: bit, used: true}
		bit <<= 1
	}
	return t, nil
}

func keyHash[S string | []byte](k S) uint32 {
	n := len(k)
	if n == 0 {
		return 0
	}
	h := uint32(n) | uint32(k[0])<<8 | uint32(k[n/2])<<16 | uint32(k[n-1])<<24
	return (h * 0x9E3779B1) >> 7
}

// get returns the field key holds, or fIgnore.
func (t *keyTable) get(key []byte) field {
	f, _ := t.lookup(key)
	return f
}

// lookup returns the field key holds and the key's own bit, or fIgnore and 0.
func (t *keyTable) lookup(key []byte) (field, uint64) {
	if len(t.slots) == 0 {
		return fIgnore, 0
	}
	for i := keyHash(key) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if !s.used {
			return fIgnore, 0
		}
		if s.key == string(key) {
			return s.f, s.bit
		}
	}
}

// jsonAliases are keys commonly used for a field besides its nginx name.
var jsonAliases = map[string]field{
	"user_agent":      fUserAgent,
	"useragent":       fUserAgent,
	"referer":         fReferer,
	"referrer":        fReferer,
	"x_forwarded_for": fXForwardedFor,
	"xff":             fXForwardedFor,
	"method":          fRequestMethod,
	"bytes":           fBodyBytesSent,
	"timestamp":       fTimeISO8601,
	"time":            fTimeISO8601,
	"user":            fRemoteUser,
}

// newJSONFormat returns the default keys (each field's nginx variable name
// and the aliases) with overrides (field name -> JSON key) applied: an
// overridden field is read from its new key only.
func newJSONFormat(overrides map[string]string) (*jsonFormat, error) {
	jf := &jsonFormat{keys: make(map[string]field, len(fieldByName)+len(jsonAliases))}
	for k, f := range jsonAliases {
		jf.keys[k] = f
	}
	for k, f := range fieldByName {
		jf.keys[k] = f
	}
	for name, key := range overrides {
		f, ok := fieldByName[name]
		if !ok {
			return nil, fmt.Errorf("json_fields: unknown field %q", name)
		}
		for k, g := range jf.keys {
			if g == f {
				delete(jf.keys, k)
			}
		}
		jf.keys[key] = f
	}
	var err error
	if jf.table, err = newKeyTable(jf.keys); err != nil {
		return nil, err
	}
	return jf, nil
}

// jsonFormatFromLogFormat reads the keys of an escape=json log_format:
// each `"key":"$variable"` pair maps key to the variable's field.
func jsonFormatFromLogFormat(src string) (*jsonFormat, error) {
	jf := &jsonFormat{keys: map[string]field{}}
	hasTime, hasAddr := false, false
	for rest := src; ; {
		i := strings.Index(rest, `":`)
		if i < 0 {
			break
		}
		k := strings.LastIndexByte(rest[:i], '"')
		key := rest[k+1 : i]
		val := strings.TrimLeft(rest[i+2:], " ")
		val = strings.TrimPrefix(val, `"`)
		rest = rest[i+2:]
		if k < 0 || !strings.HasPrefix(val, "$") {
			continue
		}
		name, _ := varName(val)
		f := fieldByName[name]
		if f == fIgnore {
			continue
		}
		jf.keys[key] = f
		switch f {
		case fTimeLocal, fTimeISO8601, fMsec:
			hasTime = true
		case fRemoteAddr, fRealIPRemoteAddr:
			hasAddr = true
		}
	}
	var err error
	if jf.table, err = newKeyTable(jf.keys); err != nil {
		return nil, err
	}
	if !hasTime || !hasAddr {
		return nil, fmt.Errorf("JSON log_format needs a time ($msec, $time_iso8601 or $time_local) and $remote_addr as \"key\":\"$variable\" pairs")
	}
	return jf, nil
}

// parse reads a JSON object line into h. Values are strings (escape=json
// writes every variable as one), numbers or null; nested values are
// skipped. A string with escapes is decoded into a new allocation; other
// strings alias line.
//
// A key it reads that the line gives twice quarantines the line. nginx
// writes each key of its log_format once; JSON readers disagree on which of
// two values wins (the first, the last, an error), so the stored record
// would depend on the reader, and a field such as "request" given twice
// left the hit half one request and half the other.
func (jf *jsonFormat) parse(line []byte, h *store.Hit, st *lineState) error {
	var ferr error
	var seen uint64
	err := eachMember(line, func(key []byte, keyEsc bool, val []byte, kind byte, valEsc bool, pos int) bool {
		if keyEsc {
			key = unescapeJSON(key)
		}
		f, bit := jf.table.lookup(key)
		if f == fIgnore && kind == 's' && (string(key) == "message" || string(key) == "log") {
			ferr = errEnvelope // a shipper's envelope, not a log line
			return false
		}
		if f == fIgnore {
			return true
		}
		if seen&bit != 0 {
			ferr = perr(string(key), pos, "given twice in the line")
			return false
		}
		seen |= bit
		if kind == '{' || kind == '[' || kind == 'n' {
			return true
		}
		if valEsc {
			val = unescapeJSON(val)
		}
		if kind == 's' && len(val) == 0 {
			return true
		}
		if err := setField(f, val, h, st); err != nil {
			ferr = at(err, pos)
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	return ferr
}

// eachMember calls fn for each member of the JSON object in b, which must
// be the whole of b (spaces aside). kind is 's' for a string (val is its
// raw content between the quotes, esc says it holds backslash escapes),
// '0' for a number, 't'/'f' for booleans, 'n' for null, '{' or '[' for a
// nested value (val is its raw text). fn returns false to stop.
func eachMember(b []byte, fn func(key []byte, keyEsc bool, val []byte, kind byte, valEsc bool, pos int) bool) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return perr("json", i, "expected a JSON object")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipWS(b, i+1) != len(b) {
			return perr("json", i+1, "unexpected text after the JSON object")
		}
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return perr("json", i, "expected a member name")
		}
		ks, ke, next, kesc, kctl, ok := scanJSONString(b, i)
		if !ok {
			return perr("json", i, "unterminated string")
		}
		if pos, reason := checkJSONString(b[ks:ke], kesc, kctl); reason != "" {
			return perr("json", ks+pos, reason)
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return perr("json", i, "expected ':'")
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return perr("json", i, "expected a value")
		}
		vpos := i
		var (
			val  []byte
			kind byte
			vesc bool
		)
		switch c := b[i]; {
		case c == '"':
			s, e, n, esc, ctl, ok := scanJSONString(b, i)
			if !ok {
				return perr("json", i, "unterminated string")
			}
			if pos, reason := checkJSONString(b[s:e], esc, ctl); reason != "" {
				return perr("json", s+pos, reason)
			}
			val, kind, vesc, i = b[s:e], 's', esc, n
			vpos = s
		case c == '{' || c == '[':
			n, ok := skipNested(b, i)
			if !ok {
				return perr("json", i, "unterminated nested value")
			}
			val, kind, i = b[i:n], c, n
		default:
			j := i
			for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
				j++
			}
			lit := b[i:j]
			switch {
			case string(lit) == "null":
				kind = 'n'
			case string(lit) == "true":
				kind = 't'
			case string(lit) == "false":
				kind = 'f'
			case isJSONNumber(lit):
				kind = '0'
			default:
				return perr("json", i, "expected a JSON value")
			}
			val, i = lit, j
		}
		if !fn(b[ks:ke], kesc, val, kind, vesc, vpos) {
			return nil
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return perr("json", i, "unterminated object")
		}
		if b[i] == '}' {
			if skipWS(b, i+1) != len(b) {
				return perr("json", i+1, "unexpected text after the JSON object")
			}
			return nil
		}
		if b[i] != ',' {
			return perr("json", i, "expected ',' or '}'")
		}
		i = skipWS(b, i+1)
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanJSONString scans the string starting at b[i] == '"': its content is
// b[start:end], next follows the closing quote. esc says the content holds
// a backslash escape, ctl a raw control byte (below 0x20), for
// [checkJSONString]. It reads eight bytes at a time up to the first quote,
// backslash or control byte: every string of every JSON line goes through
// it.
func scanJSONString(b []byte, i int) (start, end, next int, esc, ctl, ok bool) {
	start = i + 1
	j := start
	for {
		for j+8 <= len(b) && !quoteBackslashCtl(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		for ; j < len(b); j++ {
			if c := b[j]; c == '"' || c == '\\' || c < 0x20 {
				break
			}
		}
		if j >= len(b) {
			return 0, 0, 0, false, false, false
		}
		switch b[j] {
		case '"':
			return start, j, j + 1, esc, ctl, true
		case '\\':
			esc = true
			j += 2 // the escaped byte, whatever it is, is not the end
		default:
			ctl = true
			j++
		}
	}
}

// quoteBackslashCtl reports whether one of the eight bytes in x is '"',
// '\\' or below 0x20 ("haszero" and "hasless" of Bit Twiddling Hacks: exact
// for the question whether any byte matches).
func quoteBackslashCtl(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	s := x ^ (ones * '\\')
	return ((q-ones)&^q|(s-ones)&^s|(x-ones*0x20)&^x)&highs != 0
}

// checkJSONString checks the content of a JSON string as RFC 8259 does: no
// raw control byte, and after a backslash only one of "\/bfnrt or u and four
// hex digits. nginx's escape=json writes nothing else, so a line with \x22
// (nginx's default escaping pasted into a JSON format) or a raw tab is not
// what it seems. esc says whether s holds a backslash (only then are the
// escapes walked). It returns the offset of the problem and why, or "".
func checkJSONString(s []byte, esc, ctl bool) (int, string) {
	if ctl {
		for i, c := range s {
			if c < 0x20 {
				return i, fmt.Sprintf("control byte 0x%02x inside a JSON string (JSON requires it escaped)", c)
			}
		}
	}
	if !esc {
		return 0, ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 >= len(s) {
			return i, "backslash at the end of a JSON string"
		}
		i++
		switch s[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if _, n := hex4(s[i+1:]); n == 0 {
				return i - 1, `invalid JSON escape: \u needs four hex digits`
			}
			i += 4
		default:
			return i - 1, `invalid JSON escape: JSON allows only \" \\ \/ \b \f \n \r \t and \uXXXX (\xNN is nginx's default escaping, not JSON)`
		}
	}
	return 0, ""
}

// skipNested skips a nested object or array starting at b[i].
func skipNested(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			st, e, n, esc, ctl, ok := scanJSONString(b, i)
			if !ok {
				return 0, false
			}
			if _, reason := checkJSONString(b[st:e], esc, ctl); reason != "" {
				return 0, false
			}
			i = n
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
		i++
	}
	return 0, false
}

func isJSONNumber(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// unescapeJSON decodes the escapes of a JSON string's content into a new
// slice. An invalid escape is kept as written.
func unescapeJSON(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			out = append(out, c)
			continue
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n := hex4(s[i+1:])
			if n == 0 {
				out = append(out, '\\', 'u')
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2, n2 := hex4(s[i+3:]); n2 > 0 {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							out = utf8.AppendRune(out, d)
							i += 2 + n2
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, '\\', s[i])
		}
	}
	return out
}

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}
