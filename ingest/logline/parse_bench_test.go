package logline

import (
	"path/filepath"
	"testing"

	"github.com/connlog/connlog/store"
)

// BenchmarkParseCombined parses real lines from testdata (nginx, Apache,
// attack traffic) round-robin; one op is one line.
//
// Compare two revisions with:
//
//	go test -run '^$' -bench BenchmarkParseCombined -count 10 ./ingest/logline > old.txt
//	# change the parser
//	go test -run '^$' -bench BenchmarkParseCombined -count 10 ./ingest/logline > new.txt
//	benchstat old.txt new.txt
func BenchmarkParseCombined(b *testing.B) {
	var lines [][]byte
	for _, f := range []string{"access.log", "hackers-access.log", "apache_logs.log"} {
		lines = append(lines, readLines(b, filepath.Join("testdata", f))...)
	}
	var total int
	for _, l := range lines {
		total += len(l)
	}
	b.SetBytes(int64(total / len(lines)))
	b.ReportAllocs()
	var h store.Hit
	n := 0
	for b.Loop() {
		if err := ParseCombined(lines[n%len(lines)], &h); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}
