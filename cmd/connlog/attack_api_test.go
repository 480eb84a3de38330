package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/api"
)

// TestAttackAPIRoles is the API part of the attack suite: with the real
// connlog serve on embedded defaults and real stored lines, every data
// endpoint refuses a request without a token, with a guessed token, and
// with a token of a role that may not read it; the role that may gets
// the rows. A refused request returns no row.
func TestAttackAPIRoles(t *testing.T) {
	tokens := map[string]string{}
	var yaml strings.Builder
	yaml.WriteString("api:\n  tokens:\n")
	for _, role := range []string{api.RoleAnalyst, api.RoleOfficer, api.RoleStats, api.RoleAuditor} {
		tok, sum, err := api.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
		fmt.Fprintf(&yaml, "    - {name: %s-person, role: %s, sha256: %q}\n", role, role, sum)
	}
	cfgFile := filepath.Join(t.TempDir(), "connlog.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startConnlog(t, "", "CONNLOG_CONFIG="+cfgFile)
	now := time.Now().UTC()
	publish(t, in.kafka, in.shipper(), "nginx", genLines(20, now.Add(-time.Hour)))
	window := url.Values{"from": {now.Add(-2 * time.Hour).Format(time.RFC3339)}, "to": {now.Add(time.Hour).Format(time.RFC3339)}}
	q := func(extra string) string { return window.Encode() + extra }
	endpoints := []struct {
		path, role string
	}{
		{"/v1/access?" + q("&ip=10.0.0.0/8"), api.RoleAnalyst},
		{"/v1/ip/10.0.0.1?" + q(""), api.RoleAnalyst},
		{"/v1/connections?" + q("&ip=10.0.0.0/8"), api.RoleOfficer},
		{"/v1/holds", api.RoleOfficer},
		{"/v1/requisitions", api.RoleOfficer},
		{"/v1/stats/audience?" + q("&site=www.example.org&by=path"), api.RoleStats},
		{"/v1/audit?" + q(""), api.RoleAuditor},
		{"/v1/audit/subject?" + q("&ip=10.0.0.1"), api.RoleAuditor},
		{"/v1/retention", api.RoleAuditor},
	}
	// The analyst's search finds the lines: the refusals below refuse
	// something that is there.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := in.get(endpoints[0].path, map[string]string{"Authorization": "Bearer " + tokens[api.RoleAnalyst], "X-Purpose": "attack suite"})
		if code == 200 && strings.Count(string(body), `"client_ip"`) >= 18 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the analyst never found the published lines: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, e := range endpoints {
		for _, cred := range []struct{ name, header string }{
			{"no token", ""},
			{"guessed token", "Bearer cl_" + strings.Repeat("A", 43)},
			{"not a bearer token", "Basic YWRtaW46YWRtaW4="},
		} {
			h := map[string]string{"X-Purpose": "attack suite"}
			if cred.header != "" {
				h["Authorization"] = cred.header
			}
			code, body := in.get(e.path, h)
			if code != 401 && code != 429 {
				t.Errorf("%s with %s: %d %s, want 401 (or 429 past the source's limit)", e.path, cred.name, code, body)
			}
			if strings.Contains(string(body), "10.0.0.") {
				t.Errorf("%s with %s: the refusal carries data: %s", e.path, cred.name, body)
			}
		}
		for role, tok := range tokens {
			code, body := in.get(e.path, map[string]string{"Authorization": "Bearer " + tok, "X-Purpose": "attack suite"})
			switch {
			case role == e.role && code != 200:
				t.Errorf("%s as %s: %d %s, want 200", e.path, role, code, body)
			case role != e.role && code != 403:
				t.Errorf("%s as %s: %d %s, want 403", e.path, role, code, body)
			case role != e.role && strings.Contains(string(body), "10.0.0."):
				t.Errorf("%s as %s: the refusal carries data: %s", e.path, role, body)
			}
		}
	}
}
