package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store"
)

// testIdP is an OpenID provider on loopback: discovery and JWKS, with one
// RSA and one ECDSA key. Tokens are signed by the test itself.
type testIdP struct {
	srv      *httptest.Server
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	keyFetch atomic.Int64
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newTestIdP(tb testing.TB) *testIdP {
	tb.Helper()
	idp := &testIdP{}
	var err error
	if idp.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		tb.Fatal(err)
	}
	if idp.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                idp.srv.URL,
			"jwks_uri":                              idp.srv.URL + "/keys",
			"authorization_endpoint":                idp.srv.URL + "/auth",
			"token_endpoint":                        idp.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		idp.keyFetch.Add(1)
		// Uncompressed point: 0x04 || X || Y, 32 bytes each on P-256.
		ecPub, err := idp.ec.PublicKey.Bytes()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
				"n": b64(idp.rsa.N.Bytes()), "e": b64(big.NewInt(int64(idp.rsa.E)).Bytes())},
			{"kty": "EC", "kid": "ec1", "use": "sig", "alg": "ES256", "crv": "P-256",
				"x": b64(ecPub[1:33]), "y": b64(ecPub[33:65])},
		}})
	})
	idp.srv = httptest.NewServer(mux)
	tb.Cleanup(idp.srv.Close)
	return idp
}

func pad32(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }

// sign returns a JWT with claims, signed with the RSA key (alg RS256) or
// the ECDSA key (ES256), or with a key the IdP does not publish ("RS256-rogue").
func (idp *testIdP) sign(tb testing.TB, alg string, claims map[string]any) string {
	tb.Helper()
	kid := map[string]string{"RS256": "rsa1", "ES256": "ec1", "RS256-rogue": "rsa1"}[alg]
	hdr, _ := json.Marshal(map[string]string{"alg": strings.TrimSuffix(alg, "-rogue"), "kid": kid, "typ": "JWT"})
	body, _ := json.Marshal(claims)
	input := b64(hdr) + "." + b64(body)
	h := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch alg {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, idp.rsa, crypto.SHA256, h[:])
	case "RS256-rogue":
		rogue, gerr := rsa.GenerateKey(rand.Reader, 2048)
		if gerr != nil {
			tb.Fatal(gerr)
		}
		sig, err = rsa.SignPKCS1v15(rand.Reader, rogue, crypto.SHA256, h[:])
	case "ES256":
		r, s, serr := ecdsa.Sign(rand.Reader, idp.ec, h[:])
		sig, err = append(pad32(r.Bytes()), pad32(s.Bytes())...), serr
	}
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + b64(sig)
}

// oidcClock is the fixed time of the OIDC tests.
var oidcClock = time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)

// claims returns valid claims for the test server, with overrides.
func (idp *testIdP) claims(over map[string]any) map[string]any {
	c := map[string]any{
		"iss":    idp.srv.URL,
		"aud":    "connlog",
		"sub":    "u-123",
		"email":  "olivia@example.org",
		"groups": []string{"staff", "soc"},
		"sites":  []string{"a.example"},
		"iat":    oidcClock.Add(-time.Minute).Unix(),
		"exp":    oidcClock.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newOIDCEnv(tb testing.TB, idp *testIdP, logs *bytes.Buffer, tokens ...Token) (*Server, *fakeStore) {
	tb.Helper()
	_, hash, err := NewToken()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{
		Tokens: append([]Token{{Name: "root", Role: RoleAdmin, SHA256: hash}}, tokens...),
		OIDC: OIDCConfig{
			Issuer:     idp.srv.URL,
			Audience:   "connlog",
			RoleClaim:  "groups",
			Roles:      []OIDCRole{{Claim: "soc", Role: RoleAnalyst}, {Claim: "legal", Role: RoleOfficer}},
			SitesClaim: "sites",
		},
	}
	st := &fakeStore{hits: []store.Hit{{ClientIP: netip.MustParseAddr("203.0.113.7"), EventTime: oidcClock.Add(-time.Hour)}}}
	srv, err := New(cfg, st, prometheus.NewRegistry(), nil, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	srv.now = func() time.Time { return oidcClock }
	return srv, st
}

func TestOIDCTokens(t *testing.T) {
	idp := newTestIdP(t)
	const target = "/v1/access?ip=203.0.113.7&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z"
	tests := []struct {
		name       string
		alg        string
		claims     map[string]any
		wantStatus int
		wantMsg    string
		wantActor  string
		wantSites  []string
	}{
		{"valid RS256 token maps its group to a role and its sites", "RS256", nil, 200, "", "olivia@example.org", []string{"a.example"}},
		{"valid ES256 token", "ES256", map[string]any{"sites": nil}, 200, "", "olivia@example.org", nil},
		{"name falls back to sub", "RS256", map[string]any{"email": nil}, 200, "", "u-123", []string{"a.example"}},
		{"expired token", "RS256", map[string]any{"exp": oidcClock.Add(-time.Second).Unix()}, 401, "expired", "", nil},
		{"wrong audience", "RS256", map[string]any{"aud": "someone-else"}, 401, "not valid here", "", nil},
		{"wrong issuer", "RS256", map[string]any{"iss": "https://idp.example.org"}, 401, "not valid here", "", nil},
		{"signed by an unknown key", "RS256-rogue", nil, 401, "not valid here", "", nil},
		{"group that maps to no role", "RS256", map[string]any{"groups": []string{"staff"}}, 403, "no connlog role", "olivia@example.org", nil},
		{"groups that map to two roles", "ES256", map[string]any{"groups": []string{"soc", "legal"}}, 403, "several", "olivia@example.org", nil},
		{"role claim as a single string", "RS256", map[string]any{"groups": "legal"}, 403, "needs the analyst role", "olivia@example.org", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			srv, st := newOIDCEnv(t, idp, &logs)
			tok := idp.sign(t, tt.alg, idp.claims(tt.claims))
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("X-Purpose", "INC-1234")
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, body)
			}
			if tt.wantMsg != "" && !strings.Contains(body, tt.wantMsg) {
				t.Errorf("body %s, want a message with %q", body, tt.wantMsg)
			}
			if tt.wantStatus == http.StatusUnauthorized {
				// A JWT that does not verify names nobody: counted per
				// source, written when the window closes (here at once).
				if err := srv.FlushRefusals(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			rows := st.auditRows()
			if len(rows) != 1 {
				t.Fatalf("%d audit rows, want 1", len(rows))
			}
			a := rows[0]
			if a.Actor != tt.wantActor || a.Status != tt.wantStatus {
				t.Errorf("audit actor %q status %d, want %q %d", a.Actor, a.Status, tt.wantActor, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				if a.Role != RoleAnalyst {
					t.Errorf("audit role %q", a.Role)
				}
				if q := st.queries[0]; strings.Join(q.Sites, ",") != strings.Join(tt.wantSites, ",") {
					t.Errorf("search limited to sites %v, want %v", q.Sites, tt.wantSites)
				}
			}
			// The token appears nowhere: not in the audit row, not in the logs.
			sig := tok[strings.LastIndex(tok, ".")+1:]
			if strings.Contains(logs.String(), sig) || strings.Contains(a.Reason+a.Filters+a.Purpose, sig) {
				t.Error("the token leaked into the logs or the audit row")
			}
		})
	}
	if n := idp.keyFetch.Load(); n == 0 {
		t.Error("the keys were never fetched")
	}
}

func TestOIDCBearerTokensStillWork(t *testing.T) {
	idp := newTestIdP(t)
	env := newTestEnv(t, nil)
	// The test env has no OIDC: a JWT is just an unknown bearer token.
	resp := env.get(t, "/v1/access?ip=203.0.113.7&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z",
		idp.sign(t, "RS256", idp.claims(nil)), "INC-1")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("JWT without OIDC configured: status %d", resp.StatusCode)
	}
	var logs bytes.Buffer
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv, st := newOIDCEnv(t, idp, &logs, Token{Name: "alice", Role: RoleAnalyst, SHA256: hash})
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/access?ip=203.0.113.7&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Purpose", "INC-1")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || st.auditRows()[0].Actor != "alice" {
		t.Errorf("bearer token with OIDC on: status %d, audit %+v", rec.Code, st.auditRows())
	}
}

func TestOIDCIdentityProviderDown(t *testing.T) {
	idp := newTestIdP(t)
	var logs bytes.Buffer
	srv, st := newOIDCEnv(t, idp, &logs)
	tok := idp.sign(t, "RS256", idp.claims(nil))
	idp.srv.Close()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/access?ip=203.0.113.7&from=2026-03-03T00:00:00Z&to=2026-03-04T00:00:00Z", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Purpose", "INC-1")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	// Nobody identified: counted with the bad credentials of its source,
	// written when the window closes (here at once).
	if err := srv.FlushRefusals(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || len(st.auditRows()) != 1 || st.auditRows()[0].Status != 503 {
		t.Errorf("IdP down: status %d, audit rows %+v", rec.Code, st.auditRows())
	}
}

func TestOIDCConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  OIDCConfig
		want string
	}{
		{"disabled", OIDCConfig{}, ""},
		{"valid", OIDCConfig{Issuer: "https://idp.example.org/realms/x", Audience: "connlog"}, ""},
		{"loopback http allowed", OIDCConfig{Issuer: "http://127.0.0.1:5556", Audience: "connlog"}, ""},
		{"plain http refused", OIDCConfig{Issuer: "http://idp.example.org", Audience: "connlog"}, "must use https"},
		{"no audience", OIDCConfig{Issuer: "https://idp.example.org"}, "audience: required"},
		{"unknown role", OIDCConfig{Issuer: "https://idp.example.org", Audience: "c", Roles: []OIDCRole{{Claim: "x", Role: "god"}}}, `role "god"`},
		{"settings without issuer", OIDCConfig{Audience: "c"}, "issuer is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{OIDC: tt.cfg}.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}
