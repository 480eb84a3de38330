package api

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/connlog/connlog/api/auth"
	"github.com/connlog/connlog/store/legal"
)

// This file adds to the authorisation matrix (matrix_test.go) the
// requisition and hold endpoints, and the OIDC credentials: a valid JWT per
// role, a JWT of another site, and an expired JWT.

func init() {
	day := time.Now().UTC().Add(-72 * time.Hour).Truncate(24 * time.Hour)
	from, to := day.Format(time.RFC3339), day.Add(72*time.Hour).Format(time.RFC3339)
	selector := `{"ip":"203.0.113.7","site":"` + liveSite + `","from":"` + from + `","to":"` + to + `"}`
	expires := time.Now().UTC().Add(30 * 24 * time.Hour).Format(time.RFC3339)
	for name, ep := range map[string]matrixEndpoint{
		"POST /v1/requisitions": {method: http.MethodPost, role: RoleOfficer, ok: 200, otherSite: 403,
			target: func(*liveEnv) string { return "/v1/requisitions" },
			body: `{"authority":"TJ Paris","officer_name":"OPJ Martin","officer_service":"OCLCTIC","article":"60-1",` +
				`"procedure_reference":"PV 1","date_received":"` + day.Format(time.DateOnly) + `","selectors":[` + selector + `]}`},
		"GET /v1/requisitions/{id}": {method: http.MethodGet, role: RoleOfficer, ok: 200, otherSite: 404,
			target: func(e *liveEnv) string { return "/v1/requisitions/" + matrixRequisition(e, false) }},
		"POST /v1/requisitions/{id}/run": {method: http.MethodPost, role: RoleOfficer, ok: 200, otherSite: 404,
			target: func(e *liveEnv) string { return "/v1/requisitions/" + matrixRequisition(e, false) + "/run" }},
		"GET /v1/requisitions/{id}/export": {method: http.MethodGet, role: RoleOfficer, ok: 200, otherSite: 404,
			target: func(e *liveEnv) string { return "/v1/requisitions/" + matrixRequisition(e, true) + "/export" }},
		"POST /v1/requisitions/{id}/answered": {method: http.MethodPost, role: RoleOfficer, ok: 200, otherSite: 404,
			target: func(e *liveEnv) string { return "/v1/requisitions/" + matrixRequisition(e, true) + "/answered" },
			body:   `{"sent_at":"` + day.Format(time.RFC3339) + `","how":"PNIJ"}`},
		"POST /v1/holds": {method: http.MethodPost, role: RoleOfficer, ok: 200, otherSite: 403,
			target: func(*liveEnv) string { return "/v1/holds" },
			body:   `{"reference":"GEL-1","expires":"` + expires + `","selector":` + selector + `}`},
		"DELETE /v1/holds/{id}": {method: http.MethodDelete, role: RoleOfficer, ok: 200, otherSite: 404,
			target: func(e *liveEnv) string { return "/v1/holds/" + matrixHold(e) }},
	} {
		matrixEndpoints[name] = ep
	}

	matrixCredentials = append(matrixCredentials,
		matrixCredential{name: "JWT", roles: auth.Roles,
			auth: func(tb testing.TB, e *liveEnv, role string) string { return matrixJWT(tb, e, role, "", false) },
			want: allowed},
		matrixCredential{name: "JWT of another site", roles: auth.Roles,
			auth: func(tb testing.TB, e *liveEnv, role string) string { return matrixJWT(tb, e, role, otherSite, false) },
			want: func(ep matrixEndpoint, role string) int {
				if s := allowed(ep, role); s != ep.ok {
					return s
				}
				return ep.otherSite
			}},
		matrixCredential{name: "expired JWT", roles: auth.Roles,
			auth: func(tb testing.TB, e *liveEnv, role string) string { return matrixJWT(tb, e, role, "", true) },
			want: func(matrixEndpoint, string) int { return http.StatusUnauthorized }},
	)
}

// matrixIdP is the identity provider of the matrix's JWTs: one per test
// process, as generating its keys takes a while; it ends with the process.
var (
	matrixIdPOnce sync.Once
	matrixIdPVal  *testIdP
)

// matrixJWT returns the Authorization header value of a JWT for role
// (limited to site if not empty, expired if asked), and makes e's server
// accept the matrix's identity provider.
func matrixJWT(tb testing.TB, e *liveEnv, role, site string, expired bool) string {
	tb.Helper()
	matrixIdPOnce.Do(func() { matrixIdPVal = newTestIdP(noCleanup{tb}) })
	idp := matrixIdPVal
	if e.srv.cfg.OIDC.Issuer != idp.srv.URL {
		e.srv.cfg.OIDC = OIDCConfig{
			Issuer: idp.srv.URL, Audience: "connlog", RoleClaim: "groups", SitesClaim: "sites", NameClaim: "email",
		}.WithDefaults()
		a, err := auth.New(auth.Config{Tokens: e.srv.cfg.Tokens, OIDC: e.srv.cfg.OIDC}, func() time.Time { return e.srv.now() })
		if err != nil {
			tb.Fatal(err)
		}
		e.srv.authn = a
	}
	now := time.Now()
	c := idp.claims(map[string]any{"groups": []string{role}, "email": role + "-jwt@example.org", "sites": nil,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()})
	if site != "" {
		c["sites"] = []string{site}
	}
	if expired {
		c["exp"] = now.Add(-time.Minute).Unix()
	}
	return "Bearer " + idp.sign(tb, "ES256", c)
}

// noCleanup is a testing.TB whose Cleanup does nothing: for the matrix's
// identity provider, which outlives the subtest that starts it.
type noCleanup struct{ testing.TB }

func (noCleanup) Cleanup(func()) {}

// matrixRequisition enters a fresh requisition of the seeded address and
// site straight in the store (no audit row), run once if run is set, and
// returns its id.
func matrixRequisition(e *liveEnv, run bool) string {
	ctx := context.Background()
	req, err := e.st.CreateRequisition(ctx, legal.Requisition{
		Authority: "TJ Paris", OfficerName: "OPJ Martin", OfficerService: "OCLCTIC", Article: "60-1",
		ProcedureRef: "PV 1", Received: e.base, CreatedBy: "matrix", Purpose: "matrix",
		Selectors: []legal.Selector{{
			Network: netip.MustParsePrefix("203.0.113.7/32"), Site: liveSite, From: e.base.Add(-time.Hour), To: e.base.Add(time.Hour),
		}},
	})
	if err != nil {
		panic(err)
	}
	if run {
		if _, err := e.srv.packages.Run(ctx, &req, "matrix", nil); err != nil {
			panic(err)
		}
	}
	return req.ID
}

// matrixHold creates a fresh hold of the seeded address and site straight
// in the store and returns its id.
func matrixHold(e *liveEnv) string {
	h, err := e.st.CreateHold(context.Background(), legal.Hold{
		Reference: "GEL-matrix", CreatedBy: "matrix", Expires: time.Now().Add(24 * time.Hour),
		Selector: legal.Selector{Network: netip.MustParsePrefix("203.0.113.7/32"), Site: liveSite, From: e.base.Add(-time.Hour), To: e.base.Add(time.Hour)},
	})
	if err != nil {
		panic(err)
	}
	return h.ID
}
