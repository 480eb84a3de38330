package store

import (
	"net/netip"

	"github.com/connlog/connlog/store/internal/chsql"
)

// ErrBadFilter reports a search that cannot be run as asked; the message
// says why. Searches of every package of store (audit too) wrap it.
var ErrBadFilter = chsql.ErrBadFilter

// prefixRange returns the first and last IPv6 address of p, IPv4 prefixes
// mapped into ::ffff:0:0/96 as they are stored.
func prefixRange(p netip.Prefix) (lo, hi netip.Addr) {
	p = p.Masked()
	bits := p.Bits()
	a := p.Addr()
	if a.Is4() {
		a = netip.AddrFrom16(a.As16())
		bits += 96
	}
	b := a.As16()
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	return a, netip.AddrFrom16(b)
}

// fromStored turns a stored IPv6 value back into the address ingest saw:
// IPv4-mapped addresses become IPv4 again and :: means "absent".
func fromStored(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}
