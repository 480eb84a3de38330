package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chdbLibrary returns the embedded engine's library, or skips the test.
func chdbLibrary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CONNLOG_CHDB_LIBRARY"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	cache := os.Getenv("CONNLOG_CACHE_DIR")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			missing(t, "the chDB library (no cache directory)")
		}
		cache = filepath.Join(base, "connlog")
	}
	p := filepath.Join(cache, "chdb", "26.7.3-stable.1", "libchdb.so")
	if _, err := os.Stat(p); err != nil {
		missing(t, "the chDB library "+p+" (scripts/fetch-chdb.sh, or set CONNLOG_CHDB_LIBRARY)")
	}
	return p
}

// daemon starts a long-running process whose output goes to a file, and
// stops it (SIGTERM, then SIGKILL) at the end of the test.
func daemon(t *testing.T, logName string, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), logName))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			raw, _ := os.ReadFile(logFile.Name())
			if len(raw) > 8000 {
				raw = raw[len(raw)-8000:]
			}
			t.Logf("%s (last lines):\n%s", logName, raw)
		}
		logFile.Close()
	})
	return cmd
}

// promQuery returns the value of a scalar-ish PromQL query: the first
// sample of an instant vector, or ok=false when the vector is empty.
func promQuery(base, q string) (v float64, ok bool, err error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, false, err
	}
	if r.Status != "success" {
		return 0, false, fmt.Errorf("query %q: %s", q, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return 0, false, nil
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err = strconv.ParseFloat(s, 64)
	return v, err == nil, err
}

// TestPrometheusScrapesConnlog runs `connlog serve` in embedded mode and
// Debian's Prometheus against it, publishes lines to the embedded broker and
// checks through Prometheus's HTTP API that connlog is scraped and that the
// ingest counters and offsets moved.
func TestPrometheusScrapesConnlog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts connlog and Prometheus")
	}
	prometheus := tool(t, "prometheus")
	lib := chdbLibrary(t)
	root := repoRoot(t)
	dir := t.TempDir()

	bin := buildConnlog(t)

	apiPort, kafkaPort, chPort, promPort := freePort(t), freePort(t), freePort(t), freePort(t)
	api := "127.0.0.1:" + strconv.Itoa(apiPort)
	kafka := "127.0.0.1:" + strconv.Itoa(kafkaPort)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONNLOG_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"CONNLOG_DATA_DIR="+filepath.Join(dir, "data"),
		"CONNLOG_API_LISTEN="+api,
		"CONNLOG_EMBEDDED_KAFKA_ADDR="+kafka,
		"CONNLOG_EMBEDDED_CLICKHOUSE_LISTEN=127.0.0.1:"+strconv.Itoa(chPort),
		"CONNLOG_CHDB_LIBRARY="+lib,
	)
	daemon(t, "connlog.log", env, bin, "serve")
	if !waitFor(90*time.Second, func() bool {
		resp, err := http.Get("http://" + api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("connlog serve did not become ready within 90s")
	}

	promConf := filepath.Join(dir, "prometheus.yml")
	conf := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - %s\nscrape_configs:\n  - job_name: connlog\n    static_configs:\n      - targets: [%q]\n",
		filepath.Join(root, "deploy", "prometheus", "connlog-alerts.yml"), api)
	if err := os.WriteFile(promConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := "127.0.0.1:" + strconv.Itoa(promPort)
	daemon(t, "prometheus.log", os.Environ(), prometheus,
		"--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	base := "http://" + promAddr

	if !waitFor(60*time.Second, func() bool {
		v, ok, _ := promQuery(base, `up{job="connlog"}`)
		return ok && v == 1
	}) {
		t.Fatal(`Prometheus did not report up{job="connlog"} == 1 within 60s`)
	}
	before, _, err := promQuery(base, `sum(connlog_ingest_lines_total)`)
	if err != nil {
		t.Fatal(err)
	}

	// Lines stamped now: combined format (parsed) and the recommended JSON.
	const n = 50
	var lines bytes.Buffer
	now := time.Now().UTC()
	for i := range n {
		fmt.Fprintf(&lines, "203.0.113.%d - - [%s] \"GET /e2e/%d HTTP/1.1\" 200 %d \"-\" \"curl/7.88.1\"\n",
			i%250+1, now.Format("02/Jan/2006:15:04:05 -0700"), i, 100+i)
	}
	for _, l := range nginxLines(10, 0) {
		lines.WriteString(l + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := exec.CommandContext(ctx, bin, "publish", "-brokers", kafka, "-topic", "nginx")
	pub.Env = env
	pub.Stdin = &lines
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("connlog publish: %v\n%s", err, out)
	}

	var after float64
	if !waitFor(60*time.Second, func() bool {
		after, _, _ = promQuery(base, `sum(connlog_ingest_lines_total)`)
		return after-before >= n+10
	}) {
		t.Fatalf("connlog_ingest_lines_total moved by %v in Prometheus, want %d", after-before, n+10)
	}
	if v, ok, err := promQuery(base, `sum(connlog_ingest_committed_offset)`); err != nil || !ok || v <= 0 {
		t.Errorf("connlog_ingest_committed_offset in Prometheus: %v (present %v, err %v), want > 0", v, ok, err)
	}
	// The alert rules load and evaluate against the live series.
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rules); err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			count++
			if r.Health == "err" {
				t.Errorf("rule %s evaluates with an error", r.Name)
			}
		}
	}
	if count == 0 {
		t.Error("Prometheus loaded no alert rules")
	}
	t.Logf("Prometheus scraped connlog; connlog_ingest_lines_total moved by %v; %d rules loaded", after-before, count)
}
