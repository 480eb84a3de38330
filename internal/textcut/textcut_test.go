package textcut

import (
	"testing"
	"unicode/utf8"
)

func TestRunes(t *testing.T) {
	for _, c := range []struct {
		name, s string
		n       int
		want    string
	}{
		{"empty", "", 5, ""},
		{"empty, n=0", "", 0, ""},
		{"ASCII shorter than n", "abc", 5, "abc"},
		{"ASCII exactly n", "abcde", 5, "abcde"},
		{"ASCII longer than n", "abcdef", 3, "abc"},
		{"n=0", "abc", 0, ""},
		{"negative n leaves s whole", "abc", -1, "abc"},
		{"two-byte runes cut at the boundary", "éèêë", 2, "éè"},
		{"three-byte rune after ASCII", "a€b", 2, "a€"},
		{"four-byte runes cut at the boundary", "😀😁😂", 1, "😀"},
		{"multibyte exactly n", "日本語", 3, "日本語"},
		{"invalid byte counts as one rune, kept", "a\xffbc", 2, "a\xff"},
		{"invalid bytes kept when not cut", "\xff\xfe", 5, "\xff\xfe"},
		{"truncated rune counts byte by byte", "\xe2\x82z", 1, "\xe2"},
	} {
		if got := Runes(c.s, c.n); got != c.want {
			t.Errorf("%s: Runes(%q, %d) = %q, want %q", c.name, c.s, c.n, got, c.want)
		}
	}
}

func TestValidRunes(t *testing.T) {
	for _, c := range []struct {
		name, s string
		n       int
		want    string
	}{
		{"empty", "", 5, ""},
		{"ASCII shorter than n", "abc", 5, "abc"},
		{"ASCII longer than n", "abcdef", 3, "abc"},
		{"n=0", "abc", 0, ""},
		{"multibyte runes cut at the boundary", "a€😀b", 3, "a€😀"},
		{"invalid byte replaced", "a\xffb", 5, "a\uFFFDb"},
		{"a run of invalid bytes is one replacement", "a\xff\xfe\xfdb", 3, "a\uFFFDb"},
		{"replacement counts as one rune when cutting", "\xff\xfeabc", 2, "\uFFFDa"},
		{"cut right after the replacement", "ab\xffcd", 3, "ab\uFFFD"},
		{"control characters kept", "a\nb", 5, "a\nb"},
	} {
		got := ValidRunes(c.s, c.n)
		if got != c.want {
			t.Errorf("%s: ValidRunes(%q, %d) = %q, want %q", c.name, c.s, c.n, got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: ValidRunes(%q, %d) = %q is not valid UTF-8", c.name, c.s, c.n, got)
		}
	}
}

// The cut keeps the byte-index loop: no []rune of the input.
func TestRunesDoesNotAllocate(t *testing.T) {
	s := "日本語のテキスト"
	if a := testing.AllocsPerRun(100, func() { _ = Runes(s, 3) }); a != 0 {
		t.Errorf("Runes allocates %v times per call, want 0", a)
	}
}
