package embedded_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkBatchInsert measures access-log-like batch inserts through
// clickhouse-go over HTTP into the embedded engine, 10,000 rows per batch.
//
//	CONNLOG_CHDB_LIBRARY=... go test -run '^$' -bench BatchInsert -count 6 ./store/embedded | tee new.txt
//	benchstat old.txt new.txt
func BenchmarkBatchInsert(b *testing.B) {
	conn, _ := connect(b)
	mustExec(b, conn, `CREATE TABLE access (
		time DateTime64(3, 'UTC'), client_ip IPv6, client_port UInt16, server_ip IPv6, server_port UInt16,
		host LowCardinality(String), method LowCardinality(String), path String, query String,
		status UInt16, bytes_sent UInt64, request_time Float64, referer String,
		user_agent String, upstream Nullable(String)
	) ENGINE = MergeTree ORDER BY (time, client_ip)`)

	const rowsPerBatch = 10_000
	base := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	type row struct {
		time                 time.Time
		clientIP, serverIP   []byte
		path, query, referer string
		upstream             *string
	}
	rows := make([]row, rowsPerBatch)
	up := "10.1.2.3:8080"
	for i := range rows {
		ip := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		rows[i] = row{
			time:     base.Add(time.Duration(i) * time.Millisecond),
			clientIP: netip.AddrFrom16(ip.As16()).AsSlice(),
			serverIP: netip.MustParseAddr("2001:db8::443").AsSlice(),
			path:     fmt.Sprintf("/catalog/item/%d/details", i%977),
			query:    fmt.Sprintf("ref=search&page=%d", i%13),
			referer:  "https://www.example.org/search?q=library+opening+hours",
		}
		if i%3 == 0 {
			rows[i].upstream = &up
		}
	}
	ua := "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"

	b.ReportAllocs()
	start := time.Now()
	batches := 0
	for b.Loop() {
		batch, err := conn.PrepareBatch(b.Context(), "INSERT INTO access")
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range rows {
			if err := batch.Append(r.time, r.clientIP, uint16(40000+i%20000), r.serverIP, uint16(443),
				"catalog.example.org", "GET", r.path, r.query, uint16(200), uint64(1200+i%5000), 0.012,
				r.referer, ua, r.upstream); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
		batches++
	}
	b.ReportMetric(float64(batches*rowsPerBatch)/time.Since(start).Seconds(), "rows/s")
}
