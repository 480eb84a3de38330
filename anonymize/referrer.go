package anonymize

import (
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

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
// site is ReferrerInternal. The result never aliases ref.
func referrerDomain(ref, site string, domains *domainCache) string {
	if ref == "" || ref == "-" {
		return ReferrerDirect
	}
	host, ok := refHost(ref)
	if !ok {
		return ReferrerInvalid
	}
	// A host ending in a digit is an IPv4 address in some notation: no
	// top-level domain ends in a digit.
	if c := host[len(host)-1]; host[0] == '[' || (c >= '0' && c <= '9') {
		return ReferrerIP
	}
	if !hostChars(host) {
		return ReferrerInvalid
	}
	sh := siteHost(site)
	if strings.EqualFold(host, sh) {
		return ReferrerInternal
	}
	dom := domains.domain(host)
	if dom == domains.domain(sh) {
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

// domainCache caches the registrable domain of host names (sites and
// referrer hosts repeat a lot, and the public suffix lookup allocates). It
// is a bounded LRU, safe for concurrent use; a nil *domainCache caches
// nothing.
type domainCache struct {
	c *lru.Cache[string, string]
}

// domainCacheSize bounds the cache (entries of at most 253 bytes each).
const domainCacheSize = 8192

func newDomainCache() *domainCache {
	c, _ := lru.New[string, string](domainCacheSize) // only fails for size <= 0
	return &domainCache{c: c}
}

func (s *domainCache) domain(host string) string {
	if s == nil {
		return registrable(strings.ToLower(host))
	}
	if d, ok := s.c.Get(host); ok {
		return d
	}
	d := strings.Clone(registrable(strings.ToLower(host)))
	s.c.Add(strings.Clone(host), d) // clones: host may alias a Kafka message
	return d
}
