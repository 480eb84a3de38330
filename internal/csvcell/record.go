package csvcell

import (
	"unicode"
	"unicode/utf8"
)

// Record appends CSV records to a buffer, each field made [Safe]: the
// bytes encoding/csv's Writer (comma, LF line ends) writes for the same
// fields after Safe, which a test holds it to. A hot export appends its
// numbers, times and addresses in place rather than making each a string
// first for Writer.Write; it is written to without an error and flushed
// by its owner.
type Record struct {
	B []byte // the records appended so far
	n int    // fields in the open record
}

// Field appends s as the record's next field.
func (r *Record) Field(s string) { appendField(r, s) }

// Bytes appends b as the record's next field (what an AppendTo or
// strconv.Append produced: it is copied). Not inlined: inlined, the
// generic call inside it made the caller's stack buffer escape, one
// allocation per number or address of a row.
//
//go:noinline
func (r *Record) Bytes(b []byte) { appendField(r, b) }

// Plain appends b as the record's next field as it is: b must need neither
// quotes nor Safe's prefix, which holds for what its callers write (digits
// of a number that is not negative, an address with no zone, a time that
// begins with its year), and is checked in tests, not here, to keep a
// row's numbers cheap.
func (r *Record) Plain(b []byte) {
	r.next()
	r.B = append(r.B, b...)
}

// next starts the record's next field: a comma after the first.
func (r *Record) next() {
	if r.n > 0 {
		r.B = append(r.B, ',')
	}
	r.n++
}

// End closes the record.
func (r *Record) End() {
	r.B = append(r.B, '\n')
	r.n = 0
}

// Reset empties the buffer, keeping its memory.
func (r *Record) Reset() {
	r.B = r.B[:0]
	r.n = 0
}

func appendField[T string | []byte](r *Record, f T) {
	r.next()
	// Safe's "'" in front, when it adds one, begins the field as written:
	// no space, so only the bytes below can then ask for quotes.
	prefix := len(f) > 0 && prefixed(f[0])
	quoted := needsQuotes(f, !prefix)
	if quoted {
		r.B = append(r.B, '"')
	}
	if prefix {
		r.B = append(r.B, '\'')
	}
	if !quoted {
		r.B = append(r.B, f...)
		return
	}
	start := 0
	for i := 0; i < len(f); i++ {
		if f[i] == '"' {
			r.B = append(r.B, f[start:i+1]...)
			r.B = append(r.B, '"')
			start = i + 1
		}
	}
	r.B = append(r.B, f[start:]...)
	r.B = append(r.B, '"')
}

// needsQuotes is encoding/csv's fieldNeedsQuotes for a comma: a field is
// quoted when it holds a comma, a quote, CR or LF, when it is `\.`, or
// (first: f begins the field as written) when it begins with a Unicode
// space.
func needsQuotes[T string | []byte](f T, first bool) bool {
	if len(f) == 0 {
		return false
	}
	if len(f) == 2 && f[0] == '\\' && f[1] == '.' && first {
		return true
	}
	if special(f) {
		return true
	}
	if !first {
		return false
	}
	if f[0] < utf8.RuneSelf {
		return unicode.IsSpace(rune(f[0]))
	}
	var b [utf8.UTFMax]byte
	r, _ := utf8.DecodeRune(b[:copy(b[:], f)])
	return unicode.IsSpace(r)
}

// special reports whether f holds a comma, a quote, CR or LF.
func special[T string | []byte](f T) bool {
	for i := 0; i < len(f); i++ {
		if specialBytes[f[i]] {
			return true
		}
	}
	return false
}

var specialBytes = [256]bool{',': true, '"': true, '\r': true, '\n': true}
