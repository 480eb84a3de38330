// Package textcut bounds text a caller sent before it goes into a message or
// an audit row: cut to a number of runes, never inside a multibyte rune. It is
// shared by api, api/auth and cmd/connlog, so it imports nothing of connlog.
package textcut

import "strings"

// Runes returns s cut to at most n runes, at a rune boundary. It keeps the
// bytes it keeps as they are: an invalid UTF-8 byte counts as one rune and
// stays in the result unchanged (use ValidRunes for text that must be valid
// UTF-8). n = 0 gives ""; a negative n leaves s whole. It does not allocate.
func Runes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// ValidRunes returns s made valid UTF-8, then cut to at most n runes like
// Runes: each run of invalid bytes becomes one U+FFFD, which counts as one
// rune. It does not remove control characters.
func ValidRunes(s string, n int) string {
	return Runes(strings.ToValidUTF8(s, "\uFFFD"), n)
}
