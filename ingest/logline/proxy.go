package logline

import (
	"bytes"
	"net/netip"

	"github.com/connlog/connlog/store"
)

// trustedProxies is the configured list of proxies whose forwarding
// headers are believed.
type trustedProxies []netip.Prefix

func (t trustedProxies) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// resolveClient sets h.ClientIP and h.ClientPort. The TCP peer (h.PeerIP)
// is the client unless it is a trusted proxy; then the client is, in order:
// the PROXY-protocol address ($proxy_protocol_addr, with
// $proxy_protocol_port), and beyond it, if that too is trusted, the
// X-Forwarded-For chain walked right to left to the first untrusted
// address (X-Real-IP when there is no X-Forwarded-For). An entry that is not
// an address stops the walk: nothing left of it can be believed. When every
// address is trusted, the leftmost one is the client. The client port is
// known only for the peer and PROXY protocol; an address taken from a
// header has none.
func (t trustedProxies) resolveClient(h *store.Hit, st *lineState) {
	h.ClientIP, h.ClientPort = h.PeerIP, st.remotePort
	if len(t) == 0 || !t.contains(h.PeerIP) {
		return
	}
	if st.proxyAddr.IsValid() {
		h.ClientIP, h.ClientPort = st.proxyAddr, st.proxyPort
		if !t.contains(st.proxyAddr) {
			return
		}
	}
	xff := []byte(h.ForwardedFor)
	if len(bytes.TrimSpace(xff)) == 0 {
		if st.realIP.IsValid() {
			h.ClientIP, h.ClientPort = st.realIP, 0
		}
		return
	}
	for len(xff) > 0 {
		var entry []byte
		if c := bytes.LastIndexByte(xff, ','); c >= 0 {
			entry, xff = xff[c+1:], xff[:c]
		} else {
			entry, xff = xff, nil
		}
		entry = bytes.TrimSpace(entry)
		if len(entry) == 0 {
			continue
		}
		a, ok := parseForwardedAddr(entry)
		if !ok {
			return
		}
		h.ClientIP, h.ClientPort = a, 0
		if !t.contains(a) {
			return
		}
	}
}

// parseForwardedAddr reads one X-Forwarded-For entry: an address, possibly
// with a port ("1.2.3.4:5678", "[2001:db8::1]:443") or in brackets.
func parseForwardedAddr(b []byte) (netip.Addr, bool) {
	if a, ok := parseAddr(b); ok {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(str(b)); err == nil {
		return ap.Addr().Unmap(), true
	}
	if len(b) > 2 && b[0] == '[' && b[len(b)-1] == ']' {
		if a, err := netip.ParseAddr(str(b[1 : len(b)-1])); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
