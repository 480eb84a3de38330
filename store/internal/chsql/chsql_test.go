package chsql

import (
	"net/netip"
	"testing"
)

func TestArrayParamEscapesQuotes(t *testing.T) {
	got := Array([]string{"a", `it's`, `back\slash`, "new\nline"})
	want := `['a','it\'s','back\\slash','new\nline']`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestPrefixRange(t *testing.T) {
	for _, c := range []struct{ prefix, lo, hi string }{
		{"203.0.113.7/32", "::ffff:203.0.113.7", "::ffff:203.0.113.7"},
		{"203.0.113.9/24", "::ffff:203.0.113.0", "::ffff:203.0.113.255"},
		{"0.0.0.0/0", "::ffff:0.0.0.0", "::ffff:255.255.255.255"},
		{"2001:db8::7/128", "2001:db8::7", "2001:db8::7"},
		{"2001:db8:1::/48", "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff"},
	} {
		lo, hi := PrefixRange(netip.MustParsePrefix(c.prefix))
		if lo.String() != c.lo || hi.String() != c.hi {
			t.Errorf("%s: got %s - %s, want %s - %s", c.prefix, lo, hi, c.lo, c.hi)
		}
	}
}
