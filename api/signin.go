package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/console"
	"github.com/connlog/connlog/store/audit"
)

// The web console signs in with a token (kept in page memory, see
// console/doc.go) or, when api.oidc.redirect_url is set, with the
// organisation's identity provider: the OpenID Connect authorization code
// flow with PKCE, whose design and mechanics (state, nonce, verifier, code
// exchange, ID token, sessions, cookies, CSRF token) are package
// api/auth's (api/auth/signin.go). This file serves its endpoints, and
// does to a sign-in what the guard does to a data request:
//
//   - failed sign-ins name nobody until the ID token is verified: like
//     unknown tokens they are limited per source and counted in the audit
//     trail (api/badcreds.go), so that a flood of forged callbacks costs no
//     fsync and no request to the identity provider past the limit;
//   - a sign-in whose verified identity maps to no role gets an audit row
//     of its own naming the person, as a JWT does;
//   - a session is opened only once the sign-in's audit row is written.

// sessionID returns the session cookie's value, "" if none or if the
// console does not sign in with the identity provider.
func (s *Server) sessionID(r *http.Request) string {
	if s.signIn == nil {
		return ""
	}
	return s.signIn.SessionID(r)
}

// sessionRoutes serves the console's session endpoints.
func (s *Server) sessionRoutes(mux *http.ServeMux) {
	// What the console's sign-in page needs to know: no data, nobody
	// named, not audited.
	mux.Handle("GET /v1/session", s.instrument("/v1/session", http.HandlerFunc(s.sessionInfo)))
	if s.signIn == nil {
		return
	}
	mux.Handle("POST "+auth.LoginPath, s.instrument(auth.LoginPath, http.HandlerFunc(s.startSignIn)))
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
	if s.signIn != nil {
		a.OIDC = &struct {
			Name string `json:"name"`
		}{s.signIn.DisplayName()}
		if id := s.sessionID(r); id != "" {
			if csrf, ok := s.signIn.SessionCSRF(id); ok {
				a.Session = &sessionState{CSRF: csrf, IdleTimeout: int(s.signIn.IdleTimeout().Seconds())}
			}
		}
	}
	body, _ := json.Marshal(a) // cannot fail: strings and ints
	writeBody(w, http.StatusOK, body)
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
	entry := s.signInEntry(r, auth.LoginPath)
	if ok, _ := s.badLimiter.allow(sourceKey(client), s.now()); !ok {
		writeError(w, s.refuseBadCredential(entry, client, errorf(CodeUnauthenticated, "too many sign-ins from this address")))
		return
	}
	u, id, err := s.signIn.StartSignIn(r.Context())
	if errors.Is(err, auth.ErrProviderDown) {
		var ae *apiError
		errors.As(authError(err), &ae)
		writeError(w, s.refuseBadCredential(entry, client, ae))
		return
	}
	if err != nil {
		var ae *apiError
		if !errors.As(authError(err), &ae) {
			s.logger.Error("sign-in", "err", err)
			ae = errorf(CodeInternal, "internal error; the operators have been told")
		}
		writeError(w, ae)
		return
	}
	s.signIn.SetLoginCookie(w, id)
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

// signInAnswer is the answer of a sign-in: who signed in, and the
// session's CSRF token.
type signInAnswer struct {
	Me meAnswer `json:"me"`
	sessionState
}

// finishSignIn answers POST /v1/session/oidc/callback: it checks the
// provider's answer, writes the sign-in's audit row, then opens the session.
func (s *Server) finishSignIn(w http.ResponseWriter, r *http.Request) {
	client, _ := s.proxies.client(r)
	entry := s.signInEntry(r, "/v1/session/oidc/callback")
	s.signIn.ClearLoginCookie(w) // a sign-in is finished once, whatever the outcome
	var who *auth.Principal
	var err error
	if !s.badLimiter.has(sourceKey(client), s.now()) {
		// A code exchange costs a request to the identity provider: not
		// for a source already over its limit of bad credentials.
		err = &apiError{code: CodeUnauthenticated, msg: "sign-in not checked: too many failed sign-ins from this address",
			reason: "oidc sign-in: not checked: the source is over its limit of bad credentials"}
	} else {
		who, err = s.signIn.FinishSignIn(r)
		err = authError(err)
	}
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
	var id, csrf string
	if ae == nil {
		if id, csrf, err = s.signIn.OpenSession(who); err != nil && !errors.As(authError(err), &ae) {
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
		entry.Actor, entry.Role = who.Name, who.Role
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	aerr := s.store.Audit(actx, entry)
	cancel()
	if aerr != nil {
		s.signIn.EndSession(id)
		s.metrics.auditFailures.WithLabelValues(entry.Endpoint).Inc()
		s.logger.Error("audit row not written; sign-in refused", "endpoint", entry.Endpoint, "err", aerr)
		writeError(w, errorf(CodeAuditUnavailable, "the audit trail cannot be written, so nobody can sign in; try again later"))
		return
	}
	if ae != nil {
		writeError(w, ae)
		return
	}
	s.signIn.SetSessionCookie(w, id)
	sites := who.Sites
	if sites == nil {
		sites = []string{}
	}
	body, _ := json.Marshal(signInAnswer{
		Me:           meAnswer{Name: who.Name, Role: who.Role, Sites: sites},
		sessionState: sessionState{CSRF: csrf, IdleTimeout: int(s.signIn.IdleTimeout().Seconds())},
	})
	writeBody(w, http.StatusOK, body)
}

// signOut answers DELETE /v1/session: the session ends, its cookie is
// removed. It is audited like any request with a credential.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	s.data("/v1/session", "", func(r *http.Request, _ *call) (any, error) {
		id := s.sessionID(r)
		if r.Header.Get("Authorization") != "" || id == "" || !s.signIn.EndSession(id) {
			return nil, errorf(CodeBadRequest, "sign out ends a console session: this request comes with none")
		}
		s.signIn.ClearSessionCookie(w)
		return map[string]bool{"signed_out": true}, nil
	}).ServeHTTP(w, r)
}
