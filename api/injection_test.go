package api

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// injectionCorpus are SQL-injection and ClickHouse-function payloads.
var injectionCorpus = []string{
	`'`, `"`, "`", `\`, `\\`, `\'`, `''`, `' OR '1'='1`, `' OR 1=1 --`, `1 OR 1=1`,
	`'; DROP TABLE access_log; --`, `'); DROP DATABASE default; --`, `x'; TRUNCATE TABLE audit; SELECT '`,
	`{x:String}`, `{ip:String}`, `{lo:IPv6}`, `{{x}}`, `$1`, `?`, `%s`, `%00`,
	`sleep(10)`, `' || sleep(3) || '`, `1) AND sleep(3) AND (1`, `file('/etc/passwd')`, `' UNION SELECT * FROM file('/etc/passwd', 'LineAsString') --`,
	`url('http://127.0.0.1:1/', CSV)`, `remote('127.0.0.1', system.tables)`, `system.tables`, `(SELECT 1)`,
	`203.0.113.7' OR '1'='1`, `203.0.113.7/24 OR 1`, `::ffff:203.0.113.7'--`, `2026-03-03T00:00:00Z' OR '1'='1`,
	"a\x00b", "\x00", "line\nbreak", "tab\there", "\r\n", "\u202eevil", "ünïcødé 名前 🙂", "\xff\xfe",
	strings.Repeat("A", 5000), strings.Repeat("'", 3000),
}

// injectionTargets are the GET endpoints and a valid value of each of
// their parameters; each parameter in turn is replaced by a payload.
func injectionTargets(e *liveEnv) []struct {
	path, token string
	params      url.Values
} {
	from, to := e.base.Add(-time.Hour).Format(time.RFC3339), e.base.Add(time.Hour).Format(time.RFC3339)
	return []struct {
		path, token string
		params      url.Values
	}{
		{"/v1/access", RoleAnalyst, url.Values{"ip": {"203.0.113.7"}, "from": {from}, "to": {to}, "site": {liveSite}, "port": {"50001"},
			"path_prefix": {"/app"}, "method": {"GET"}, "status": {"200"}, "user_agent": {"Mozilla"}, "user": {"u203.0.113.7"}, "limit": {"10"}, "cursor": {""}}},
		{"/v1/connections", RoleOfficer, url.Values{"ip": {"203.0.113.0/24"}, "from": {from}, "to": {to}, "site": {liveSite}, "port": {"50001"},
			"path_prefix": {"/app"}, "operation": {"create"}, "status": {"4xx"}, "user": {"u203.0.113.7"}, "limit": {"10"}, "cursor": {""}}},
		{"/v1/ip/203.0.113.7", RoleAnalyst, url.Values{"from": {from}, "to": {to}, "site": {liveSite}, "top": {"5"}}},
		{"/v1/audit", RoleAuditor, url.Values{"from": {from}, "to": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "actor": {"x"}, "role": {"analyst"},
			"endpoint": {"/v1/access"}, "outcome": {"ok"}, "purpose_contains": {"INC"}, "limit": {"10"}, "cursor": {""}}},
		{"/v1/audit/subject", RoleAuditor, url.Values{"ip": {"203.0.113.7"}, "from": {from}, "to": {to}, "limit": {"10"}, "cursor": {""}}},
	}
}

var injectionFull = flag.Bool("injection.full", false, "try every injection payload in every parameter (slow)")

// typedSample is the part of the corpus tried on most parameters. (The
// whole corpus everywhere is ~1,800 requests and more than a minute on the
// embedded engine, whose audit inserts wait for fsync.)
var typedSample = []string{`' OR '1'='1`, `{x:String}`, `sleep(10)`, "a\x00b", `\`, strings.Repeat("9", 5000)}

// freeText are the parameters whose value reaches ClickHouse as a string.
var freeText = map[string]bool{"site": true, "path_prefix": true, "user_agent": true, "user": true,
	"actor": true, "role": true, "endpoint": true, "outcome": true, "purpose_contains": true}

// payloadsFor returns the payloads tried on param of path: the whole
// corpus on the free-text parameters of /v1/access, a sample elsewhere;
// go test -injection.full tries the whole corpus everywhere.
func payloadsFor(path, param string) []string {
	if *injectionFull || freeText[param] && path == "/v1/access" {
		return injectionCorpus
	}
	return typedSample
}

// dbState counts the tables of connlog's databases and the rows of each,
// except the audit trail (which grows by one row per request), and every
// database of the engine.
func dbState(tb testing.TB, e *liveEnv) string {
	tb.Helper()
	d := e.st.Databases()
	rows, err := e.st.Conn().Query(tb.Context(),
		"SELECT database, name, total_rows FROM system.tables WHERE database IN ('"+d.Access+"', '"+d.Connections+"', '"+d.Ops+"') ORDER BY database, name")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var db, name string
		var n *uint64
		if err := rows.Scan(&db, &name, &n); err != nil {
			tb.Fatal(err)
		}
		if name == "audit" && db == d.Ops {
			n = nil
		}
		if n != nil {
			fmt.Fprintf(&b, "%s.%s=%d ", db, name, *n)
		} else {
			fmt.Fprintf(&b, "%s.%s ", db, name)
		}
	}
	var dbs uint64
	if err := e.st.Conn().QueryRow(tb.Context(), "SELECT count() FROM system.databases").Scan(&dbs); err != nil {
		tb.Fatal(err)
	}
	fmt.Fprintf(&b, "databases=%d", dbs)
	return b.String()
}

// TestInjection puts every payload in every parameter (and in the path of
// /v1/ip/{ip}) of every search: each answer is 400 or a normal 200, quickly;
// the database is unchanged but for one audit row per request; no token
// reaches the logs.
func TestInjection(t *testing.T) {
	env := newLiveEnv(t, nil)
	before := dbState(t, env)
	auditsBefore := env.auditCount(t)
	requests := 0
	check := func(t *testing.T, target, token string) {
		t.Helper()
		start := time.Now()
		r := env.get(t, target, env.tokens[token], "")
		requests++
		if r.StatusCode != http.StatusOK && r.StatusCode != http.StatusBadRequest {
			t.Errorf("%.80q: status %d: %s", target, r.StatusCode, r.body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%.80q: took %s", target, d)
		}
		if r.StatusCode == http.StatusOK && strings.Contains(r.body, "root:") {
			t.Errorf("%.80q: answer carries a file's content", target)
		}
	}
	for _, tgt := range injectionTargets(env) {
		for name := range tgt.params {
			for _, p := range payloadsFor(tgt.path, name) {
				q := url.Values{}
				for k, v := range tgt.params {
					if v[0] != "" {
						q[k] = v
					}
				}
				q.Set(name, p)
				check(t, tgt.path+"?"+q.Encode(), tgt.token)
			}
		}
	}
	for _, p := range payloadsFor("/v1/ip/{ip}", "ip") {
		check(t, "/v1/ip/"+url.PathEscape(p), RoleAnalyst)
	}
	if after := dbState(t, env); after != before {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
	}
	if n := env.auditCount(t) - auditsBefore; n != uint64(requests) {
		t.Errorf("%d audit rows for %d requests", n, requests)
	}
	checkNoTokenLogged(t, env)
	t.Logf("%d requests, state %s", requests, before)
}
