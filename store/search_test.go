package store_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/legal"
)

// testBase is a recent hour: rows older than their lifetime would be
// dropped by TTL as soon as they are written.
func testBase() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour) }

// seedSearch writes 3 addresses × 10 requests, a minute apart, with varied
// methods, statuses, paths and user agents.
func seedSearch(t *testing.T, st *store.Store, base time.Time) []store.Hit {
	t.Helper()
	var hits []store.Hit
	for i, ip := range []string{"203.0.113.7", "203.0.113.9", "198.51.100.4"} {
		for j := range 10 {
			h := hit(ip, uint16(40000+j), base.Add(time.Duration(j)*time.Minute), "GET", fmt.Sprintf("/p%d/x", j%3), int64(i*100+j))
			if j%4 == 0 {
				h.Method, h.Status = "POST", 404
			}
			if j%5 == 0 {
				h.UserAgent = "curl/8.5"
			}
			if j == 9 {
				h.Site = "other.example"
			}
			hits = append(hits, h)
		}
	}
	if err := st.Write(t.Context(), store.Batch{Hits: hits}); err != nil {
		t.Fatal(err)
	}
	return hits
}

func TestSearchAccessFilters(t *testing.T) {
	st := openStore(t)
	base := testBase()
	seedSearch(t, st, base)
	one := netip.MustParsePrefix("203.0.113.7/32")
	q := func(mod func(*store.AccessQuery)) store.AccessQuery {
		q := store.AccessQuery{Network: one, From: base, To: base.Add(time.Hour), Limit: 100}
		mod(&q)
		return q
	}
	tests := []struct {
		name string
		q    store.AccessQuery
		want int
	}{
		{"one address", q(func(*store.AccessQuery) {}), 10},
		{"a /24", q(func(q *store.AccessQuery) { q.Network = netip.MustParsePrefix("203.0.113.0/24") }), 20},
		{"port", q(func(q *store.AccessQuery) { q.Port = 40003 }), 1},
		{"path prefix", q(func(q *store.AccessQuery) { q.PathPrefix = "/p1" }), 3},
		{"method", q(func(q *store.AccessQuery) { q.Method = "POST" }), 3},
		{"exact status", q(func(q *store.AccessQuery) { q.StatusMin, q.StatusMax = 404, 404 }), 3},
		{"status class", q(func(q *store.AccessQuery) { q.StatusMin, q.StatusMax = 200, 299 }), 7},
		{"user agent substring ignores case", q(func(q *store.AccessQuery) { q.UserAgent = "CURL" }), 2},
		{"user", q(func(q *store.AccessQuery) { q.User = "alice" }), 10},
		{"other user", q(func(q *store.AccessQuery) { q.User = "bob" }), 0},
		{"site", q(func(q *store.AccessQuery) { q.Site = "other.example" }), 1},
		{"sites", q(func(q *store.AccessQuery) { q.Sites = []string{"www.example.org"} }), 9},
		{"window", q(func(q *store.AccessQuery) { q.To = base.Add(5 * time.Minute) }), 5},
		{"limit", q(func(q *store.AccessQuery) { q.Limit = 4 }), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.SearchAccess(t.Context(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Errorf("%d rows, want %d", len(got), tt.want)
			}
		})
	}
}

func TestSearchPagesCoverEveryRowOnceInKeyOrder(t *testing.T) {
	st := openStore(t)
	base := testBase()
	seedSearch(t, st, base)
	q := store.AccessQuery{Network: netip.MustParsePrefix("192.0.0.0/2"), From: base, To: base.Add(time.Hour), Limit: 7}
	var all []store.Hit
	for range 10 {
		page, err := st.SearchAccess(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < q.Limit {
			break
		}
		c := store.CursorOf(&page[len(page)-1])
		q.After = &c
	}
	if len(all) != 30 {
		t.Fatalf("%d rows over the pages, want 30", len(all))
	}
	sorted := slices.IsSortedFunc(all, func(a, b store.Hit) int {
		if c := a.ClientIP.Compare(b.ClientIP); c != 0 {
			return c
		}
		return a.EventTime.Compare(b.EventTime)
	})
	if !sorted || all[0].ClientIP != netip.MustParseAddr("198.51.100.4") {
		t.Errorf("rows not in (client_ip, event_time) order")
	}

	var conns []store.ConnectionRecord
	cq := store.ConnectionQuery{Network: q.Network, From: base, To: base.Add(time.Hour), Limit: 7, Operation: store.OpCreate}
	for range 10 {
		page, err := st.SearchConnections(t.Context(), cq)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, page...)
		if len(page) < cq.Limit {
			break
		}
		c := page[len(page)-1].Cursor()
		cq.After = &c
	}
	if len(conns) != 9 {
		t.Errorf("%d POST connection records, want 9", len(conns))
	}
	for _, r := range conns {
		if r.Operation != store.OpCreate || r.Path == "" {
			t.Errorf("record %+v: want a create with its path", r)
		}
	}
}

func TestSummarizeIP(t *testing.T) {
	st := openStore(t)
	base := testBase()
	seedSearch(t, st, base)
	sum, err := st.SummarizeIP(t.Context(), store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.7/32"), From: base, To: base.Add(time.Hour), Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 10 || !sum.FirstSeen.Equal(base) || !sum.LastSeen.Equal(base.Add(9*time.Minute)) || sum.ClientPorts != 10 || sum.Paths != 3 {
		t.Errorf("summary %+v", sum)
	}
	if len(sum.Statuses) != 2 || sum.Statuses[0] != (store.ValueCount{Value: "200", Count: 7}) {
		t.Errorf("statuses %+v", sum.Statuses)
	}
	if len(sum.Sites) != 2 || len(sum.Methods) != 2 || len(sum.UserAgents) != 2 || len(sum.ServerPorts) != 1 {
		t.Errorf("summary lists %+v", sum)
	}
	none, err := st.SummarizeIP(t.Context(), store.AccessQuery{Network: netip.MustParsePrefix("192.0.2.99/32"), From: base, To: base.Add(time.Hour), Limit: 5})
	if err != nil || none.Requests != 0 {
		t.Errorf("unseen address: %+v, %v", none, err)
	}
}

func TestHeldRecordsAnswerOnceAfterTheOriginalExpires(t *testing.T) {
	st := openStore(t)
	base := testBase()
	seedSearch(t, st, base)
	db := st.Databases().Connections
	var n uint64
	if err := st.Conn().QueryRow(t.Context(), "SELECT count() FROM system.tables WHERE database = '"+db+"' AND name = 'held_records'").Scan(&n); err != nil || n == 0 {
		t.Skip("no hold storage (migration 0005) in this tree")
	}
	// Two holds copy the records of 203.0.113.7; then the originals of
	// the first half hour expire.
	for _, id := range []string{"h1", "h2"} {
		if err := st.Conn().Exec(t.Context(), "INSERT INTO "+db+".held_records SELECT '"+id+"', * FROM "+db+".connection_records WHERE client_ip = toIPv6('203.0.113.7')"); err != nil {
			t.Fatal(err)
		}
	}
	q := store.ConnectionQuery{Network: netip.MustParsePrefix("203.0.113.7/32"), From: base, To: base.Add(time.Hour), Limit: 100}
	got, err := st.SearchConnections(t.Context(), q)
	if err != nil || len(got) != 10 {
		t.Fatalf("%d records with originals and two held copies, want 10 (%v)", len(got), err)
	}
	if err := st.Conn().Exec(t.Context(), "DELETE FROM "+db+".connection_records WHERE client_ip = toIPv6('203.0.113.7') AND client_port < 40005"); err != nil {
		t.Fatal(err)
	}
	got, err = st.SearchConnections(t.Context(), q)
	if err != nil || len(got) != 10 {
		t.Fatalf("%d records after half the originals expired, want 10 (%v)", len(got), err)
	}
	// A search no held copy matches reads the records alone; one that a
	// held copy matches reads both.
	for ip, union := range map[string]bool{"203.0.113.7/32": true, "198.51.100.0/24": false} {
		q := store.ConnectionQuery{Network: netip.MustParsePrefix(ip), From: base, To: base.Add(time.Hour), Limit: 100}
		stmt, _, err := st.RequisitionRecords(t.Context(), q, func(*store.ConnectionRecord) error { return nil })
		if err != nil || strings.Contains(stmt, "held_records") != union {
			t.Errorf("%s: held copies in the statement %v, want %v (%v)\n%s", ip, !union, union, err, stmt)
		}
	}
}

func TestSearchAuditAndSubject(t *testing.T) {
	st := openStore(t)
	base := testBase()
	entries := []audit.Entry{
		{Actor: "alice", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-1", Filters: `{"ip":"203.0.113.7/32"}`, Status: 200, Rows: 3, Outcome: "ok"},
		{Actor: "alice", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-2", Filters: `{"ip":"203.0.113.0/24"}`, Status: 200, Rows: 9, Outcome: "ok"},
		{Actor: "bob", Role: "officer", Endpoint: "/v1/requisitions", Purpose: "REQ-3", Filters: `{"ips":["198.51.100.4","203.0.113.7"]}`, Status: 200, Outcome: "ok"},
		{Actor: "eve", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-4", Filters: `{"ip":"203.0.113.7/32"}`, Status: 403, Outcome: "denied"},
		{Actor: "mal", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-5", Filters: `{"ip":"300.1.1.1/99"}`, Status: 400, Outcome: "ok"},
		{Actor: "carl", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-6", Filters: `{"ip":"2001:db8::/32"}`, Status: 200, Outcome: "ok"},
		{Actor: "audrey", Role: "auditor", Endpoint: "/v1/audit/subject", Purpose: "DSR-7", Filters: `{"ip":"203.0.113.7"}`, Status: 200, Outcome: "ok"},
	}
	req, err := st.CreateRequisition(t.Context(), legal.Requisition{
		Authority: "TJ Paris", OfficerName: "OPJ Martin", OfficerService: "OCLCTIC", Article: "60-1", ProcedureRef: "PV 1",
		Received: base, CreatedBy: "bob", Purpose: "REQ-8",
		Selectors: []legal.Selector{{Network: netip.MustParsePrefix("203.0.113.0/28"), From: base, To: base.Add(time.Hour)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries,
		audit.Entry{Actor: "bob", Role: "officer", Endpoint: "/v1/requisitions/{id}/run", Purpose: "REQ-8", Filters: `{"requisition":"` + req.ID + `"}`, Status: 200, Outcome: "ok"},
		audit.Entry{Actor: "bob", Role: "officer", Endpoint: "/v1/requisitions/{id}/run", Purpose: "REQ-9", Filters: `{"requisition":"nope"}`, Status: 200, Outcome: "ok"})
	for i, e := range entries {
		e.Time = base.Add(time.Duration(i) * time.Second)
		if err := st.Audit(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.SearchAudit(t.Context(), audit.Query{From: base, To: base.Add(time.Hour), Actor: "alice", Limit: 10})
	if err != nil || len(got) != 2 || got[1].Purpose != "INC-2" {
		t.Fatalf("audit by actor: %+v, %v", got, err)
	}
	page, err := st.SearchAudit(t.Context(), audit.Query{From: base, To: base.Add(time.Hour), Limit: 4})
	if err != nil || len(page) != 4 {
		t.Fatalf("first page: %d, %v", len(page), err)
	}
	c := page[3].Cursor()
	rest, err := st.SearchAudit(t.Context(), audit.Query{From: base, To: base.Add(time.Hour), Limit: 10, After: &c})
	if err != nil || len(rest) != 5 {
		t.Fatalf("second page: %d, %v", len(rest), err)
	}
	if p, err := st.SearchAudit(t.Context(), audit.Query{From: base, To: base.Add(time.Hour), Purpose: "inc-", Limit: 10}); err != nil || len(p) != 5 {
		t.Errorf("purpose contains inc-: %d rows, %v", len(p), err)
	}

	subj, err := st.SubjectConsultations(t.Context(), audit.SubjectQuery{Addr: netip.MustParseAddr("203.0.113.7"), From: base, To: base.Add(time.Hour), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var purposes []string
	for _, c := range subj {
		purposes = append(purposes, c.Purpose)
	}
	if !slices.Equal(purposes, []string{"INC-1", "INC-2", "REQ-3", "REQ-8"}) {
		t.Errorf("consultations touching 203.0.113.7: %q, want INC-1, INC-2, REQ-3, REQ-8", purposes)
	}
}

// TestRequisitionDueDateRoundTrip checks that the due date is kept as a day
// and read back, and that a requisition without one reads back without one.
func TestRequisitionDueDateRoundTrip(t *testing.T) {
	st := openStore(t)
	base := testBase()
	due := base.Add(10*24*time.Hour + 5*time.Hour)
	sel := []legal.Selector{{Network: netip.MustParsePrefix("203.0.113.0/28"), From: base, To: base.Add(time.Hour)}}
	with, err := st.CreateRequisition(t.Context(), legal.Requisition{
		Authority: "TJ Paris", OfficerName: "OPJ Martin", OfficerService: "OCLCTIC", Article: "60-1", ProcedureRef: "PV due",
		Received: base, Due: &due, CreatedBy: "bob", Purpose: "REQ-D", Selectors: sel,
	})
	if err != nil {
		t.Fatal(err)
	}
	without, err := st.CreateRequisition(t.Context(), legal.Requisition{
		Authority: "TJ Paris", OfficerName: "OPJ Martin", OfficerService: "OCLCTIC", Article: "60-1", ProcedureRef: "PV no due",
		Received: base, CreatedBy: "bob", Purpose: "REQ-D", Selectors: sel,
	})
	if err != nil {
		t.Fatal(err)
	}
	day := due.UTC().Truncate(24 * time.Hour)
	got, err := st.Requisition(t.Context(), with.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Due == nil || !got.Due.Equal(day) || got.Due.Location() != time.UTC {
		t.Errorf("due date read back as %v, want %v", got.Due, day)
	}
	got, err = st.Requisition(t.Context(), without.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Due != nil {
		t.Errorf("requisition without a due date read back with %v", got.Due)
	}
	all, err := st.Requisitions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.ID == with.ID && (r.Due == nil || !r.Due.Equal(day)) {
			t.Errorf("register lists the due date as %v, want %v", r.Due, day)
		}
	}
}

// TestExportsReadLazilyWithTheSameAnswer: an export larger than a page but
// counted small sets the engine's lazy materialization (it halves the
// engine's time of a sorted export), and a larger one streams in small
// blocks, neither of which must change what it returns: the same rows,
// every column, in the same order, access log and connection records; a
// result counted larger than the bound does not read lazily.
func TestExportsReadLazilyWithTheSameAnswer(t *testing.T) {
	st := openStore(t)
	if !store.LazyColumns(st) {
		t.Fatal("the embedded engine knows query_plan_max_limit_for_lazy_materialization: Open should have found it")
	}
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	hits := make([]store.Hit, 30_000)
	for i := range hits {
		hits[i] = store.Hit{
			Source:    store.Source{Topic: "nginx", Partition: int32(i % 3), Offset: int64(i)},
			EventTime: base.Add(time.Duration(i%9000) * 40 * time.Second), Ingested: base,
			ClientIP:   netip.AddrFrom4([4]byte{198, 51, byte(i % 7), byte(i % 251)}),
			ClientPort: uint16(1024 + i), PeerIP: netip.MustParseAddr("10.0.0.1"), Site: "www.example.org",
			Method: "GET", Path: fmt.Sprintf("/p/%d", i%97), Protocol: "HTTP/1.1", Status: 200, BytesSent: uint64(i),
			UserAgent: fmt.Sprintf("agent %d", i%13), Operation: store.OpRead,
		}
	}
	// three batches: several parts in each day partition to merge
	for i := 0; i < len(hits); i += 10_000 {
		if err := st.Write(t.Context(), store.Batch{Hits: hits[i : i+10_000]}); err != nil {
			t.Fatal(err)
		}
	}
	aq := store.AccessQuery{Network: netip.MustParsePrefix("198.51.0.0/16"), From: base, To: base.Add(5 * 24 * time.Hour), Limit: 40_000}
	cq := store.ConnectionQuery{Network: aq.Network, From: aq.From, To: aq.To, Limit: 40_000}
	var got [3][]store.Hit
	var gotRecs [3][]store.ConnectionRecord
	for i, v := range []struct {
		lazy   bool
		blocks int
	}{{false, 0}, {true, 0}, {false, 8192}} {
		store.SetLazyColumns(st, v.lazy)
		store.SetStreamBlockRows(st, v.blocks)
		if err := st.EachAccess(t.Context(), aq, func(h *store.Hit) error { got[i] = append(got[i], *h); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := st.EachConnection(t.Context(), cq, func(r *store.ConnectionRecord) error { gotRecs[i] = append(gotRecs[i], *r); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	store.SetLazyColumns(st, true)
	store.SetStreamBlockRows(st, 8192)
	if len(got[0]) != len(hits) || len(gotRecs[0]) != len(hits) {
		t.Fatalf("%d access rows and %d records, want %d", len(got[0]), len(gotRecs[0]), len(hits))
	}
	if !slices.Equal(got[0], got[1]) {
		t.Error("the access log export differs with lazy materialization")
	}
	if !slices.Equal(gotRecs[0], gotRecs[1]) {
		t.Error("the connection records export differs with lazy materialization")
	}
	if !slices.Equal(got[0], got[2]) || !slices.Equal(gotRecs[0], gotRecs[2]) {
		t.Error("an export streamed in small blocks differs")
	}

	// Only a result counted small reads lazily: the engine holds it whole
	// first. A page reads lazily by the engine's default, not by this.
	for _, tc := range []struct {
		limit, maxRows int
		want           bool
	}{{40_000, 100_000, true}, {40_000, 29_999, false}, {40_000, 30_000, true}, {10_000, 100_000, false}} {
		store.SetLazyMaxRows(st, tc.maxRows)
		q := aq
		q.Limit = tc.limit
		if got := store.LazyRead(t.Context(), st, q); got != tc.want {
			t.Errorf("limit %d, %d matching rows, at most %d read lazily: lazy = %v, want %v", tc.limit, len(hits), tc.maxRows, got, tc.want)
		}
	}
}

// BenchmarkStreamedExport is an export too large to read lazily (150,000
// access-log rows of one /16 over nine day partitions, above
// lazyColumnsMaxRows), read through EachAccess as the API streams it, in
// the engine's default blocks or in streamBlockRows: first-ms is the wait
// for the first row, which the client waits for too.
//
//	CONNLOG_CHDB_LIBRARY=... go test -run '^$' -bench StreamedExport -benchtime 5x -count 3 ./store
func BenchmarkStreamedExport(b *testing.B) {
	st := openStore(b)
	end := time.Now().UTC().Truncate(time.Hour)
	const n = 150_000
	hits := make([]store.Hit, n)
	for i := range hits {
		hits[i] = store.Hit{
			Source:    store.Source{Topic: "nginx", Partition: int32(i % 4), Offset: int64(i)},
			EventTime: end.Add(-time.Duration(i) * 5 * time.Second), Ingested: end,
			ClientIP:   netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}),
			ClientPort: uint16(1024 + i%60000), PeerIP: netip.MustParseAddr("10.0.0.5"),
			ServerAddr: netip.MustParseAddr("192.0.2.10"), ServerPort: 443, Site: "www.example.org",
			Method: "GET", Path: fmt.Sprintf("/articles/%d/comments", i%5000), Query: "page=2&sort=new",
			Protocol: "HTTP/2.0", Status: 200, BytesSent: uint64(512 + i%40000), Referer: "https://www.example.org/",
			UserAgent:   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			RequestTime: time.Duration(i%900) * time.Millisecond, RequestID: fmt.Sprintf("%032x", i), TLSProtocol: "TLSv1.3",
		}
	}
	for i := 0; i < n; i += 25_000 {
		if err := st.Write(b.Context(), store.Batch{Hits: hits[i : i+25_000]}); err != nil {
			b.Fatal(err)
		}
	}
	q := store.AccessQuery{Network: netip.MustParsePrefix("198.51.0.0/16"), From: end.Add(-9 * 24 * time.Hour), To: end.Add(time.Hour),
		Limit: 10_000_001, Timeout: time.Minute}
	for _, blocks := range []int{0, 8192} {
		b.Run(fmt.Sprintf("blocks=%d", blocks), func(b *testing.B) {
			store.SetStreamBlockRows(st, blocks)
			if store.LazyRead(b.Context(), st, q) {
				b.Fatal("the export reads lazily: not the streamed path")
			}
			var first time.Duration
			rows := 0
			for b.Loop() {
				t0 := time.Now()
				seen := false
				if err := st.EachAccess(b.Context(), q, func(*store.Hit) error {
					if !seen {
						first += time.Since(t0)
						seen = true
					}
					rows++
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			if rows != b.N*n {
				b.Fatalf("%d rows, want %d", rows, b.N*n)
			}
			b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "first-ms")
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
