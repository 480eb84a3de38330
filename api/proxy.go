package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// proxies are the configured trusted proxies ([Config.TrustedProxies]).
type proxies []netip.Prefix

// parseProxies reads CIDRs or single addresses.
func parseProxies(list []string) (proxies, []error) {
	var out proxies
	var errs []error
	for i, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		errs = append(errs, fmt.Errorf("api trusted_proxies[%d] %q: not a CIDR or an address", i, s))
	}
	return out, errs
}

// unmappedBits is p's prefix length once an IPv4-mapped address is unmapped.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(0, p.Bits()-96)
	}
	return p.Bits()
}

func (t proxies) trusted(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// client finds the client of r. The TCP peer is the client unless it is a
// trusted proxy; then the X-Forwarded-For chain (every such header, in
// order) is walked right to left, skipping trusted proxies, and the first
// address that is not one is the client. An entry that is not an address
// stops the walk: nothing left of it can be believed, so the last address
// reached (a trusted proxy) is taken. Each proxy appends the address it
// received from; a client can write anything to the left of that, which is
// why the walk never goes past the first untrusted address.
//
// It returns the client's address (invalid if r.RemoteAddr is not an
// address, e.g. in a test) and the audit source: r.RemoteAddr (with its
// port) when the peer is the client, the client's address otherwise.
func (t proxies) client(r *http.Request) (netip.Addr, string) {
	peer := peerAddr(r.RemoteAddr)
	if len(t) == 0 || !peer.IsValid() || !t.trusted(peer) {
		return peer, r.RemoteAddr
	}
	chain := strings.Join(r.Header.Values("X-Forwarded-For"), ",")
	client := peer
	for chain != "" {
		var entry string
		if i := strings.LastIndexByte(chain, ','); i >= 0 {
			entry, chain = chain[i+1:], chain[:i]
		} else {
			entry, chain = chain, ""
		}
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		a, ok := forwardedAddr(entry)
		if !ok {
			break
		}
		client = a
		if !t.trusted(a) {
			break
		}
	}
	if client == peer {
		return peer, r.RemoteAddr
	}
	return client, client.String()
}

// peerAddr reads the address of a RemoteAddr ("192.0.2.1:1234").
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// forwardedAddr reads one X-Forwarded-For entry: an address, possibly with
// a port ("192.0.2.1:5678", "[2001:db8::1]:443") or in brackets.
func forwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	} else {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
