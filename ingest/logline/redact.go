package logline

import (
	"bytes"
	"strings"

	"github.com/connlog/connlog/store"
)

// redactor replaces the values of secret query parameters.
type redactor struct {
	names [][]byte // lower case
	// lens has bit n set when a name is n bytes long (n < 64; longer names
	// set bit 0), so that most parameters are told apart by length alone.
	lens uint64
}

func newRedactor(names []string) redactor {
	r := redactor{}
	for _, n := range names {
		r.names = append(r.names, []byte(strings.ToLower(n)))
		r.lens |= lenBit(len(n))
	}
	return r
}

func lenBit(n int) uint64 {
	if n >= 64 {
		return 1
	}
	return 1 << n
}

// apply redacts h's query, the query of the referer, and the password of a
// URL's user information ("https://user:password@host/") in the referer and
// in an absolute-form request target. Every parser splits the path at its
// first '?', so a path holds no query; a request line that is not HTTP is
// redacted as raw text ([Parser.Parse]). It allocates only when something
// is redacted, and then sets h.Redacted.
func (r redactor) apply(h *store.Hit) {
	if len(r.names) == 0 {
		return
	}
	if v, ok := redactUserinfo(h.Referer); ok {
		h.Referer, h.Redacted = v, true
	}
	if v, ok := redactUserinfo(h.Path); ok {
		h.Path, h.Redacted = v, true
	}
	if q, ok := r.query(h.Query); ok {
		h.Query, h.Redacted = q, true
	}
	if i := strings.IndexByte(h.Referer, '?'); i >= 0 {
		q, frag := h.Referer[i+1:], ""
		if j := strings.IndexByte(q, '#'); j >= 0 {
			q, frag = q[:j], q[j:]
		}
		if rq, ok := r.query(q); ok {
			h.Referer, h.Redacted = h.Referer[:i+1]+rq+frag, true
		}
	}
}

// query returns q with the values of the configured parameters replaced by
// [RedactedValue], and whether anything changed.
func (r redactor) query(q string) (string, bool) {
	if q == "" || !r.anySecret(q) {
		return q, false
	}
	var b strings.Builder
	b.Grow(len(q))
	for first := true; ; first = false {
		part, rest, more := strings.Cut(q, "&")
		if !first {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(part, "=")
		if hasValue && r.isSecret(name) {
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(RedactedValue)
		} else {
			b.WriteString(part)
		}
		if !more {
			break
		}
		q = rest
	}
	return b.String(), true
}

// anySecret reports whether q has a secret parameter with a value.
func (r redactor) anySecret(q string) bool {
	for len(q) > 0 {
		part, rest, _ := strings.Cut(q, "&")
		if name, v, ok := strings.Cut(part, "="); ok && v != RedactedValue && r.isSecret(name) {
			return true
		}
		q = rest
	}
	return false
}

func (r redactor) isSecret(name string) bool {
	if r.lens&lenBit(len(name)) == 0 {
		return false
	}
	for _, n := range r.names {
		if len(n) == len(name) && bytes.EqualFold(n, []byte(name)) {
			return true
		}
	}
	return false
}

// raw redacts secret query parameters anywhere in a raw message: each
// "?name=value" or "&name=value" whose name is configured has its value (up
// to '&', '#', a space, a quote or a backslash) replaced; so is the
// password of every "scheme://user:password@" in it. It returns b itself
// when nothing matched, else a new slice.
func (r redactor) raw(b []byte) []byte {
	if len(r.names) == 0 {
		return b
	}
	if v, ok := redactUserinfo(str(b)); ok {
		b = []byte(v)
	}
	var out []byte
	last := 0
	for k := 0; k < len(b); k++ {
		if b[k] != '?' && b[k] != '&' {
			continue
		}
		n := k + 1
		for n < len(b) && b[n] != '=' && b[n] != '&' && b[n] != ' ' && b[n] != '"' && b[n] != '#' {
			n++
		}
		if n >= len(b) || b[n] != '=' || !r.isSecret(str(b[k+1:n])) {
			continue
		}
		v := n + 1
		e := v
		for e < len(b) && b[e] != '&' && b[e] != '#' && b[e] != ' ' && b[e] != '"' && b[e] != '\\' {
			e++
		}
		if e == v || string(b[v:e]) == RedactedValue {
			continue
		}
		out = append(out, b[last:v]...)
		out = append(out, RedactedValue...)
		last = e
		k = e - 1
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// redactUserinfo replaces the password of each "scheme://user:password@"
// in s by [RedactedValue] (an empty one is left as it is) and reports
// whether it changed anything. The user
// information ends at the last '@' before the authority ends ('/', '?',
// '#', a space, a quote or a backslash: the end of the URL in a log line).
func redactUserinfo(s string) (string, bool) {
	if strings.IndexByte(s, '@') < 0 {
		return s, false // the hot path: no user information anywhere
	}
	var b strings.Builder
	last, from := 0, 0
	for {
		i := strings.Index(s[from:], "://")
		if i < 0 {
			break
		}
		start := from + i + 3
		end := start
	authority:
		for ; end < len(s); end++ {
			switch s[end] {
			case '/', '?', '#', ' ', '"', '\\':
				break authority
			}
		}
		from = end
		at := strings.LastIndexByte(s[start:end], '@')
		if at < 0 {
			continue
		}
		colon := strings.IndexByte(s[start:start+at], ':')
		if colon < 0 {
			continue
		}
		pw, pwEnd := start+colon+1, start+at
		if pw == pwEnd || s[pw:pwEnd] == RedactedValue {
			continue // an empty password hides nothing: the text stays as logged
		}
		b.WriteString(s[last:pw])
		b.WriteString(RedactedValue)
		last = pwEnd
	}
	if last == 0 {
		return s, false
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// RedactRaw returns msg with the values of the configured secret query
// parameters replaced by [RedactedValue] wherever they appear ("?name=" or
// "&name="), for what is stored without being parsed: a quarantined
// message. It returns msg itself when nothing matched, else a copy; msg is
// never modified. Safe for concurrent use.
func (p *Parser) RedactRaw(msg []byte) []byte {
	return p.redact.raw(msg)
}
