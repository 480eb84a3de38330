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
