package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestMeNamesTheCallerAndIsAudited(t *testing.T) {
	env := newLiveEnv(t, nil)
	before := env.auditCount(t)
	r := env.do(t, "GET", "/v1/me", "Bearer "+env.tokens[RoleStats+"@other"], "", "", "", false)
	if r.StatusCode != 200 {
		t.Fatalf("GET /v1/me: %d %s", r.StatusCode, r.body)
	}
	var me meAnswer
	if err := json.Unmarshal([]byte(r.body), &me); err != nil {
		t.Fatal(err)
	}
	if me.Name != "stats-elsewhere" || me.Role != RoleStats || len(me.Sites) != 1 || me.Sites[0] != otherSite {
		t.Errorf("GET /v1/me = %+v", me)
	}
	if r := env.do(t, "GET", "/v1/me", "", "", "", "", false); r.StatusCode != 401 {
		t.Errorf("GET /v1/me without a token: %d", r.StatusCode)
	}
	if r := env.do(t, "POST", "/v1/me", "Bearer "+env.tokens[RoleStats], "", "", "", false); r.StatusCode != 405 {
		t.Errorf("POST /v1/me: %d, want 405", r.StatusCode)
	}
	// The refusal without a token names nobody: it is counted with its
	// source's other refusals and written when its window closes.
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := env.auditCount(t); n != before+3 {
		t.Errorf("%d audit rows written, want 3", n-before)
	}
}

func TestConsoleIsServedWithItsSecurityHeaders(t *testing.T) {
	env := newLiveEnv(t, nil)
	r := env.do(t, "GET", "/ui/", "", "", "", "", false)
	if r.StatusCode != 200 || !strings.Contains(r.body, `data-testid="error"`) {
		t.Fatalf("GET /ui/: %d %.200s", r.StatusCode, r.body)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

// mint asks for a download ticket and returns the answer.
func mint(t *testing.T, env *liveEnv, token, purpose, body string) *liveResponse {
	t.Helper()
	return env.do(t, "POST", "/v1/downloads", "Bearer "+token, purpose, "", body, false)
}

func TestDownloadTicketStreamsTheExportOnceWithItsPurpose(t *testing.T) {
	env := newLiveEnv(t, nil)
	q := url.Values{"ip": {"203.0.113.0/24"}, "from": {env.base.Add(-time.Hour).Format(time.RFC3339)}, "to": {env.base.Add(time.Hour).Format(time.RFC3339)}}
	body, _ := json.Marshal(ticketRequest{Path: "/v1/access", Query: q.Encode() + "&purpose=sneaky&cursor=x", Format: "csv"})
	r := mint(t, env, env.tokens[RoleAnalyst], "INC-77 ticket", string(body))
	if r.StatusCode != 200 {
		t.Fatalf("POST /v1/downloads: %d %s", r.StatusCode, r.body)
	}
	var tk ticketAnswer
	if err := json.Unmarshal([]byte(r.body), &tk); err != nil || !strings.HasPrefix(tk.URL, "/v1/downloads/") {
		t.Fatalf("ticket answer %s", r.body)
	}
	got := env.do(t, "GET", tk.URL, "", "", "", "", false)
	if got.StatusCode != 200 || !strings.HasPrefix(got.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("GET %s: %d %s %.300s", tk.URL, got.StatusCode, got.Header.Get("Content-Type"), got.body)
	}
	if cd := got.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="connlog-access-`) || !strings.HasSuffix(cd, `.csv"`) {
		t.Errorf("Content-Disposition %q", cd)
	}
	// 25 rows of 203.0.113.0/24 and the header line.
	if lines := strings.Count(strings.TrimSpace(got.body), "\n") + 1; lines != 26 {
		t.Errorf("export has %d lines, want 26", lines)
	}
	if again := env.do(t, "GET", tk.URL, "", "", "", "", false); again.StatusCode != 404 {
		t.Errorf("second use of a ticket: %d, want 404", again.StatusCode)
	}
	// The export is audited as the analyst's, with the purpose stated when
	// minting (not the one smuggled in the query). The reuse names nobody:
	// it is counted like a bad token, and written when its window closes.
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	rows, err := env.st.SearchAudit(t.Context(), auditWindowAll(env))
	if err != nil {
		t.Fatal(err)
	}
	var export, refused int
	for _, a := range rows {
		if a.Endpoint == "/v1/access" && a.Actor == "analyst-person" && a.Purpose == "INC-77 ticket" {
			export++
		}
		if a.Endpoint == "/v1/downloads/{ticket}" && a.Status == 404 {
			refused++
		}
	}
	if export != 2 || refused != 1 { // the export's two rows (start, completed); the reuse
		t.Errorf("audit: %d export rows, %d refused ticket rows; want 2 and 1", export, refused)
	}
}

func TestDownloadTicketRefusals(t *testing.T) {
	env := newLiveEnv(t, nil)
	ok := `{"path":"/v1/access","query":"ip=203.0.113.7","format":"csv"}`
	for _, tc := range []struct {
		name, token, purpose, body string
		want                       int
	}{
		{"no purpose", env.tokens[RoleAnalyst], "", ok, 400},
		{"wrong role", env.tokens[RoleAuditor], "INC-1", ok, 403},
		{"not exportable", env.tokens[RoleAdmin], "INC-1", `{"path":"/v1/me","query":"","format":"csv"}`, 400},
		{"bad format", env.tokens[RoleAnalyst], "INC-1", `{"path":"/v1/access","query":"","format":"xlsx"}`, 400},
		{"unknown field", env.tokens[RoleAnalyst], "INC-1", `{"path":"/v1/access","format":"csv","x":1}`, 400},
	} {
		if r := mint(t, env, tc.token, tc.purpose, tc.body); r.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.StatusCode, r.body, tc.want)
		}
	}
	if r := env.do(t, "GET", "/v1/downloads/not-a-ticket", "", "", "", "", false); r.StatusCode != 404 {
		t.Errorf("unknown ticket: %d", r.StatusCode)
	}
	// A ticket is bound to the address that minted it.
	r := mint(t, env, env.tokens[RoleAnalyst], "INC-1", ok)
	var tk ticketAnswer
	if err := json.Unmarshal([]byte(r.body), &tk); err != nil {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", tk.URL, nil)
	req.RemoteAddr = "198.51.100.1:4444"
	req.RequestURI = tk.URL
	rec := httptest.NewRecorder()
	env.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != 404 {
		t.Errorf("ticket from another address: %d, want 404", rec.Code)
	}
	// An expired ticket is refused.
	r = mint(t, env, env.tokens[RoleAnalyst], "INC-1", ok)
	_ = json.Unmarshal([]byte(r.body), &tk)
	env.srv.now = func() time.Time { return time.Now().Add(ticketTTL + time.Second) }
	if r := env.do(t, "GET", tk.URL, "", "", "", "", false); r.StatusCode != 404 {
		t.Errorf("expired ticket: %d", r.StatusCode)
	}
}

// TestGuessingTicketsIsLimitedLikeBadTokens: a ticket is a credential, so
// guessing tickets costs what guessing tokens costs: 404 until the
// source's burst is spent, then 429, and counted audit rows rather than
// one written per request.
func TestGuessingTicketsIsLimitedLikeBadTokens(t *testing.T) {
	env := newLiveEnv(t, func(c *Config) { c.BadCredentials.RequestsPerSecond = 0 }) // the default limit
	before := env.auditCount(t)
	codes := map[int]int{}
	for i := range 30 {
		r := env.do(t, "GET", "/v1/downloads/guess"+strings.Repeat("x", i), "", "", "", "", false)
		codes[r.StatusCode]++
	}
	if codes[404] != DefaultBadCredentialsBurst || codes[429] != 30-DefaultBadCredentialsBurst {
		t.Errorf("ticket guesses answered %v, want %d × 404 then 429", codes, DefaultBadCredentialsBurst)
	}
	if n := env.auditCount(t); n != before {
		t.Errorf("%d audit rows written during the guesses, want none before the window closes", n-before)
	}
	if err := env.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := env.auditCount(t); n == before || n > before+4 {
		t.Errorf("%d counted audit rows for 30 guesses, want a few", n-before)
	}
}
