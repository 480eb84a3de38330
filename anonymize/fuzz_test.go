package anonymize

import (
	"net/netip"
	"testing"
)

// FuzzAudience checks that no user agent, referrer or path makes Audience
// panic, that a kept hit's strings are bounded, and that no referrer
// domain is an IP address.
//
//	go test -run '^$' -fuzz FuzzAudience -fuzztime 30s ./anonymize/
func FuzzAudience(f *testing.F) {
	for _, ua := range crawlerUAs {
		f.Add(ua, "https://www.google.com/", "/")
	}
	for _, b := range browserUAs {
		f.Add(b.ua, "http://203.0.113.7/x", "/a?b#c")
	}
	f.Add(chromeUA, "android-app://com.x/", "")
	f.Add("Mozilla/5.0 (cubot)", "//[::1", "?")
	f.Add("Mozilla/", "http://@:/", "/healthz")
	a, _, _ := newTestAnonymizer(f, DefaultConfig())
	f.Fuzz(func(t *testing.T, ua, ref, path string) {
		h := hitAt(testNow, "2001:db8::1", "www.example.org", ua)
		h.Referer, h.Path = ref, path
		var out Audience
		if !a.Audience(h, Signals{}, &out) {
			return
		}
		if _, err := netip.ParseAddr(out.ReferrerDomain); err == nil {
			t.Fatalf("referrer domain %q is an address", out.ReferrerDomain)
		}
		if len(out.ReferrerDomain) > 253 {
			t.Fatalf("referrer domain of %d bytes", len(out.ReferrerDomain))
		}
		_ = referrerDomain(ref, ua, nil) // site taken from arbitrary text too
		_ = h
	})
}
