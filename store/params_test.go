package store

import (
	"net/netip"
	"testing"
)

func TestPrefixRange(t *testing.T) {
	for _, c := range []struct{ prefix, lo, hi string }{
		{"203.0.113.7/32", "::ffff:203.0.113.7", "::ffff:203.0.113.7"},
		{"203.0.113.9/24", "::ffff:203.0.113.0", "::ffff:203.0.113.255"},
		{"0.0.0.0/0", "::ffff:0.0.0.0", "::ffff:255.255.255.255"},
		{"2001:db8::7/128", "2001:db8::7", "2001:db8::7"},
		{"2001:db8:1::/48", "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff"},
	} {
		lo, hi := prefixRange(netip.MustParsePrefix(c.prefix))
		if lo.String() != c.lo || hi.String() != c.hi {
			t.Errorf("%s: got %s - %s, want %s - %s", c.prefix, lo, hi, c.lo, c.hi)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- comment;\nCREATE A;\n\nCREATE B\n  (x);\n")
	if len(got) != 2 || got[0] != "CREATE A" || got[1] != "CREATE B\n  (x)" {
		t.Errorf("got %q", got)
	}
}
