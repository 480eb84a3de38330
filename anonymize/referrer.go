package anonymize

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Referrer domains that are not domains.
const (
	ReferrerDirect   = "(direct)"   // no referrer
	ReferrerInternal = "(internal)" // a page of the same site
	ReferrerIP       = "(ip)"       // an IP literal, never stored
	ReferrerInvalid  = "(invalid)"  // not a URL with a host name
)

// referrerDomain reduces a Referer header to the registrable domain of its
// host (eTLD+1 from the public suffix list): "https://www.example.co.uk/a?b"
// becomes "example.co.uk". A referrer on the same registrable domain as
// site is ReferrerInternal. The result aliases ref unless ref's host has
// upper-case letters.
func referrerDomain(ref, site string) string {
	if ref == "" || ref == "-" {
		return ReferrerDirect
	}
	host, ok := refHost(ref)
	if !ok {
		return ReferrerInvalid
	}
	if host[0] == '[' {
		return ReferrerIP
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ReferrerIP
	}
	if !hostChars(host) {
		return ReferrerInvalid
	}
	dom := registrable(strings.ToLower(host))
	if dom == registrable(strings.ToLower(siteHost(site))) {
		return ReferrerInternal
	}
	return dom
}

// refHost returns the host of an absolute URL ("scheme://host..." or
// "//host..."), without user info, port or trailing dot.
func refHost(ref string) (string, bool) {
	i := strings.Index(ref, "//")
	if i < 0 || (i > 0 && ref[i-1] != ':') {
		return "", false
	}
	rest := ref[i+2:]
	if j := strings.IndexAny(rest, "/?#\\"); j >= 0 {
		rest = rest[:j]
	}
	if j := strings.LastIndexByte(rest, '@'); j >= 0 {
		rest = rest[j+1:]
	}
	if strings.HasPrefix(rest, "[") {
		return "[", true // IPv6 literal
	}
	if j := strings.LastIndexByte(rest, ':'); j >= 0 {
		rest = rest[:j]
	}
	rest = strings.TrimSuffix(rest, ".")
	if rest == "" || len(rest) > 253 {
		return "", false
	}
	return rest, true
}

func siteHost(site string) string {
	if strings.HasPrefix(site, "[") {
		return site
	}
	if j := strings.LastIndexByte(site, ':'); j >= 0 {
		site = site[:j]
	}
	return strings.TrimSuffix(site, ".")
}

func hostChars(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// registrable returns the eTLD+1 of host, or host itself when it has none
// (localhost, a bare public suffix, an intranet name).
func registrable(host string) string {
	if host == "" {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return d
}
