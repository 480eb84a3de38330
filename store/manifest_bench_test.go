package store

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkManifests measures building the manifests of one 50,000-hit
// batch (both tables' row encodings, grouping and hashing), the signing
// side of every write; one op is one hit.
//
//	go test -run '^$' -bench Manifests -benchmem -cpu 1 ./store
func BenchmarkManifests(b *testing.B) {
	const n = 50_000
	base := goldenHit()
	hits := make([]Hit, n)
	for i := range hits {
		h := base
		h.Source.Offset = int64(i)
		h.EventTime = base.EventTime.Add(time.Duration(i) * time.Millisecond)
		h.Path = "/catalog/item/" + strconv.Itoa(i%977)
		if i%3 == 0 {
			h.Method = "GET"
		}
		hits[i] = h
	}
	batch := Batch{ID: "bench", Hits: hits}
	created := time.Now().UTC()
	b.ReportAllocs()
	for b.Loop() {
		if ms := manifestsFor(manifestVersion, batch.ID, batch, created); len(ms) != 2 {
			b.Fatalf("%d manifests", len(ms))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/hit")
}
