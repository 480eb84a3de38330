package api

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// decodeJSON decodes a response body into v.
func decodeJSON(tb testing.TB, r *liveResponse, v any) {
	tb.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		tb.Fatalf("status %d, body %q: %v", r.StatusCode, r.body, err)
	}
}

func TestSearchFiltersThroughTheAPI(t *testing.T) {
	env := newLiveEnv(t, nil)
	tok := env.tokens[RoleAnalyst]
	tests := []struct {
		name   string
		target string
		want   int
	}{
		{"one address", "/v1/access?ip=203.0.113.7", 20},
		{"a /24", "/v1/access?ip=203.0.113.0/24", 25},
		{"IPv6 /32", "/v1/access?ip=2001:db8::/32", 5},
		{"port", "/v1/access?ip=203.0.113.7&port=50003", 1},
		{"path prefix", "/v1/access?ip=203.0.113.7&path_prefix=/app/1", 7},
		{"method", "/v1/access?ip=203.0.113.7&method=POST", 5},
		{"status", "/v1/access?ip=203.0.113.7&status=403", 5},
		{"status class", "/v1/access?ip=203.0.113.7&status=2xx", 15},
		{"user agent", "/v1/access?ip=203.0.113.7&user_agent=linux", 20},
		{"user", "/v1/access?ip=203.0.113.0/24&user=u203.0.113.9", 5},
		{"site", "/v1/access?ip=203.0.113.7&site=" + otherSite, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := env.get(t, tt.target+"&"+env.window(), tok, "")
			var got accessResponse
			decodeJSON(t, r, &got)
			if r.StatusCode != 200 || got.Count != tt.want {
				t.Errorf("status %d, %d rows, want %d", r.StatusCode, got.Count, tt.want)
			}
		})
	}
	r := env.get(t, "/v1/connections?ip=203.0.113.7&operation=create&"+env.window(), env.tokens[RoleOfficer], "")
	var conns connectionsResponse
	decodeJSON(t, r, &conns)
	if conns.Count != 5 || conns.Rows[0].Operation != "create" || conns.Rows[0].Path == "" {
		t.Errorf("connection records of creations: %+v", conns)
	}
	for _, bad := range []string{"/v1/connections?ip=203.0.113.7&method=POST", "/v1/connections?ip=203.0.113.7&operation=browse", "/v1/access?ip=203.0.113.7&status=7xx", "/v1/access?ip=203.0.113.7&port=0", "/v1/access?ip=203.0.113.7&method=get"} {
		if r := env.get(t, bad+"&"+env.window(), env.tokens[RoleAdmin], ""); r.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", bad, r.StatusCode)
		}
	}
}

func TestPagesWithCursors(t *testing.T) {
	env := newLiveEnv(t, nil)
	tok := env.tokens[RoleAnalyst]
	target := "/v1/access?ip=203.0.113.0/24&limit=7&" + env.window()
	seen := map[int64]bool{}
	cursor := ""
	for page := 0; ; page++ {
		r := env.get(t, target+cursor, tok, "")
		var got accessResponse
		decodeJSON(t, r, &got)
		for _, row := range got.Rows {
			if seen[row.Offset] {
				t.Fatalf("offset %d twice", row.Offset)
			}
			seen[row.Offset] = true
		}
		if !got.Truncated {
			if got.NextCursor != "" {
				t.Error("a last page with a cursor")
			}
			break
		}
		if page > 10 {
			t.Fatal("no end")
		}
		cursor = "&cursor=" + url.QueryEscape(got.NextCursor)
		if page == 0 {
			// The cursor is bound to its search and cannot be altered.
			b := []byte(got.NextCursor)
			b[3] ^= 1
			for _, bad := range []string{
				"/v1/access?ip=203.0.113.0/24&limit=7&" + env.window() + "&cursor=" + url.QueryEscape(string(b)),
				"/v1/access?ip=203.0.113.0/25&limit=7&" + env.window() + cursor,
				"/v1/connections?ip=203.0.113.0/24&limit=7&" + env.window() + cursor,
			} {
				if r := env.get(t, bad, env.tokens[RoleAdmin], ""); r.StatusCode != 400 || !strings.Contains(r.body, "cursor") {
					t.Errorf("altered or foreign cursor: status %d %s", r.StatusCode, r.body)
				}
			}
		}
	}
	if len(seen) != 25 {
		t.Errorf("%d rows over the pages, want 25", len(seen))
	}
}

func TestExportsStreamTheWholeResultAndAuditIt(t *testing.T) {
	env := newLiveEnv(t, func(c *Config) { c.MaxLimit = 5; c.Search.MaxExportRows = 22 })
	tok := env.tokens[RoleAnalyst]
	for _, tc := range []struct {
		accept    string
		target    string
		wantRows  int
		truncated bool
	}{
		{"application/x-ndjson", "/v1/access?ip=203.0.113.7", 20, false},
		{"text/csv", "/v1/access?ip=203.0.113.7", 20, false},
		{"text/csv;q=0.9, application/json;q=0.1", "/v1/access?ip=203.0.113.0/24", 22, true},
		{"application/x-ndjson", "/v1/connections?ip=203.0.113.7", 20, false},
		{"text/csv", "/v1/connections?ip=2001:db8::/64&limit=3", 3, false},
		{"application/x-ndjson", "/v1/access?ip=192.0.2.1", 0, false},
	} {
		t.Run(tc.accept+" "+tc.target, func(t *testing.T) {
			tk := tok
			if strings.HasPrefix(tc.target, "/v1/connections") {
				tk = env.tokens[RoleOfficer]
			}
			before := env.auditCount(t)
			r := env.do(t, http.MethodGet, tc.target+"&"+env.window(), "Bearer "+tk, "INC-1234", tc.accept, "", true)
			if r.StatusCode != 200 {
				t.Fatalf("status %d: %s", r.StatusCode, r.body)
			}
			if r.auditsAtWrite != before+1 {
				t.Errorf("%d audit rows when the export started, want 1", r.auditsAtWrite-before)
			}
			var rows int
			if strings.HasPrefix(tc.accept, "text/csv") {
				recs, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				rows = len(recs) - 1
				if recs[0][0] != "time" || recs[0][1] != "client_ip" {
					t.Errorf("CSV header %q", recs[0])
				}
			} else {
				for line := range strings.Lines(r.body) {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil || m["client_ip"] == nil {
						t.Fatalf("NDJSON line %q: %v", line, err)
					}
					rows++
				}
			}
			if rows != tc.wantRows {
				t.Errorf("%d rows, want %d", rows, tc.wantRows)
			}
			sum := sha256.Sum256([]byte(r.body))
			if got := r.Trailer.Get(trailerSHA256); got != hex.EncodeToString(sum[:]) {
				t.Errorf("trailer sha256 %q, body's %x", got, sum)
			}
			if r.Trailer.Get(trailerRows) != strconv.Itoa(tc.wantRows) || r.Trailer.Get(trailerTruncated) != strconv.FormatBool(tc.truncated) {
				t.Errorf("trailers %v", r.Trailer)
			}
			audits, err := env.st.SearchAudit(t.Context(), auditWindowAll(env))
			if err != nil {
				t.Fatal(err)
			}
			audits = audits[before:]
			if len(audits) != 2 || audits[0].Outcome != "ok" || audits[1].Outcome != outcomeCompleted ||
				audits[1].Rows != tc.wantRows || !strings.Contains(audits[1].Reason, hex.EncodeToString(sum[:])) ||
				audits[0].Filters != audits[1].Filters || !strings.Contains(audits[0].Filters, `"export"`) {
				t.Errorf("audit rows of the export: %+v", audits)
			}
		})
	}
}

func TestIPSummaryAndSubjectRequest(t *testing.T) {
	env := newLiveEnv(t, nil)
	r := env.get(t, "/v1/ip/203.0.113.7?"+env.window(), env.tokens[RoleAnalyst], "")
	var sum ipResponse
	decodeJSON(t, r, &sum)
	if sum.Requests != 20 || sum.FirstSeen != env.base.Format(timeFormat) || len(sum.Statuses) != 2 || sum.Statuses[0] != (valueCount{"200", 15}) {
		t.Errorf("summary %+v", sum)
	}
	r = env.get(t, "/v1/ip/::ffff:203.0.113.7", env.tokens[RoleAnalyst], "")
	decodeJSON(t, r, &sum)
	if r.StatusCode != 200 || sum.Requests != 20 || sum.IP != "203.0.113.7" {
		t.Errorf("default window: %d %+v", r.StatusCode, sum)
	}
	for _, bad := range []string{"/v1/ip/203.0.113.0%2F24", "/v1/ip/nope", "/v1/ip/203.0.113.7?top=0", "/v1/ip/203.0.113.7?limit=3"} {
		if r := env.get(t, bad, env.tokens[RoleAnalyst], ""); r.StatusCode != 400 {
			t.Errorf("%s: status %d", bad, r.StatusCode)
		}
	}
	// Consultations so far touching 203.0.113.7: the two summaries. A
	// search of the /24 touches it too; one of 198.51.100.0/24 does not.
	env.get(t, "/v1/connections?ip=203.0.113.0/24&"+env.window(), env.tokens[RoleOfficer], "")
	env.do(t, http.MethodGet, "/v1/access?ip=198.51.100.0/24&"+env.window(), "Bearer "+env.tokens[RoleAnalyst], "OTHER-9", "", "", false)
	// A legal hold of the address is a consultation too (its audit row
	// names the hold, not the address).
	sel := `{"ip":"203.0.113.7","from":"` + env.base.Format(time.RFC3339) + `","to":"` + env.base.Add(time.Hour).Format(time.RFC3339) + `"}`
	if r := env.do(t, http.MethodPost, "/v1/holds", "Bearer "+env.tokens[RoleOfficer], "INC-1234", "",
		`{"reference":"GEL-1","expires":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`","selector":`+sel+`}`, false); r.StatusCode != 200 {
		t.Fatalf("hold: %d %s", r.StatusCode, r.body)
	}
	r = env.get(t, "/v1/audit/subject?ip=203.0.113.7", env.tokens[RoleAuditor], "")
	var subj subjectResponse
	decodeJSON(t, r, &subj)
	if r.StatusCode != 200 || subj.Count != 4 {
		t.Fatalf("subject: %d %s", r.StatusCode, r.body)
	}
	for _, c := range subj.Consultations {
		if c.Purpose != "INC-1234" || c.Date != time.Now().UTC().Format(time.DateOnly) {
			t.Errorf("consultation %+v", c)
		}
	}
	for _, leak := range []string{"analyst-person", "officer-person", RoleAnalyst, "192.0.2."} {
		if strings.Contains(r.body, leak) {
			t.Errorf("the subject's answer names staff: %q in %s", leak, r.body)
		}
	}
	r = env.get(t, "/v1/audit?actor=analyst-person&limit=2&"+"from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)+"&to="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), env.tokens[RoleAuditor], "")
	var aud auditResponse
	decodeJSON(t, r, &aud)
	if r.StatusCode != 200 || aud.Count != 2 || !aud.Truncated || aud.NextCursor == "" || aud.Rows[0].Actor != "analyst-person" {
		t.Errorf("audit search: %d %s", r.StatusCode, r.body)
	}
}

func TestRateLimitPerCredential(t *testing.T) {
	env := newLiveEnv(t, func(c *Config) { c.RateLimit = RateLimitConfig{RequestsPerSecond: 0.01, Burst: 2} })
	target := "/v1/access?ip=203.0.113.7&" + env.window()
	for i, want := range []int{200, 200, 429} {
		r := env.get(t, target, env.tokens[RoleAnalyst], "")
		if r.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d", i, r.StatusCode, want)
		}
		if want == 429 {
			if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
			}
			var e errorBody
			decodeJSON(t, r, &e)
			if e.Error.Code != CodeRateLimited {
				t.Errorf("code %q", e.Error.Code)
			}
		}
	}
	// Another person is not limited by the first one's requests.
	if r := env.get(t, target, env.tokens[RoleAdmin], ""); r.StatusCode != 200 {
		t.Errorf("another credential: status %d", r.StatusCode)
	}
	audits, err := env.st.SearchAudit(t.Context(), auditWindowAll(env))
	if err != nil {
		t.Fatal(err)
	}
	if len(audits) != 4 || audits[2].Status != 429 || audits[2].Outcome != "denied" || audits[2].Actor != "analyst-person" {
		t.Errorf("audit rows %+v", audits)
	}
}
