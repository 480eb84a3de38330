package main

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
)

// clientSeed seeds the many-visitor shape: the same seed gives the same
// input file on every run and every machine.
const clientSeed = 16

// v4Blocks are the first octets of the generated IPv4 clients: public /8s
// that French and European access networks number their subscribers from
// (no private, shared, documentation or multicast range).
var v4Blocks = [...]byte{2, 5, 31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 88, 90, 91, 92, 93, 94, 109, 176, 178, 185, 188, 193, 194, 195, 212, 213, 217}

// v6Blocks are the /32s of the generated IPv6 clients: subscriber
// allocations of large French access networks.
var v6Blocks = [...][4]byte{{0x2a, 0x01, 0xcb, 0x00}, {0x2a, 0x01, 0x0e, 0x0a}, {0x20, 0x01, 0x08, 0x61}, {0x2a, 0x02, 0x84, 0x28}, {0x2a, 0x04, 0xce, 0xc0}}

// clientRewriter gives each line a client drawn from a fixed population of
// visitors, so that the input has as many distinct clients as a busy site
// (the cycled sample logs have a few thousand). The draw sequence comes from
// a seeded PCG, and each visitor's addresses are a hash of its number: the
// output is a function of the seed, the population and the line order only.
type clientRewriter struct {
	rng      *rand.Rand
	seed     uint64
	visitors int
}

func newClientRewriter(seed uint64, visitors int) *clientRewriter {
	return &clientRewriter{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed: seed, visitors: visitors}
}

// rewrite appends line to dst with its client address (the first token, in
// nginx's combined format) replaced by a visitor's address of the same
// family: an IPv6 client stays IPv6. A line whose first token is not an IP
// address (junk, a host name) is appended unchanged and draws no visitor.
func (c *clientRewriter) rewrite(dst, line []byte) []byte {
	a, ok := clientAddr(line)
	if !ok {
		return append(dst, line...)
	}
	v := visitorAddr(c.seed, uint64(c.rng.IntN(c.visitors)), a.Is6() && !a.Is4In6())
	dst = v.AppendTo(dst)
	return append(dst, line[bytes.IndexByte(line, ' '):]...)
}

// clientAddr parses the first space-separated token of line as an IP
// address.
func clientAddr(line []byte) (netip.Addr, bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(string(line[:sp]))
	return a, err == nil
}

// visitorAddr is visitor k's address: an IPv4 host in one of v4Blocks, or
// an IPv6 address in one of v6Blocks with random interface bits.
func visitorAddr(seed, k uint64, v6 bool) netip.Addr {
	h := splitmix64(seed ^ splitmix64(k))
	if !v6 {
		return netip.AddrFrom4([4]byte{v4Blocks[h%uint64(len(v4Blocks))], byte(h >> 8), byte(h >> 16), 1 + byte((h>>24)%254)})
	}
	var b [16]byte
	p := v6Blocks[h%uint64(len(v6Blocks))]
	copy(b[:4], p[:])
	l := splitmix64(h)
	for i := range 4 {
		b[4+i] = byte(h >> (8 * (i + 1)))
	}
	for i := range 8 {
		b[8+i] = byte(l >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

// splitmix64 is a fast, well-mixed 64-bit hash (Steele, Lea and Flood).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
