package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Names of the console's cookies and header (signin.go has the design).
const (
	// SessionCookieTLS and SessionCookiePlain name the session cookie
	// with and without TLS; the __Host- prefix makes browsers refuse it
	// unless Secure, for the whole host and set by the host itself.
	SessionCookieTLS   = "__Host-connlog-session"
	SessionCookiePlain = "connlog-session"
	// LoginCookie carries the login ID of a sign-in under way, for
	// LoginPath only.
	LoginCookie = "connlog-oidc-login"
	LoginPath   = "/v1/session/oidc"
	// CSRFHeader carries a session's CSRF token.
	CSRFHeader = "X-CSRF-Token"
)

const (
	// loginTTL bounds the time spent at the identity provider.
	loginTTL = 10 * time.Minute
	// maxSessions and maxLogins bound the memory of sessions and of
	// sign-ins under way.
	maxSessions = 10000
	maxLogins   = 10000
)

// consoleSession is one signed-in console.
type consoleSession struct {
	who      *Principal
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
func (st *sessionStore) create(who *Principal, now time.Time) (id, csrf string, err error) {
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
			return "", "", refuse(Unavailable, "too many console sessions are open; try again later", "")
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
func (st *sessionStore) use(id, csrf string, now time.Time) (who *Principal, ok bool) {
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
			return "", refuse(Unavailable, "too many sign-ins are under way; try again in a few minutes", "")
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

// SessionCookie is the name of the session cookie.
func (a *Authenticator) SessionCookie() string {
	if a.secureCookies {
		return SessionCookieTLS
	}
	return SessionCookiePlain
}

// SessionID returns the session cookie's value of r, "" if none or if the
// console cannot sign in with the identity provider.
func (a *Authenticator) SessionID(r *http.Request) string {
	if a.sessions == nil {
		return ""
	}
	c, err := r.Cookie(a.SessionCookie())
	if err != nil {
		return ""
	}
	return c.Value
}

// SessionCSRF returns the CSRF token of the live session id, false if
// there is none.
func (a *Authenticator) SessionCSRF(id string) (string, bool) {
	if a.sessions == nil {
		return "", false
	}
	s := a.sessions.session(id, a.now())
	if s == nil {
		return "", false
	}
	return s.csrf, true
}

// OpenSession starts a console session for who, signed in, and returns its
// ID (the cookie's value, see [Authenticator.SetSessionCookie]) and CSRF
// token.
func (a *Authenticator) OpenSession(who *Principal) (id, csrf string, err error) {
	return a.sessions.create(who, a.now())
}

// EndSession ends the session id; it reports whether there was one.
func (a *Authenticator) EndSession(id string) bool { return a.sessions.remove(id) }

// sessionPrincipal authenticates a request by its session cookie id.
func (a *Authenticator) sessionPrincipal(r *http.Request, id string) (*Principal, error) {
	who, ok := a.sessions.use(id, r.Header.Get(CSRFHeader), a.now())
	switch {
	case who == nil:
		return nil, refuse(Unauthenticated,
			"your console session has ended (signed out, unused for too long, or too old); sign in again",
			"unknown or expired console session")
	case !ok:
		return who, refuse(Forbidden,
			"a request with the console's session cookie must carry its CSRF token ("+CSRFHeader+"): send it from the console",
			"console session cookie without its CSRF token")
	}
	return who, nil
}

// setCookie sets a cookie of connlog's: HttpOnly, Secure when the console
// is served over https.
func (a *Authenticator) setCookie(w http.ResponseWriter, name, value, path string, maxAge int, sameSite http.SameSite) {
	// G124 wants Secure always: it is set whenever the sign-in's redirect
	// URL is https (the console served over https, directly or behind a
	// proxy); an http redirect URL is accepted on loopback only, where a
	// Secure cookie would not come back.
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // G124: Secure under https, see above
		Name: name, Value: value, Path: path, MaxAge: maxAge, SameSite: sameSite,
		HttpOnly: true, Secure: a.secureCookies,
	})
}

// SetSessionCookie sets the session cookie to id: HttpOnly, SameSite=Strict,
// for the whole host, until the browser closes.
func (a *Authenticator) SetSessionCookie(w http.ResponseWriter, id string) {
	a.setCookie(w, a.SessionCookie(), id, "/", 0, http.SameSiteStrictMode)
}

// ClearSessionCookie removes the session cookie.
func (a *Authenticator) ClearSessionCookie(w http.ResponseWriter) {
	a.setCookie(w, a.SessionCookie(), "", "/", -1, http.SameSiteStrictMode)
}

// SetLoginCookie sets the login cookie of a sign-in under way to id.
func (a *Authenticator) SetLoginCookie(w http.ResponseWriter, id string) {
	// SameSite=Lax, not Strict: the sign-in comes back from the identity
	// provider by a cross-site navigation (its redirect to the callback),
	// and a browser withholds Strict cookies from such a navigation and
	// may withhold them from what the page it opens asks at once; Lax
	// cookies go with top-level navigations and same-site requests, never
	// with another site's subresources or POSTs. The state, bound to this
	// cookie, is what refuses a callback this browser did not start.
	a.setCookie(w, LoginCookie, id, LoginPath, int(loginTTL.Seconds()), http.SameSiteLaxMode)
}

// ClearLoginCookie removes the login cookie.
func (a *Authenticator) ClearLoginCookie(w http.ResponseWriter) {
	a.setCookie(w, LoginCookie, "", LoginPath, -1, http.SameSiteLaxMode)
}
