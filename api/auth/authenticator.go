package auth

import (
	"net/http"
	"strings"
	"time"

	"github.com/connlog/connlog/store"
)

// Config is what identifies callers: the configured tokens and the
// identity provider (both keys of connlog's api section).
type Config struct {
	Tokens []Token
	OIDC   OIDCConfig
}

// Authenticator finds who is behind a request's credential. Create it with
// [New]; it is safe for concurrent use.
type Authenticator struct {
	tokens tokenSet
	// cfg is the identity provider's configuration, with its defaults;
	// oidc is nil without an issuer.
	cfg  OIDCConfig
	oidc *oidcAuth
	// sessions are the console's sessions, when it may sign in with the
	// identity provider; clientSecret is connlog's secret as the
	// provider's client, secureCookies whether the console is reached over
	// https (api.oidc.redirect_url).
	sessions      *sessionStore
	clientSecret  store.Secret
	secureCookies bool
	now           func() time.Time
}

// New returns the Authenticator of c, which must pass [ValidateTokens] and
// [OIDCConfig.Validate]; now is the clock of expiries. It reads the
// client secret file, if one is configured.
func New(c Config, now func() time.Time) (*Authenticator, error) {
	a := &Authenticator{tokens: newTokenSet(c.Tokens), cfg: c.OIDC.WithDefaults(), now: now}
	if a.cfg.Enabled() {
		a.oidc = newOIDCAuth(a.cfg, now)
	}
	if a.cfg.SignInEnabled() {
		a.sessions = newSessionStore(a.cfg.SessionIdleTimeout, a.cfg.SessionMaxAge)
		a.secureCookies = strings.HasPrefix(a.cfg.RedirectURL, "https:")
		a.clientSecret = a.cfg.ClientSecret
		if a.cfg.ClientSecretFile != "" {
			var err error
			if a.clientSecret, err = readClientSecret(a.cfg.ClientSecretFile); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

// Authenticate finds the principal of r's credential: the console's
// session cookie (with its CSRF token) when r has no Authorization header,
// else its bearer token, a token from the configuration or a JWT from the
// identity provider when OIDC is configured. A configured token is only
// hashed; no credential is ever logged, stored or echoed. A refusal is an
// *Error; a principal may come with it (a JWT that maps to no role, a
// session cookie without its CSRF token), so that the refusal names who
// was refused.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if id := a.SessionID(r); h == "" && id != "" {
		// The web console signed in with the identity provider
		// (signin.go).
		return a.sessionPrincipal(r, id)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, refuse(Unauthenticated, "send a bearer token: Authorization: Bearer <token>", "no bearer token")
	}
	token = strings.TrimSpace(token)
	if a.oidc != nil && looksLikeJWT(token) {
		return a.oidc.authenticate(r.Context(), token)
	}
	p := a.tokens.lookup(token)
	if p == nil {
		return nil, refuse(Unauthenticated, "unknown or revoked token", "unknown bearer token")
	}
	return p, nil
}

// ChecksJWT reports whether authenticating r would check a JWT with the
// identity provider: a signature check, and a key fetch for an unknown key
// id. The API does not let a source over its limit of bad credentials
// cause that.
func (a *Authenticator) ChecksJWT(r *http.Request) bool {
	return a.oidc != nil && looksLikeJWT(bearer(r))
}

// bearer returns the bearer token of r, "" if none.
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
