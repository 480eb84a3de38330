package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store/audit"
)

// journalStore sends the audit rows of a fakeStore to a real audit journal,
// as `connlog serve` does, counting the journal writes: each is one fsync.
type journalStore struct {
	*fakeStore
	j      *audit.Journal
	writes atomic.Int64
}

func (s *journalStore) fake() *fakeStore { return s.fakeStore }

func (s *journalStore) Audit(ctx context.Context, e audit.Entry) error {
	s.writes.Add(1)
	return s.j.Audit(ctx, e)
}

func (s *journalStore) AuditMany(ctx context.Context, rows []audit.Entry) error {
	s.writes.Add(1)
	return s.j.AuditMany(ctx, rows)
}

type discardSink struct{}

func (discardSink) AuditBatch(context.Context, string, []audit.Entry) error { return nil }

// BenchmarkBadTokenFlood sends requests with unknown bearer tokens from 100
// sources through the API's handler, its audit rows going to a real audit
// journal (fsync on the machine's disk), never shipped, so the journal's
// bytes are the disk growth. The last window's rows are written at the
// end, as at shutdown, and counted. Reports requests per second held,
// journal fsyncs per second, and journal bytes per million requests.
//
//	go test ./api -run '^$' -bench BadTokenFlood -benchtime 1000000x -count 3
func BenchmarkBadTokenFlood(b *testing.B) {
	j, err := audit.OpenJournal(audit.JournalOptions{Dir: b.TempDir(), MaxBacklog: 1 << 40, Interval: time.Hour}, discardSink{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	st := &journalStore{fakeStore: &fakeStore{}, j: j}
	// The server is built here, not by newTestEnv, so that the same code
	// measures earlier versions (BENCHMARKS.md).
	_, hash, err := NewToken()
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: hash}}}, st,
		prometheus.NewRegistry(), http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	handler := srv.Handler()
	// Each goroutine cycles through one request per source.
	var next atomic.Int64
	requests := func() []*http.Request {
		rs := make([]*http.Request, 100)
		for i := range rs {
			r := httptest.NewRequest(http.MethodGet, okQuery, nil)
			r.RemoteAddr = "198.51.100." + strconv.Itoa(i) + ":40000"
			r.Header.Set("Authorization", "Bearer cl_guess-"+strconv.Itoa(int(next.Add(1))))
			r.Header.Set("X-Purpose", "INC-42")
			rs[i] = r
		}
		return rs
	}
	codes := [600]atomic.Int64{}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		rs := requests()
		for i := 0; pb.Next(); i++ {
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, rs[i%len(rs)])
			codes[w.Code].Add(1)
		}
	})
	flushRefusals(b, srv)
	elapsed := time.Since(start)
	b.StopTimer()
	if codes[200].Load() != 0 {
		b.Fatal("a bad token was served")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(st.writes.Load())/elapsed.Seconds(), "fsync/s")
	b.ReportMetric(float64(j.Backlog())/float64(b.N)*1e6, "disk-B/1M-req")
	b.ReportMetric(float64(codes[401].Load()), "answered-401")
}

// flushRefusals writes the counted rows of the open window (Serve does at
// shutdown).
func flushRefusals(b *testing.B, s *Server) {
	if err := s.FlushRefusals(b.Context()); err != nil {
		b.Fatal(err)
	}
}
