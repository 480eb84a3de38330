package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
	"github.com/connlog/connlog/store/storetest"
)

// openStore returns a migrated store in databases of its own.
func openStore(tb testing.TB) *store.Store {
	tb.Helper()
	return storetest.New(tb)
}

func hit(ip string, port uint16, t time.Time, method, path string, offset int64) store.Hit {
	return store.Hit{
		Source:    store.Source{Topic: "nginx", Partition: 1, Offset: offset},
		EventTime: t, Ingested: t.Add(time.Second),
		ClientIP: netip.MustParseAddr(ip), ClientPort: port, PeerIP: netip.MustParseAddr(ip),
		ServerAddr: netip.MustParseAddr("192.0.2.10"), ServerPort: 443,
		Site: "www.example.org", Method: method, Path: path, Query: "q=1", Protocol: "HTTP/1.1",
		Status: 200, BytesSent: 1234, Referer: "https://example.org/", UserAgent: `Mozilla/5.0 "quoted" \ back`,
		RequestTime: 1500 * time.Microsecond, Upstream: "10.0.0.1:8080", RequestID: fmt.Sprintf("req-%d", offset),
		User: "alice", TLSProtocol: "TLSv1.3", Has: store.HasReferer | store.HasUserAgent,
	}
}

func TestMigrateIsIdempotentAndRecorded(t *testing.T) {
	st := openStore(t)
	v, err := st.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	migs, err := store.Migrations(store.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if want := migs[len(migs)-1].Version; v != want {
		t.Fatalf("schema version %d, want %d", v, want)
	}
	applied, err := st.Migrate(t.Context())
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate applied %v, err %v; want nothing", applied, err)
	}
	db := st.Databases()
	for _, table := range []string{db.Access + ".access_log", db.Connections + ".connection_records", db.Ops + ".quarantine", db.Ops + ".audit"} {
		var n uint64
		if err := st.Conn().QueryRow(t.Context(), "SELECT count() FROM "+table).Scan(&n); err != nil {
			t.Errorf("%s: %v", table, err)
		}
	}
}

func TestWriteThenSearchRoundTripsEveryField(t *testing.T) {
	st := openStore(t)
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	hits := []store.Hit{
		hit("203.0.113.7", 51234, base.Add(1*time.Millisecond), "GET", "/index.html", 10),
		hit("2001:db8::7", 40000, base.Add(2*time.Second), "POST", "/login", 11),
		hit("203.0.113.200", 1, base.Add(3*time.Second), "DELETE", "/item/3", 12),
		hit("198.51.100.1", 2, base.Add(4*time.Second), "GET", "/", 13),
	}
	hits[0].ShipperHost, hits[0].LogFile, hits[0].OptOut = "web1", "/var/log/nginx/access.log", true
	if err := st.Write(t.Context(), store.Batch{Hits: hits}); err != nil {
		t.Fatal(err)
	}
	got, err := st.SearchAccess(t.Context(), store.AccessQuery{
		Network: netip.MustParsePrefix("203.0.113.7/32"), From: base, To: base.Add(time.Hour), Limit: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d rows, want 1", len(got))
	}
	want := hits[0]
	want.Operation = store.OperationOfMethod(want.Method) // stored since migration 0002
	if fmt.Sprintf("%+v", got[0]) != fmt.Sprintf("%+v", want) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got[0], want)
	}

	cases := []struct {
		name   string
		q      store.AccessQuery
		wantIP []string
	}{
		{"ipv6 single address", store.AccessQuery{Network: netip.MustParsePrefix("2001:db8::7/128")}, []string{"2001:db8::7"}},
		{"ipv4 cidr", store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.0/24")}, []string{"203.0.113.7", "203.0.113.200"}},
		{"ipv6 cidr does not match ipv4", store.AccessQuery{Network: netip.MustParsePrefix("2001:db8::/32")}, []string{"2001:db8::7"}},
		{"site filter", store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.0/24"), Site: "other.example.org"}, nil},
		{"site scope", store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.0/24"), Sites: []string{"x", "www.example.org"}}, []string{"203.0.113.7", "203.0.113.200"}},
		{"window is half-open", store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.0/24"), To: base.Add(3 * time.Second)}, []string{"203.0.113.7"}},
		// Rows come in primary-key order: client address, then time.
		{"limit", store.AccessQuery{Network: netip.MustParsePrefix("0.0.0.0/0"), Limit: 2}, []string{"198.51.100.1", "203.0.113.7"}},
		{"hostile site value is data", store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.0/24"), Site: `x' OR 1=1 --`}, nil},
		{"hostile site scope is data", store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.0/24"), Sites: []string{`a','www.example.org`, `\'`}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			if q.From.IsZero() {
				q.From = base
			}
			if q.To.IsZero() {
				q.To = base.Add(time.Hour)
			}
			if q.Limit == 0 {
				q.Limit = 100
			}
			rows, err := st.SearchAccess(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			var ips []string
			for _, r := range rows {
				ips = append(ips, r.ClientIP.String())
			}
			if strings.Join(ips, ",") != strings.Join(c.wantIP, ",") {
				t.Errorf("got %v, want %v", ips, c.wantIP)
			}
		})
	}
}

func TestConnectionRecordsKeepPathOnlyForChanges(t *testing.T) {
	st := openStore(t)
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	hits := []store.Hit{
		hit("203.0.113.7", 1, base, "GET", "/secret-page", 1),
		hit("203.0.113.7", 2, base.Add(time.Second), "POST", "/comments", 2),
		hit("203.0.113.7", 3, base.Add(2*time.Second), "PUT", "/doc/1", 3),
		hit("203.0.113.7", 4, base.Add(3*time.Second), "DELETE", "/doc/1", 4),
	}
	if err := st.Write(t.Context(), store.Batch{Hits: hits}); err != nil {
		t.Fatal(err)
	}
	rows, err := st.Conn().Query(t.Context(), "SELECT toString(operation), path, user, client_port FROM "+st.Databases().Connections+".connection_records ORDER BY client_port")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var op, path, user string
		var port uint16
		if err := rows.Scan(&op, &path, &user, &port); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %q %q", port, op, path, user))
	}
	want := []string{`1 read "" ""`, `2 create "/comments" "alice"`, `3 modify "/doc/1" "alice"`, `4 delete "/doc/1" "alice"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("connection records:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWriteSameBatchTwiceStoresOnce(t *testing.T) {
	st := openStore(t)
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	b := store.Batch{
		Hits: []store.Hit{hit("203.0.113.7", 1, base, "GET", "/", 100), hit("203.0.113.8", 2, base, "GET", "/", 101)},
		Quarantine: []store.Quarantined{{
			Source: store.Source{Topic: "nginx", Partition: 1, Offset: 102}, Received: base,
			Reason: "status: not a number", Raw: []byte("garbage \x00\xff line"),
		}},
	}
	for range 3 {
		if err := st.Write(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	db := st.Databases()
	for table, want := range map[string]uint64{
		db.Access + ".access_log": 2, db.Connections + ".connection_records": 2, db.Ops + ".quarantine": 1,
	} {
		var n uint64
		if err := st.Conn().QueryRow(t.Context(), "SELECT count() FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s holds %d rows, want %d", table, n, want)
		}
	}
	var raw, reason string
	if err := st.Conn().QueryRow(t.Context(), "SELECT raw, reason FROM "+db.Ops+".quarantine").Scan(&raw, &reason); err != nil {
		t.Fatal(err)
	}
	if raw != "garbage \x00\xff line" || reason != "status: not a number" {
		t.Errorf("quarantine kept %q (%q)", raw, reason)
	}
}

func TestAuditRowIsStored(t *testing.T) {
	st := openStore(t)
	// Every text field carries what a hostile or careless caller could
	// send: quotes, backslashes, control bytes, a parameter placeholder,
	// SQL. Each must come back byte for byte.
	odd := "it's \\ \"q\" \t\n\r\x00 {x:String} '); DROP TABLE audit; --"
	e := audit.Entry{
		Time: time.Now().UTC().Truncate(time.Millisecond), Actor: "alice " + odd, Role: "analyst", Source: "127.0.0.1:5000",
		Method: "GET", Endpoint: "/v1/access", Purpose: "INC-1 " + odd, Filters: `{"ip":"203.0.113.7","path":"` + odd + `"}`,
		Status: 200, Rows: 3, Outcome: "ok", Reason: odd,
	}
	if err := st.Audit(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	var got audit.Entry
	var status uint16
	var rows uint64
	if err := st.Conn().QueryRow(context.Background(), "SELECT time, actor, role, source, method, endpoint, purpose, filters, status, rows, outcome, reason FROM "+st.Databases().Ops+".audit").
		Scan(&got.Time, &got.Actor, &got.Role, &got.Source, &got.Method, &got.Endpoint, &got.Purpose, &got.Filters, &status, &rows, &got.Outcome, &got.Reason); err != nil {
		t.Fatal(err)
	}
	got.Time, got.Status, got.Rows = got.Time.UTC(), int(status), int(rows)
	if got != e {
		t.Errorf("audit row\n got %+v\nwant %+v", got, e)
	}
}

func TestSearchRejectsBadFilters(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	for name, q := range map[string]store.AccessQuery{
		"no network":   {From: now.Add(-time.Hour), To: now, Limit: 1},
		"empty window": {Network: netip.MustParsePrefix("192.0.2.1/32"), From: now, To: now, Limit: 1},
		"no limit":     {Network: netip.MustParsePrefix("192.0.2.1/32"), From: now.Add(-time.Hour), To: now},
	} {
		if _, err := st.SearchAccess(t.Context(), q); err == nil || !strings.Contains(err.Error(), "bad filter") {
			t.Errorf("%s: err = %v, want ErrBadFilter", name, err)
		}
	}
}

func TestSearchBySiteWithBackslashAndTab(t *testing.T) {
	st := openStore(t)
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	h := hit("203.0.113.7", 1, base, "GET", "/", 1)
	h.Site = "we\\ird\tsite'"
	if err := st.Write(t.Context(), store.Batch{Hits: []store.Hit{h}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.AccessQuery{
		{Site: h.Site},
		{Sites: []string{h.Site}},
	} {
		q.Network, q.From, q.To, q.Limit = netip.MustParsePrefix("203.0.113.7/32"), base, base.Add(time.Hour), 10
		rows, err := st.SearchAccess(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Site != h.Site {
			t.Errorf("query %+v found %d rows", q, len(rows))
		}
	}
}

// A journal segment shipped twice (stored, then the process died before
// deleting it) carries the same token: the audit table keeps one copy.
func TestAuditBatchIsStoredOncePerToken(t *testing.T) {
	st := openStore(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	batch := []audit.Entry{
		{Time: now, Actor: "alice", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-1", Status: 200, Outcome: "ok"},
		{Time: now.Add(time.Millisecond), Actor: "bob", Role: "officer", Endpoint: "/v1/connections", Purpose: "REQ-7", Status: 403, Outcome: "denied", Reason: "role"},
	}
	for range 2 {
		if err := st.AuditBatch(t.Context(), "auditjournal/test/1", batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AuditBatch(t.Context(), "auditjournal/test/2", batch[:1]); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, "SELECT count() FROM "+st.Databases().Ops+".audit"); n != 3 {
		t.Errorf("%d audit rows, want 3 (2 once, then 1)", n)
	}
	if err := st.AuditBatch(t.Context(), "", batch); err == nil {
		t.Error("a batch without token was accepted")
	}
}

// Two requests identical to the millisecond (two HTTP/2 streams of one
// client, say) are two audit rows, although the table deduplicates the
// journal's batches by token.
func TestIdenticalAuditRowsAreBothStored(t *testing.T) {
	st := openStore(t)
	e := audit.Entry{Time: time.Now().UTC().Truncate(time.Millisecond), Actor: "alice", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-1", Status: 200, Outcome: "ok"}
	for range 2 {
		if err := st.Audit(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, st, "SELECT count() FROM "+st.Databases().Ops+".audit"); n != 2 {
		t.Errorf("%d audit rows for two identical requests, want 2", n)
	}
}

// A row may stand for several requests (the API's counted refusals of bad
// credentials, migration 0012); any other row stands for one, whether it
// says so or not.
func TestAuditRowsCountTheirRequests(t *testing.T) {
	st := openStore(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	one := audit.Entry{Time: now, Actor: "alice", Role: "analyst", Endpoint: "/v1/access", Purpose: "INC-1", Status: 200, Outcome: "ok"}
	if err := st.Audit(t.Context(), one); err != nil {
		t.Fatal(err)
	}
	counted := []audit.Entry{
		{Time: now.Add(time.Millisecond), Source: "192.0.2.1", Endpoint: "/v1/access", Status: 401, Outcome: "denied", Reason: "unknown bearer token", Requests: 10},
		{Time: now.Add(2 * time.Millisecond), Source: "192.0.2.1", Endpoint: "/v1/access", Status: 429, Outcome: "denied", Reason: "unknown bearer token; limited", Requests: 123456},
	}
	if err := st.AuditMany(t.Context(), counted); err != nil {
		t.Fatal(err)
	}
	recs, err := st.SearchAudit(t.Context(), audit.Query{From: now.Add(-time.Minute), To: now.Add(time.Minute), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range recs {
		got = append(got, r.Requests)
	}
	if !slices.Equal(got, []int{1, 10, 123456}) {
		t.Errorf("requests %v, want [1 10 123456]", got)
	}
	if n := count(t, st, "SELECT sum(requests) FROM "+st.Databases().Ops+".audit"); n != 123467 {
		t.Errorf("sum(requests) %d, want 123467", n)
	}
}
