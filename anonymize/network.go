package anonymize

import "net/netip"

// Network is a client address truncated to its network: IPv4 to /16 and
// IPv6 to /48 by default, or coarser. Only this package can construct a
// non-zero Network, and none of its methods returns the full address, so a
// statistics row that accepts a Network cannot receive a full address by
// accident. IPv4-mapped IPv6 addresses are truncated as IPv4.
//
// The zero Network means "no address" and renders as "".
type Network struct {
	p netip.Prefix // already masked; never a full-length prefix
}

// truncate masks addr to bits4 (IPv4) or bits6 (IPv6) leading bits.
func truncate(addr netip.Addr, bits4, bits6 int) Network {
	if !addr.IsValid() {
		return Network{}
	}
	addr = addr.Unmap().WithZone("")
	bits := bits6
	if addr.Is4() {
		bits = bits4
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return Network{}
	}
	return Network{p: p}
}

// IsValid reports whether n holds a network (false for a hit without
// client address).
func (n Network) IsValid() bool { return n.p.IsValid() }

// Prefix returns the truncated network, e.g. 203.0.0.0/16. Its Addr is the
// network address, not the client's. Store the String form, not
// Prefix().Addr(): a bare network address looks like a full address to
// readers and to the leak checks.
func (n Network) Prefix() netip.Prefix { return n.p }

// Bits returns the prefix length, or -1 for the zero Network.
func (n Network) Bits() int { return n.p.Bits() }

// String returns the network in CIDR notation, e.g. "203.0.0.0/16" or
// "2001:db8:1234::/48", or "" for the zero Network.
func (n Network) String() string {
	if !n.p.IsValid() {
		return ""
	}
	return n.p.String()
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (n Network) MarshalText() ([]byte, error) { return []byte(n.String()), nil }
