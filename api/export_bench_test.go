package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
)

// discardResponse is a ResponseWriter that counts the body and keeps
// nothing, so that an export benchmark measures the export, not a buffer.
type discardResponse struct {
	h      http.Header
	status int
	n      int64
}

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) WriteHeader(status int)      { d.status = status }
func (d *discardResponse) Write(b []byte) (int, error) { d.n += int64(len(b)); return len(b), nil }
func (d *discardResponse) Flush()                      {}

// BenchmarkExportCSV is the hot path of a streamed export, the engine's
// read included: GET /v1/access and /v1/connections with Accept: text/csv
// over exportRows rows on the embedded engine. rows/s is the figure of
// issue 16's "CSV export ≥ 300k rows/s" (bench/e2e measures it at a year's
// scale through a TCP listener). cpu-ns/row is the process's CPU per row,
// the engine's threads included: on a busy two-core host it tells a change
// apart where rows/s, bound by whichever side is starved, does not.
func BenchmarkExportCSV(b *testing.B) {
	const exportRows = 100_000
	env := newLiveEnv(b, func(c *Config) { c.Search.MaxExportRows = 2 * exportRows })
	base := env.base.Add(-24 * time.Hour)
	hits := make([]store.Hit, exportRows)
	for i := range hits {
		hits[i] = store.Hit{
			Source:    store.Source{Topic: "nginx", Partition: 1, Offset: int64(i)},
			EventTime: base.Add(time.Duration(i) * 100 * time.Millisecond), Ingested: base,
			ClientIP:   netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}),
			ClientPort: uint16(1024 + i%60000), PeerIP: netip.MustParseAddr("10.0.0.5"),
			ForwardedFor: fmt.Sprintf("198.51.%d.%d", byte(i>>8), byte(i)),
			ServerAddr:   netip.MustParseAddr("192.0.2.10"), ServerPort: 443, Site: liveSite,
			Method: "GET", Path: fmt.Sprintf("/articles/%d/comments", i%5000), Query: "page=2&sort=new",
			Protocol: "HTTP/2.0", Status: 200, BytesSent: uint64(512 + i%40000),
			Referer:     "https://www.example.org/articles/",
			UserAgent:   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			RequestTime: time.Duration(i%900) * time.Millisecond, RequestID: fmt.Sprintf("%032x", i),
			TLSProtocol: "TLSv1.3", Has: store.HasReferer | store.HasUserAgent,
		}
	}
	for i := 0; i < len(hits); i += 50_000 {
		if err := env.st.Write(b.Context(), store.Batch{Hits: hits[i:min(i+50_000, len(hits))]}); err != nil {
			b.Fatal(err)
		}
	}
	window := "&from=" + base.Add(-time.Hour).Format(time.RFC3339) + "&to=" + base.Add(24*time.Hour).Format(time.RFC3339)
	for _, tc := range []struct{ name, target, role string }{
		{"access", "/v1/access?ip=198.51.0.0/16", RoleAnalyst},
		{"connections", "/v1/connections?ip=198.51.0.0/16", RoleOfficer},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var rows, bytes int64
			var cpu time.Duration
			for b.Loop() {
				c0 := processCPU()
				req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, tc.target+window, nil)
				req.Header.Set("Authorization", "Bearer "+env.tokens[tc.role])
				req.Header.Set("X-Purpose", "INC-1234")
				req.Header.Set("Accept", "text/csv")
				w := &discardResponse{h: http.Header{}}
				env.srv.Handler().ServeHTTP(w, req)
				if w.status != http.StatusOK || w.h.Get(trailerRows) != fmt.Sprint(exportRows) {
					b.Fatalf("status %d, %s rows", w.status, w.h.Get(trailerRows))
				}
				cpu += processCPU() - c0
				rows += exportRows
				bytes += w.n
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(bytes)/float64(rows), "B/row")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(rows), "cpu-ns/row")
		})
	}
}

// processCPU is the CPU the process has used, every thread counted.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
