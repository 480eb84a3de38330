package api

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/connlog/connlog/api/auth"
)

// Roles a [Token] may carry (package api/auth defines them). A role names
// what its holder may read; admin may do everything.
const (
	// RoleAnalyst may search the access log (SOC analysts).
	RoleAnalyst = auth.RoleAnalyst
	// RoleOfficer may search connection records and handle requisitions and holds.
	RoleOfficer = auth.RoleOfficer
	// RoleStats may read audience statistics.
	RoleStats = auth.RoleStats
	// RoleAuditor may read the audit trail and the retention report.
	RoleAuditor = auth.RoleAuditor
	// RoleAdmin may do everything the other roles may.
	RoleAdmin = auth.RoleAdmin
)

// The credentials' configuration is package api/auth's; these names keep
// the keys of the api section where they were.
type (
	// Token is one person's credential: a bearer token known only by its
	// hash ([auth.Token]).
	Token = auth.Token
	// OIDCConfig accepts the identity provider's JWTs as credentials and
	// lets the console sign in with it ([auth.OIDCConfig]).
	OIDCConfig = auth.OIDCConfig
	// OIDCRole maps one value of the role claim to a connlog role
	// ([auth.OIDCRole]).
	OIDCRole = auth.OIDCRole
)

// Defaults of the console's OIDC sign-in ([auth.OIDCConfig]).
const (
	DefaultOIDCSessionIdleTimeout = auth.DefaultOIDCSessionIdleTimeout
	DefaultOIDCSessionMaxAge      = auth.DefaultOIDCSessionMaxAge
)

// Defaults applied by [New] to zero fields of a [Config].
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultMaxWindow       = 31 * 24 * time.Hour
	DefaultDefaultLimit    = 1000
	DefaultMaxLimit        = 10000
	DefaultQueryTimeout    = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// Config configures the query API. Zero fields take the Default* values.
type Config struct {
	// Listen is the TCP address to listen on. Default: 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Tokens are the credentials, one per person.
	Tokens []Token `yaml:"tokens"`
	// MaxWindow bounds the time window of a search. Default: 31 days.
	MaxWindow time.Duration `yaml:"max_window"`
	// DefaultLimit is the row limit of a search that gives none. Default: 1000.
	DefaultLimit int `yaml:"default_limit"`
	// MaxLimit is the largest row limit a search may ask for. Default: 10000.
	MaxLimit int `yaml:"max_limit"`
	// QueryTimeout bounds each store query. Default: 30s.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context ends. Not a configuration key: connlog derives it
	// from its own shutdown_timeout. Default: 10s.
	ShutdownTimeout time.Duration `yaml:"-"`
	// Search bounds connection-record and audit searches and exports.
	Search SearchConfig `yaml:"search"`
	// RateLimit limits each credential's request rate.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
	// BadCredentials limits, per source, requests with a missing or unknown
	// credential, and counts their audit rows per source and minute instead
	// of writing one per request.
	BadCredentials BadCredentialsConfig `yaml:"bad_credentials"`
	// TrustedProxies are CIDRs (or single addresses) of the reverse proxies
	// in front of the API: from them only, X-Forwarded-For is believed,
	// walked right to left past the trusted proxies to the client, which
	// becomes the audit source and the rate-limit key. Default: none (the
	// client is always the TCP peer).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// StatsMinVisitors is the small-cell threshold k of /v1/stats/audience:
	// cells with fewer distinct visitors are merged into "(other)". Values
	// below 1 take the default. Default: 5.
	StatsMinVisitors int `yaml:"stats_min_visitors"`
	// TLSCert and TLSKey are the paths of a PEM certificate (chain) and its
	// private key. Both set: the API listens with TLS (1.2 or later); both
	// empty: plain HTTP, for a listener on loopback or behind a proxy.
	TLSCert string `yaml:"tls_cert"`
	// TLSKey is the path of the private key of TLSCert (PEM); set both or
	// neither.
	TLSKey string `yaml:"tls_key"`
	// OIDC accepts JWTs from the organisation's identity provider as a
	// second kind of credential. Disabled while OIDC.Issuer is empty.
	OIDC OIDCConfig `yaml:"oidc"`
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxWindow == 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	if c.MaxLimit == 0 {
		c.MaxLimit = DefaultMaxLimit
	}
	if c.DefaultLimit == 0 {
		// A configured MaxLimit below 1000 lowers the default with it.
		c.DefaultLimit = min(DefaultDefaultLimit, c.MaxLimit)
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	c.Search = c.Search.withDefaults()
	c.RateLimit = c.RateLimit.withDefaults()
	c.BadCredentials = c.BadCredentials.withDefaults()
	c.OIDC = c.OIDC.WithDefaults()
	return c
}

// Validate reports every problem of c at once, joined with [errors.Join].
// Zero fields are valid: they take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("api listen %q: %w", c.Listen, err))
	}
	if c.MaxWindow < 0 {
		errs = append(errs, fmt.Errorf("api max window %s: must be positive", c.MaxWindow))
	}
	if c.DefaultLimit < 1 {
		errs = append(errs, fmt.Errorf("api default limit %d: must be positive", c.DefaultLimit))
	}
	if c.MaxLimit < 1 {
		errs = append(errs, fmt.Errorf("api max limit %d: must be positive", c.MaxLimit))
	}
	if c.DefaultLimit > c.MaxLimit {
		errs = append(errs, fmt.Errorf("api default limit %d: above max limit %d", c.DefaultLimit, c.MaxLimit))
	}
	if c.QueryTimeout < 0 {
		errs = append(errs, fmt.Errorf("api query timeout %s: must be positive", c.QueryTimeout))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("api shutdown timeout %s: must be positive", c.ShutdownTimeout))
	}
	errs = append(errs, c.Search.validate()...)
	errs = append(errs, c.RateLimit.validate()...)
	errs = append(errs, c.BadCredentials.validate()...)
	_, perrs := parseProxies(c.TrustedProxies)
	errs = append(errs, perrs...)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("api tls: set both tls_cert and tls_key, or neither"))
	}
	errs = append(errs, c.OIDC.Validate(), auth.ValidateTokens(c.Tokens))
	return errors.Join(errs...)
}

// NewToken returns a new random bearer token (prefix "cl_", then 32 random
// bytes in URL-safe base64) and the hex SHA-256 to put in [Token.SHA256]
// ([auth.NewToken]). Hand the token to its holder and keep only the hash.
func NewToken() (token, sha256hex string, err error) { return auth.NewToken() }

// HashToken returns the hex SHA-256 of a bearer token: the form in which
// the configuration knows it ([auth.HashToken]).
func HashToken(token string) string { return auth.HashToken(token) }

// DefaultConfig returns the configuration with every default filled in and
// no credential.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}
