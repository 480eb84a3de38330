package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/connlog/connlog/store/internal/chsql"
	"github.com/connlog/connlog/store/retention"
)

// Secret is a string that never prints: fmt, logs and YAML dumps show
// "<redacted>".
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "<redacted>" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return `"<redacted>"` }

// MarshalText keeps the secret out of any serialised configuration.
func (Secret) MarshalText() ([]byte, error) { return []byte("<redacted>"), nil }

// Config says which ClickHouse to use and how.
type Config struct {
	// Addrs lists ClickHouse servers as host:port. Empty means the embedded
	// engine (chDB) started by connlog itself. Default: empty.
	Addrs []string `yaml:"addrs"`
	// Protocol is "native" (port 9000) or "http" (port 8123). Default: native.
	Protocol string `yaml:"protocol"`
	// Username and Password authenticate to a ClickHouse server.
	Username string `yaml:"username"`
	// Password is Username's password (better set by
	// CONNLOG_CLICKHOUSE_PASSWORD than in the file).
	Password Secret `yaml:"password"`
	// TLS enables TLS to the server. Default: false.
	TLS bool `yaml:"tls"`
	// DatabasePrefix names the databases: <prefix>_connections,
	// <prefix>_access, <prefix>_ops and <prefix>_stats. Default: connlog.
	DatabasePrefix string `yaml:"database_prefix"`
	// DialTimeout bounds connecting to ClickHouse. Default: 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// InsertTimeout bounds one batch insert; a batch that times out is
	// retried with the same deduplication token. Default: 60s.
	InsertTimeout time.Duration `yaml:"insert_timeout"`
	// QueryTimeout bounds one search (max_execution_time). Default: 30s.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// Retention sets the lifetime of each data class, with per-site
	// overrides. Applied as ClickHouse TTLs at start-up (ApplyRetention).
	Retention retention.Config `yaml:"-"`
	// Cluster, if set, is the ClickHouse cluster (remote_servers) on which
	// DDL runs ON CLUSTER with ReplicatedMergeTree tables. Default: empty.
	Cluster string `yaml:"cluster"`
	// RoleUsers are the passwords of the per-role ClickHouse users that
	// ApplyRoles creates on a ClickHouse server. Empty: no users created.
	RoleUsers RoleUsers `yaml:"-"`

	// Dial, if set, makes every connection to ClickHouse instead of a TCP
	// dial: the embedded engine's in-process listener (embedded.Listener),
	// which no other process can reach. Not configurable.
	Dial func(ctx context.Context, addr string) (net.Conn, error) `yaml:"-"`
}

// DefaultConfig returns the configuration used when nothing is set: the
// embedded engine.
func DefaultConfig() Config {
	return Config{
		Protocol:       "native",
		DatabasePrefix: "connlog",
		DialTimeout:    10 * time.Second,
		InsertTimeout:  60 * time.Second,
		QueryTimeout:   30 * time.Second,
		Retention:      retention.Default(),
	}
}

// Embedded reports whether no ClickHouse server is configured, so connlog
// must run its own engine.
func (c Config) Embedded() bool { return len(c.Addrs) == 0 }

// Databases names the databases of each data class.
type Databases = chsql.Databases

var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

var identifier = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Protocol != "native" && c.Protocol != "http" {
		errs = append(errs, fmt.Errorf("store.protocol: %q is neither native nor http", c.Protocol))
	}
	if !identifier.MatchString(c.DatabasePrefix) {
		errs = append(errs, fmt.Errorf("store.database_prefix: %q must be lower-case letters, digits and _, starting with a letter", c.DatabasePrefix))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial_timeout", c.DialTimeout}, {"insert_timeout", c.InsertTimeout}, {"query_timeout", c.QueryTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("store.%s: must be positive, got %s", d.name, d.v))
		}
	}
	if err := c.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Cluster != "" && !clusterName.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("store.cluster: %q must be letters, digits, _ and -", c.Cluster))
	}
	return errors.Join(errs...)
}

func (c Config) databases() Databases {
	return Databases{
		Connections: c.DatabasePrefix + "_connections",
		Access:      c.DatabasePrefix + "_access",
		Ops:         c.DatabasePrefix + "_ops",
		Stats:       c.DatabasePrefix + "_stats",
	}
}
