// Package oidctest is an OpenID provider for tests: discovery, keys, an
// authorization endpoint that signs in a configured person at once and
// sends the browser back, and a token endpoint that checks what a real
// provider checks (client, redirect URI, single-use codes, PKCE S256) and
// issues RS256 ID tokens. It stands for the organisation's identity
// provider, an external system, in the tests of the API and of the web
// console.
package oidctest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issuer is a running test provider. Set its exported fields before the
// sign-ins they should apply to; it is safe for concurrent use.
type Issuer struct {
	// URL is the issuer URL (http://127.0.0.1:PORT).
	URL string
	// ClientID and ClientSecret are the one registered client; an empty
	// ClientSecret makes it a public client.
	ClientID     string
	ClientSecret string
	// RedirectURL is the client's one registered redirect URI.
	RedirectURL string

	srv *httptest.Server
	key *rsa.PrivateKey

	mu sync.Mutex
	// claims are the person's claims put in the ID tokens (besides iss,
	// aud, sub, nonce, iat, exp).
	claims map[string]any
	// tamper, if set, changes the claims of the next ID tokens.
	tamper func(map[string]any)
	now    func() time.Time
	codes  map[string]*grant
	// Stats of what clients sent.
	authorizations, exchanges, refusals int
	refusalReasons                      []string
}

type grant struct {
	challenge, nonce, redirect string
	claims                     map[string]any
	used                       bool
	expires                    time.Time
}

// New starts a provider for the client clientID (with clientSecret, "" for
// a public client) whose redirect URI is redirectURL; it stops with the
// test.
func New(tb testing.TB, clientID, clientSecret, redirectURL string) *Issuer {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	is := &Issuer{
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL,
		key: key, now: time.Now, codes: map[string]*grant{},
		claims: map[string]any{"sub": "u-1", "email": "olivia@example.org"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", is.discovery)
	mux.HandleFunc("GET /keys", is.keys)
	mux.HandleFunc("GET /authorize", is.authorize)
	mux.HandleFunc("POST /token", is.token)
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	tb.Cleanup(is.srv.Close)
	return is
}

// SetClaims sets the claims of the person the provider signs in (sub,
// email, groups…).
func (is *Issuer) SetClaims(c map[string]any) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.claims = c
}

// Tamper makes the provider change the claims of the ID tokens it issues
// from now on (e.g. a wrong nonce, an expiry in the past); nil stops.
func (is *Issuer) Tamper(f func(claims map[string]any)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.tamper = f
}

// SetNow sets the provider's clock (iat and exp of the ID tokens).
func (is *Issuer) SetNow(now func() time.Time) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.now = now
}

// Stats returns how many authorizations the provider granted, how many
// codes it exchanged, and the reasons of the requests it refused.
func (is *Issuer) Stats() (authorizations, exchanges int, refusals []string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.authorizations, is.exchanges, append([]string(nil), is.refusalReasons...)
}

// Authorize signs in like a browser at the authorization URL u, without
// following the redirect back, and returns the redirect's URL: the
// client's callback with code and state, or error.
func (is *Issuer) Authorize(tb testing.TB, u string) *url.URL {
	tb.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		tb.Fatalf("authorize %s: status %d, no redirect: %v", u, resp.StatusCode, err)
	}
	return loc
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (is *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                is.URL,
		"authorization_endpoint":                is.URL + "/authorize",
		"token_endpoint":                        is.URL + "/token",
		"jwks_uri":                              is.URL + "/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
	})
}

func (is *Issuer) keys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": b64(is.key.N.Bytes()), "e": b64(big.NewInt(int64(is.key.E)).Bytes()),
	}}})
}

// refuse records a refusal; the caller answers it.
func (is *Issuer) refuse(reason string) {
	is.refusals++
	is.refusalReasons = append(is.refusalReasons, reason)
}

// authorize signs the configured person in at once. A request from an
// unknown client or for another redirect URI gets an error page, never a
// redirect (RFC 6749 4.1.2.1); other errors go back to the client. PKCE
// with S256 is required.
func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	is.mu.Lock()
	defer is.mu.Unlock()
	if q.Get("client_id") != is.ClientID || q.Get("redirect_uri") != is.RedirectURL {
		is.refuse("authorize: unknown client or redirect_uri")
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(is.RedirectURL)
	v := url.Values{}
	if s := q.Get("state"); s != "" {
		v.Set("state", s)
	}
	scopes := strings.Fields(q.Get("scope"))
	switch {
	case q.Get("response_type") != "code":
		is.refuse("authorize: response_type not code")
		v.Set("error", "unsupported_response_type")
	case !contains(scopes, "openid"):
		is.refuse("authorize: no openid scope")
		v.Set("error", "invalid_scope")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		is.refuse("authorize: no PKCE S256 code_challenge")
		v.Set("error", "invalid_request")
		v.Set("error_description", "PKCE with S256 is required")
	default:
		code := b64(randomBytes(32))
		claims := map[string]any{}
		for k, val := range is.claims {
			claims[k] = val
		}
		is.codes[code] = &grant{
			challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri"),
			claims: claims, expires: is.now().Add(time.Minute),
		}
		is.authorizations++
		v.Set("code", code)
	}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// token exchanges a code for an ID token and an access token.
func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	f := r.PostForm
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	fail := func(status int, code, reason string) {
		is.refuse("token: " + reason)
		writeJSON(w, status, map[string]string{"error": code, "error_description": reason})
	}
	if id != is.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(is.ClientSecret)) != 1 {
		fail(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if f.Get("grant_type") != "authorization_code" {
		fail(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code")
		return
	}
	g, ok := is.codes[f.Get("code")]
	switch {
	case !ok:
		fail(http.StatusBadRequest, "invalid_grant", "unknown code")
		return
	case g.used:
		fail(http.StatusBadRequest, "invalid_grant", "code already used")
		return
	case !is.now().Before(g.expires):
		fail(http.StatusBadRequest, "invalid_grant", "code expired")
		return
	case f.Get("redirect_uri") != g.redirect:
		fail(http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
		return
	}
	g.used = true // one try per code, right or wrong (RFC 6749 4.1.2)
	verifier := f.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	if verifier == "" || b64(sum[:]) != g.challenge {
		fail(http.StatusBadRequest, "invalid_grant", "PKCE code_verifier does not match the code_challenge")
		return
	}
	now := is.now()
	claims := map[string]any{"iss": is.URL, "aud": is.ClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	for k, v := range g.claims {
		claims[k] = v
	}
	if is.tamper != nil {
		is.tamper(claims)
	}
	is.exchanges++
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": b64(randomBytes(32)), "token_type": "Bearer", "expires_in": 3600,
		"id_token": is.sign(claims),
	})
}

// Sign returns a JWT with claims, signed with the provider's key.
func (is *Issuer) Sign(claims map[string]any) string { return is.sign(claims) }

func (is *Issuer) sign(claims map[string]any) string {
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	input := b64(hdr) + "." + b64(body)
	h := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, is.key, crypto.SHA256, h[:])
	if err != nil {
		panic(err) // a 2048-bit key signs
	}
	return input + "." + b64(sig)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
