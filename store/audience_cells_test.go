package store

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/connlog/connlog/anonymize"
)

// benchAudienceRows is one default batch (50,000 hits) of three sites over
// two hours: 5,000 paths, 20,000 visitors, each with one country, browser,
// OS and device.
func benchAudienceRows() []anonymize.Audience {
	hour := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	rows := make([]anonymize.Audience, 50_000)
	for i := range rows {
		v := uint64(i*7919%20_000) + 1
		rows[i] = anonymize.Audience{
			Site:           []string{"www.example.org", "shop.example.org", "api.example.org"}[i%3],
			Time:           hour.Add(time.Duration(i/25_000) * time.Hour),
			Path:           fmt.Sprintf("/articles/%d", i*31%5_000),
			Country:        []string{"FR", "DE", "US", "GB", ""}[v%5],
			Browser:        []string{"Chrome", "Firefox", "Safari", "Edge"}[v%4],
			OS:             []string{"Windows", "macOS", "Linux", "Android", "iOS"}[v%5],
			Device:         []string{"desktop", "mobile", "tablet"}[v%3],
			ReferrerDomain: []string{"(direct)", "(internal)", "google.com", "t.co"}[i%4],
			StatusClass:    []string{"2xx", "2xx", "3xx", "4xx"}[i%4],
			Visitor:        v * 0x9E3779B97F4A7C15,
		}
	}
	return rows
}

// BenchmarkAudienceCells is the grouping of one batch before its insert,
// reported per hit, with a grouper reused as insertAudience reuses them.
func BenchmarkAudienceCells(b *testing.B) {
	rows := benchAudienceRows()
	g := newCellGrouper().(*cellGrouper)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		g.group(rows)
		if len(g.key) == 0 {
			b.Fatal("no cells")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/hit")
}

// A grouper reused from the pool must give what a new one gives: nothing of
// an earlier batch (cells, visitors, map entries) may leak into the next.
func TestCellGrouperReuseLeaksNothing(t *testing.T) {
	type snapshot struct {
		site, dim, key []string
		hour           []time.Time
		hits           []uint64
		visitors       [][]uint64
	}
	take := func(g *cellGrouper) snapshot {
		s := snapshot{slices.Clone(g.site), slices.Clone(g.dim), slices.Clone(g.key), slices.Clone(g.hour), slices.Clone(g.hits), nil}
		for _, v := range g.visitors {
			s.visitors = append(s.visitors, slices.Clone(v))
		}
		return s
	}
	all := benchAudienceRows()
	first, second := all[:30_000], all[20_000:]
	fresh := &cellGrouper{buckets: map[cellBucket]*[audienceDims]map[string]int32{}, ids: map[uint64]int32{}}
	fresh.group(second)
	want := take(fresh)
	if len(want.key) == 0 {
		t.Fatal("no cells")
	}
	reused := &cellGrouper{buckets: map[cellBucket]*[audienceDims]map[string]int32{}, ids: map[uint64]int32{}}
	reused.group(first)
	reused.reset()
	reused.group(second)
	if got := take(reused); !reflect.DeepEqual(got, want) {
		t.Errorf("reused grouper: %d cells, new grouper: %d cells; contents differ", len(got.key), len(want.key))
	}
	// Spot check against a direct count: the site totals of one bucket.
	var hits uint64
	visitors := map[uint64]bool{}
	for _, r := range second {
		if r.Site == "shop.example.org" && r.Time.Equal(second[0].Time) {
			hits++
			visitors[r.Visitor] = true
		}
	}
	for c := range want.key {
		if want.site[c] == "shop.example.org" && want.hour[c].Equal(second[0].Time) && want.dim[c] == "site" {
			if want.hits[c] != hits || len(want.visitors[c]) != len(visitors) {
				t.Errorf("site totals: %d hits %d visitors, want %d and %d", want.hits[c], len(want.visitors[c]), hits, len(visitors))
			}
			return
		}
	}
	t.Error("no site totals cell for shop.example.org")
}

// cellGrouper.group fills the dimensions by index, in the order of
// AudienceDimensions.
func TestGrouperDimensionsFollowAudienceDimensions(t *testing.T) {
	if len(AudienceDimensions) != audienceDims {
		t.Fatalf("%d dimensions, the grouper knows %d", len(AudienceDimensions), audienceDims)
	}
	g := &cellGrouper{buckets: map[cellBucket]*[audienceDims]map[string]int32{}, ids: map[uint64]int32{}}
	g.group([]anonymize.Audience{{
		Site: "s", Time: time.Unix(0, 0).UTC(), Path: "/p", Country: "FR", Region: "IDF", City: "Paris",
		Browser: "Firefox", OS: "Linux", Device: "desktop", ReferrerDomain: "(direct)", StatusClass: "2xx", Visitor: 7,
	}})
	want := map[string]string{"site": "*", "path": "/p", "country": "FR", "region": "FR-IDF", "city": "FR-IDF/Paris",
		"browser": "Firefox", "os": "Linux", "device": "desktop", "referrer": "(direct)", "status": "2xx"}
	if len(g.key) != len(want) {
		t.Fatalf("%d cells, want %d", len(g.key), len(want))
	}
	for c := range g.key {
		if want[g.dim[c]] != g.key[c] {
			t.Errorf("dimension %s has key %q, want %q", g.dim[c], g.key[c], want[g.dim[c]])
		}
	}
}
