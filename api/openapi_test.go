package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

func init() {
	// Bodies that are not JSON are checked as opaque strings.
	for _, ct := range []string{mediaNDJSON, mediaCSV, "application/zip", "text/plain"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

// loadOpenAPI parses and validates the served document.
func loadOpenAPI(tb testing.TB) (*openapi3.T, routers.Router) {
	tb.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		tb.Fatal(err)
	}
	if err := doc.Validate(tb.Context()); err != nil {
		tb.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return doc, router
}

// openapiCase is one request of the OpenAPI test and the status it must get.
type openapiCase struct {
	method, target, token, accept, body string
	want                                int
}

// TestOpenAPI sends requests to every documented operation (successes and
// refusals) on a server over the real store, and validates each real
// answer (status, content type, body schema) against the document; every
// operation must have been seen answering with success.
func TestOpenAPI(t *testing.T) {
	doc, router := loadOpenAPI(t)
	env := newLiveEnv(t, nil)
	officer, analyst, auditor := env.tokens[RoleOfficer], env.tokens[RoleAnalyst], env.tokens[RoleAuditor]
	w := env.window()
	day := env.base.Truncate(24 * time.Hour)
	sel := `{"ip":"203.0.113.7","site":"` + liveSite + `","from":"` + day.Format(time.RFC3339) + `","to":"` + day.Add(48*time.Hour).Format(time.RFC3339) + `"}`
	// A requisition and a hold made through the API, for the operations on them.
	create := env.do(t, http.MethodPost, "/v1/requisitions", "Bearer "+officer, "REQ-1", "", `{"authority":"TJ Paris","officer_name":"OPJ Martin",`+
		`"officer_service":"OCLCTIC","article":"60-1","procedure_reference":"PV 1","date_received":"`+day.Format(time.DateOnly)+`","date_due":"`+day.Add(72*time.Hour).Format(time.DateOnly)+`","selectors":[`+sel+`]}`, false)
	var req struct{ ID string }
	if err := json.Unmarshal([]byte(create.body), &req); err != nil || req.ID == "" {
		t.Fatalf("create requisition: %d %s", create.StatusCode, create.body)
	}
	seen := map[string]bool{} // "METHOD /path" answered with success
	seen[validateAgainst(t, router, "POST /v1/requisitions", openapiCase{method: "POST", target: "/v1/requisitions"}, create)] = true
	cases := []openapiCase{
		{"GET", "/v1/access?ip=203.0.113.7&" + w, analyst, "", "", 200},
		{"GET", "/v1/access?ip=203.0.113.0/24&limit=2&" + w, analyst, "", "", 200},
		{"GET", "/v1/access?ip=203.0.113.7&" + w, analyst, mediaNDJSON, "", 200},
		{"GET", "/v1/access?ip=203.0.113.7&" + w, analyst, mediaCSV, "", 200},
		{"GET", "/v1/access?client=unix:&" + w, analyst, "", "", 200},
		{"GET", "/v1/access?ip=203.0.113.7", analyst, "", "", 400},
		{"GET", "/v1/access?ip=203.0.113.7&" + w, "", "", "", 401},
		{"GET", "/v1/access?ip=203.0.113.7&" + w, auditor, "", "", 403},
		{"GET", "/v1/connections?ip=203.0.113.7&limit=3&" + w, officer, "", "", 200},
		{"GET", "/v1/connections?ip=203.0.113.7&" + w, officer, mediaCSV, "", 200},
		{"GET", "/v1/connections?ip=203.0.113.7&" + w, officer, mediaNDJSON, "", 200},
		{"GET", "/v1/connections?ip=203.0.113.7&method=GET&" + w, officer, "", "", 400},
		{"GET", "/v1/ip/203.0.113.7?" + w, analyst, "", "", 200},
		{"GET", "/v1/ip/192.0.2.99", analyst, "", "", 200},
		{"GET", "/v1/ip/nope", analyst, "", "", 400},
		{"GET", "/v1/audit?limit=1&" + url.Values{"from": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "to": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}.Encode(), auditor, "", "", 200},
		{"GET", "/v1/audit?" + w, env.tokens[RoleAuditor+"@other"], "", "", 403},
		{"GET", "/v1/audit/subject?ip=203.0.113.7", auditor, "", "", 200},
		{"GET", "/v1/audit/subject?ip=203.0.113.0/24", auditor, "", "", 400},
		{"GET", "/v1/stats/audience?site=" + liveSite + "&by=path&granularity=day&from=" + day.Format(time.RFC3339) + "&to=" + day.Add(24*time.Hour).Format(time.RFC3339), env.tokens[RoleStats], "", "", 200},
		{"GET", "/v1/retention", auditor, "", "", 200},
		{"GET", "/v1/requisitions", officer, "", "", 200},
		{"GET", "/v1/requisitions/" + req.ID, officer, "", "", 200},
		{"GET", "/v1/requisitions/nope", officer, "", "", 404},
		{"POST", "/v1/requisitions/" + req.ID + "/run", officer, "", "", 200},
		{"GET", "/v1/requisitions/" + req.ID + "/export", officer, "", "", 200},
		{"POST", "/v1/requisitions/" + req.ID + "/answered", officer, "", `{"sent_at":"` + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `","how":"PNIJ"}`, 200},
		{"POST", "/v1/requisitions", officer, "", `{"authority":""}`, 400},
		{"POST", "/v1/holds", officer, "", `{"reference":"GEL-1","expires":"` + time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339) + `","selector":` + sel + `}`, 200},
		{"GET", "/v1/holds", officer, "", "", 200},
		{"DELETE", "/v1/holds/nope", officer, "", "", 404},
		{"GET", "/v1/me", analyst, "", "", 200},
		{"GET", "/v1/me", "", "", "", 401},
		{"POST", "/v1/downloads", analyst, "", `{"path":"/v1/access","query":"ip=203.0.113.7&` + w + `","format":"csv"}`, 200},
		{"POST", "/v1/downloads", auditor, "", `{"path":"/v1/access","query":"","format":"csv"}`, 403},
		{"GET", "/v1/downloads/unknown", "", "", "", 404},
		{"GET", "/v1/openapi.json", "", "", "", 200},
		{"GET", "/healthz", "", "", "", 200},
		{"GET", "/readyz", "", "", "", 200},
	}
	var holdID string
	for i := 0; i < len(cases); i++ {
		tc := cases[i]
		auth := ""
		if tc.token != "" {
			auth = "Bearer " + tc.token
		}
		r := env.do(t, tc.method, tc.target, auth, "INC-1234", tc.accept, tc.body, false)
		name := fmt.Sprintf("%s %.90s (%s)", tc.method, tc.target, tc.accept)
		if r.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d: %.300s", name, r.StatusCode, tc.want, r.body)
			continue
		}
		op := validateAgainst(t, router, name, tc, r)
		if op != "" && r.StatusCode < 300 {
			seen[op] = true
		}
		if tc.method == "POST" && tc.target == "/v1/downloads" && r.StatusCode == 200 {
			var tk struct{ URL string }
			if err := json.Unmarshal([]byte(r.body), &tk); err != nil {
				t.Fatalf("mint a download ticket: %s", r.body)
			}
			cases = append(cases, openapiCase{"GET", tk.URL, "", "", "", 200})
		}
		if tc.method == "POST" && tc.target == "/v1/holds" {
			var hs struct{ Holds []struct{ ID string } }
			if err := json.Unmarshal([]byte(r.body), &hs); err != nil || len(hs.Holds) != 1 {
				t.Fatalf("create hold: %s", r.body)
			}
			holdID = hs.Holds[0].ID
			cases = append(cases, openapiCase{"DELETE", "/v1/holds/" + holdID, officer, "", "", 200})
		}
	}
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			// /metrics is served by the process's registry, not in tests;
			// the console's sign-in needs an identity provider:
			// TestOIDCSignInOpenAPI checks it.
			if op := method + " " + path; !seen[op] && path != "/metrics" && !strings.HasPrefix(path, "/v1/session") {
				missing = append(missing, op)
			}
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("documented operations never seen answering with success: %s", strings.Join(missing, ", "))
	}
}

// validateAgainst checks one real answer against the document and returns
// its operation ("GET /v1/access"), or "" if it matches no route.
func validateAgainst(t *testing.T, router routers.Router, name string, tc openapiCase, r *liveResponse) string {
	t.Helper()
	req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
	route, pathParams, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s: not in the document: %v", name, err)
		return ""
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.StatusCode, Header: r.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes([]byte(r.body))
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s: the answer (%d, %s) does not match the document: %v", name, r.StatusCode, r.Header.Get("Content-Type"), err)
	}
	return tc.method + " " + route.Path
}
