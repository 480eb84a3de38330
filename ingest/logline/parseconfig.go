package logline

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/connlog/connlog/store"
)

// Format names accepted in [Config.Formats].
const (
	// FormatAuto detects the format of each message: JSON lines (escape=json)
	// or the combined family (combined, main, common, Apache, with the
	// variants [ParseCombined] accepts), then the configured log_format.
	FormatAuto = "auto"
	// FormatMain is nginx's default "main" format: combined followed by a
	// quoted "$http_x_forwarded_for".
	FormatMain = "main"
	// FormatApacheCombined is Apache's combined format (LogFormat "%h %l %u
	// %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\"").
	FormatApacheCombined = "apache_combined"
	// FormatJSON is one JSON object per line, as nginx writes with
	// `log_format ... escape=json` (see deploy/nginx/connlog-log-format.conf).
	FormatJSON = "json"
	// FormatLogFormat is the nginx log_format given in [Config.LogFormat].
	FormatLogFormat = "log_format"
)

// DefaultTopic is the key of [Config.Formats] that applies to every
// topic not listed by name.
const DefaultTopic = "*"

// RedactedValue replaces the value of a redacted query parameter.
const RedactedValue = "REDACTED"

// DefaultRedactParams are the query parameters redacted when
// [Config.RedactParams] is not set. Names are matched case-insensitively.
// Whenever redaction is on, the password of a URL's user information
// ("https://user:password@host/") is redacted too.
var DefaultRedactParams = []string{
	"password", "passwd", "token", "access_token", "session", "sessionid", "code", "secret", "key", "email",
	"api_key", "apikey", "auth",
}

// Config configures how ingest turns a Kafka message into a hit: the
// format per topic, the trusted proxies, what to redact and how to classify
// operations. The zero value is not valid; start from [DefaultConfig].
type Config struct {
	// Formats maps a topic to a format name: auto, combined, main, common,
	// apache_combined, json or log_format. The key "*" applies to topics not
	// listed. Default: every topic "auto".
	Formats map[string]string `yaml:"formats"`
	// LogFormat is the nginx log_format string (nginx's own $variable
	// syntax, without the name and escape= parameter) used by the format
	// "log_format". With "auto", a line that is neither JSON nor combined is
	// tried against it. Default: none.
	LogFormat string `yaml:"log_format"`
	// JSONFields overrides the JSON key read for a connlog field, the field
	// being named after the nginx variable it holds (e.g. "http_user_agent":
	// "ua"). Default: every field is read from the key named after its nginx
	// variable (see deploy/nginx/connlog-log-format.conf), plus a few common
	// aliases (user_agent, referer, x_forwarded_for...).
	JSONFields map[string]string `yaml:"json_fields"`
	// TrustedProxies are CIDRs (or single addresses) of proxies whose
	// X-Forwarded-For, X-Real-IP and PROXY-protocol addresses are believed.
	// Default: none (the client is always the TCP peer).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// RedactParams are query parameter names whose values are replaced by
	// "REDACTED" in the query and the referer before anything is stored.
	// Matched case-insensitively. Default: [DefaultRedactParams]. An empty
	// non-nil list redacts nothing.
	RedactParams []string `yaml:"redact_params"`
	// Operations override the operation kind derived from the method, for a
	// site and path prefix. The most specific rule wins (a rule naming a site
	// before one that does not, then the longest path prefix, then a rule
	// naming a method). Default: none.
	Operations []OperationRule `yaml:"operations"`
}

// OperationRule classifies requests whose site, path and method match.
type OperationRule struct {
	// Site is the virtual host the rule applies to; empty: every site.
	Site string `yaml:"site"`
	// PathPrefix is matched against the start of the path; empty: every path.
	PathPrefix string `yaml:"path_prefix"`
	// Method is the HTTP method (case-insensitive); empty: every method.
	Method string `yaml:"method"`
	// Operation is read, create, modify or delete.
	Operation string `yaml:"operation"`
}

// DefaultConfig returns the defaults: auto-detection on every topic,
// no trusted proxy, [DefaultRedactParams], classification by method.
func DefaultConfig() Config {
	return Config{
		Formats:      map[string]string{DefaultTopic: FormatAuto},
		RedactParams: append([]string(nil), DefaultRedactParams...),
	}
}

// knownFormats lists every format name, for validation and messages.
var knownFormats = []string{FormatAuto, FormatCombined, FormatMain, FormatCommon, FormatApacheCombined, FormatJSON, FormatLogFormat}

// Validate reports every problem in c at once (errors.Join).
func (c Config) Validate() error {
	var errs []error
	usesLogFormat := false
	for topic, f := range c.Formats {
		if !isKnownFormat(f) {
			errs = append(errs, fmt.Errorf("formats[%q]: %w %q (known: %v)", topic, ErrUnknownFormat, f, knownFormats))
		}
		if f == FormatLogFormat {
			usesLogFormat = true
		}
	}
	if usesLogFormat && strings.TrimSpace(c.LogFormat) == "" {
		errs = append(errs, errors.New("log_format: required by a topic using the format log_format"))
	}
	if strings.TrimSpace(c.LogFormat) != "" {
		if _, err := compileLogFormat(c.LogFormat); err != nil {
			errs = append(errs, fmt.Errorf("log_format: %w", err))
		}
	}
	for field, key := range c.JSONFields {
		if _, ok := fieldByName[field]; !ok {
			errs = append(errs, fmt.Errorf("json_fields: unknown field %q (fields are named after nginx variables, e.g. remote_addr, http_user_agent)", field))
		}
		if key == "" {
			errs = append(errs, fmt.Errorf("json_fields[%q]: empty JSON key", field))
		}
	}
	for i, s := range c.TrustedProxies {
		if _, err := parsePrefixOrAddr(s); err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %w", i, err))
		}
	}
	for i, p := range c.RedactParams {
		if p == "" || strings.ContainsAny(p, "&=#? ") {
			errs = append(errs, fmt.Errorf("redact_params[%d]: %q is not a query parameter name", i, p))
		}
	}
	for i, r := range c.Operations {
		if _, err := parseOperation(r.Operation); err != nil {
			errs = append(errs, fmt.Errorf("operations[%d]: %w", i, err))
		}
		if r.PathPrefix != "" && r.PathPrefix[0] != '/' {
			errs = append(errs, fmt.Errorf("operations[%d]: path_prefix %q must start with /", i, r.PathPrefix))
		}
		if r.Method != "" && !isToken([]byte(r.Method)) {
			errs = append(errs, fmt.Errorf("operations[%d]: method %q is not an HTTP method", i, r.Method))
		}
	}
	return errors.Join(errs...)
}

func isKnownFormat(f string) bool {
	for _, k := range knownFormats {
		if f == k {
			return true
		}
	}
	return false
}

// parsePrefixOrAddr accepts "10.0.0.0/8", "2001:db8::/32" or a single address.
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("parse CIDR %q: %w", s, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse address %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseOperation(s string) (store.Operation, error) {
	switch strings.ToLower(s) {
	case "read":
		return store.OpRead, nil
	case "create":
		return store.OpCreate, nil
	case "modify":
		return store.OpModify, nil
	case "delete":
		return store.OpDelete, nil
	}
	return store.OpUnknown, fmt.Errorf("operation %q: want read, create, modify or delete", s)
}
