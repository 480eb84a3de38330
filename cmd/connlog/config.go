package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/api"
	"github.com/connlog/connlog/ingest"
	"github.com/connlog/connlog/ingest/broker"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/embedded"
	"github.com/connlog/connlog/store/retention"
)

// Config is connlog's whole configuration: one YAML file, every value
// overridable by a CONNLOG_* environment variable.
type Config struct {
	// DataDir holds the embedded engine's data, the bootstrap admin token
	// and other local state. Default: ./connlog-data.
	DataDir string `yaml:"data_dir"`
	// LogLevel is debug, info, warn or error. Default: info.
	LogLevel string `yaml:"log_level"`
	// ShutdownTimeout bounds a graceful stop after SIGTERM: stop fetching,
	// flush, commit, close. Past it connlog exits non-zero. It is the only
	// shutdown budget: the pipeline's final flush and commit, and the API's
	// in-flight requests, each get a third of it (at most 10s); with the
	// embedded broker, draining it gets the rest but 2s (shutdownShares).
	// At least 3s. Default: 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// Kafka is where logs come from. With no brokers, connlog starts its
	// own Kafka-protocol listener (EmbeddedKafka) and consumes from it.
	Kafka ingest.Config `yaml:"kafka"`
	// EmbeddedKafka configures that listener.
	EmbeddedKafka broker.Config `yaml:"embedded_kafka"`

	// ClickHouse is where data goes. With no addrs, connlog runs the
	// embedded engine (EmbeddedClickHouse).
	ClickHouse store.Config `yaml:"clickhouse"`
	// EmbeddedClickHouse configures the embedded engine.
	EmbeddedClickHouse EmbeddedClickHouse `yaml:"embedded_clickhouse"`

	// Retention sets the lifetime of each data class, with per-site
	// overrides. Applied as ClickHouse TTLs at start-up and enforced by a
	// pass every enforce_interval. Formerly clickhouse.retention.
	Retention retention.Config `yaml:"retention"`
	// RoleUsers are the passwords of the ClickHouse users, one per connlog
	// role, that connlog creates on a ClickHouse server (not the embedded
	// engine), so that each request's queries run with its role's grants
	// only. Empty: no users created. Formerly clickhouse.role_users.
	RoleUsers store.RoleUsers `yaml:"role_users"`
	// SigningKeyFile is the instance's Ed25519 signing key, which signs
	// the integrity manifests and the requisition export packages; created
	// on first start if absent. Default: <data_dir>/instance.key. Formerly
	// clickhouse.key_path.
	SigningKeyFile string `yaml:"signing_key_file"`

	// API is the query API for security staff.
	API api.Config `yaml:"api"`

	// Statistics configures the audience statistics: truncation, daily
	// visitor keys, geolocation, bot and opt-out exclusion.
	Statistics anonymize.Config `yaml:"statistics"`

	// AuditJournal configures the local journal that makes each audit row
	// durable before the data it records leaves (store/audit).
	AuditJournal AuditJournal `yaml:"audit_journal"`

	// deprecated lists the old keys the configuration used (renamedKeys).
	deprecated []deprecation
}

// AuditJournal configures the audit journal: every API request's audit row
// is appended and fsynced to a file under data_dir/audit-journal before the
// response is sent, and the journal stores its rows in connlog_ops.audit in
// batches. The audit search endpoints store this instance's pending rows
// first.
type AuditJournal struct {
	// Enabled turns the journal on. Off, each request inserts its audit row
	// into ClickHouse synchronously (a fsynced part per request: slower,
	// and a burst of requests makes many small parts). Default: true.
	Enabled bool `yaml:"enabled"`
	// Interval is how often the journal stores its rows in ClickHouse: the
	// delay before another instance's auditor sees them. Default: 200ms.
	Interval time.Duration `yaml:"interval"`
	// MaxBacklog bounds the bytes of audit rows waiting for ClickHouse
	// (e.g. while it is down); beyond it, data requests are refused until
	// the rows are stored. Default: 67108864 (64 MiB).
	MaxBacklog int64 `yaml:"max_backlog"`
}

// EmbeddedClickHouse configures the chDB engine connlog loads when no
// ClickHouse server is configured.
type EmbeddedClickHouse struct {
	// Library is the path to libchdb.so. Default: the cache of
	// scripts/fetch-chdb.sh, or $CONNLOG_CHDB_LIBRARY.
	Library string `yaml:"library"`
	// Listen, if set, opens the engine's ClickHouse HTTP interface to
	// operators (a Grafana on this host, debugging) on this address, with
	// the generated password of data_dir/clickhouse.password (user
	// default). It is full administrative access to every table, the audit
	// trail included. A port alone (":8123") binds to 127.0.0.1. connlog
	// itself never needs it: it reaches the engine in-process. Default:
	// empty, no listener.
	Listen string `yaml:"listen"`
	// MaxQueryTime is the time limit of every statement on the embedded
	// engine, exports included: it runs one statement at a time, so this
	// is the longest ingestion can be held up. Default: 60s.
	MaxQueryTime time.Duration `yaml:"max_query_time"`
}

// defaultConfig is the configuration with nothing set: the whole pipeline
// on one machine.
func defaultConfig() Config {
	return Config{
		DataDir:         "connlog-data",
		LogLevel:        "info",
		ShutdownTimeout: 30 * time.Second,
		Kafka:           ingest.DefaultConfig(),
		EmbeddedKafka:   broker.DefaultConfig(),
		ClickHouse:      store.DefaultConfig(),
		Retention:       retention.Default(),
		EmbeddedClickHouse: EmbeddedClickHouse{
			MaxQueryTime: 60 * time.Second,
		},
		API:        api.DefaultConfig(),
		Statistics: anonymize.DefaultConfig(),
		AuditJournal: AuditJournal{
			Enabled:    true,
			Interval:   200 * time.Millisecond,
			MaxBacklog: 64 << 20,
		},
	}
}

// loadConfig reads the YAML file at path (none if ""), then the
// environment, and validates the result. It reports every problem at once.
// Old keys are still read, renamed ones (renamedKeys) under their new
// names, retired ones (retiredKeys) into the share they set, and each is
// listed in cfg.deprecated.
func loadConfig(path string, env []string) (Config, error) {
	cfg := defaultConfig()
	var errs []error
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		var doc yaml.Node
		if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		} else {
			deps, derrs := upgradeFile(&doc, &cfg)
			cfg.deprecated = append(cfg.deprecated, deps...)
			for _, err := range derrs {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
			}
			if len(deps) == 0 && len(derrs) == 0 {
				err = decodeStrict(raw, &cfg) // the file as written: its line numbers in errors
			} else if raw, err = yaml.Marshal(&doc); err == nil {
				err = decodeStrict(raw, &cfg)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
			}
		}
	}
	env, deps, derrs := upgradeEnv(env, &cfg)
	cfg.deprecated = append(cfg.deprecated, deps...)
	errs = append(errs, derrs...)
	errs = append(errs, applyEnv(&cfg, env)...)
	cfg.wire()
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}

// decodeStrict decodes the YAML raw into cfg, refusing unknown keys.
func decodeStrict(raw []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// wire hands the top-level settings that components read to their
// configurations: retention and role users to the store's, and their
// shares of shutdown_timeout to the pipeline and the API.
func (c *Config) wire() {
	c.ClickHouse.Retention = c.Retention
	c.ClickHouse.RoleUsers = c.RoleUsers
	if c.ShutdownTimeout > 0 {
		pipeline, server := shutdownShares(c.ShutdownTimeout)
		if !c.usedOld("kafka.shutdown_timeout") {
			c.Kafka.ShutdownTimeout = pipeline
		}
		if !c.usedOld("api.shutdown_timeout") {
			c.API.ShutdownTimeout = server
		}
	}
}

// shutdownReserve is the part of shutdown_timeout kept for the rest of the
// stop once the pipeline has flushed: closing the store, the journal and
// the broker.
const shutdownReserve = 2 * time.Second

// shutdownShares divides the stop budget total (shutdown_timeout): the
// pipeline's final flush and commit, and the API's wait for in-flight
// requests, each get a third of it, at most their default of 10s (one batch
// to write, a request to finish: more does not help). The API stops while
// the pipeline drains, so their shares overlap. With the embedded broker,
// what the pipeline's share and shutdownReserve leave drains the broker
// first (drainBroker): 18s of the default 30s.
func shutdownShares(total time.Duration) (pipeline, server time.Duration) {
	return min(total/3, ingest.DefaultShutdownTimeout), min(total/3, api.DefaultShutdownTimeout)
}

// Validate joins the validation of every component.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: required"))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown_timeout: must be positive, got %s", c.ShutdownTimeout))
	}
	if c.AuditJournal.Enabled && c.AuditJournal.Interval <= 0 {
		errs = append(errs, fmt.Errorf("audit_journal.interval: must be positive, got %s", c.AuditJournal.Interval))
	}
	if c.AuditJournal.Enabled && c.AuditJournal.MaxBacklog < 1<<20 {
		errs = append(errs, fmt.Errorf("audit_journal.max_backlog: must be at least 1048576 bytes, got %d", c.AuditJournal.MaxBacklog))
	}
	errs = append(errs, c.Kafka.Validate())
	// The group close waits for every partition worker's final flush and
	// commit: it must fit in the process's own stop budget.
	if kt := c.Kafka.ShutdownTimeout; c.ShutdownTimeout > 0 && kt > 0 && kt+shutdownReserve > c.ShutdownTimeout {
		if c.usedOld("kafka.shutdown_timeout") {
			errs = append(errs, fmt.Errorf("kafka.shutdown_timeout (%s) must be at least 2s shorter than shutdown_timeout (%s); better, remove it", kt, c.ShutdownTimeout))
		} else {
			errs = append(errs, fmt.Errorf("shutdown_timeout: must be at least 3s, got %s", c.ShutdownTimeout))
		}
	}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, c.EmbeddedKafka.Validate())
		// The embedded broker has its own identities (data_dir) and no TLS.
		if c.Kafka.SASL.Enabled() || c.Kafka.TLS.Enabled {
			errs = append(errs, errors.New("kafka.sasl and kafka.tls apply to kafka.brokers: the embedded broker (no brokers) uses the identities it keeps in data_dir"))
		}
	}
	errs = append(errs, c.ClickHouse.Validate())
	if c.ClickHouse.Embedded() {
		if l := c.EmbeddedClickHouse.Listen; l != "" {
			if _, _, err := net.SplitHostPort(l); err != nil {
				errs = append(errs, fmt.Errorf("embedded_clickhouse.listen: %q is not host:port: %w", l, err))
			}
		}
		if c.EmbeddedClickHouse.MaxQueryTime <= 0 {
			errs = append(errs, errors.New("embedded_clickhouse.max_query_time: must be positive"))
		}
	}
	errs = append(errs, c.API.Validate())
	if c.Statistics.Enabled {
		errs = append(errs, c.Statistics.Validate())
	}
	return errors.Join(errs...)
}

func (c Config) engineConfig() embedded.Config {
	lib := c.EmbeddedClickHouse.Library
	if lib == "" {
		lib = embedded.DefaultLibraryPath()
	}
	return embedded.Config{
		Library:      lib,
		Dir:          filepath.Join(c.DataDir, "clickhouse"),
		MaxQueryTime: c.EmbeddedClickHouse.MaxQueryTime,
		LogLevel:     c.LogLevel,
	}
}

func newLogger(level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToLower(level)))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}
