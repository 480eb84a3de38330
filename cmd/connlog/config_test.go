package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each testdata/*.good.yaml must load; each *.bad.yaml must fail with every
// line of its .bad.error file in the message (all problems at once).
func TestConfigFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := loadConfig(f, nil)
			if strings.HasSuffix(f, ".good.yaml") {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			want, rerr := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".error")
			if rerr != nil {
				t.Fatal(rerr)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				if !strings.Contains(err.Error(), line) {
					t.Errorf("error lacks %q:\n%v", line, err)
				}
			}
		})
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	cfg, err := loadConfig("testdata/production.good.yaml", []string{
		"CONNLOG_KAFKA_BROKERS=k9:9092, k10:9092",
		"CONNLOG_KAFKA_FLUSH_INTERVAL=250ms",
		"CONNLOG_CLICKHOUSE_PASSWORD=from-env",
		"CONNLOG_API_MAX_LIMIT=5000",
		"PATH=/usr/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "k9:9092,k10:9092" {
		t.Errorf("brokers %s", got)
	}
	if cfg.Kafka.FlushInterval != 250*time.Millisecond || cfg.Kafka.GroupID != "connlog-prod" {
		t.Errorf("flush %s group %s", cfg.Kafka.FlushInterval, cfg.Kafka.GroupID)
	}
	if string(cfg.ClickHouse.Password) != "from-env" || cfg.API.MaxLimit != 5000 {
		t.Errorf("password or max limit not overridden")
	}
	if s := cfg.ClickHouse.Password.String(); s != "<redacted>" {
		t.Errorf("password prints as %q", s)
	}
}

func TestEnvironmentErrorsAreAllReported(t *testing.T) {
	_, err := loadConfig("", []string{"CONNLOG_KAFKA_BATCH_ROWS=many", "CONNLOG_NO_SUCH_THING=1", "CONNLOG_SHUTDOWN_TIMEOUT=soon"})
	for _, want := range []string{"CONNLOG_KAFKA_BATCH_ROWS", "CONNLOG_NO_SUCH_THING: no such setting", "CONNLOG_SHUTDOWN_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// TestTestSuiteSwitchesAreNotSettings: the crash test documents
// CONNLOG_CRASH_LINES and CONNLOG_CRASH_KILLS, and the serve processes the
// tests start inherit the environment: they must not be refused as unknown
// settings.
func TestTestSuiteSwitchesAreNotSettings(t *testing.T) {
	if _, err := loadConfig("", []string{"CONNLOG_CRASH_LINES=20000", "CONNLOG_CRASH_KILLS=3", "CONNLOG_REQUIRE_ENGINE=1", "CONNLOG_SYSLOG_NG_ROOT=/x"}); err != nil {
		t.Fatal(err)
	}
}

// TestDeprecatedKeysStillRead: a file and an environment written for the
// old layout (retention, role users and key path under clickhouse:) load
// as before, each old key listed as a deprecation with its new name, and
// an old variable set with its new one is refused.
func TestDeprecatedKeysStillRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.yaml")
	old := `clickhouse:
  addrs: [clickhouse:9000]
  key_path: /etc/connlog/instance.key
  retention:
    access: 3mo
    sites:
      - {site: partners.example.org, connections: 6mo}
  role_users: {ingest: from-file}
`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, []string{"CONNLOG_CLICKHOUSE_ROLE_USERS_ANALYST=from-env", "CONNLOG_CLICKHOUSE_RETENTION_AUDIT=40mo"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SigningKeyFile != "/etc/connlog/instance.key" || instanceKeyPath(&cfg) != cfg.SigningKeyFile {
		t.Errorf("signing key file %q", cfg.SigningKeyFile)
	}
	r := cfg.ClickHouse.Retention
	if r.Access.String() != "3mo" || r.Audit.String() != "40mo" || len(r.Sites) != 1 || r.Sites[0].Site != "partners.example.org" {
		t.Errorf("retention handed to the store: %+v", r)
	}
	if u := cfg.ClickHouse.RoleUsers; u.Ingest != "from-file" || u.Analyst != "from-env" {
		t.Error("role users not handed to the store")
	}
	var got []string
	for _, d := range cfg.deprecated {
		got = append(got, d.old+" → "+d.new)
	}
	want := []string{
		"clickhouse.retention → retention", "clickhouse.role_users → role_users", "clickhouse.key_path → signing_key_file",
		"CONNLOG_CLICKHOUSE_ROLE_USERS_ANALYST → CONNLOG_ROLE_USERS_ANALYST", "CONNLOG_CLICKHOUSE_RETENTION_AUDIT → CONNLOG_RETENTION_AUDIT",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("deprecations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	_, err = loadConfig("", []string{"CONNLOG_CLICKHOUSE_KEY_PATH=/a", "CONNLOG_SIGNING_KEY_FILE=/b"})
	if err == nil || !strings.Contains(err.Error(), "CONNLOG_CLICKHOUSE_KEY_PATH and CONNLOG_SIGNING_KEY_FILE are both set") {
		t.Errorf("old and new variable both set: %v", err)
	}
}

// TestOneShutdownTimeout: shutdown_timeout is the only stop budget; the
// pipeline's and the API's shares are derived from it, unless the retired
// per-component keys still set them, each a deprecation.
func TestOneShutdownTimeout(t *testing.T) {
	for _, c := range []struct {
		env           []string
		pipeline, api time.Duration
		deprecated    int
	}{
		{nil, 10 * time.Second, 10 * time.Second, 0},
		{[]string{"CONNLOG_SHUTDOWN_TIMEOUT=12s"}, 4 * time.Second, 4 * time.Second, 0},
		{[]string{"CONNLOG_SHUTDOWN_TIMEOUT=2m"}, 10 * time.Second, 10 * time.Second, 0},
		{[]string{"CONNLOG_SHUTDOWN_TIMEOUT=7s", "CONNLOG_KAFKA_SHUTDOWN_TIMEOUT=5s", "CONNLOG_API_SHUTDOWN_TIMEOUT=1s"}, 5 * time.Second, time.Second, 2},
	} {
		cfg, err := loadConfig("", c.env)
		if err != nil {
			t.Fatalf("%v: %v", c.env, err)
		}
		if cfg.Kafka.ShutdownTimeout != c.pipeline || cfg.API.ShutdownTimeout != c.api || len(cfg.deprecated) != c.deprecated {
			t.Errorf("%v: pipeline %s, api %s, %d deprecations; want %s, %s, %d",
				c.env, cfg.Kafka.ShutdownTimeout, cfg.API.ShutdownTimeout, len(cfg.deprecated), c.pipeline, c.api, c.deprecated)
		}
	}
	path := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(path, []byte("shutdown_timeout: 20s\nkafka: {shutdown_timeout: 15s}\napi: {shutdown_timeout: 3s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, nil)
	if err != nil || cfg.Kafka.ShutdownTimeout != 15*time.Second || cfg.API.ShutdownTimeout != 3*time.Second || len(cfg.deprecated) != 2 {
		t.Errorf("old keys in the file: %v, pipeline %s, api %s, %v", err, cfg.Kafka.ShutdownTimeout, cfg.API.ShutdownTimeout, cfg.deprecated)
	}
	if _, err := loadConfig("", []string{"CONNLOG_SHUTDOWN_TIMEOUT=2s"}); err == nil || !strings.Contains(err.Error(), "shutdown_timeout: must be at least 3s") {
		t.Errorf("a 2s budget: %v", err)
	}
}
