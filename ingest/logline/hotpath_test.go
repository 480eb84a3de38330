package logline

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestParseAddrMatchesNetip: the IPv4 fast path accepts and rejects what
// netip.ParseAddr does, with the same address.
func TestParseAddrMatchesNetip(t *testing.T) {
	check := func(s string) {
		t.Helper()
		a, ok := parseAddr([]byte(s))
		b, err := netip.ParseAddr(s)
		if ok != (err == nil) || a != b {
			t.Fatalf("parseAddr(%q) = %v, %v; netip: %v, %v", s, a, ok, b, err)
		}
	}
	for _, s := range []string{"", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "01.2.3.4",
		"1.02.3.4", "1.2.3.00", "1.2.3.0", "1..2.3", ".1.2.3", "1.2.3.4 ", "1.2.3.1000", "::1", "::ffff:1.2.3.4", "fe80::1%eth0",
		"2001:db8::1", "1.2.3.-4", "1%eth0", "%1", "::1%", "::1%x y", "1::g", "\"1.2.3.4", "fe80::1%25\"", "1.2.3.4a", "192.0.2.10", "999.1.1.1", "1.2.3.25x"} {
		check(s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789......::afAFgx%\" "
	for range 300000 {
		b := make([]byte, r.IntN(17))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(string(b))
	}
}

// TestKeyTableMatchesMap: the JSON key table finds every key of the map it
// was built from, and nothing else.
func TestKeyTableMatchesMap(t *testing.T) {
	jf, err := newJSONFormat(map[string]string{"http_user_agent": "ua"})
	if err != nil {
		t.Fatal(err)
	}
	for k, f := range jf.keys {
		if got := jf.table.get([]byte(k)); got != f {
			t.Errorf("get(%q) = %v, want %v", k, got, f)
		}
	}
	for _, k := range []string{"", "x", "http_user_agent", "remote_addr_", "Remote_addr", "messagee", "uA"} {
		if got, want := jf.table.get([]byte(k)), jf.keys[k]; got != want {
			t.Errorf("get(%q) = %v, want %v", k, got, want)
		}
	}
	var empty keyTable
	if empty.get([]byte("a")) != fIgnore {
		t.Error("empty table found a key")
	}
}
