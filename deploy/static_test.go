package deploy

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestComposeConfig validates docker-compose.yml with Debian's docker-compose
// (v1 validates without a Docker engine).
func TestComposeConfig(t *testing.T) {
	bin := tool(t, "docker-compose")
	root := repoRoot(t)
	run(t, time.Minute, bin, "--project-directory", root, "-f", filepath.Join(root, "docker-compose.yml"), "config", "-q")
	// Every file the stack mounts from the repository exists.
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`- \./([^:]+):`).FindAllStringSubmatch(string(raw), -1) {
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("docker-compose.yml mounts ./%s, which does not exist", m[1])
		}
	}
}

// TestPrometheusRules runs promtool on the alert rules and their unit tests,
// and checks that every alert has a test case expecting it to fire.
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	run(t, time.Minute, promtool, "check", "rules", filepath.Join(dir, "connlog-alerts.yml"))
	out := run(t, 2*time.Minute, promtool, "test", "rules", filepath.Join(dir, "connlog-alerts.test.yml"))
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(dir, "connlog-alerts.yml"), &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join(dir, "connlog-alerts.test.yml"), &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	known := codeMetrics(t)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("alert %s has no promtool test case in which it fires", r.Alert)
			}
			checkMetrics(t, "alert "+r.Alert, r.Expr, known)
		}
	}
	if n < 6 {
		t.Errorf("only %d alerts found", n)
	}
}

// TestPrometheusConfig runs promtool check config on prometheus.yml.
func TestPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool")
	run(t, time.Minute, promtool, "check", "config", filepath.Join(repoRoot(t), "deploy", "prometheus", "prometheus.yml"))
}

// TestGrafanaDashboards checks that every dashboard is valid JSON, that its
// PromQL names only connlog metrics the code defines, and that its SQL names
// only tables the migrations create.
func TestGrafanaDashboards(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards found: %v", err)
	}
	metrics, tables := codeMetrics(t), migrationTables(t)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID    string  `json:"uid"`
			Title  string  `json:"title"`
			Panels []panel `json:"panels"`
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: not valid JSON: %v", f, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: trailing data after the dashboard object", f)
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Errorf("%s: uid, title and panels are required", f)
		}
		var promQueries, sqlQueries int
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				name := filepath.Base(f) + ": panel " + p.Title
				switch {
				case q.Expr != "":
					promQueries++
					checkMetrics(t, name, q.Expr, metrics)
				case q.RawSQL != "":
					sqlQueries++
					checkTables(t, name, q.RawSQL, tables)
				default:
					t.Errorf("%s: a target has neither expr nor rawSql", name)
				}
			}
		}
		if promQueries == 0 || sqlQueries == 0 {
			t.Errorf("%s: %d Prometheus and %d ClickHouse queries; want both", f, promQueries, sqlQueries)
		}
	}
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr   string `json:"expr"`
		RawSQL string `json:"rawSql"`
	} `json:"targets"`
}

// TestClickHouseXML checks that every ClickHouse config is well-formed XML,
// that the settings connlog relies on are there, and that each role has a user.
func TestClickHouseXML(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "clickhouse")
	var all strings.Builder
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(path) != ".xml" {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := xml.NewDecoder(strings.NewReader(string(raw)))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Errorf("%s: %v", path, err)
				break
			}
		}
		all.Write(raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<non_replicated_deduplication_window>", "<replicated_deduplication_window>",
		"<ttl_only_drop_parts>1<", "<merge_with_ttl_timeout>", "<keeper_server>", "<macros>", "<remote_servers>"} {
		if !strings.Contains(all.String(), s) {
			t.Errorf("no ClickHouse config sets %s", s)
		}
	}
	for _, u := range []string{"ingest", "analyst", "officer", "stats", "auditor", "admin"} {
		if !strings.Contains(all.String(), "<"+u+">") {
			t.Errorf("users.xml: no user for role %s", u)
		}
	}
}

// TestNginxLogFormat checks the recommended log_format names every variable
// it must, and that nginx accepts it (nginx -t on a private configuration).
func TestNginxLogFormat(t *testing.T) {
	file := filepath.Join(repoRoot(t), "deploy", "nginx", "connlog-log-format.conf")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"escape=json", "$msec", "$remote_addr", "$remote_port", "$proxy_protocol_addr",
		"$proxy_protocol_port", "$server_addr", "$server_port", "$host", "$request_id", "$ssl_protocol",
		"$http_x_forwarded_for", "$remote_user", "$request", "$status", "$body_bytes_sent", "$http_referer",
		"$http_user_agent", "$request_time", "$upstream_addr", "$http_sec_gpc", "$http_dnt"} {
		if !strings.Contains(string(raw), v+`"`) && !strings.Contains(string(raw), v+" ") {
			t.Errorf("log_format lacks %s", v)
		}
	}
	nginx := tool(t, "nginx")
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	cfg := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nevents {}\nhttp {\n" +
		"    client_body_temp_path " + dir + "/body;\n    proxy_temp_path " + dir + "/proxy;\n" +
		"    fastcgi_temp_path " + dir + "/fastcgi;\n    uwsgi_temp_path " + dir + "/uwsgi;\n    scgi_temp_path " + dir + "/scgi;\n" +
		"    include " + file + ";\n" +
		"    server { listen 127.0.0.1:" + strconv.Itoa(freePort(t)) + "; access_log " + dir + "/access.json.log connlog_json; }\n}\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, 30*time.Second, nginx, "-t", "-q", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
}

// TestShipperPlaceholders checks every shipper config uses the documented
// placeholders and publishes the raw line.
func TestShipperPlaceholders(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "shippers")
	raw := map[string]string{
		"rsyslog.conf":    `property(name="msg")`,
		"syslog-ng.conf":  `message("$MSG")`,
		"vector.yaml":     "codec: text",
		"fluent-bit.conf": "Raw_Log_Key",
		"filebeat.yml":    "%{[message]}",
	}
	for f, want := range raw {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		// every shipper authenticates: the embedded broker and any real
		// Kafka worth the name refuse anonymous producers
		for _, p := range []string{"@LOG@", "@KAFKA@", "@TOPIC@", "@KAFKA_MECHANISM@", "@KAFKA_USER@", "@KAFKA_PASSWORD@"} {
			if !strings.Contains(string(b), p) {
				t.Errorf("%s: placeholder %s missing", f, p)
			}
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: does not publish the raw line (%s)", f, want)
		}
		if f == "rsyslog.conf" && !strings.Contains(string(b), `partitions.auto="on"`) {
			t.Errorf("%s: without partitions.auto=\"on\" omkafka sends every message to partition 0", f)
		}
		if strings.HasSuffix(f, ".yaml") || strings.HasSuffix(f, ".yml") {
			var v any
			if err := yaml.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

func readYAML(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// codeMetrics returns the metric names (string literals "connlog_…") in the
// non-test Go sources of the repository.
func codeMetrics(t testing.TB) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`"(connlog_[a-z0-9_]+)"`)
	out := map[string]bool{}
	root := repoRoot(t)
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "testdata" || e.Name() == "deploy" || e.Name() == "connlog-data") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no connlog_* metric names found in the Go sources")
	}
	return out
}

var promMetric = regexp.MustCompile(`\b(connlog_[a-z0-9_]+)\b`)

// checkMetrics fails for each connlog_* series in a PromQL expression that no
// code defines (histogram series names end in _bucket, _sum or _count).
func checkMetrics(t testing.TB, where, expr string, known map[string]bool) {
	t.Helper()
	for _, m := range promMetric.FindAllString(expr, -1) {
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if !known[base] && strings.HasSuffix(base, suf) {
				base = strings.TrimSuffix(base, suf)
			}
		}
		if !known[base] {
			t.Errorf("%s: metric %s is not defined in the Go sources", where, m)
		}
	}
}

// migrationTables returns database.table for every table the migrations
// (and the migration bookkeeping in store/) create, with the default prefix.
func migrationTables(t testing.TB) map[string]bool {
	t.Helper()
	root := repoRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "store", "migrations", "*.sql"))
	gofiles, _ := filepath.Glob(filepath.Join(root, "store", "*.go"))
	files = append(files, gofiles...)
	re := regexp.MustCompile(`(?i)CREATE TABLE IF NOT EXISTS\s+(?:\$\{(\w+)\}|` + "`" + `\s*\+\s*s\.db\.(\w+)\s*\+\s*` + "`" + `)\.(\w+)`)
	out := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
			db := strings.ToLower(m[1] + m[2])
			out["connlog_"+db+"."+m[3]] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("no CREATE TABLE found in store/migrations")
	}
	return out
}

var sqlTable = regexp.MustCompile(`\b((?:connlog_[a-z]+|system)\.[a-z_]+)\b`)

// checkTables fails for each database.table in SQL that the migrations do
// not create (system tables are ClickHouse's own), and for database names
// listed in strings that do not exist.
func checkTables(t testing.TB, where, sql string, tables map[string]bool) {
	t.Helper()
	dbs := map[string]bool{}
	for tb := range tables {
		dbs[strings.Split(tb, ".")[0]] = true
	}
	for _, m := range sqlTable.FindAllString(sql, -1) {
		if strings.HasPrefix(m, "system.") {
			continue
		}
		if !tables[m] {
			t.Errorf("%s: table %s is not created by store/migrations (known: %v)", where, m, slices.Sorted(mapKeys(tables)))
		}
	}
	for _, m := range regexp.MustCompile(`'(connlog_[a-z]+)'`).FindAllStringSubmatch(sql, -1) {
		if !dbs[m[1]] {
			t.Errorf("%s: database %s does not exist", where, m[1])
		}
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestDockerfile checks what can be checked without a Docker engine: the
// build is cgo-enabled, the runtime is non-root, base images are pinned, and
// the files the build copies exist and are not excluded by .dockerignore.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"CGO_ENABLED=1", "USER 10001", "-X main.version=", "AS embedded", "CONNLOG_CHDB_LIBRARY="} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1) {
		img := m[1]
		if strings.Contains(img, ":latest") || (!strings.Contains(img, ":") && !strings.Contains(img, "$")) {
			if img != "runtime" {
				t.Errorf("Dockerfile: base image %s is not pinned", img)
			}
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^COPY\s+(?:--\S+\s+)?(\S+)`).FindAllStringSubmatch(df, -1) {
		if strings.HasPrefix(m[0], "COPY --from") || m[1] == "." {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("Dockerfile copies %s, which does not exist", m[1])
		}
	}
	ign, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "connlog-data/", "bin/"} {
		if !strings.Contains(string(ign), want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	// compose pins its images too
	compose, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+image:\s+(\S+)`).FindAllStringSubmatch(string(compose), -1) {
		if !strings.Contains(m[1], ":") || strings.HasSuffix(m[1], ":latest") {
			t.Errorf("docker-compose.yml: image %s is not pinned", m[1])
		}
	}
}
