package store_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/connlog/connlog/anonymize"
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

// BenchmarkAudienceRoundWrite measures the statistics of one round of four
// 25,000-hit batches of 200,000 visitors on the embedded engine, written
// as a round does (one insert for the four, with their marker cells) or
// batch by batch (as a round did before, and as lone batches still are).
// cpu-us/hit is the process's CPU (connlog and the engine's threads,
// background merges included as they happen) per hit; one op is one round.
//
//	CONNLOG_CHDB_LIBRARY=... go test -run '^$' -bench AudienceRoundWrite -benchtime 10x -count 3 ./store
func BenchmarkAudienceRoundWrite(b *testing.B) {
	for _, round := range []bool{false, true} {
		b.Run(fmt.Sprintf("round=%v", round), func(b *testing.B) {
			st := openStore(b)
			rng := rand.New(rand.NewPCG(1, 2))
			hour := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
			const partitions, rows = 4, 25_000
			var cpu time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				bs := make([]store.Batch, partitions)
				for p := range bs {
					bs[p] = store.Batch{ID: fmt.Sprintf("logs/%d/%d-%d", p, n*rows, (n+1)*rows-1), Audience: visitorRows(rng, rows, hour)}
				}
				n++
				c0 := processCPU()
				b.StartTimer()
				if round {
					if err := st.Write(b.Context(), bs...); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, bt := range bs {
						if err := st.Write(b.Context(), bt); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				cpu += processCPU() - c0
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*partitions*rows), "cpu-us/hit")
		})
	}
}

// visitorRows is n audience rows of one site and hour: 3,000 paths and
// visitors drawn from 200,000, each with one country, browser, OS and
// device.
func visitorRows(rng *rand.Rand, n int, hour time.Time) []anonymize.Audience {
	rows := make([]anonymize.Audience, n)
	for i := range rows {
		v := uint64(rng.IntN(200_000)) + 1
		rows[i] = anonymize.Audience{
			Site: "www.example.org", Time: hour, Path: "/articles/" + strconv.Itoa(rng.IntN(3000)),
			Country: []string{"FR", "DE", "US", "GB", ""}[v%5], Browser: []string{"Chrome", "Firefox", "Safari", "Edge"}[v%4],
			OS: []string{"Windows", "macOS", "Linux", "Android", "iOS"}[v%5], Device: []string{"desktop", "mobile", "tablet"}[v%3],
			ReferrerDomain: []string{"(direct)", "(internal)", "google.com", "t.co"}[i%4], StatusClass: []string{"2xx", "2xx", "3xx", "4xx"}[i%4],
			Visitor: v * 0x9E3779B97F4A7C15,
		}
	}
	return rows
}

// processCPU is the CPU time the process has used, every thread included.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
