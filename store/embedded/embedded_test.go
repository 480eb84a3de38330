package embedded_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/connlog/connlog/store/embedded"
	"github.com/connlog/connlog/store/embedded/embeddedtest"
)

// connect opens clickhouse-go over HTTP to a fresh database of the shared
// engine.
func connect(tb testing.TB) (driver.Conn, string) {
	tb.Helper()
	addr, db := embeddedtest.Database(tb)
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.HTTP,
		Addr:     []string{addr},
		Auth:     clickhouse.Auth{Database: db},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn, db
}

func mustExec(tb testing.TB, conn driver.Conn, sql string) {
	tb.Helper()
	if err := conn.Exec(tb.Context(), sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

func TestOpenTwiceFails(t *testing.T) {
	embeddedtest.Start(t)
	_, err := embedded.Open(embedded.Config{Dir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, embedded.ErrAlreadyOpen) {
		t.Fatalf("second Open: got %v, want ErrAlreadyOpen", err)
	}
}

type hitRow struct {
	Time    time.Time
	IP      netip.Addr
	Port    uint16
	Bytes   uint64
	Path    string
	Method  string
	Tags    []string
	Referer *string
	Latency float64
}

func TestRoundTrip(t *testing.T) {
	conn, _ := connect(t)
	mustExec(t, conn, `CREATE TABLE hits (
		time DateTime64(3, 'UTC'), ip IPv6, port UInt16, bytes UInt64, path String,
		method LowCardinality(String), tags Array(String), referer Nullable(String), latency Float64
	) ENGINE = MergeTree ORDER BY time`)

	ref := "https://example.org/?q='\"\\"
	base := time.Date(2026, 11, 22, 10, 0, 0, 123_000_000, time.UTC)
	want := []hitRow{
		{base, netip.MustParseAddr("::ffff:192.0.2.10"), 443, 1 << 40, "/a?b=c", "GET", []string{"x", "y"}, &ref, 0.25},
		{base.Add(time.Millisecond), netip.MustParseAddr("2001:db8::1"), 65535, 0, "", "POST", []string{}, nil, -1.5e-9},
		{base.Add(time.Hour), netip.MustParseAddr("::ffff:10.0.0.1"), 0, 18446744073709551615, "ünïcode\x00\n\t", "GET", []string{""}, nil, 1e300},
	}
	batch, err := conn.PrepareBatch(t.Context(), "INSERT INTO hits")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if err := batch.Append(r.Time, r.IP.AsSlice(), r.Port, r.Bytes, r.Path, r.Method, r.Tags, r.Referer, r.Latency); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	rows, err := conn.Query(t.Context(), "SELECT time, ip, port, bytes, path, method, tags, referer, latency FROM hits ORDER BY time")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []hitRow
	for rows.Next() {
		var r hitRow
		var ip []byte
		if err := rows.Scan(&r.Time, &ip, &r.Port, &r.Bytes, &r.Path, &r.Method, &r.Tags, &r.Referer, &r.Latency); err != nil {
			t.Fatal(err)
		}
		r.IP, _ = netip.AddrFromSlice(ip)
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.IP != w.IP || g.Port != w.Port || g.Bytes != w.Bytes || g.Path != w.Path ||
			g.Method != w.Method || strings.Join(g.Tags, "|") != strings.Join(w.Tags, "|") || len(g.Tags) != len(w.Tags) ||
			(g.Referer == nil) != (w.Referer == nil) || (g.Referer != nil && *g.Referer != *w.Referer) || g.Latency != w.Latency {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	var ipv4 string
	if err := conn.QueryRow(t.Context(), "SELECT toString(ip) FROM hits WHERE port = 443").Scan(&ipv4); err != nil || ipv4 != "::ffff:192.0.2.10" {
		t.Errorf("IPv4-mapped form: %q, %v", ipv4, err)
	}
}

func TestBoundParameters(t *testing.T) {
	conn, _ := connect(t)
	mustExec(t, conn, `CREATE TABLE t (time DateTime64(3, 'UTC'), ip IPv6, s String) ENGINE = MergeTree ORDER BY time`)
	evil := `x'); DROP TABLE t; -- \" \\ '' \n`
	base := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	mustExec(t, conn, `INSERT INTO t VALUES ('2026-01-02 03:04:05.006', '2001:db8::7', 'a'), ('2026-01-02 03:04:05.007', '::ffff:192.0.2.1', 'b')`)

	var n uint64
	err := conn.QueryRow(t.Context(), "SELECT count() FROM t WHERE ip = {ip:IPv6} AND time >= {from:DateTime64(3)}",
		clickhouse.Named("ip", "2001:db8::7"), clickhouse.Named("from", base.Format("2006-01-02 15:04:05.000"))).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("count by ip and time: %d, %v", n, err)
	}
	var echoed string
	if err := conn.QueryRow(t.Context(), "SELECT {s:String}", clickhouse.Named("s", evil)).Scan(&echoed); err != nil || echoed != evil {
		t.Fatalf("echo: %q, %v; want %q", echoed, err, evil)
	}
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM t WHERE s = {s:String}", clickhouse.Named("s", evil)).Scan(&n); err != nil || n != 0 {
		t.Fatalf("filter by evil string: %d, %v", n, err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("table after evil parameter: %d rows, %v", n, err)
	}
}

func TestErrorsAreExceptions(t *testing.T) {
	conn, _ := connect(t)
	for _, tc := range []struct {
		sql  string
		code int32
	}{
		{"SELEC 1", 62},
		{"SELECT * FROM no_such_table", 60},
		{"SELECT * FROM no_such_db.t", 81},
	} {
		err := conn.Exec(t.Context(), tc.sql)
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != tc.code {
			t.Errorf("Exec(%q): %v; want *clickhouse.Exception code %d", tc.sql, err, tc.code)
		}
		rows, err := conn.Query(t.Context(), tc.sql)
		if err == nil {
			rows.Close()
		}
		if !errors.As(err, &ex) || ex.Code != tc.code {
			t.Errorf("Query(%q): %v; want *clickhouse.Exception code %d", tc.sql, err, tc.code)
		}
	}
}

func TestMidStreamErrorIsReported(t *testing.T) {
	conn, _ := connect(t)
	rows, err := conn.Query(t.Context(), "SELECT throwIf(number = 3000000) FROM numbers(4000000)")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 395 {
		t.Fatalf("got %v; want *clickhouse.Exception code 395", err)
	}

	// Plain HTTP clients see a broken transfer, never a short clean result.
	resp, err := http.Get("http://" + embeddedtest.Start(t) + "/?" + url.Values{"query": {"SELECT throwIf(number = 3000000) FROM numbers(4000000) FORMAT CSV"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil || !strings.Contains(string(body), "__exception__") {
		t.Fatalf("CSV read error %v, marker present %v", err, strings.Contains(string(body), "__exception__"))
	}
}

func TestInsertDeduplicationToken(t *testing.T) {
	conn, _ := connect(t)
	mustExec(t, conn, `CREATE TABLE d (a UInt64) ENGINE = MergeTree ORDER BY a SETTINGS non_replicated_deduplication_window = 1000`)
	insert := func(token string, rows ...uint64) {
		ctx := clickhouse.Context(t.Context(), clickhouse.WithSettings(clickhouse.Settings{"insert_deduplication_token": token}))
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO d")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := batch.Append(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
	insert("batch-1", 1, 2, 3)
	insert("batch-1", 1, 2, 3)
	insert("batch-2", 1, 2, 3)
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM d").Scan(&n); err != nil || n != 6 {
		t.Fatalf("rows after two distinct and one repeated batch: %d, %v; want 6", n, err)
	}
	var token string
	if err := conn.QueryRow(t.Context(), "SELECT getSetting('insert_deduplication_token')").Scan(&token); err != nil || token != "" {
		t.Fatalf("insert_deduplication_token leaked into the next statement: %q, %v", token, err)
	}
}

func TestSettingsAndDatabaseDoNotLeak(t *testing.T) {
	conn, db := connect(t)
	var cur string
	ctx := clickhouse.Context(t.Context(), clickhouse.WithSettings(clickhouse.Settings{"max_threads": 3, "max_result_rows": "1000"}))
	var threads uint64
	if err := conn.QueryRow(ctx, "SELECT toUInt64(getSetting('max_threads')), currentDatabase()").Scan(&threads, &cur); err != nil || threads != 3 || cur != db {
		t.Fatalf("in request: max_threads %d, database %q, %v", threads, cur, err)
	}
	resp, err := http.Get("http://" + embeddedtest.Start(t) + "/?query=" + url.QueryEscape("SELECT getSetting('max_threads') = 3, currentDatabase()"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "0\tdefault\n" {
		t.Fatalf("next request sees %q; want settings and database reset", body)
	}
	err = conn.Exec(clickhouse.Context(t.Context(), clickhouse.WithSettings(clickhouse.Settings{"max_threads": 3, "no_such_setting": 1})), "SELECT 1")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 115 {
		t.Fatalf("unknown setting: %v; want code 115", err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT toUInt64(getSetting('max_threads'))").Scan(&threads); err != nil || threads == 3 {
		t.Fatalf("after a failed request: max_threads %d, %v; want reset", threads, err)
	}
}

func TestPlainHTTP(t *testing.T) {
	addr := embeddedtest.Start(t)
	for _, tc := range []struct{ method, target, body, want string }{
		{"GET", "/ping", "", "Ok.\n"},
		{"GET", "/", "", "Ok.\n"},
		{"GET", "/?query=SELECT+1", "", "1\n"},
		{"POST", "/", "SELECT 1 + 1 FORMAT JSONEachRow", "{\"plus(1, 1)\":2}\n"},
		{"POST", "/?query=SELECT", " 'body'", "body\n"},
		{"POST", "/?default_format=CSV", "SELECT 'a', 1", "\"a\",1\n"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tc.method, "http://"+addr+tc.target, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != tc.want {
			t.Errorf("%s %s %q: %s %q; want %q", tc.method, tc.target, tc.body, resp.Status, body, tc.want)
		}
	}
}

func TestInlineInsertData(t *testing.T) {
	addr, db := embeddedtest.Database(t)
	if err := embeddedtest.Exec(addr, "CREATE TABLE "+db+".c (a UInt8, s String) ENGINE = MergeTree ORDER BY a"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/?database="+db, "text/plain", strings.NewReader("INSERT INTO c FORMAT CSV\n1,\"x FORMAT y\"\n2,z\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Post("http://"+addr+"/?"+url.Values{"query": {"INSERT INTO " + db + ".c FORMAT TSV"}}.Encode(), "text/plain", strings.NewReader("3\tw\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Post("http://"+addr+"/?database="+db, "text/plain", strings.NewReader("SELECT a, s FROM c ORDER BY a FORMAT CSV"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := "1,\"x FORMAT y\"\n2,\"z\"\n3,\"w\"\n"; string(body) != want {
		t.Fatalf("got %q, want %q", body, want)
	}
}

func TestConcurrentStatementsAreSerialized(t *testing.T) {
	conn, _ := connect(t)
	mustExec(t, conn, "CREATE TABLE c (g UInt32, i UInt32) ENGINE = MergeTree ORDER BY (g, i)")
	const workers, batches, rowsPerBatch = 8, 5, 1000
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*batches)
	for g := range workers {
		wg.Go(func() {
			for range batches {
				batch, err := conn.PrepareBatch(t.Context(), "INSERT INTO c")
				if err != nil {
					errs <- err
					return
				}
				for i := range rowsPerBatch {
					_ = batch.Append(uint32(g), uint32(i))
				}
				errs <- batch.Send()
			}
		})
		wg.Go(func() {
			for range batches {
				var n uint64
				errs <- conn.QueryRow(t.Context(), "SELECT count() FROM c WHERE g = ?", uint32(g)).Scan(&n)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM c").Scan(&n); err != nil || n != workers*batches*rowsPerBatch {
		t.Fatalf("count %d, %v", n, err)
	}
}

func TestDeadlineStopsLongQuery(t *testing.T) {
	conn, _ := connect(t)
	// The client gives up after 300ms; the engine cannot interrupt a running
	// statement from outside, so max_execution_time bounds how long it keeps
	// the statement slot.
	ctx, cancel := context.WithTimeout(clickhouse.Context(t.Context(),
		clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": 2})), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := conn.QueryRow(ctx, "SELECT count() FROM numbers(1e12)").Scan(new(uint64))
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("long query: %v after %s; want a prompt error", err, time.Since(start))
	}
	// Without client deadline the statement fails with TIMEOUT_EXCEEDED.
	ctx = clickhouse.Context(t.Context(), clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": 1}))
	err = conn.QueryRow(ctx, "SELECT count() FROM numbers(1e12)").Scan(new(uint64))
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 159 {
		t.Fatalf("max_execution_time: %v; want code 159", err)
	}
	var n uint8
	if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("engine after timeouts: %d, %v", n, err)
	}
}

func TestLargeResultStreams(t *testing.T) {
	addr := embeddedtest.Start(t)
	const rows = 5_000_000
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(fmt.Sprintf("SELECT number, toString(number * 7) FROM numbers(%d) FORMAT CSV", rows)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var n, sum uint64
	for sc.Scan() {
		a, b, _ := strings.Cut(sc.Text(), ",")
		v, err := strconv.ParseUint(a, 10, 64)
		if err != nil || b != `"`+strconv.FormatUint(v*7, 10)+`"` {
			t.Fatalf("line %d: %q", n, sc.Text())
		}
		n++
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != rows || sum != rows*(rows-1)/2 {
		t.Fatalf("got %d rows (sum %d), want %d", n, sum, rows)
	}

	conn, _ := connect(t)
	r, err := conn.Query(t.Context(), "SELECT number FROM numbers(1000000)")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got uint64
	for r.Next() {
		got++
	}
	if err := r.Err(); err != nil || got != 1_000_000 {
		t.Fatalf("Native stream: %d rows, %v", got, err)
	}
}

func TestInsertFault(t *testing.T) {
	e, _ := embeddedtest.StartEngine(t)
	conn, _ := connect(t)
	mustExec(t, conn, "CREATE TABLE f (a UInt8) ENGINE = MergeTree ORDER BY a")
	e.SetInsertFault(func(string) error { return errors.New("ClickHouse unavailable") })
	t.Cleanup(func() { e.SetInsertFault(nil) })
	batch, err := conn.PrepareBatch(t.Context(), "INSERT INTO f")
	if err != nil {
		t.Fatal(err)
	}
	_ = batch.Append(uint8(1))
	if err := batch.Send(); err == nil || !strings.Contains(err.Error(), "ClickHouse unavailable") {
		t.Fatalf("insert with fault: %v", err)
	}
	e.SetInsertFault(nil)
	batch, err = conn.PrepareBatch(t.Context(), "INSERT INTO f")
	if err != nil {
		t.Fatal(err)
	}
	_ = batch.Append(uint8(1))
	if err := batch.Send(); err != nil {
		t.Fatalf("insert after fault removed: %v", err)
	}
}

func TestClientDisconnectFreesEngine(t *testing.T) {
	addr := embeddedtest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/?max_execution_time=600",
		strings.NewReader("SELECT number FROM numbers(1e12) FORMAT CSV"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()

	start := time.Now()
	if err := embeddedtest.Exec(addr, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("next statement waited %s after the client of a 600s export went away", d)
	}
}

func TestLargeInsertBody(t *testing.T) {
	conn, _ := connect(t)
	mustExec(t, conn, "CREATE TABLE big (i UInt64, s String) ENGINE = MergeTree ORDER BY i")
	const rows = 1_000_000
	batch, err := conn.PrepareBatch(t.Context(), "INSERT INTO big")
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 40)
	for i := range rows {
		if err := batch.Append(uint64(i), pad); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil { // about 50 MB of Native
		t.Fatal(err)
	}
	var n, sum uint64
	if err := conn.QueryRow(t.Context(), "SELECT count(), sum(i) FROM big WHERE length(s) = 40").Scan(&n, &sum); err != nil || n != rows || sum != rows*(rows-1)/2 {
		t.Fatalf("count %d sum %d, %v", n, sum, err)
	}
}
