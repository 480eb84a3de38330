package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/connlog/connlog/store/retention"
)

func init() {
	matrixEndpoints["GET /v1/retention"] = matrixEndpoint{method: http.MethodGet, role: RoleAuditor, ok: 200, otherSite: 403,
		target: func(*liveEnv) string { return "/v1/retention" }}
}

func TestRetentionReportForTheAuditorOnly(t *testing.T) {
	env := newLiveEnv(t, nil)
	resp := env.get(t, "/v1/retention", env.tokens[RoleAuditor], "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("auditor: %d %s", resp.StatusCode, resp.body)
	}
	var rep retention.Report
	if err := json.Unmarshal([]byte(resp.body), &rep); err != nil {
		t.Fatal(err)
	}
	var conn *retention.ReportEntry
	for i, e := range rep.Entries {
		if e.Class == retention.ClassConnections && e.Site == liveSite {
			conn = &rep.Entries[i]
		}
	}
	if conn == nil || conn.Rows != uint64(len(env.hits)) || conn.Policy != "12mo" || rep.Overdue {
		t.Fatalf("report: %s", resp.body)
	}
	if resp := env.get(t, "/v1/retention", env.tokens[RoleAnalyst], ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("analyst: %d %s", resp.StatusCode, resp.body)
	}
	if resp := env.get(t, "/v1/retention?site=x", env.tokens[RoleAuditor], ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d %s", resp.StatusCode, resp.body)
	}
}
