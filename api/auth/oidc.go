package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/connlog/connlog/console"
	"github.com/connlog/connlog/internal/textcut"
	"github.com/connlog/connlog/store"
)

// Defaults of an [OIDCConfig] with an issuer.
const (
	DefaultOIDCRoleClaim = "connlog_role"
	DefaultOIDCNameClaim = "email"
	// oidcHTTPTimeout bounds each request to the identity provider
	// (discovery, keys).
	oidcHTTPTimeout = 10 * time.Second
)

// OIDCConfig accepts JSON Web Tokens signed by the organisation's identity
// provider (OpenID Connect) as credentials: `Authorization: Bearer <JWT>`.
// The token's issuer, audience, signature and expiry are checked; its role
// claim gives the connlog role and its sites claim, if any, limits the
// person to some sites. Zero fields take the Default* values.
type OIDCConfig struct {
	// Issuer is the identity provider's issuer URL; its discovery document
	// is read from Issuer + "/.well-known/openid-configuration" on first use.
	// Empty disables OIDC.
	Issuer string `yaml:"issuer"`
	// Audience is the value the token's "aud" claim must contain (the
	// client ID connlog is registered with).
	Audience string `yaml:"audience"`
	// RoleClaim names the claim that carries the role: a string or a list of
	// strings (e.g. groups). Default: connlog_role.
	RoleClaim string `yaml:"role_claim"`
	// Roles maps claim values to connlog roles. Empty: the claim values are
	// connlog role names themselves. A person whose values map to no role,
	// or to more than one, is refused: one credential, one role.
	Roles []OIDCRole `yaml:"roles"`
	// SitesClaim, if set, names a claim (string or list of strings) that
	// limits the person to those sites; absent or empty in a token: all
	// sites.
	SitesClaim string `yaml:"sites_claim"`
	// NameClaim names the claim that identifies the person in the audit
	// trail; "sub" is used when it is absent. Default: email.
	NameClaim string `yaml:"name_claim"`
	// Algorithms are the accepted signing algorithms. Default: those the
	// provider's discovery document lists.
	Algorithms []string `yaml:"algorithms"`

	// The web console's "Sign in with <DisplayName>" (authorization code
	// flow with PKCE, api/auth/signin.go). Off while RedirectURL is empty: the
	// API then accepts the provider's JWTs as bearer tokens only.

	// RedirectURL is the console's callback as browsers reach it, to be
	// registered at the identity provider as the client's redirect URI:
	// scheme, host and port of the console, then /ui/oidc/callback, e.g.
	// https://connlog.example.org/ui/oidc/callback. https, or http on
	// loopback. Empty: no console sign-in with the identity provider.
	RedirectURL string `yaml:"redirect_url"`
	// ClientID is the client ID connlog is registered with for the
	// console's sign-in; the ID token's "aud" claim must contain it.
	// Default: Audience.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the client secret of a confidential client; empty: a
	// public client, which PKCE alone protects. Better set by
	// CONNLOG_API_OIDC_CLIENT_SECRET or ClientSecretFile than in the file.
	ClientSecret store.Secret `yaml:"client_secret"`
	// ClientSecretFile is the path of a file holding the client secret
	// (one line), readable by connlog's user only (mode 0600 or 0400).
	// Set this or ClientSecret, not both.
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes are the scopes asked for besides "openid", which is always
	// asked for. Default: email, profile. Add the scope that releases the
	// role claim if the provider needs one (e.g. groups).
	Scopes []string `yaml:"scopes"`
	// DisplayName names the provider on the console's sign-in button.
	// Default: the issuer's host name.
	DisplayName string `yaml:"display_name"`
	// SessionIdleTimeout ends a console session after this long without a
	// request. Default: 15m.
	SessionIdleTimeout time.Duration `yaml:"session_idle_timeout"`
	// SessionMaxAge ends a console session this long after its sign-in,
	// however busy: the role and sites are read again from the provider at
	// the next sign-in. Default: 8h.
	SessionMaxAge time.Duration `yaml:"session_max_age"`
}

// Defaults of the console's OIDC sign-in.
const (
	DefaultOIDCSessionIdleTimeout = 15 * time.Minute
	DefaultOIDCSessionMaxAge      = 8 * time.Hour
)

// DefaultOIDCScopes are the scopes asked for besides "openid" when
// [OIDCConfig.Scopes] is empty.
var DefaultOIDCScopes = []string{"email", "profile"}

// SignInEnabled reports whether the console offers to sign in with the
// identity provider.
func (c OIDCConfig) SignInEnabled() bool { return c.Enabled() && c.RedirectURL != "" }

// OIDCRole maps one value of the role claim to a connlog role.
type OIDCRole struct {
	// Claim is the claim value, e.g. a group name "soc-analysts".
	Claim string `yaml:"claim"`
	// Role is one of analyst, officer, stats, auditor, admin.
	Role string `yaml:"role"`
}

// Enabled reports whether OIDC credentials are accepted.
func (c OIDCConfig) Enabled() bool { return c.Issuer != "" }

// WithDefaults returns c with its zero fields set to the defaults, if it
// has an issuer.
func (c OIDCConfig) WithDefaults() OIDCConfig {
	if !c.Enabled() {
		return c
	}
	if c.RoleClaim == "" {
		c.RoleClaim = DefaultOIDCRoleClaim
	}
	if c.NameClaim == "" {
		c.NameClaim = DefaultOIDCNameClaim
	}
	if c.ClientID == "" {
		c.ClientID = c.Audience
	}
	if len(c.Scopes) == 0 {
		c.Scopes = slices.Clone(DefaultOIDCScopes)
	}
	if c.DisplayName == "" {
		if u, err := url.Parse(c.Issuer); err == nil {
			c.DisplayName = u.Hostname()
		}
	}
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = DefaultOIDCSessionIdleTimeout
	}
	if c.SessionMaxAge == 0 {
		c.SessionMaxAge = DefaultOIDCSessionMaxAge
	}
	return c
}

// Validate reports every problem of c, with its defaults, at once, joined
// with [errors.Join].
func (c OIDCConfig) Validate() error {
	return errors.Join(c.WithDefaults().validate()...)
}

// validate returns the problems of c, already defaulted.
func (c OIDCConfig) validate() []error {
	if !c.Enabled() {
		if c.Audience != "" || len(c.Roles) > 0 || c.RedirectURL != "" || c.ClientID != "" || c.ClientSecret != "" || c.ClientSecretFile != "" {
			return []error{errors.New("api oidc: issuer is empty, but other oidc settings are set")}
		}
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		errs = append(errs, fmt.Errorf("api oidc issuer %q: must be an http(s) URL", c.Issuer))
	} else if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		errs = append(errs, fmt.Errorf("api oidc issuer %q: must use https (http only on loopback, for tests)", c.Issuer))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("api oidc audience: required (the client ID tokens are issued for)"))
	}
	seen := map[string]bool{}
	for i, r := range c.Roles {
		if r.Claim == "" {
			errs = append(errs, fmt.Errorf("api oidc role %d: claim is empty", i))
		}
		if seen[r.Claim] {
			errs = append(errs, fmt.Errorf("api oidc role %d: claim %q mapped twice", i, r.Claim))
		}
		seen[r.Claim] = true
		if !slices.Contains(Roles, r.Role) {
			errs = append(errs, fmt.Errorf("api oidc role %d (%q): role %q: must be one of %s", i, r.Claim, r.Role, strings.Join(Roles, ", ")))
		}
	}
	return append(errs, c.validateSignIn()...)
}

// validateSignIn returns the problems of the console sign-in settings.
func (c OIDCConfig) validateSignIn() []error {
	var errs []error
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		errs = append(errs, errors.New("api oidc: set client_secret or client_secret_file, not both"))
	}
	if c.SessionIdleTimeout < 0 || c.SessionMaxAge < 0 {
		errs = append(errs, errors.New("api oidc session_idle_timeout, session_max_age: must be positive"))
	} else if c.SessionIdleTimeout > c.SessionMaxAge {
		errs = append(errs, fmt.Errorf("api oidc session_idle_timeout %s: above session_max_age %s", c.SessionIdleTimeout, c.SessionMaxAge))
	}
	if c.RedirectURL == "" {
		return errs
	}
	u, err := url.Parse(c.RedirectURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		errs = append(errs, fmt.Errorf("api oidc redirect_url %q: must be an absolute http(s) URL", c.RedirectURL))
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		errs = append(errs, fmt.Errorf("api oidc redirect_url %q: must use https (http only on loopback, for tests)", c.RedirectURL))
	case u.Path != console.CallbackPath || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		errs = append(errs, fmt.Errorf("api oidc redirect_url %q: must be the console's origin followed by %s, nothing else", c.RedirectURL, console.CallbackPath))
	}
	return errs
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1"
}

// oidcAuth verifies identity tokens. The provider's discovery document is
// fetched on first use, and again after a failure, so that connlog starts
// even while the identity provider is down.
type oidcAuth struct {
	cfg    OIDCConfig
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex
	provider *oidc.Provider
	// verifier checks bearer JWTs (audience Audience); signInVerifier the
	// ID tokens of the console's sign-in (audience ClientID).
	verifier       *oidc.IDTokenVerifier
	signInVerifier *oidc.IDTokenVerifier
	// failed is when discovery last failed; it is not tried again for
	// oidcRetry, so that an identity provider that is down is not flooded.
	failed    time.Time
	failedErr error
}

// oidcRetry is how long a failed discovery is not tried again.
const oidcRetry = 5 * time.Second

func newOIDCAuth(cfg OIDCConfig, now func() time.Time) *oidcAuth {
	return &oidcAuth{cfg: cfg, client: &http.Client{Timeout: oidcHTTPTimeout}, now: now}
}

// looksLikeJWT reports whether a bearer token has the shape of a JWT
// (three base64url parts); connlog's own tokens never contain a dot.
func looksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2 && !strings.HasPrefix(token, tokenPrefix)
}

// discover returns the provider, discovering it on first use.
func (a *oidcAuth) discover(ctx context.Context) (*oidc.Provider, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.provider != nil {
		return a.provider, nil
	}
	if !a.failed.IsZero() && time.Since(a.failed) < oidcRetry {
		return nil, a.failedErr
	}
	cctx := oidc.ClientContext(context.WithoutCancel(ctx), a.client)
	dctx, cancel := context.WithTimeout(cctx, oidcHTTPTimeout)
	defer cancel()
	p, err := oidc.NewProvider(dctx, a.cfg.Issuer)
	if err != nil {
		a.failed, a.failedErr = time.Now(), fmt.Errorf("oidc discovery: %w", err)
		return nil, a.failedErr
	}
	// The key set outlives this request: it gets a context with the client
	// but no deadline. Both verifiers share it.
	a.provider = p
	a.verifier = p.VerifierContext(cctx, &oidc.Config{
		ClientID:             a.cfg.Audience,
		SupportedSigningAlgs: a.cfg.Algorithms,
		Now:                  a.now,
	})
	a.signInVerifier = p.VerifierContext(cctx, &oidc.Config{
		ClientID:             a.cfg.ClientID,
		SupportedSigningAlgs: a.cfg.Algorithms,
		Now:                  a.now,
	})
	return p, nil
}

// getVerifier returns the verifier of bearer JWTs.
func (a *oidcAuth) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if _, err := a.discover(ctx); err != nil {
		return nil, err
	}
	return a.verifier, nil
}

// errIdPDown is the refusal while the provider cannot be discovered.
func errIdPDown(err error) *Error {
	return refuse(Unavailable, "the identity provider cannot be reached to check your token; try again later", err.Error())
}

// authenticate verifies raw and returns its principal. The token itself is
// never logged or recorded: refusals carry go-oidc's explanation only.
func (a *oidcAuth) authenticate(ctx context.Context, raw string) (*Principal, error) {
	v, err := a.getVerifier(ctx)
	if err != nil {
		return nil, errIdPDown(err)
	}
	vctx, cancel := context.WithTimeout(ctx, oidcHTTPTimeout)
	defer cancel()
	tok, err := v.Verify(vctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		msg := "the identity token is not valid here (signature, issuer or audience)"
		if errors.As(err, &expired) {
			msg = "the identity token has expired; sign in again"
		}
		return nil, refuse(Unauthenticated, msg, "jwt: "+err.Error())
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, refuse(Unauthenticated, "the identity token's claims cannot be read", "jwt claims: "+err.Error())
	}
	return a.principal(tok.Subject, claims)
}

// principal maps the claims of a verified token (a bearer JWT or the ID
// token of the console's sign-in: the one mapping of both) to the person,
// their role and their sites. The principal comes with the refusal of a
// person whose claims give no role, or several, so that the audit row names
// who was refused.
func (a *oidcAuth) principal(subject string, claims map[string]json.RawMessage) (*Principal, error) {
	name := claimString(claims[a.cfg.NameClaim])
	if name == "" {
		name = subject
	}
	name = textcut.ValidRunes(name, 200)
	p := &Principal{Name: name}
	if a.cfg.SitesClaim != "" {
		p.Sites = claimStrings(claims[a.cfg.SitesClaim])
	}
	values := claimStrings(claims[a.cfg.RoleClaim])
	var found []string
	for _, v := range values {
		r := a.role(v)
		if r != "" && !slices.Contains(found, r) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 1:
		p.Role = found[0]
		return p, nil
	case 0:
		return p, refuse(Forbidden, "your identity gives no connlog role; ask an administrator",
			fmt.Sprintf("jwt claim %s %q maps to no role", a.cfg.RoleClaim, textcut.Runes(strings.Join(values, ","), 200)))
	default:
		return p, refuse(Forbidden, "your identity gives several connlog roles; one credential must have one role",
			fmt.Sprintf("jwt claim %s maps to roles %s", a.cfg.RoleClaim, strings.Join(found, ",")))
	}
}

// role maps one claim value to a connlog role, "" if none.
func (a *oidcAuth) role(v string) string {
	if len(a.cfg.Roles) == 0 {
		if slices.Contains(Roles, v) {
			return v
		}
		return ""
	}
	for _, r := range a.cfg.Roles {
		if r.Claim == v {
			return r.Role
		}
	}
	return ""
}

// claimString reads a string claim, "" if absent or not a string.
func claimString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// claimStrings reads a claim that is a string or a list of strings.
func claimStrings(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	if s := claimString(raw); s != "" {
		return []string{s}
	}
	var ss []string
	if json.Unmarshal(raw, &ss) != nil {
		return nil
	}
	return slices.DeleteFunc(ss, func(s string) bool { return s == "" })
}
