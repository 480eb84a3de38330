package api

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkGolden compares got with the golden file path, or rewrites it with -update.
func checkGolden(tb testing.TB, path, got string) {
	tb.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		tb.Errorf("body\n%s\ndiffers from %s:\n%s", got, path, want)
	}
}

// The real store is what the API is built for.
var _ Store = (*store.Store)(nil)

const okQuery = "/v1/access?ip=203.0.113.7&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z"

// errorCode decodes an error response and returns its code.
func errorCode(tb testing.TB, body string) Code {
	tb.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		tb.Fatalf("error body %q: %v", body, err)
	}
	if e.Error.Message == "" {
		tb.Errorf("error body %q has no message", body)
	}
	return e.Error.Code
}

func TestAccessGuardAndAudit(t *testing.T) {
	tests := []struct {
		name        string
		target      string
		token       func(testTokens) string
		purpose     string
		wantStatus  int
		wantCode    Code // "" for 200
		wantOutcome string
		wantActor   string
	}{
		{"no token is unauthenticated", okQuery, func(testTokens) string { return "" }, "INC-42", 401, CodeUnauthenticated, "denied", ""},
		{"unknown token is unauthenticated", okQuery, func(testTokens) string { return "cl_nottherightone" }, "INC-42", 401, CodeUnauthenticated, "denied", ""},
		{"wrong role is forbidden", okQuery, func(k testTokens) string { return k.auditor }, "INC-42", 403, CodeForbidden, "denied", "audrey"},
		{"no purpose is refused", okQuery, func(k testTokens) string { return k.analyst }, "", 400, CodeMissingPurpose, "invalid", "alice"},
		{"blank purpose is refused", okQuery, func(k testTokens) string { return k.analyst }, "   ", 400, CodeMissingPurpose, "invalid", "alice"},
		{"too short purpose is refused", okQuery, func(k testTokens) string { return k.analyst }, "ab", 400, CodeMissingPurpose, "invalid", "alice"},
		{"too long purpose is refused", okQuery, func(k testTokens) string { return k.analyst }, strings.Repeat("x", 201), 400, CodeMissingPurpose, "invalid", "alice"},
		{"unprintable purpose is refused", okQuery + "&purpose=" + url.QueryEscape("INC\x0742"), func(k testTokens) string { return k.analyst }, "", 400, CodeMissingPurpose, "invalid", "alice"},
		{"purpose as parameter is accepted", okQuery + "&purpose=INC-42", func(k testTokens) string { return k.analyst }, "", 200, "", "ok", "alice"},
		{"missing ip is refused", "/v1/access?from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"bad ip is refused", "/v1/access?ip=300.1.1.1&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"ip with zone is refused", "/v1/access?ip=fe80::1%25eth0&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"IPv4 network wider than /8 is refused", "/v1/access?ip=10.0.0.0/7&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"IPv6 network wider than /32 is refused", "/v1/access?ip=2001:d00::/24&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"IPv4 /8 is accepted", "/v1/access?ip=10.0.0.0/8&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 200, "", "ok", "alice"},
		{"missing from is refused", "/v1/access?ip=203.0.113.7&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"non RFC 3339 time is refused", "/v1/access?ip=203.0.113.7&from=2026-03-03&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"reversed window is refused", "/v1/access?ip=203.0.113.7&from=2026-03-04T00:00:00Z&to=2026-03-03T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"empty window is refused", "/v1/access?ip=203.0.113.7&from=2026-03-04T00:00:00Z&to=2026-03-04T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"window above 31 days is too large", "/v1/access?ip=203.0.113.7&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:01Z", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeWindowTooLarge, "invalid", "alice"},
		{"window of 31 days is accepted", "/v1/access?ip=203.0.113.7&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", func(k testTokens) string { return k.analyst }, "INC-42", 200, "", "ok", "alice"},
		{"zero limit is refused", okQuery + "&limit=0", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"limit above max is refused", okQuery + "&limit=10001", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"non-numeric limit is refused", okQuery + "&limit=ten", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"unknown parameter is refused", okQuery + "&color=red", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"repeated parameter is refused", okQuery + "&ip=198.51.100.1", func(k testTokens) string { return k.analyst }, "INC-42", 400, CodeBadRequest, "invalid", "alice"},
		{"site outside token scope is forbidden", okQuery + "&site=c.example", func(k testTokens) string { return k.scoped }, "INC-42", 403, CodeForbidden, "denied", "sam"},
		{"site inside token scope is allowed", okQuery + "&site=a.example", func(k testTokens) string { return k.scoped }, "INC-42", 200, "", "ok", "sam"},
		{"admin may search", okQuery, func(k testTokens) string { return k.admin }, "INC-42", 200, "", "ok", "root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			token := tt.token(env.tokens)
			resp := env.get(t, tt.target, token, tt.purpose)
			body := readBody(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				if got := errorCode(t, body); got != tt.wantCode {
					t.Errorf("code %q, want %q", got, tt.wantCode)
				}
			}
			if tt.wantStatus == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			wantEvents := []string{"audit", "write"}
			if tt.wantStatus == http.StatusUnauthorized {
				// Nobody behind it: counted, and written when its window
				// closes (api/badcreds.go), here at once.
				if n := len(env.store.auditRows()); n != 0 {
					t.Fatalf("%d audit rows before the window closed, want 0", n)
				}
				if err := env.srv.FlushRefusals(t.Context()); err != nil {
					t.Fatal(err)
				}
				wantEvents = []string{"write", "audit"}
			}
			audits := env.store.auditRows()
			if len(audits) != 1 {
				t.Fatalf("%d audit rows, want 1", len(audits))
			}
			a := audits[0]
			if a.Outcome != tt.wantOutcome || a.Status != tt.wantStatus || a.Actor != tt.wantActor ||
				a.Endpoint != "/v1/access" || a.Method != http.MethodGet || a.Source == "" || a.Time.IsZero() {
				t.Errorf("audit row %+v; want outcome %q, status %d, actor %q", a, tt.wantOutcome, tt.wantStatus, tt.wantActor)
			}
			if tt.wantStatus != http.StatusOK && a.Reason == "" {
				t.Error("refusal audited without a reason")
			}
			if token != "" && strings.Contains(fmtAudit(a), token) {
				t.Error("audit row contains the bearer token")
			}
			if got := env.store.events; !reflect.DeepEqual(got, wantEvents) {
				t.Errorf("events %q, want %q", got, wantEvents)
			}
		})
	}
}

func fmtAudit(a audit.Entry) string {
	b, _ := json.Marshal(a)
	return string(b)
}

func TestAccessRendersRows(t *testing.T) {
	st := &fakeStore{hits: []store.Hit{
		{
			Source:       store.Source{Topic: "nginx", Partition: 2, Offset: 17},
			EventTime:    time.Date(2026, 3, 3, 14, 3, 27, 123_456_789, time.FixedZone("CET", 3600)),
			ClientIP:     netip.MustParseAddr("::ffff:203.0.113.7"),
			ClientPort:   51234,
			PeerIP:       netip.MustParseAddr("10.0.0.5"),
			ForwardedFor: "203.0.113.7",
			ServerAddr:   netip.MustParseAddr("2001:db8::443"),
			ServerPort:   443,
			Site:         "a.example",
			Method:       "POST",
			Path:         "/login",
			Query:        "next=%2F&password=REDACTED",
			Protocol:     "HTTP/2.0",
			Status:       401,
			BytesSent:    512,
			Referer:      "https://a.example/",
			UserAgent:    "curl/8.5.0",
			RequestTime:  1500 * time.Millisecond,
			Upstream:     "10.0.1.2:8080",
			RequestID:    "abc123",
			User:         "bob",
			TLSProtocol:  "TLSv1.3",
		},
		{
			// A sparse line: only what the combined format carries.
			Source:    store.Source{Topic: "nginx", Partition: 0, Offset: 0},
			EventTime: time.Date(2026, 3, 3, 15, 0, 0, 0, time.UTC),
			ClientIP:  netip.MustParseAddr("203.0.113.7"),
			Status:    304,
		},
	}}
	env := newTestEnv(t, st)
	resp := env.get(t, okQuery, env.tokens.analyst, "INC-42")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("cache control %q", cc)
	}
	// Both rows in one golden file: a full line, and a sparse one whose empty
	// optional fields are left out.
	checkGolden(t, "testdata/access_rows.golden.json", body)
	if a := env.store.auditRows()[0]; a.Rows != 2 || a.Purpose != "INC-42" || a.Role != RoleAnalyst {
		t.Errorf("audit row %+v", a)
	}
}

func TestAccessTruncatesAtLimit(t *testing.T) {
	st := &fakeStore{}
	for i := range 5 {
		st.hits = append(st.hits, store.Hit{Source: store.Source{Offset: int64(i)}, ClientIP: netip.MustParseAddr("203.0.113.7")})
	}
	env := newTestEnv(t, st)
	for _, tc := range []struct {
		limit         string
		wantCount     int
		wantTruncated bool
	}{{"3", 3, true}, {"5", 5, false}, {"6", 5, false}} {
		resp := env.get(t, okQuery+"&limit="+tc.limit, env.tokens.analyst, "INC-42")
		var got accessResponse
		if err := json.Unmarshal([]byte(readBody(t, resp)), &got); err != nil {
			t.Fatal(err)
		}
		if got.Count != tc.wantCount || len(got.Rows) != tc.wantCount || got.Truncated != tc.wantTruncated {
			t.Errorf("limit %s: count %d, %d rows, truncated %v; want %d, %v", tc.limit, got.Count, len(got.Rows), got.Truncated, tc.wantCount, tc.wantTruncated)
		}
	}
}

func TestAccessQueryAndFilters(t *testing.T) {
	tests := []struct {
		name        string
		token       func(testTokens) string
		params      string
		wantQuery   store.AccessQuery
		wantFilters string
	}{
		{
			name:        "address becomes a host prefix and times UTC",
			token:       func(k testTokens) string { return k.analyst },
			params:      "ip=203.0.113.7&from=2026-03-03T01:00:00%2B01:00&to=2026-03-04T00:00:00Z",
			wantQuery:   store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.7/32"), From: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Limit: 1001},
			wantFilters: `{"from":"2026-03-03T00:00:00Z","ip":"203.0.113.7/32","limit":1000,"to":"2026-03-04T00:00:00Z"}`,
		},
		{
			name:        "unescaped plus in offset is accepted",
			token:       func(k testTokens) string { return k.analyst },
			params:      "ip=203.0.113.7&from=2026-03-03T01:00:00+01:00&to=2026-03-04T00:00:00Z",
			wantQuery:   store.AccessQuery{Network: netip.MustParsePrefix("203.0.113.7/32"), From: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Limit: 1001},
			wantFilters: `{"from":"2026-03-03T00:00:00Z","ip":"203.0.113.7/32","limit":1000,"to":"2026-03-04T00:00:00Z"}`,
		},
		{
			name:        "mapped network becomes IPv4 with host bits cleared",
			token:       func(k testTokens) string { return k.analyst },
			params:      "ip=::ffff:198.51.100.9/120&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z&limit=10&site=a.example",
			wantQuery:   store.AccessQuery{Network: netip.MustParsePrefix("198.51.100.0/24"), From: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Site: "a.example", Limit: 11},
			wantFilters: `{"from":"2026-03-03T00:00:00Z","ip":"198.51.100.0/24","limit":10,"site":"a.example","to":"2026-03-04T00:00:00Z"}`,
		},
		{
			name:        "scoped token without site is limited to its sites",
			token:       func(k testTokens) string { return k.scoped },
			params:      "ip=2001:db8::/32&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z",
			wantQuery:   store.AccessQuery{Network: netip.MustParsePrefix("2001:db8::/32"), From: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Sites: []string{"a.example", "b.example"}, Limit: 1001},
			wantFilters: `{"from":"2026-03-03T00:00:00Z","ip":"2001:db8::/32","limit":1000,"to":"2026-03-04T00:00:00Z"}`,
		},
		{
			name:        "client text instead of an address (nginx's unix-socket listener)",
			token:       func(k testTokens) string { return k.analyst },
			params:      "client=unix:&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z",
			wantQuery:   store.AccessQuery{Client: "unix:", From: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Limit: 1001},
			wantFilters: `{"client":"unix:","from":"2026-03-03T00:00:00Z","limit":1000,"to":"2026-03-04T00:00:00Z"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			resp := env.get(t, "/v1/access?"+tt.params, tt.token(env.tokens), "INC-42")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, readBody(t, resp))
			}
			if len(env.store.queries) != 1 {
				t.Fatalf("%d queries", len(env.store.queries))
			}
			if got := env.store.queries[0]; !reflect.DeepEqual(got, tt.wantQuery) {
				t.Errorf("query\n%+v\nwant\n%+v", got, tt.wantQuery)
			}
			if got := env.store.auditRows()[0].Filters; got != tt.wantFilters {
				t.Errorf("filters %s, want %s", got, tt.wantFilters)
			}
		})
	}
}

func TestAccessRefusedFiltersAreAuditedRaw(t *testing.T) {
	env := newTestEnv(t, nil)
	resp := env.get(t, "/v1/access?ip=300.1.1.1&from=yesterday", env.tokens.analyst, "INC-42")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got, want := env.store.auditRows()[0].Filters, `{"from":"yesterday","ip":"300.1.1.1"}`; got != want {
		t.Errorf("filters %s, want %s", got, want)
	}
}

func TestAccessAuditFailureServesNoData(t *testing.T) {
	for _, target := range []string{okQuery, "/v1/access"} {
		st := &fakeStore{
			auditErr: errors.New("clickhouse down"),
			hits:     []store.Hit{{ClientIP: netip.MustParseAddr("203.0.113.7"), Path: "/secret"}},
		}
		env := newTestEnv(t, st)
		resp := env.get(t, target, env.tokens.analyst, "INC-42")
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, want 503", target, resp.StatusCode)
		}
		if got := errorCode(t, body); got != CodeAuditUnavailable {
			t.Errorf("%s: code %q", target, got)
		}
		if strings.Contains(body, "203.0.113.7") || strings.Contains(body, "/secret") || strings.Contains(body, "rows") {
			t.Errorf("%s: body carries data: %s", target, body)
		}
		if got := counterValue(t, env.reg, "connlog_api_audit_failures_total", map[string]string{"endpoint": "/v1/access"}); got != 1 {
			t.Errorf("%s: audit failures %v, want 1", target, got)
		}
	}
}

func TestAccessStoreFailureIsAudited(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code Code
	}{
		{"store down is unavailable", errors.New("connection refused"), CodeUnavailable},
		{"store timeout is unavailable", context.DeadlineExceeded, CodeUnavailable},
		{"store bad filter is a bad request", store.ErrBadFilter, CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, &fakeStore{searchErr: tc.err})
			resp := env.get(t, okQuery, env.tokens.analyst, "INC-42")
			body := readBody(t, resp)
			if got := errorCode(t, body); got != tc.code {
				t.Errorf("code %q, want %q", got, tc.code)
			}
			if strings.Contains(body, tc.err.Error()) {
				t.Errorf("body leaks the store error: %s", body)
			}
			a := env.store.auditRows()[0]
			if a.Status != resp.StatusCode || a.Rows != 0 || !strings.Contains(a.Reason, tc.err.Error()) {
				t.Errorf("audit row %+v", a)
			}
		})
	}
}

func TestAccessClientFilterRefusals(t *testing.T) {
	for name, params := range map[string]string{
		"ip and client":     "ip=203.0.113.7&client=unix:&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z",
		"empty client":      "client=&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z",
		"control byte":      "client=a%01b&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z",
		"client too long":   "client=" + strings.Repeat("a", 254) + "&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z",
		"client, no window": "client=host.example",
	} {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			resp := env.get(t, "/v1/access?"+params, env.tokens.analyst, "INC-42")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", resp.StatusCode, readBody(t, resp))
			}
			if len(env.store.queries) != 0 {
				t.Errorf("%d queries ran", len(env.store.queries))
			}
		})
	}
}
