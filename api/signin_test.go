package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/api/oidctest"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// signInEnv is connlog's API on a loopback listener with the console's
// OIDC sign-in configured against an oidctest provider, and a browser: an
// HTTP client with a cookie jar that follows no redirect.
type signInEnv struct {
	srv     *Server
	st      *fakeStore
	idp     *oidctest.Issuer
	base    string
	browser *http.Client
	logs    *bytes.Buffer
}

func newSignInEnv(t *testing.T, secret string) *signInEnv {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	idp := oidctest.New(t, "connlog-console", secret, base+"/ui/oidc/callback")
	idp.SetClaims(map[string]any{"sub": "u-1", "email": "olivia@example.org", "groups": []string{"staff", "soc"}, "sites": []string{"a.example"}})
	cfg := Config{OIDC: OIDCConfig{
		Issuer:      idp.URL,
		Audience:    "connlog-api",
		ClientID:    "connlog-console",
		RedirectURL: base + "/ui/oidc/callback",
		RoleClaim:   "groups",
		Roles:       []OIDCRole{{Claim: "soc", Role: RoleAnalyst}, {Claim: "legal", Role: RoleOfficer}},
		SitesClaim:  "sites",
	}}
	if secret != "" {
		// A confidential client, its secret in a file only connlog reads.
		path := filepath.Join(t.TempDir(), "client.secret")
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.OIDC.ClientSecretFile = path
	}
	st := &fakeStore{hits: []store.Hit{{ClientIP: netip.MustParseAddr("203.0.113.7"), EventTime: time.Now().Add(-time.Minute)}}}
	var logs bytes.Buffer
	srv, err := New(cfg, st, prometheus.NewRegistry(), nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &signInEnv{srv: srv, st: st, idp: idp, base: base, browser: browser, logs: &logs}
}

// do sends a request as the console does, and returns the status and body.
func (e *signInEnv) do(t *testing.T, method, path string, header map[string]string, body any) (int, string, *http.Response) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, e.base+path, rd)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

// start begins a sign-in and returns the provider's authorization URL.
func (e *signInEnv) start(t *testing.T) *url.URL {
	t.Helper()
	code, body, _ := e.do(t, "POST", "/v1/session/oidc", nil, nil)
	if code != 200 {
		t.Fatalf("start sign-in: %d %s", code, body)
	}
	var a struct{ URL string }
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// back follows the provider's redirect to the callback as the browser
// does, and returns the parameters the console's page receives.
func (e *signInEnv) back(t *testing.T, cb *url.URL) url.Values {
	t.Helper()
	code, body, resp := e.do(t, "GET", cb.RequestURI(), nil, nil)
	loc := resp.Header.Get("Location")
	frag, ok := strings.CutPrefix(loc, "/ui/#oidc?")
	if code != http.StatusSeeOther || !ok {
		t.Fatalf("callback: %d %q %s", code, loc, body)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("the callback may leak the code in a Referer")
	}
	v, err := url.ParseQuery(frag)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// finish posts the parameters to the API as the console's page does.
func (e *signInEnv) finish(t *testing.T, v url.Values) (int, string, *http.Response) {
	t.Helper()
	return e.do(t, "POST", "/v1/session/oidc/callback", nil, map[string]string{"code": v.Get("code"), "state": v.Get("state"), "error": v.Get("error")})
}

// signIn runs a whole sign-in and returns the answer.
func (e *signInEnv) signIn(t *testing.T) (int, string) {
	t.Helper()
	code, body, _ := e.finish(t, e.back(t, e.idp.Authorize(t, e.start(t).String())))
	return code, body
}

// refusals returns the counted audit rows of refused sign-ins, flushed.
func (e *signInEnv) refusals(t *testing.T) []audit.Entry {
	t.Helper()
	if err := e.srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e.st.auditRows()
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestOIDCSignInHappyPath(t *testing.T) {
	for _, secret := range []string{"s3cret-of-the-console", ""} {
		name := map[bool]string{true: "confidential client", false: "public client"}[secret != ""]
		t.Run(name, func(t *testing.T) {
			e := newSignInEnv(t, secret)
			// The page learns that it may offer the provider.
			code, body, _ := e.do(t, "GET", "/v1/session", nil, nil)
			if code != 200 || !strings.Contains(body, `"oidc":{"name":"127.0.0.1"}`) || !strings.Contains(body, `"session":null`) {
				t.Fatalf("GET /v1/session: %d %s", code, body)
			}
			// The start sets the login cookie: HttpOnly, Lax, for the
			// sign-in endpoints only, short-lived.
			_, body, resp := e.do(t, "POST", "/v1/session/oidc", nil, nil)
			lc := cookieNamed(resp, auth.LoginCookie)
			if lc == nil || !lc.HttpOnly || lc.SameSite != http.SameSiteLaxMode || lc.Path != auth.LoginPath || lc.MaxAge != 600 {
				t.Fatalf("login cookie %+v", lc)
			}
			var a struct{ URL string }
			_ = json.Unmarshal([]byte(body), &a)
			authURL, _ := url.Parse(a.URL)
			q := authURL.Query()
			if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("nonce") == "" || len(q.Get("state")) < 43 ||
				q.Get("client_id") != "connlog-console" || q.Get("response_type") != "code" || !strings.Contains(q.Get("scope"), "openid") {
				t.Fatalf("authorization URL %s", a.URL)
			}
			code, body, resp = e.finish(t, e.back(t, e.idp.Authorize(t, a.URL)))
			if code != 200 {
				t.Fatalf("sign-in: %d %s", code, body)
			}
			var ans struct {
				Me   meAnswer
				CSRF string
			}
			_ = json.Unmarshal([]byte(body), &ans)
			if ans.Me.Name != "olivia@example.org" || ans.Me.Role != RoleAnalyst || strings.Join(ans.Me.Sites, ",") != "a.example" || len(ans.CSRF) != 43 {
				t.Fatalf("sign-in answer %s", body)
			}
			sc := cookieNamed(resp, auth.SessionCookiePlain)
			if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.Secure || sc.MaxAge != 0 {
				t.Fatalf("session cookie %+v", sc)
			}
			if strings.Contains(body, sc.Value) {
				t.Error("the session ID is in the answer: page script could read it")
			}
			rows := e.st.auditRows()
			if len(rows) != 1 || rows[0].Endpoint != "/v1/session/oidc/callback" || rows[0].Actor != "olivia@example.org" || rows[0].Role != RoleAnalyst || rows[0].Status != 200 || rows[0].Outcome != "ok" {
				t.Fatalf("sign-in audit rows %+v", rows)
			}

			// The session works like a token, with its CSRF token and a purpose.
			csrf := map[string]string{auth.CSRFHeader: ans.CSRF, "X-Purpose": "INC-1234"}
			from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
			target := "/v1/access?ip=203.0.113.7&from=" + from + "&to=" + to
			if code, body, _ := e.do(t, "GET", target, csrf, nil); code != 200 {
				t.Fatalf("search with the session: %d %s", code, body)
			}
			if q := e.st.queries[0]; strings.Join(q.Sites, ",") != "a.example" {
				t.Errorf("search limited to sites %v, want the claim's", q.Sites)
			}
			if r := e.st.auditRows()[1]; r.Actor != "olivia@example.org" || r.Purpose != "INC-1234" || r.Endpoint != "/v1/access" {
				t.Errorf("search audit row %+v", r)
			}
			// The cookie alone is no credential.
			if code, body, _ := e.do(t, "GET", target, map[string]string{"X-Purpose": "INC-1234"}, nil); code != 403 || !strings.Contains(body, "CSRF") {
				t.Errorf("cookie without CSRF token: %d %s", code, body)
			}
			if code, _, _ := e.do(t, "GET", target, map[string]string{"X-Purpose": "INC-1234", auth.CSRFHeader: "wrong"}, nil); code != 403 {
				t.Errorf("cookie with a wrong CSRF token: %d", code)
			}
			// A reload finds the session and its CSRF token.
			if code, body, _ := e.do(t, "GET", "/v1/session", nil, nil); code != 200 || !strings.Contains(body, ans.CSRF) {
				t.Errorf("GET /v1/session signed in: %d %s", code, body)
			}
			// An export link runs under the session.
			code, body, _ = e.do(t, "POST", "/v1/downloads", csrf, map[string]string{"path": "/v1/access", "query": "ip=203.0.113.7&from=" + from + "&to=" + to, "format": "csv"})
			if code != 200 {
				t.Fatalf("download ticket: %d %s", code, body)
			}
			// Sign out ends it, audited.
			code, body, resp = e.do(t, "DELETE", "/v1/session", map[string]string{auth.CSRFHeader: ans.CSRF}, nil)
			if code != 200 {
				t.Fatalf("sign out: %d %s", code, body)
			}
			if c := cookieNamed(resp, auth.SessionCookiePlain); c == nil {
				t.Error("sign out does not remove the cookie")
			}
			// The cookie is gone from the browser, and dead if kept.
			req, _ := http.NewRequestWithContext(t.Context(), "GET", e.base+"/v1/me", nil)
			req.AddCookie(&http.Cookie{Name: auth.SessionCookiePlain, Value: sc.Value})
			req.Header.Set(auth.CSRFHeader, ans.CSRF)
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
				t.Errorf("the session cookie after sign out: %v %v", resp, err)
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(b), "session has ended") {
					t.Errorf("after sign out: %s", b)
				}
			}
			var signedOut bool
			for _, r := range e.st.auditRows() {
				signedOut = signedOut || r.Endpoint == "/v1/session" && r.Method == "DELETE" && r.Actor == "olivia@example.org" && r.Status == 200
			}
			if !signedOut {
				t.Errorf("no audit row of the sign out: %+v", e.st.auditRows())
			}
			if strings.Contains(e.logs.String(), ans.CSRF) || strings.Contains(e.logs.String(), sc.Value) || secret != "" && strings.Contains(e.logs.String(), secret) {
				t.Error("a secret of the session is in the logs")
			}
		})
	}
}

// TestOIDCSignInRefusals: each way a sign-in can be forged or go wrong is
// refused with the API's words, names nobody, and is counted in the audit
// trail with the bad credentials of its source.
func TestOIDCSignInRefusals(t *testing.T) {
	tests := []struct {
		name string
		// run returns the answer of the sign-in's last step.
		run        func(t *testing.T, e *signInEnv) (int, string)
		wantMsg    string
		wantReason string
		// wantIdP is a refusal the provider must have logged, if any.
		wantIdP string
		// signedIn: an earlier step of the case signed in.
		signedIn bool
	}{
		{
			name: "wrong state",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				v := e.back(t, e.idp.Authorize(t, e.start(t).String()))
				v.Set("state", "forged-"+v.Get("state"))
				code, body, _ := e.finish(t, v)
				if _, n, _ := e.idp.Stats(); n != 0 {
					t.Error("the code was exchanged despite the wrong state")
				}
				return code, body
			},
			wantMsg: "(state)", wantReason: "state does not match",
		},
		{
			name: "replayed code",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				v := e.back(t, e.idp.Authorize(t, e.start(t).String()))
				if code, body, _ := e.finish(t, v); code != 200 {
					t.Fatalf("first sign-in: %d %s", code, body)
				}
				// The same answer again finds its sign-in finished (and its
				// login cookie removed).
				if code, body, _ := e.finish(t, v); code != 401 || !strings.Contains(body, "started no sign-in") {
					t.Errorf("same answer again: %d %s", code, body)
				}
				// The old code in a new sign-in's answer: the provider refuses it.
				v2 := e.back(t, e.idp.Authorize(t, e.start(t).String()))
				v2.Set("code", v.Get("code"))
				code, body, _ := e.finish(t, v2)
				return code, body
			},
			wantMsg: "refused the sign-in code", wantReason: "invalid_grant", wantIdP: "code already used", signedIn: true,
		},
		{
			name: "bad nonce",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				e.idp.Tamper(func(c map[string]any) { c["nonce"] = "another-sign-in's" })
				return e.signIn(t)
			},
			wantMsg: "(nonce)", wantReason: "nonce does not match",
		},
		{
			name: "no PKCE in the authorization request",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				u := e.start(t)
				q := u.Query()
				q.Del("code_challenge")
				q.Del("code_challenge_method")
				u.RawQuery = q.Encode()
				code, body, _ := e.finish(t, e.back(t, e.idp.Authorize(t, u.String())))
				return code, body
			},
			wantMsg: "did not sign you in (invalid_request)", wantReason: "answered invalid_request", wantIdP: "no PKCE",
		},
		{
			name: "code issued for another PKCE challenge (code injection)",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				// The attacker signs in at the provider with a challenge
				// of their own and slips the code into the victim's answer.
				stolen := e.start(t)
				q := stolen.Query()
				q.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
				stolen.RawQuery = q.Encode()
				code := e.idp.Authorize(t, stolen.String()).Query().Get("code")
				v := e.back(t, e.idp.Authorize(t, e.start(t).String()))
				v.Set("code", code)
				status, body, _ := e.finish(t, v)
				return status, body
			},
			wantMsg: "refused the sign-in code", wantReason: "invalid_grant", wantIdP: "PKCE code_verifier does not match",
		},
		{
			name: "expired ID token",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				e.idp.Tamper(func(c map[string]any) {
					c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
					c["exp"] = time.Now().Add(-time.Hour).Unix()
				})
				return e.signIn(t)
			},
			wantMsg: "already expired", wantReason: "id token: oidc: token is expired",
		},
		{
			name: "ID token for another client",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				e.idp.Tamper(func(c map[string]any) { c["aud"] = "connlog-api" })
				return e.signIn(t)
			},
			wantMsg: "not valid here", wantReason: "audience",
		},
		{
			name: "ID token from another issuer",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				e.idp.Tamper(func(c map[string]any) { c["iss"] = "https://idp.example.org" })
				return e.signIn(t)
			},
			wantMsg: "not valid here", wantReason: "different provider",
		},
		{
			name: "no sign-in started in this browser",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				v := e.back(t, e.idp.Authorize(t, e.start(t).String()))
				e.browser.Jar, _ = cookiejar.New(nil) // another browser: no login cookie
				code, body, _ := e.finish(t, v)
				return code, body
			},
			wantMsg: "started no sign-in", wantReason: "no login cookie",
		},
		{
			name: "the provider refused",
			run: func(t *testing.T, e *signInEnv) (int, string) {
				e.start(t)
				code, body, _ := e.finish(t, url.Values{"error": {"access_denied"}})
				return code, body
			},
			wantMsg: "(access_denied)", wantReason: "answered access_denied",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSignInEnv(t, "s3cret")
			code, body := tt.run(t, e)
			if code != 401 || !strings.Contains(body, tt.wantMsg) {
				t.Fatalf("got %d %s, want 401 with %q", code, body, tt.wantMsg)
			}
			var found bool
			for _, r := range e.refusals(t) {
				if r.Endpoint == "/v1/session/oidc/callback" && r.Status == 401 {
					if r.Actor != "" {
						t.Errorf("audit row %+v names someone", r)
					}
					found = found || strings.Contains(r.Reason, tt.wantReason)
				}
			}
			if !found {
				t.Errorf("no audit row of the refusal with a reason with %q: %+v", tt.wantReason, e.st.auditRows())
			}
			if tt.wantIdP != "" {
				_, _, refused := e.idp.Stats()
				if !strings.Contains(strings.Join(refused, "|"), tt.wantIdP) {
					t.Errorf("provider refusals %q, want %q", refused, tt.wantIdP)
				}
			}
			// Nobody is signed in.
			if code, body, _ := e.do(t, "GET", "/v1/session", nil, nil); !tt.signedIn && !strings.Contains(body, `"session":null`) {
				t.Errorf("after a refused sign-in: %d %s", code, body)
			}
		})
	}
}

// TestOIDCSignInClaims: the sign-in maps the ID token's claims to a role
// and sites with the bearer JWT's mapping.
func TestOIDCSignInClaims(t *testing.T) {
	tests := []struct {
		name      string
		claims    map[string]any
		wantCode  int
		wantName  string
		wantRole  string
		wantSites string
		wantMsg   string
	}{
		{"group soc: analyst on its sites", map[string]any{"groups": []string{"staff", "soc"}, "sites": []string{"a.example", "b.example"}}, 200, "olivia@example.org", RoleAnalyst, "a.example,b.example", ""},
		{"group legal as a string: officer, every site", map[string]any{"groups": "legal"}, 200, "olivia@example.org", RoleOfficer, "", ""},
		{"no email: named by sub", map[string]any{"email": nil, "groups": []string{"soc"}}, 200, "u-1", RoleAnalyst, "", ""},
		{"no mapped group: refused, named", map[string]any{"groups": []string{"staff"}}, 403, "olivia@example.org", "", "", "no connlog role"},
		{"two roles: refused, named", map[string]any{"groups": []string{"soc", "legal"}}, 403, "olivia@example.org", "", "", "several connlog roles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSignInEnv(t, "")
			c := map[string]any{"sub": "u-1", "email": "olivia@example.org"}
			for k, v := range tt.claims {
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
			}
			e.idp.SetClaims(c)
			code, body := e.signIn(t)
			if code != tt.wantCode || !strings.Contains(body, tt.wantMsg) {
				t.Fatalf("sign-in: %d %s", code, body)
			}
			rows := e.st.auditRows()
			if len(rows) != 1 || rows[0].Actor != tt.wantName || rows[0].Status != tt.wantCode {
				t.Fatalf("audit rows %+v", rows)
			}
			if code != 200 {
				return
			}
			var ans struct{ Me meAnswer }
			_ = json.Unmarshal([]byte(body), &ans)
			if ans.Me.Name != tt.wantName || ans.Me.Role != tt.wantRole || strings.Join(ans.Me.Sites, ",") != tt.wantSites {
				t.Errorf("signed in as %+v", ans.Me)
			}
		})
	}
}

func TestOIDCSessionExpiry(t *testing.T) {
	e := newSignInEnv(t, "")
	now := time.Now()
	e.srv.now = func() time.Time { return now }
	e.idp.SetClaims(map[string]any{"sub": "u-1", "groups": "soc"})
	code, body := e.signIn(t)
	if code != 200 {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	var ans struct{ CSRF string }
	_ = json.Unmarshal([]byte(body), &ans)
	h := map[string]string{auth.CSRFHeader: ans.CSRF}
	// Used within the idle timeout, the session lives on…
	for range 3 {
		now = now.Add(DefaultOIDCSessionIdleTimeout - time.Minute)
		if code, body, _ := e.do(t, "GET", "/v1/me", h, nil); code != 200 {
			t.Fatalf("active session: %d %s", code, body)
		}
	}
	// …not past its idle timeout.
	now = now.Add(DefaultOIDCSessionIdleTimeout)
	if code, _, _ := e.do(t, "GET", "/v1/me", h, nil); code != 401 {
		t.Errorf("idle session: %d", code)
	}
	// Nor past its maximum age, however busy.
	code, body = e.signIn(t)
	if code != 200 {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	_ = json.Unmarshal([]byte(body), &ans)
	h = map[string]string{auth.CSRFHeader: ans.CSRF}
	for elapsed := time.Duration(0); elapsed < DefaultOIDCSessionMaxAge-14*time.Minute; elapsed += 14 * time.Minute {
		now = now.Add(14 * time.Minute)
		if code, _, _ := e.do(t, "GET", "/v1/me", h, nil); code != 200 {
			t.Fatalf("busy session after %s: %d", elapsed, code)
		}
	}
	now = now.Add(20 * time.Minute)
	if code, _, _ := e.do(t, "GET", "/v1/me", h, nil); code != 401 {
		t.Errorf("session past its maximum age: %d", code)
	}
}

func TestOIDCSignInConfigValidate(t *testing.T) {
	ok := OIDCConfig{Issuer: "https://idp.example.org", Audience: "connlog", RedirectURL: "https://connlog.example.org/ui/oidc/callback"}
	tests := []struct {
		name string
		edit func(*OIDCConfig)
		want string
	}{
		{"valid", func(*OIDCConfig) {}, ""},
		{"loopback http", func(c *OIDCConfig) { c.RedirectURL = "http://127.0.0.1:8080/ui/oidc/callback" }, ""},
		{"plain http", func(c *OIDCConfig) { c.RedirectURL = "http://connlog.example.org/ui/oidc/callback" }, "must use https"},
		{"another path", func(c *OIDCConfig) { c.RedirectURL = "https://connlog.example.org/callback" }, "/ui/oidc/callback"},
		{"a query", func(c *OIDCConfig) { c.RedirectURL = "https://connlog.example.org/ui/oidc/callback?x=1" }, "nothing else"},
		{"relative", func(c *OIDCConfig) { c.RedirectURL = "/ui/oidc/callback" }, "absolute"},
		{"secret twice", func(c *OIDCConfig) { c.ClientSecret, c.ClientSecretFile = "x", "/etc/x" }, "not both"},
		{"idle above max", func(c *OIDCConfig) { c.SessionIdleTimeout, c.SessionMaxAge = 2*time.Hour, time.Hour }, "above session_max_age"},
		{"sign-in without issuer", func(c *OIDCConfig) { c.Issuer, c.Audience = "", "" }, "issuer is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := Config{OIDC: c}.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestOIDCClientSecretFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.secret")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{OIDC: OIDCConfig{Issuer: "https://idp.example.org", Audience: "connlog", RedirectURL: "https://connlog.example.org/ui/oidc/callback", ClientSecretFile: path}}
	if _, err := New(cfg, &fakeStore{}, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable secret file: %v", err)
	}
}

// TestOIDCSignInOpenAPI validates the real answers of the sign-in's
// endpoints against the OpenAPI document (TestOpenAPI checks the others).
func TestOIDCSignInOpenAPI(t *testing.T) {
	doc, router := loadOpenAPI(t)
	e := newSignInEnv(t, "")
	seen := map[string]bool{}
	check := func(method, target, body string, header map[string]string, want int) string {
		t.Helper()
		var b any
		if body != "" {
			b = json.RawMessage(body)
		}
		code, answer, resp := e.do(t, method, target, header, b)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, target, code, answer, want)
		}
		op := validateAgainst(t, router, method+" "+target, openapiCase{method: method, target: target, body: body}, &liveResponse{Response: resp, body: answer})
		if code < 300 {
			seen[op] = true
		}
		return answer
	}
	check("GET", "/v1/session", "", nil, 200)
	check("POST", "/v1/session/oidc/callback", `{"code":"x","state":"y"}`, nil, 401)
	var start struct{ URL string }
	_ = json.Unmarshal([]byte(check("POST", "/v1/session/oidc", "", nil, 200)), &start)
	v := e.back(t, e.idp.Authorize(t, start.URL))
	body, _ := json.Marshal(map[string]string{"code": v.Get("code"), "state": v.Get("state")})
	var ans struct{ CSRF string }
	_ = json.Unmarshal([]byte(check("POST", "/v1/session/oidc/callback", string(body), nil, 200)), &ans)
	check("GET", "/v1/session", "", nil, 200)
	check("DELETE", "/v1/session", "", map[string]string{auth.CSRFHeader: "wrong"}, 403)
	check("DELETE", "/v1/session", "", map[string]string{auth.CSRFHeader: ans.CSRF}, 200)
	check("DELETE", "/v1/session", "", map[string]string{auth.CSRFHeader: ans.CSRF}, 401)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if op := method + " " + path; strings.HasPrefix(path, "/v1/session") && !seen[op] {
				t.Errorf("%s never seen answering with success", op)
			}
		}
	}
}
