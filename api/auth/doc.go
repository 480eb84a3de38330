// Package auth answers, for the query API, who the caller is: the person
// behind a request's credential, with their role and sites ([Principal]).
// It knows three kinds of credential:
//
//   - bearer tokens from the configuration ([Token]), known only by their
//     SHA-256, which a request's token is matched against (tokens.go);
//   - JSON Web Tokens of the organisation's identity provider, sent as
//     bearer tokens, when [OIDCConfig.Issuer] is set: issuer, audience,
//     signature and expiry are checked, the claims give the role and sites
//     (oidc.go);
//   - the web console's sessions, opened by signing in with the identity
//     provider (the authorization code flow with PKCE) when
//     [OIDCConfig.RedirectURL] is set: an HttpOnly cookie that counts only
//     with its CSRF token (session.go, signin.go).
//
// [Authenticator.Authenticate] is the one question the API's guard asks;
// the guard (package api) then checks the role, the purpose and the sites,
// and writes the audit row. This package writes no audit row, no log line
// and no answer but its cookies: a refusal is an [*Error] whose Kind the
// API maps to its error codes. Credentials are never logged, stored or
// echoed; refusals carry explanations only.
package auth
