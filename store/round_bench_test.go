package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
)

// BenchmarkRoundWrite measures the write of one round of four 25,000-hit
// batches (ingest's default) on the embedded engine with signed manifests:
// what a round's writer waits for, with the batches prepared ahead
// (Store.Prepare, as ingest's workers do) or not. write-ms is the Write
// call alone, prepare-ms the four Prepare calls; one op is one round.
//
//	CONNLOG_CHDB_LIBRARY=... go test -run '^$' -bench RoundWrite -count 4 ./store
func BenchmarkRoundWrite(b *testing.B) {
	for _, prepared := range []bool{false, true} {
		b.Run(fmt.Sprintf("prepared=%v", prepared), func(b *testing.B) {
			st, _ := openConfigured(b, nil)
			store.SetNativeInserts(st, true)
			at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
			const partitions, rows = 4, 25_000
			var write, prepare time.Duration
			round := 0
			for b.Loop() {
				b.StopTimer()
				bs := make([]store.Batch, partitions)
				for p := range bs {
					bs[p] = partitionBatch(int32(p), int64(round*(rows+1)), rows, at)
				}
				round++
				b.StartTimer()
				t0 := time.Now()
				if prepared {
					for p := range bs {
						st.Prepare(&bs[p])
					}
				}
				t1 := time.Now()
				if err := st.Write(b.Context(), bs...); err != nil {
					b.Fatal(err)
				}
				write += time.Since(t1)
				prepare += t1.Sub(t0)
			}
			b.ReportMetric(float64(write.Milliseconds())/float64(b.N), "write-ms")
			b.ReportMetric(float64(prepare.Milliseconds())/float64(b.N), "prepare-ms")
		})
	}
}
