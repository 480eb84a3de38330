package ingest_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/ingest"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/storetest"
)

const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	chromeUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	safariUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)

// recordingSink keeps a copy of the audience rows it was given.
type recordingSink struct{ rows []anonymize.Audience }

func (s *recordingSink) Write(_ context.Context, bs ...store.Batch) error {
	for _, b := range bs {
		s.rows = append(s.rows, b.Audience...)
	}
	return nil
}

func newAnonymizer(tb testing.TB, ks anonymize.KeyStore) *anonymize.Anonymizer {
	tb.Helper()
	a, err := anonymize.New(anonymize.DefaultConfig(), anonymize.NewKeys(ks), nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

func TestWithAudienceLeavesOutBotsProbesAndOptOut(t *testing.T) {
	tests := []struct {
		name   string
		ua     string
		path   string
		optOut bool
		kept   bool
	}{
		{"Firefox visitor", firefoxUA, "/", false, true},
		{"Safari on iPhone", safariUA, "/news?id=3", false, true},
		{"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "/", false, false},
		{"Googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.175 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "/", false, false},
		{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "/", false, false},
		{"AhrefsBot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "/", false, false},
		{"GPTBot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", "/", false, false},
		{"YandexBot", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "/", false, false},
		{"facebookexternalhit", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "/", false, false},
		{"UptimeRobot", "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "/", false, false},
		{"curl", "curl/8.5.0", "/", false, false},
		{"HeadlessChrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", "/", false, false},
		{"kube-probe", "kube-probe/1.30", "/", false, false},
		{"health check path", firefoxUA, "/healthz", false, false},
		{"no user agent", "", "/", false, false},
		{"Sec-GPC or DNT opt-out", firefoxUA, "/", true, false},
	}
	for _, tt := range tests {
		// Prepared ahead (as the Pipeline does for a round's batches) or
		// computed by Write (a rebuilt batch): the same rows.
		for _, prepare := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/prepared=%v", tt.name, prepare), func(t *testing.T) {
				rec := &recordingSink{}
				sink := ingest.WithAudience(rec, newAnonymizer(t, anonymize.NewMemoryKeyStore()))
				h := store.Hit{
					EventTime: time.Now(), ClientIP: netip.MustParseAddr("203.0.113.7"), Site: "www.example.org",
					Path: tt.path, Status: 200, UserAgent: tt.ua, OptOut: tt.optOut,
				}
				b := store.Batch{ID: "b", Hits: []store.Hit{h}}
				if prepare {
					sink.(ingest.Preparer).Prepare(&b)
				}
				if err := sink.Write(t.Context(), b); err != nil {
					t.Fatal(err)
				}
				if kept := len(rec.rows) == 1; kept != tt.kept {
					t.Fatalf("kept %v, want %v", kept, tt.kept)
				}
				if tt.kept {
					r := rec.rows[0]
					if r.Site != h.Site || r.Visitor == 0 || r.Network.String() != "203.0.0.0/16" || r.StatusClass != "2xx" {
						t.Errorf("row %+v", r)
					}
				}
			})
		}
	}
}

// audienceOnly writes only the audience rows of a batch, so the large
// reference test measures the statistics, not the access log.
type audienceOnly struct{ st *store.Store }

func (s audienceOnly) Write(ctx context.Context, bs ...store.Batch) error {
	only := make([]store.Batch, len(bs))
	for i, b := range bs {
		b.Hits = nil
		only[i] = b
	}
	return s.st.Write(ctx, only...)
}

// TestAudienceAggregatesMatchReference sends 1,000,000 synthetic hits of
// 50,000 distinct visitors through WithAudience and store.Write, then
// compares every cell with a reference computed from the same corpus:
// hits exactly, unique visitors within 2%.
func TestAudienceAggregatesMatchReference(t *testing.T) {
	const (
		nHits     = 1_000_000
		nVisitors = 50_000
		nPaths    = 40
		batch     = 200_000
	)
	st := storetest.New(t)
	sink := ingest.WithAudience(audienceOnly{st}, newAnonymizer(t, st.VisitorKeys()))

	uas := []struct{ ua, browser string }{{firefoxUA, "Firefox"}, {chromeUA, "Chrome"}, {safariUA, "Safari"}}
	paths := make([]string, nPaths)
	for i := range paths {
		paths[i] = fmt.Sprintf("/articles/%d", i)
	}
	statuses := []uint16{200, 200, 200, 304, 404, 500}
	day := time.Now().UTC().Truncate(24 * time.Hour)

	// reference: per dimension and key, hits and the set of visitors
	type cell struct {
		hits     uint64
		visitors map[int32]struct{}
	}
	ref := map[string]*cell{}
	count := func(dim, key string, v int32) {
		c := ref[dim+"\x00"+key]
		if c == nil {
			c = &cell{visitors: map[int32]struct{}{}}
			ref[dim+"\x00"+key] = c
		}
		c.hits++
		c.visitors[v] = struct{}{}
	}

	rnd := uint64(1)
	hits := make([]store.Hit, 0, batch)
	for i := range nHits {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		v := int32(rnd % nVisitors)
		if i < nVisitors {
			v = int32(i) // every visitor comes at least once
		}
		ua := uas[int(v)%len(uas)]
		path := paths[(rnd>>20)%nPaths]
		status := statuses[(rnd>>32)%uint64(len(statuses))]
		hits = append(hits, store.Hit{
			EventTime: day.Add(time.Duration((rnd>>40)%86400) * time.Second),
			ClientIP:  netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}),
			Site:      "www.example.org", Path: path, Status: status, UserAgent: ua.ua,
		})
		count("site", "*", v)
		count("path", path, v)
		count("status", fmt.Sprintf("%dxx", status/100), v)
		count("browser", ua.browser, v)
		if len(hits) == batch || i == nHits-1 {
			if err := sink.Write(t.Context(), store.Batch{ID: fmt.Sprintf("ref-%d", i), Hits: hits}); err != nil {
				t.Fatal(err)
			}
			hits = hits[:0]
		}
	}

	compared := 0
	for _, dim := range []string{"site", "path", "status", "browser"} {
		cells, err := st.AudienceStats(t.Context(), store.AudienceQuery{
			Site: "www.example.org", From: day, To: day.Add(24 * time.Hour), By: dim, Granularity: "day", Limit: 1000,
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]store.AudienceCell{}
		for _, c := range cells {
			got[c.Key] = c
		}
		for k, c := range ref {
			d, key, _ := cut(k)
			if d != dim {
				continue
			}
			g, ok := got[key]
			if !ok {
				t.Errorf("%s %s: missing", dim, key)
				continue
			}
			compared++
			if g.Hits != c.hits {
				t.Errorf("%s %s: %d hits, reference %d", dim, key, g.Hits, c.hits)
			}
			want := float64(len(c.visitors))
			if e := math.Abs(float64(g.Visitors)-want) / want; e > 0.02 {
				t.Errorf("%s %s: %d visitors, reference %.0f (error %.2f%%)", dim, key, g.Visitors, want, 100*e)
			}
			delete(got, key)
		}
		if len(got) != 0 {
			t.Errorf("%s: cells not in the reference: %v", dim, got)
		}
	}
	if tot := ref["site\x00*"]; tot == nil || tot.hits != nHits || len(tot.visitors) != nVisitors {
		t.Fatalf("reference corpus: %v", tot)
	}
	if compared < nPaths+4 {
		t.Fatalf("compared %d cells", compared)
	}

	// The hourly table adds up to the same totals.
	hourly, err := st.AudienceStats(t.Context(), store.AudienceQuery{
		Site: "www.example.org", From: day, To: day.Add(24 * time.Hour), By: "site", Granularity: "hour", Limit: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, c := range hourly {
		sum += c.Hits
	}
	if len(hourly) != 24 || sum != nHits {
		t.Errorf("hourly: %d buckets, %d hits; want 24, %d", len(hourly), sum, nHits)
	}
}

func cut(k string) (string, string, bool) {
	for i := range len(k) {
		if k[i] == 0 {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

// BenchmarkAudiencePath measures what statistics add per hit to ingest:
// anonymize (classification, geolocation-free truncation, visitor hash)
// and building the audience row, with warm caches. Compare its ns/op with
// the per-hit cost of the rest of the pipeline to predict the throughput
// with statistics on (make bench runs it).
//
//	go test -run '^$' -bench AudiencePath -count 10 ./ingest/ > new.txt && benchstat old.txt new.txt
func BenchmarkAudiencePath(b *testing.B) {
	a := newAnonymizer(b, anonymize.NewMemoryKeyStore())
	uas := []string{firefoxUA, chromeUA, safariUA}
	refs := []string{"", "https://www.google.com/", "https://news.example.net/a", "https://www.example.org/"}
	hits := make([]store.Hit, 1000)
	now := time.Now()
	for i := range hits {
		hits[i] = store.Hit{
			EventTime: now, ClientIP: netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), Site: "www.example.org",
			Path: fmt.Sprintf("/articles/%d?utm_source=x", i%50), Status: []uint16{200, 200, 304, 404}[i%4],
			Referer: refs[i%len(refs)], UserAgent: uas[i%len(uas)],
		}
	}
	rows := ingest.AppendAudience(nil, a, hits) // warm the caches
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rows = ingest.AppendAudience(rows[:0], a, hits)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(hits)), "ns/hit")
}
