package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/connlog/connlog/api/auth"
)

// matrixEndpoint is one endpoint of the authorisation matrix, with a request
// its role may make successfully.
type matrixEndpoint struct {
	method string
	// target builds the request target (path and query) for env.
	target func(e *liveEnv) string
	body   string
	// role is the role the endpoint needs; admin may call it too.
	role string
	// ok is the status of an allowed request (200, or 201 for a creation).
	ok int
	// otherSite is the status for a token of the right role limited to
	// another site (403 when the request names a site, or when the data
	// is not per site).
	otherSite int
}

// matrixEndpoints lists every data endpoint. Engineers adding an endpoint
// append it here (e.g. from an init function in their own test file).
var matrixEndpoints = map[string]matrixEndpoint{
	"GET /v1/access": {method: http.MethodGet, role: RoleAnalyst, ok: 200, otherSite: 403,
		target: func(e *liveEnv) string { return "/v1/access?ip=203.0.113.7&site=" + liveSite + "&" + e.window() }},
	"GET /v1/connections": {method: http.MethodGet, role: RoleOfficer, ok: 200, otherSite: 403,
		target: func(e *liveEnv) string {
			return "/v1/connections?ip=203.0.113.0/24&site=" + liveSite + "&" + e.window()
		}},
	"GET /v1/ip/{ip}": {method: http.MethodGet, role: RoleAnalyst, ok: 200, otherSite: 403,
		target: func(e *liveEnv) string { return "/v1/ip/203.0.113.7?site=" + liveSite + "&" + e.window() }},
	"GET /v1/audit": {method: http.MethodGet, role: RoleAuditor, ok: 200, otherSite: 403,
		target: func(e *liveEnv) string { return "/v1/audit?" + e.window() }},
	"GET /v1/audit/subject": {method: http.MethodGet, role: RoleAuditor, ok: 200, otherSite: 403,
		target: func(*liveEnv) string { return "/v1/audit/subject?ip=203.0.113.7" }},
	"GET /v1/stats/audience": {method: http.MethodGet, role: RoleStats, ok: 200, otherSite: 403,
		target: func(e *liveEnv) string {
			return "/v1/stats/audience?site=" + liveSite + "&by=path&granularity=day&from=" +
				url.QueryEscape(e.base.Truncate(24*3600e9).Format("2006-01-02T15:04:05Z")) + "&to=" +
				url.QueryEscape(e.base.Truncate(24*3600e9).Add(24*3600e9).Format("2006-01-02T15:04:05Z"))
		}},
	"GET /v1/requisitions": {method: http.MethodGet, role: RoleOfficer, ok: 200, otherSite: 200,
		target: func(*liveEnv) string { return "/v1/requisitions" }},
	"GET /v1/holds": {method: http.MethodGet, role: RoleOfficer, ok: 200, otherSite: 200,
		target: func(*liveEnv) string { return "/v1/holds" }},
}

// matrixCredential is one kind of credential of the matrix. auth returns
// the Authorization header value ("" for none) for a request by role
// (role is "" for credentials that belong to no role); want, the status.
type matrixCredential struct {
	name  string
	roles []string // the roles to try; nil: once, with role ""
	auth  func(tb testing.TB, e *liveEnv, role string) string
	want  func(ep matrixEndpoint, role string) int
}

// allowed is the status of a request by role: ok if the role may call the
// endpoint, else 403.
func allowed(ep matrixEndpoint, role string) int {
	if role == ep.role || role == RoleAdmin {
		return ep.ok
	}
	return http.StatusForbidden
}

// matrixCredentials are the kinds of credential every endpoint is tried
// with. Identity engineers append theirs (e.g. "expired JWT" → 401) from
// an init function in their test file.
var matrixCredentials = []matrixCredential{
	{name: "no token", auth: func(testing.TB, *liveEnv, string) string { return "" },
		want: func(matrixEndpoint, string) int { return http.StatusUnauthorized }},
	{name: "bad token", auth: func(testing.TB, *liveEnv, string) string { return "Bearer cl_not-a-real-token-0123456789" },
		want: func(matrixEndpoint, string) int { return http.StatusUnauthorized }},
	{name: "token", roles: auth.Roles, auth: func(_ testing.TB, e *liveEnv, role string) string { return "Bearer " + e.tokens[role] },
		want: allowed},
	{name: "token of another site", roles: auth.Roles, auth: func(_ testing.TB, e *liveEnv, role string) string { return "Bearer " + e.tokens[role+"@other"] },
		want: func(ep matrixEndpoint, role string) int {
			if s := allowed(ep, role); s != ep.ok {
				return s
			}
			return ep.otherSite
		}},
}

// TestAuthorisationMatrix tries every endpoint with every role and kind of
// credential: each attempt gives the documented status and leaves exactly
// one audit row, written before the response started (when the window of
// counted bad credentials closes, for a 401); no token reaches the logs.
func TestAuthorisationMatrix(t *testing.T) {
	env := newLiveEnv(t, nil)
	names := make([]string, 0, len(matrixEndpoints))
	for n := range matrixEndpoints {
		names = append(names, n)
	}
	slices.Sort(names)
	before := env.auditCount(t) // audit rows before the next attempt
	for _, name := range names {
		ep := matrixEndpoints[name]
		for _, cred := range matrixCredentials {
			rs := cred.roles
			if rs == nil {
				rs = []string{""}
			}
			for _, role := range rs {
				t.Run(fmt.Sprintf("%s/%s/%s", name, cred.name, role), func(t *testing.T) {
					resp := env.do(t, ep.method, ep.target(env), cred.auth(t, env, role), "INC-1234", "", ep.body, true)
					want := cred.want(ep, role)
					if resp.StatusCode != want {
						t.Errorf("status %d, want %d: %s", resp.StatusCode, want, resp.body)
					}
					atWrite := before + 1
					if want == http.StatusUnauthorized {
						// Nobody behind the credential: the refusal is
						// counted, and its row written when the window
						// closes (api/badcreds.go), here at once.
						atWrite = before
						if err := env.srv.FlushRefusals(t.Context()); err != nil {
							t.Fatal(err)
						}
					}
					if !resp.wrote || resp.auditsAtWrite != atWrite {
						t.Errorf("%d audit rows when the response started, want %d", resp.auditsAtWrite-before, atWrite-before)
					}
					after := env.auditCount(t)
					if after != before+1 {
						t.Errorf("%d audit rows for one attempt, want 1", after-before)
					}
					before = after
					if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && resp.StatusCode != 200 {
						t.Errorf("error with content type %q", ct)
					}
				})
			}
		}
	}
	checkNoTokenLogged(t, env)
}

// checkNoTokenLogged fails if any bearer token of env appears in its logs.
func checkNoTokenLogged(t *testing.T, env *liveEnv) {
	t.Helper()
	logs := env.logs.String()
	for role, tok := range env.tokens {
		if strings.Contains(logs, tok) || strings.Contains(logs, tok[3:20]) {
			t.Errorf("the token of %s appears in the logs", role)
		}
	}
	if strings.Contains(logs, "not-a-real-token") {
		t.Error("a refused token appears in the logs")
	}
}
