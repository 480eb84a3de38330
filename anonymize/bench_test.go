package anonymize

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAudience measures the statistics path per hit with warm caches:
// realistic browser user agents, referrers and paths, a City database and
// the day's key in memory.
//
//	go test -run '^$' -bench Audience -count 10 ./anonymize/ > new.txt && benchstat old.txt new.txt
func BenchmarkAudience(b *testing.B) {
	cfg := DefaultConfig()
	cfg.GeoDatabase = writeGeoDB(b)
	a, _, _ := newTestAnonymizer(b, cfg)
	refs := []string{"", "https://www.google.com/", "https://www.example.org/news", "https://t.co/abc", "https://news.bbc.co.uk/x"}
	addrs := []string{"203.0.113.7", "198.51.100.20", "2001:db8:1::42", "192.0.2.9", "10.0.0.1"}
	hits := make([]Request, 0, 1000)
	for i := range cap(hits) {
		bu := browserUAs[i%len(browserUAs)]
		hits = append(hits, Request{
			EventTime: testNow.Add(time.Duration(i) * time.Second),
			ClientIP:  netip.MustParseAddr(addrs[i%len(addrs)]),
			Site:      "www.example.org",
			Path:      fmt.Sprintf("/articles/%d?utm_source=x", i%50),
			Status:    []uint16{200, 200, 200, 304, 404}[i%5],
			Referer:   refs[i%len(refs)],
			UserAgent: bu.ua,
		})
	}
	var out Audience
	for i := range hits { // warm the caches
		a.Audience(&hits[i], Signals{}, &out)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a.Audience(&hits[i%len(hits)], Signals{}, &out)
		i++
	}
}

// BenchmarkAudienceParallel is BenchmarkAudience from all CPUs, to show
// contention on the caches.
func BenchmarkAudienceParallel(b *testing.B) {
	a, _, _ := newTestAnonymizer(b, DefaultConfig())
	h := hitAt(testNow, "203.0.113.7", "www.example.org", chromeUA)
	h.Referer = "https://www.google.com/"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var out Audience
		for pb.Next() {
			a.Audience(h, Signals{}, &out)
		}
	})
}

// TestAudienceDoesNotAllocate guards the hot path: with warm caches a hit
// costs no allocation.
func TestAudienceDoesNotAllocate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GeoDatabase, cfg.GeoLevel = writeGeoDB(t), GeoCity
	a, _, _ := newTestAnonymizer(t, cfg)
	h := hitAt(testNow, "203.0.113.7", "www.example.org", browserUAs[3].ua)
	h.Referer = "https://news.bbc.co.uk/story?id=1"
	var out Audience
	a.Audience(h, Signals{}, &out)
	if n := testing.AllocsPerRun(100, func() { a.Audience(h, Signals{}, &out) }); n != 0 {
		t.Fatalf("Audience allocates %v times per hit", n)
	}
}
