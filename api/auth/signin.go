package auth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/connlog/connlog/internal/textcut"
	"github.com/connlog/connlog/store"
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
//     sites with the function that maps a bearer JWT's (oidcAuth.principal).
//  4. The API (api/signin.go) writes the sign-in's audit row, then opens a
//     console session ([Authenticator.OpenSession]): a random ID known to
//     connlog by its hash only, sent as an HttpOnly,
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
// tokens the API limits them per source and counts them in the audit trail
// (api/badcreds.go), so that a flood of forged callbacks costs no fsync and
// no request to the identity provider past the limit. A sign-in whose
// verified identity maps to no role gets an audit row of its own naming the
// person, as a JWT does.

// maxSignInBody bounds the body of POST /v1/session/oidc/callback.
const maxSignInBody = 16 << 10

// ErrProviderDown is wrapped by the refusal of a sign-in that cannot start
// because the identity provider cannot be reached.
var ErrProviderDown = errors.New("the identity provider cannot be reached")

// SignInEnabled reports whether the console may sign in with the identity
// provider (api.oidc.redirect_url is set).
func (a *Authenticator) SignInEnabled() bool { return a.sessions != nil }

// DisplayName names the identity provider on the console's sign-in button.
func (a *Authenticator) DisplayName() string { return a.cfg.DisplayName }

// IdleTimeout is how long a console session lives without a request.
func (a *Authenticator) IdleTimeout() time.Duration { return a.cfg.SessionIdleTimeout }

// oauth2Config is connlog as the provider's client.
func (a *Authenticator) oauth2Config(p *oidc.Provider) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID}
	for _, sc := range a.cfg.Scopes {
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
	if a.clientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID:     a.cfg.ClientID,
		ClientSecret: string(a.clientSecret),
		Endpoint:     ep,
		RedirectURL:  a.cfg.RedirectURL,
		Scopes:       scopes,
	}
}

// StartSignIn starts a sign-in with the identity provider: it returns the
// provider's authorization URL to send the browser to, and the login ID to
// set as the login cookie ([Authenticator.SetLoginCookie]). A refusal
// wraps ErrProviderDown when the provider cannot be reached.
func (a *Authenticator) StartSignIn(ctx context.Context) (authURL, loginID string, err error) {
	p, err := a.oidc.discover(ctx)
	if err != nil {
		return "", "", &Error{Kind: Unavailable, Msg: "the identity provider cannot be reached; try again later", Reason: err.Error(), err: ErrProviderDown}
	}
	var l pendingLogin
	for _, v := range []*string{&l.state, &l.nonce} {
		if *v, err = randomID(); err != nil {
			return "", "", err
		}
	}
	now := a.now()
	l.verifier = oauth2.GenerateVerifier()
	l.expires = now.Add(loginTTL)
	id, err := a.sessions.addLogin(l, now)
	if err != nil {
		return "", "", err
	}
	return a.oauth2Config(p).AuthCodeURL(l.state, oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce)), id, nil
}

// signInRequest is the body of POST /v1/session/oidc/callback: the
// parameters of the provider's answer.
type signInRequest struct {
	Code  string `json:"code"`
	State string `json:"state"`
	Error string `json:"error"`
}

// oauthErrorCode is what an error code from the provider must look like to
// be shown (RFC 6749 codes are lower-case words joined by underscores).
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// signInRefused is a refusal of a sign-in that names nobody.
func signInRefused(msg, reason string) *Error {
	return refuse(Unauthenticated, msg, "oidc sign-in: "+reason)
}

// FinishSignIn checks the provider's answer that the console posts to POST
// /v1/session/oidc/callback (a JSON body {code, state} or {error}, with the
// login cookie) and returns the person it signs in. The login is taken
// whatever the outcome: each sign-in is finished once at most. As for a
// bearer JWT, a principal may come with a refusal (an identity that maps to
// no role), so that the audit row names who was refused.
func (a *Authenticator) FinishSignIn(r *http.Request) (*Principal, error) {
	var req signInRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxSignInBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, signInRefused("the body must be a JSON object {code, state} from the identity provider's answer", "unreadable body")
	}
	ck, err := r.Cookie(LoginCookie)
	if err != nil {
		return nil, signInRefused("this browser started no sign-in here, or it has expired; sign in again", "no login cookie")
	}
	login, ok := a.sessions.takeLogin(ck.Value, a.now())
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
	p, err := a.oidc.discover(r.Context())
	if err != nil {
		return nil, errIdPDown(err)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, a.oidc.client), oidcHTTPTimeout)
	defer cancel()
	tok, err := a.oauth2Config(p).Exchange(ctx, req.Code, oauth2.VerifierOption(login.verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			return nil, refuse(Unavailable, "the identity provider cannot be reached to finish the sign-in; try again later", "oidc token exchange: "+textcut.Runes(err.Error(), 300))
		}
		return nil, signInRefused("the identity provider refused the sign-in code (used, expired, or not for this sign-in); sign in again",
			"token exchange refused: "+textcut.ValidRunes(re.ErrorCode+" "+re.ErrorDescription, 200))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, signInRefused("the identity provider sent no ID token; is the openid scope allowed for connlog's client?", "no id_token in the token response")
	}
	vctx, vcancel := context.WithTimeout(r.Context(), oidcHTTPTimeout)
	defer vcancel()
	idt, err := a.oidc.signInVerifier.Verify(vctx, raw)
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
	if len(idt.Audience) > 1 && claimString(claims["azp"]) != a.cfg.ClientID {
		// OpenID Connect Core 3.1.3.7: with several audiences, the
		// authorized party must be this client.
		return nil, signInRefused("the identity provider's ID token is not valid here (audience)", "id token with several audiences and azp not the client id")
	}
	return a.oidc.principal(idt.Subject, claims)
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
