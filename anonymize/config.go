package anonymize

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// GeoLevel is how precisely an audience hit is located. It implements
// encoding.TextUnmarshaler, so it can be set from YAML as "country",
// "region" or "city". Nothing finer than a city ever exists.
type GeoLevel uint8

// The geolocation levels. GeoCountry is the default.
const (
	GeoCountry GeoLevel = iota
	GeoRegion
	GeoCity
)

// String returns the configuration name of the level.
func (l GeoLevel) String() string {
	switch l {
	case GeoCountry:
		return "country"
	case GeoRegion:
		return "region"
	case GeoCity:
		return "city"
	}
	return fmt.Sprintf("GeoLevel(%d)", uint8(l))
}

// MarshalText implements encoding.TextMarshaler.
func (l GeoLevel) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *GeoLevel) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "country", "":
		*l = GeoCountry
	case "region":
		*l = GeoRegion
	case "city":
		*l = GeoCity
	default:
		return fmt.Errorf("geo level %q is none of country, region, city", b)
	}
	return nil
}

// Config says how hits are anonymized. Start from [DefaultConfig].
type Config struct {
	// Enabled turns the audience statistics on: serve wraps the ingest sink
	// with ingest.WithAudience only when it is set. Default: true.
	Enabled bool `yaml:"enabled"`
	// IPv4PrefixLen is the number of leading bits of an IPv4 address kept
	// in [Network]. Coarser (smaller) values are allowed; finer ones are
	// refused. Range 0..16. Default: 16.
	IPv4PrefixLen int `yaml:"ipv4_prefix_len"`
	// IPv6PrefixLen is the number of leading bits of an IPv6 address kept.
	// Range 0..48. Default: 48.
	IPv6PrefixLen int `yaml:"ipv6_prefix_len"`

	// GeoDatabase is the path of a MaxMind-format database (GeoLite2 or
	// GeoIP2 Country or City, or any compatible mmdb). Empty means no
	// geolocation: Country, Region and City stay "". A configured database
	// that cannot be opened makes [New] fail. Default: empty.
	GeoDatabase string `yaml:"geo_database"`
	// GeoLevel is the finest location recorded: country, region (country
	// and first-level subdivision) or city (country, region and city).
	// region and city need a City database. Default: country.
	GeoLevel GeoLevel `yaml:"geo_level"`

	// OptOut leaves out requests carrying Sec-GPC: 1 or DNT: 1 when the log
	// format records those headers ($http_sec_gpc, $http_dnt: the
	// recommended connlog_json format of deploy/nginx does; combined and
	// main do not). Default: true.
	OptOut bool `yaml:"opt_out"`
	// HealthCheckPaths are request paths (exact match, without query)
	// that are health checks, not visits. Default: /healthz, /readyz,
	// /livez, /health, /ping, /status, /nginx_status, /server-status.
	HealthCheckPaths []string `yaml:"health_check_paths"`
	// HealthCheckUserAgents are case-insensitive substrings of user agents
	// of load-balancer and monitoring probes, in addition to the bot list.
	// Default: kube-probe, ELB-HealthChecker, GoogleHC, Consul Health Check,
	// Prometheus, Blackbox, check_http, Zabbix, nagios, Icinga.
	HealthCheckUserAgents []string `yaml:"health_check_user_agents"`

	// UserAgentCacheSize bounds the cache of classified user agents
	// (entries; user agents longer than 512 bytes are not cached).
	// Default: 10000.
	UserAgentCacheSize int `yaml:"user_agent_cache_size"`
	// GeoCacheSize bounds the cache of decoded geolocation records
	// (entries, keyed by database record, never by address). Default: 65536.
	GeoCacheSize int `yaml:"geo_cache_size"`
	// KeyTimeout bounds fetching or creating a day's visitor key in the
	// KeyStore when it is not in memory yet. Default: 5s.
	KeyTimeout time.Duration `yaml:"key_timeout"`
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Enabled:       true,
		IPv4PrefixLen: 16,
		IPv6PrefixLen: 48,
		GeoLevel:      GeoCountry,
		OptOut:        true,
		HealthCheckPaths: []string{
			"/healthz", "/readyz", "/livez", "/health", "/ping", "/status",
			"/nginx_status", "/server-status",
		},
		HealthCheckUserAgents: []string{
			"kube-probe", "ELB-HealthChecker", "GoogleHC", "Consul Health Check",
			"Prometheus", "Blackbox", "check_http", "Zabbix", "nagios", "Icinga",
		},
		UserAgentCacheSize: 10000,
		GeoCacheSize:       65536,
		KeyTimeout:         5 * time.Second,
	}
}

// Validate reports every problem with the configuration at once. A prefix
// length finer than /16 (IPv4) or /48 (IPv6) is refused: the audience
// statistics promise never to keep more of an address than that.
func (c Config) Validate() error {
	var errs []error
	if c.IPv4PrefixLen < 0 || c.IPv4PrefixLen > 16 {
		errs = append(errs, fmt.Errorf("anonymize.ipv4_prefix_len: %d is outside 0..16 (finer than /16 is refused)", c.IPv4PrefixLen))
	}
	if c.IPv6PrefixLen < 0 || c.IPv6PrefixLen > 48 {
		errs = append(errs, fmt.Errorf("anonymize.ipv6_prefix_len: %d is outside 0..48 (finer than /48 is refused)", c.IPv6PrefixLen))
	}
	if c.GeoLevel > GeoCity {
		errs = append(errs, fmt.Errorf("anonymize.geo_level: %s is none of country, region, city", c.GeoLevel))
	}
	if c.GeoLevel != GeoCountry && c.GeoDatabase == "" {
		errs = append(errs, fmt.Errorf("anonymize.geo_level: %s needs anonymize.geo_database", c.GeoLevel))
	}
	for _, p := range c.HealthCheckPaths {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("anonymize.health_check_paths: %q does not start with /", p))
		}
	}
	for _, s := range c.HealthCheckUserAgents {
		if s == "" {
			errs = append(errs, errors.New("anonymize.health_check_user_agents: empty entry would match every user agent"))
		}
	}
	if c.UserAgentCacheSize <= 0 {
		errs = append(errs, fmt.Errorf("anonymize.user_agent_cache_size: must be positive, got %d", c.UserAgentCacheSize))
	}
	if c.GeoCacheSize <= 0 {
		errs = append(errs, fmt.Errorf("anonymize.geo_cache_size: must be positive, got %d", c.GeoCacheSize))
	}
	if c.KeyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("anonymize.key_timeout: must be positive, got %s", c.KeyTimeout))
	}
	return errors.Join(errs...)
}
