package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/connlog/connlog/console"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// The web console signs in with a token (kept in page memory, see
// console/doc.go) or, when api.oidc.redirect_url is set, with the
// organisation's identity provider: the OpenID Connect authorization code
// flow with PKCE (S256), run by connlog itself as the provider's client
// (confidential with a client secret, public without):
//
//  1. The console asks POST /v1/session/oidc. connlog draws a state, a
//     nonce and a PKCE verifier, keeps them for loginTTL under a random
//     login ID, sets that ID as the login cookie and answers the
//     provider's authorization URL (with the state, the nonce and the
//     verifier's S256 challenge). The console goes there.
//  2. The person signs in at the provider, which sends the browser back to
//     GET /ui/oidc/callback?code=…&state=…. connlog moves these parameters
//     into the fragment of the console's page (/ui/#oidc?…), so that they
//     leave the address bar and never reach a log again.
//  3. The console posts them to POST /v1/session/oidc/callback, with the
//     login cookie. connlog takes the login (once: a second answer for the
//     same login finds nothing), checks the state, exchanges the code with
//     the verifier, verifies the ID token (signature, issuer, audience =
//     client ID, expiry) and its nonce, and maps its claims to a role and
//     sites with the function that maps a bearer JWT's ([oidcAuth.principal]).
//  4. It writes the sign-in's audit row, then creates a console session:
//     a random ID known to connlog by its hash only, sent as an HttpOnly,
//     SameSite=Strict cookie (Secure, with the __Host- prefix, when the
//     redirect URL is https), ended by sign out (DELETE /v1/session),
//     SessionIdleTimeout without a request, SessionMaxAge after sign-in, or
//     a restart (sessions live in memory only).
//
// A request that carries the session cookie must also carry the session's
// CSRF token in the X-CSRF-Token header, reads included: the cookie alone
// is never a credential, so a page of another origin cannot make the
// browser use it (SameSite=Strict already keeps the cookie from its
// requests; the token does not depend on the browser for that). The console
// reads the token from GET /v1/session, which another origin cannot read.
//
// Failed sign-ins name nobody until the ID token is verified: like unknown
// tokens they are limited per source and counted in the audit trail
// (api/badcreds.go), so that a flood of forged callbacks costs no fsync
// and no request to the identity provider past the limit. A sign-in whose
// verified identity maps to no role gets an audit row of its own naming the
// person, as a JWT does.
const (
	// sessionCookieTLS and sessionCookiePlain name the session cookie
	// with and without TLS; the __Host- prefix makes browsers refuse it
	// unless Secure, for the whole host and set by the host itself.
	sessionCookieTLS   = "__Host-connlog-session"
	sessionCookiePlain = "connlog-session"
	// loginCookie carries the login ID of a sign-in under way, for loginPath
	// only.
	loginCookie = "connlog-oidc-login"
	loginPath   = "/v1/session/oidc"
	// csrfHeader carries a session's CSRF token.
	csrfHeader = "X-CSRF-Token"
	// loginTTL bounds the time spent at the identity provider.
	loginTTL = 10 * time.Minute
	// maxSessions and maxLogins bound the memory of sessions and of
	// sign-ins under way.
	maxSessions = 10000
	maxLogins   = 10000
	// maxSignInBody bounds the body of POST /v1/session/oidc/callback.
	maxSignInBody = 16 << 10
)

// consoleSession is one signed-in console.
type consoleSession struct {
	who      *principal
	csrf     string
	started  time.Time
	lastUsed time.Time
}

// pendingLogin is a sign-in under way at the identity provider.
type pendingLogin struct {
	state, nonce, verifier string
	expires                time.Time
}

// sessionStore holds the console sessions and the sign-ins under way, both
// keyed by the SHA-256 of their cookie's value; safe for concurrent use.
type sessionStore struct {
	idle, maxAge time.Duration

	mu       sync.Mutex
	sessions map[[sha256.Size]byte]*consoleSession
	logins   map[[sha256.Size]byte]pendingLogin
}

func newSessionStore(idle, maxAge time.Duration) *sessionStore {
	return &sessionStore{
		idle: idle, maxAge: maxAge,
		sessions: map[[sha256.Size]byte]*consoleSession{},
		logins:   map[[sha256.Size]byte]pendingLogin{},
	}
}

// randomID returns 256 random bits in URL-safe base64.
func randomID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (st *sessionStore) expired(s *consoleSession, now time.Time) bool {
	return now.Sub(s.lastUsed) >= st.idle || now.Sub(s.started) >= st.maxAge
}

// create starts a session for who and returns its ID and CSRF token.
func (st *sessionStore) create(who *principal, now time.Time) (id, csrf string, err error) {
	if id, err = randomID(); err != nil {
		return "", "", err
	}
	if csrf, err = randomID(); err != nil {
		return "", "", err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.sessions) >= maxSessions {
		for k, s := range st.sessions {
			if st.expired(s, now) {
				delete(st.sessions, k)
			}
		}
		if len(st.sessions) >= maxSessions {
			return "", "", errorf(CodeUnavailable, "too many console sessions are open; try again later")
		}
	}
	st.sessions[sha256.Sum256([]byte(id))] = &consoleSession{who: who, csrf: csrf, started: now, lastUsed: now}
	return id, csrf, nil
}

// session returns the live session id, nil if there is none.
func (st *sessionStore) session(id string, now time.Time) *consoleSession {
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[k]
	if !ok {
		return nil
	}
	if st.expired(s, now) {
		delete(st.sessions, k)
		return nil
	}
	return s
}

// use returns the principal of the live session id if csrf is its CSRF
// token, and counts the request as activity. A live session presented
// without its token returns its principal and ok false.
func (st *sessionStore) use(id, csrf string, now time.Time) (who *principal, ok bool) {
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	s, found := st.sessions[k]
	if !found {
		return nil, false
	}
	if st.expired(s, now) {
		delete(st.sessions, k)
		return nil, false
	}
	if subtle.ConstantTimeCompare([]byte(csrf), []byte(s.csrf)) != 1 {
		return s.who, false
	}
	s.lastUsed = now
	return s.who, true
}

// remove ends the session id; it reports whether there was one.
func (st *sessionStore) remove(id string) bool {
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.sessions[k]
	delete(st.sessions, k)
	return ok
}

// addLogin keeps l and returns its login ID.
func (st *sessionStore) addLogin(l pendingLogin, now time.Time) (string, error) {
	id, err := randomID()
	if err != nil {
		return "", err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.logins) >= maxLogins {
		for k, v := range st.logins {
			if !now.Before(v.expires) {
				delete(st.logins, k)
			}
		}
		if len(st.logins) >= maxLogins {
			return "", errorf(CodeUnavailable, "too many sign-ins are under way; try again in a few minutes")
		}
	}
	st.logins[sha256.Sum256([]byte(id))] = l
	return id, nil
}

// takeLogin removes and returns the sign-in id, if it exists and has not
// expired: each sign-in is finished once at most.
func (st *sessionStore) takeLogin(id string, now time.Time) (pendingLogin, bool) {
	k := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	l, ok := st.logins[k]
	delete(st.logins, k)
	return l, ok && now.Before(l.expires)
}

// sessionCookie is the name of the session cookie.
func (s *Server) sessionCookie() string {
	if s.secureCookies {
		return sessionCookieTLS
	}
	return sessionCookiePlain
}

// sessionID returns the session cookie's value, "" if none.
func (s *Server) sessionID(r *http.Request) string {
	if s.sessions == nil {
		return ""
	}
	c, err := r.Cookie(s.sessionCookie())
	if err != nil {
		return ""
	}
	return c.Value
}

// sessionPrincipal authenticates a request by its session cookie id.
func (s *Server) sessionPrincipal(r *http.Request, id string) (*principal, error) {
	who, ok := s.sessions.use(id, r.Header.Get(csrfHeader), s.now())
	switch {
	case who == nil:
		return nil, &apiError{
			code:   CodeUnauthenticated,
			msg:    "your console session has ended (signed out, unused for too long, or too old); sign in again",
			reason: "unknown or expired console session",
		}
	case !ok:
		return who, &apiError{
			code:   CodeForbidden,
			msg:    "a request with the console's session cookie must carry its CSRF token (" + csrfHeader + "): send it from the console",
			reason: "console session cookie without its CSRF token",
		}
	}
	return who, nil
}

// setCookie sets a cookie of connlog's: HttpOnly, Secure when the console
// is served over https.
func (s *Server) setCookie(w http.ResponseWriter, name, value, path string, maxAge int, sameSite http.SameSite) {
	// G124 wants Secure always: it is set whenever the sign-in's redirect
	// URL is https (the console served over https, directly or behind a
	// proxy); an http redirect URL is accepted on loopback only, where a
	// Secure cookie would not come back.
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // G124: Secure under https, see above
		Name: name, Value: value, Path: path, MaxAge: maxAge, SameSite: sameSite,
		HttpOnly: true, Secure: s.secureCookies,
	})
}

// clearLoginCookie removes the login cookie.
func (s *Server) clearLoginCookie(w http.ResponseWriter) {
	s.setCookie(w, loginCookie, "", loginPath, -1, http.SameSiteLaxMode)
}

// sessionRoutes serves the console's session endpoints.
func (s *Server) sessionRoutes(mux *http.ServeMux) {
	// What the console's sign-in page needs to know: no data, nobody
	// named, not audited.
	mux.Handle("GET /v1/session", s.instrument("/v1/session", http.HandlerFunc(s.sessionInfo)))
	if s.sessions == nil {
		return
	}
	mux.Handle("POST /v1/session/oidc", s.instrument("/v1/session/oidc", http.HandlerFunc(s.startSignIn)))
	mux.Handle("GET "+console.CallbackPath, s.instrument(console.CallbackPath, http.HandlerFunc(s.signInCallback)))
	mux.Handle("POST /v1/session/oidc/callback", s.instrument("/v1/session/oidc/callback", http.HandlerFunc(s.finishSignIn)))
	mux.Handle("DELETE /v1/session", s.instrument("/v1/session", http.HandlerFunc(s.signOut)))
}

// sessionAnswer is the answer of GET /v1/session.
type sessionAnswer struct {
	// OIDC is set when the console may sign in with the identity provider.
	OIDC *struct {
		Name string `json:"name"`
	} `json:"oidc"`
	// Session is set when the request carries a live session cookie.
	Session *sessionState `json:"session"`
}

// sessionState is what the console needs of its session.
type sessionState struct {
	CSRF        string `json:"csrf"`
	IdleTimeout int    `json:"idle_timeout_seconds"`
}

func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	var a sessionAnswer
	if s.sessions != nil {
		a.OIDC = &struct {
			Name string `json:"name"`
		}{s.cfg.OIDC.DisplayName}
		if id := s.sessionID(r); id != "" {
			if sess := s.sessions.session(id, s.now()); sess != nil {
				a.Session = &sessionState{CSRF: sess.csrf, IdleTimeout: int(s.cfg.OIDC.SessionIdleTimeout.Seconds())}
			}
		}
	}
	body, _ := json.Marshal(a) // cannot fail: strings and ints
	writeBody(w, http.StatusOK, body)
}

// oauth2Config is connlog as the provider's client.
func (s *Server) oauth2Config(p *oidc.Provider) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID}
	for _, sc := range s.cfg.OIDC.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	// The client authenticates as registered: client_secret_basic for a
	// confidential client (OpenID Connect's default), its client_id in the
	// form for a public one. Not probed: a probe retries a refused
	// exchange with the same code.
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if s.clientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID:     s.cfg.OIDC.ClientID,
		ClientSecret: string(s.clientSecret),
		Endpoint:     ep,
		RedirectURL:  s.cfg.OIDC.RedirectURL,
		Scopes:       scopes,
	}
}

// signInEntry is the audit row of a sign-in step, before its outcome.
func (s *Server) signInEntry(r *http.Request, endpoint string) audit.Entry {
	_, source := s.proxies.client(r)
	filters, _ := json.Marshal(map[string]string{"issuer": s.cfg.OIDC.Issuer})
	return audit.Entry{Time: s.now().UTC(), Source: source, Method: r.Method, Endpoint: endpoint, Filters: string(filters)}
}

// startSignIn answers POST /v1/session/oidc: the provider's authorization
// URL for a new sign-in, whose login ID it sets as the login cookie. Each
// start takes a token of the source's bucket of bad credentials, so that
// one address cannot fill the table of sign-ins under way.
func (s *Server) startSignIn(w http.ResponseWriter, r *http.Request) {
	client, _ := s.proxies.client(r)
	entry := s.signInEntry(r, "/v1/session/oidc")
	now := s.now()
	if ok, _ := s.badLimiter.allow(sourceKey(client), now); !ok {
		writeError(w, s.refuseBadCredential(entry, client, errorf(CodeUnauthenticated, "too many sign-ins from this address")))
		return
	}
	p, err := s.oidc.discover(r.Context())
	if err != nil {
		writeError(w, s.refuseBadCredential(entry, client, &apiError{
			code: CodeUnavailable, msg: "the identity provider cannot be reached; try again later", reason: err.Error(),
		}))
		return
	}
	var l pendingLogin
	for _, v := range []*string{&l.state, &l.nonce} {
		if *v, err = randomID(); err != nil {
			s.logger.Error("sign-in", "err", err)
			writeError(w, errorf(CodeInternal, "internal error; the operators have been told"))
			return
		}
	}
	l.verifier = oauth2.GenerateVerifier()
	l.expires = now.Add(loginTTL)
	id, err := s.sessions.addLogin(l, now)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			s.logger.Error("sign-in", "err", err)
			ae = errorf(CodeInternal, "internal error; the operators have been told")
		}
		writeError(w, ae)
		return
	}
	// SameSite=Lax, not Strict: the sign-in comes back from the identity
	// provider by a cross-site navigation (its redirect to the callback),
	// and a browser withholds Strict cookies from such a navigation and
	// may withhold them from what the page it opens asks at once; Lax
	// cookies go with top-level navigations and same-site requests, never
	// with another site's subresources or POSTs. The state, bound to this
	// cookie, is what refuses a callback this browser did not start.
	s.setCookie(w, loginCookie, id, loginPath, int(loginTTL.Seconds()), http.SameSiteLaxMode)
	u := s.oauth2Config(p).AuthCodeURL(l.state, oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce))
	body, _ := json.Marshal(map[string]string{"url": u})
	writeBody(w, http.StatusOK, body)
}

// callbackParams are the parameters of the provider's answer that the
// console's page receives; any other is dropped.
var callbackParams = []string{"code", "state", "error"}

// signInCallback answers the provider's redirect (GET /ui/oidc/callback):
// it sends the browser to the console's page with the answer's parameters
// in the fragment, where the page's script finds them and a server does
// not. It checks nothing: POST /v1/session/oidc/callback does.
func (s *Server) signInCallback(w http.ResponseWriter, r *http.Request) {
	console.SetSecurityHeaders(w.Header())
	q := r.URL.Query()
	keep := url.Values{}
	for _, k := range callbackParams {
		if v := q.Get(k); v != "" && len(v) <= 2048 {
			keep.Set(k, v)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, console.Prefix+"#oidc?"+keep.Encode(), http.StatusSeeOther)
}

// signInRequest is the body of POST /v1/session/oidc/callback: the
// parameters of the provider's answer.
type signInRequest struct {
	Code  string `json:"code"`
	State string `json:"state"`
	Error string `json:"error"`
}

// signInAnswer is the answer of a sign-in: who signed in, and the
// session's CSRF token.
type signInAnswer struct {
	Me meAnswer `json:"me"`
	sessionState
}

// oauthErrorCode is what an error code from the provider must look like to
// be shown (RFC 6749 codes are lower-case words joined by underscores).
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// finishSignIn answers POST /v1/session/oidc/callback: it checks the
// provider's answer, writes the sign-in's audit row, then opens the session.
func (s *Server) finishSignIn(w http.ResponseWriter, r *http.Request) {
	client, _ := s.proxies.client(r)
	entry := s.signInEntry(r, "/v1/session/oidc/callback")
	s.clearLoginCookie(w) // a sign-in is finished once, whatever the outcome
	who, err := s.verifySignIn(r, client)
	var ae *apiError
	if err != nil && !errors.As(err, &ae) {
		s.logger.Error("sign-in", "err", err)
		ae = &apiError{code: CodeInternal, msg: "internal error; the operators have been told", reason: err.Error()}
	}
	if ae != nil && who == nil && (ae.code == CodeUnauthenticated || ae.code == CodeUnavailable) {
		// Nobody identified: counted per source, as unknown tokens are.
		writeError(w, s.refuseBadCredential(entry, client, ae))
		return
	}
	now := s.now()
	var id, csrf string
	if ae == nil {
		if id, csrf, err = s.sessions.create(who, now); err != nil && !errors.As(err, &ae) {
			s.logger.Error("sign-in", "err", err)
			ae = &apiError{code: CodeInternal, msg: "internal error; the operators have been told", reason: err.Error()}
		}
	}
	entry.Status = http.StatusOK
	if ae != nil {
		entry.Status = httpStatus(ae.code)
		entry.Reason = ae.auditReason()
	}
	entry.Outcome = outcome(entry.Status)
	if who != nil {
		entry.Actor, entry.Role = who.name, who.role
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	aerr := s.store.Audit(actx, entry)
	cancel()
	if aerr != nil {
		s.sessions.remove(id)
		s.metrics.auditFailures.WithLabelValues(entry.Endpoint).Inc()
		s.logger.Error("audit row not written; sign-in refused", "endpoint", entry.Endpoint, "err", aerr)
		writeError(w, errorf(CodeAuditUnavailable, "the audit trail cannot be written, so nobody can sign in; try again later"))
		return
	}
	if ae != nil {
		writeError(w, ae)
		return
	}
	s.setCookie(w, s.sessionCookie(), id, "/", 0, http.SameSiteStrictMode)
	sites := who.sites
	if sites == nil {
		sites = []string{}
	}
	body, _ := json.Marshal(signInAnswer{
		Me:           meAnswer{Name: who.name, Role: who.role, Sites: sites},
		sessionState: sessionState{CSRF: csrf, IdleTimeout: int(s.cfg.OIDC.SessionIdleTimeout.Seconds())},
	})
	writeBody(w, http.StatusOK, body)
}

// signInRefused is a refusal of a sign-in that names nobody.
func signInRefused(msg, reason string) *apiError {
	return &apiError{code: CodeUnauthenticated, msg: msg, reason: "oidc sign-in: " + reason}
}

// verifySignIn checks the provider's answer posted by the console and
// returns the person it signs in. As [oidcAuth.principal], it may return a
// principal with a refusal.
func (s *Server) verifySignIn(r *http.Request, client netip.Addr) (*principal, error) {
	if !s.badLimiter.has(sourceKey(client), s.now()) {
		// A code exchange costs a request to the identity provider: not
		// for a source already over its limit of bad credentials.
		return nil, signInRefused("sign-in not checked: too many failed sign-ins from this address", "not checked: the source is over its limit of bad credentials")
	}
	var req signInRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxSignInBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, signInRefused("the body must be a JSON object {code, state} from the identity provider's answer", "unreadable body")
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil {
		return nil, signInRefused("this browser started no sign-in here, or it has expired; sign in again", "no login cookie")
	}
	login, ok := s.sessions.takeLogin(ck.Value, s.now())
	if !ok {
		return nil, signInRefused("this sign-in has expired or is already finished; sign in again", "unknown, used or expired login cookie")
	}
	if req.Error != "" {
		code := "error"
		if oauthErrorCode.MatchString(req.Error) {
			code = req.Error
		}
		return nil, signInRefused("the identity provider did not sign you in ("+code+")", "the provider answered "+code)
	}
	if subtle.ConstantTimeCompare([]byte(req.State), []byte(login.state)) != 1 {
		return nil, signInRefused("this answer of the identity provider is not for the sign-in this browser started (state); sign in again", "state does not match the login cookie's")
	}
	if req.Code == "" {
		return nil, signInRefused("the identity provider's answer carries no code; sign in again", "no code")
	}
	p, err := s.oidc.discover(r.Context())
	if err != nil {
		return nil, errIdPDown(err)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, s.oidc.client), oidcHTTPTimeout)
	defer cancel()
	tok, err := s.oauth2Config(p).Exchange(ctx, req.Code, oauth2.VerifierOption(login.verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			return nil, &apiError{code: CodeUnavailable, msg: "the identity provider cannot be reached to finish the sign-in; try again later", reason: "oidc token exchange: " + truncate(err.Error(), 300)}
		}
		return nil, signInRefused("the identity provider refused the sign-in code (used, expired, or not for this sign-in); sign in again",
			"token exchange refused: "+truncate(strings.ToValidUTF8(re.ErrorCode+" "+re.ErrorDescription, "\uFFFD"), 200))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, signInRefused("the identity provider sent no ID token; is the openid scope allowed for connlog's client?", "no id_token in the token response")
	}
	vctx, vcancel := context.WithTimeout(r.Context(), oidcHTTPTimeout)
	defer vcancel()
	idt, err := s.oidc.signInVerifier.Verify(vctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, signInRefused("the identity provider's ID token has already expired (are the clocks of connlog and the provider right?); sign in again", "id token: "+err.Error())
		}
		return nil, signInRefused("the identity provider's ID token is not valid here (signature, issuer or audience)", "id token: "+err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(login.nonce)) != 1 {
		return nil, signInRefused("the ID token was not issued for this sign-in (nonce); sign in again", "id token nonce does not match the login's")
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return nil, signInRefused("the ID token's claims cannot be read", "id token claims: "+err.Error())
	}
	if len(idt.Audience) > 1 && claimString(claims["azp"]) != s.cfg.OIDC.ClientID {
		// OpenID Connect Core 3.1.3.7: with several audiences, the
		// authorized party must be this client.
		return nil, signInRefused("the identity provider's ID token is not valid here (audience)", "id token with several audiences and azp not the client id")
	}
	return s.oidc.principal(idt.Subject, claims)
}

// signOut answers DELETE /v1/session: the session ends, its cookie is
// removed. It is audited like any request with a credential.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	s.data("/v1/session", "", func(r *http.Request, _ *call) (any, error) {
		id := s.sessionID(r)
		if r.Header.Get("Authorization") != "" || id == "" || !s.sessions.remove(id) {
			return nil, errorf(CodeBadRequest, "sign out ends a console session: this request comes with none")
		}
		s.setCookie(w, s.sessionCookie(), "", "/", -1, http.SameSiteStrictMode)
		return map[string]bool{"signed_out": true}, nil
	}).ServeHTTP(w, r)
}

// readClientSecret reads the client secret from path, which only its owner
// may read (mode 0600 or 0400).
func readClientSecret(path string) (store.Secret, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("api oidc client_secret_file: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("api oidc client_secret_file %s: must be a regular file that only its owner may read (chmod 600 %s)", path, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("api oidc client_secret_file: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("api oidc client_secret_file %s: empty", path)
	}
	return store.Secret(secret), nil
}
