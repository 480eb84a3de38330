package main

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestClientRewriterIsDeterministicAndKeepsTheRest(t *testing.T) {
	lines := [][]byte{
		[]byte(`203.0.113.9 - - [17/May/2015:11:05:06 +0200] "GET / HTTP/1.1" 200 5 "-" "ua"`),
		[]byte(`2001:db8::1 - bob [17/May/2015:11:05:06 +0200] "GET /x HTTP/2.0" 404 0 "-" "ua"`),
		[]byte(`not-an-ip - - [17/May/2015:11:05:06 +0200] "GET / HTTP/1.1" 200 5 "-" "ua"`),
		[]byte(`garbage`),
	}
	a, b := newClientRewriter(clientSeed, 1000), newClientRewriter(clientSeed, 1000)
	for round := range 3 {
		for _, l := range lines {
			x, y := a.rewrite(nil, l), b.rewrite(nil, l)
			if !bytes.Equal(x, y) {
				t.Fatalf("round %d: same seed, different output:\n%s\n%s", round, x, y)
			}
			orig, ok := clientAddr(l)
			if !ok {
				if !bytes.Equal(x, l) {
					t.Errorf("line without an IP client changed: %q → %q", l, x)
				}
				continue
			}
			got, ok := clientAddr(x)
			if !ok || got.Is4() != orig.Is4() {
				t.Errorf("%q → %q: client %v, want an address of the same family", l, x, got)
			}
			if !bytes.Equal(x[bytes.IndexByte(x, ' '):], l[bytes.IndexByte(l, ' '):]) {
				t.Errorf("%q → %q: the rest of the line changed", l, x)
			}
			if !got.IsGlobalUnicast() || got.IsPrivate() {
				t.Errorf("%q → %v: not a public unicast address", l, got)
			}
		}
	}
	if c := newClientRewriter(clientSeed+1, 1000); bytes.Equal(c.rewrite(nil, lines[0]), newClientRewriter(clientSeed, 1000).rewrite(nil, lines[0])) {
		t.Error("another seed gives the same first client")
	}
}

func TestClientRewriterGivesManyDistinctClients(t *testing.T) {
	if testing.Short() {
		t.Skip("a million lines")
	}
	// The bench's default: 200,000 visitors over 1,000,000 lines, one
	// line in ten IPv6 as in the sample logs.
	rw := newClientRewriter(clientSeed, 200_000)
	v4 := []byte(`198.51.100.7 - - [17/May/2015:11:05:06 +0200] "GET / HTTP/1.1" 200 5 "-" "ua"`)
	v6 := []byte(`2001:db8::7 - - [17/May/2015:11:05:06 +0200] "GET / HTTP/1.1" 200 5 "-" "ua"`)
	seen := map[netip.Addr]struct{}{}
	var buf []byte
	for i := range 1_000_000 {
		l := v4
		if i%10 == 0 {
			l = v6
		}
		buf = rw.rewrite(buf[:0], l)
		a, _ := clientAddr(buf)
		seen[a] = struct{}{}
	}
	if len(seen) < 50_000 {
		t.Errorf("%d distinct clients, want at least 50,000", len(seen))
	}
	t.Logf("%d distinct clients", len(seen))
}
