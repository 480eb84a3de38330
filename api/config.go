package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Roles a [Token] may carry. A role names what its holder may read; admin may
// do everything.
const (
	// RoleAnalyst may search the access log (SOC analysts).
	RoleAnalyst = "analyst"
	// RoleOfficer may search connection records and handle requisitions and holds.
	RoleOfficer = "officer"
	// RoleStats may read audience statistics.
	RoleStats = "stats"
	// RoleAuditor may read the audit trail and the retention report.
	RoleAuditor = "auditor"
	// RoleAdmin may do everything the other roles may.
	RoleAdmin = "admin"
)

var roles = []string{RoleAnalyst, RoleOfficer, RoleStats, RoleAuditor, RoleAdmin}

// Defaults applied by [New] to zero fields of a [Config].
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultMaxWindow       = 31 * 24 * time.Hour
	DefaultDefaultLimit    = 1000
	DefaultMaxLimit        = 10000
	DefaultQueryTimeout    = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// tokenPrefix makes connlog tokens recognisable, e.g. by secret scanners.
const tokenPrefix = "cl_"

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

// Token is one person's credential: a bearer token known only by its hash.
type Token struct {
	// Name identifies the person; it is the actor in the audit trail.
	Name string `yaml:"name"`
	// Role is one of analyst, officer, stats, auditor, admin.
	Role string `yaml:"role"`
	// SHA256 is the hex SHA-256 of the bearer token, as printed by [NewToken].
	SHA256 string `yaml:"sha256"`
	// Sites, if not empty, limits the token to these sites (exact host names).
	Sites []string `yaml:"sites"`
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
	c.OIDC = c.OIDC.withDefaults()
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
	errs = append(errs, c.OIDC.validate()...)
	names := map[string]bool{}
	hashes := map[string]string{}
	for i, t := range c.Tokens {
		where := fmt.Sprintf("api token %d (%q)", i, t.Name)
		if strings.TrimSpace(t.Name) == "" {
			errs = append(errs, fmt.Errorf("%s: name is empty", where))
		} else if names[t.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		names[t.Name] = true
		if !slices.Contains(roles, t.Role) {
			errs = append(errs, fmt.Errorf("%s: role %q: must be one of %s", where, t.Role, strings.Join(roles, ", ")))
		}
		if h, err := parseHash(t.SHA256); err != nil {
			errs = append(errs, fmt.Errorf("%s: sha256: %w", where, err))
		} else if other, dup := hashes[h]; dup {
			// Two people sharing one token would make the audit trail lie.
			errs = append(errs, fmt.Errorf("%s: same sha256 as token %q", where, other))
		} else {
			hashes[h] = t.Name
		}
		seen := map[string]bool{}
		for _, s := range t.Sites {
			switch {
			case strings.TrimSpace(s) == "":
				errs = append(errs, fmt.Errorf("%s: empty site", where))
			case seen[s]:
				errs = append(errs, fmt.Errorf("%s: duplicate site %q", where, s))
			}
			seen[s] = true
		}
	}
	return errors.Join(errs...)
}

// emptyHash is the SHA-256 of the empty string: a token that would match an
// empty bearer token.
var emptyHash = sha256.Sum256(nil)

// parseHash checks that s is a hex SHA-256 and returns it in lower case.
func parseHash(s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("not hex: %w", err)
	}
	if len(b) != sha256.Size {
		return "", fmt.Errorf("%d bytes, want %d", len(b), sha256.Size)
	}
	if [sha256.Size]byte(b) == emptyHash {
		return "", errors.New("hash of the empty string")
	}
	return hex.EncodeToString(b), nil
}

// NewToken returns a new random bearer token (prefix "cl_", then 32 random
// bytes in URL-safe base64) and the hex SHA-256 to put in [Token.SHA256].
// Hand the token to its holder and keep only the hash.
func NewToken() (token, sha256hex string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken returns the hex SHA-256 of a bearer token: the form in which
// the configuration knows it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// DefaultConfig returns the configuration with every default filled in and
// no credential.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}
