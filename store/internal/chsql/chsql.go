// Package chsql is what every part of store needs to speak SQL to
// ClickHouse safely: bound parameters, literals and identifiers of values
// already validated, the ON CLUSTER clause, and the names of the databases
// of each data class. It is internal to store and its subpackages.
package chsql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Databases names the databases of each data class.
type Databases struct {
	Connections string
	Access      string
	Ops         string
	// Stats is the audience statistics database (created by its own
	// migration; no IP address is ever stored there).
	Stats string
}

// SiteName is a lower-case host name: the only site names that reach SQL
// text (per-site TTL expressions, as literals).
var SiteName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// WithParams binds server-side query parameters: the values travel apart
// from the SQL text ({name:Type} placeholders) and are parsed by ClickHouse
// as values of the declared type, never as SQL.
func WithParams(ctx context.Context, params map[string]string) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters(params)))
}

// Escape prepares a scalar parameter value: ClickHouse reads top-level
// parameter values in its "escaped" text format, so a backslash, tab or
// newline in the value must be escaped to arrive unchanged.
func Escape(s string) string {
	if !strings.ContainsAny(s, "\\\t\n\x00") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Time renders t as a DateTime64(3, 'UTC') parameter value.
func Time(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000")
}

// Array renders ss as an Array(String) parameter value. Parameter
// values are parsed with ClickHouse's text format, in which an array element
// is a quoted string: backslash and quote are escaped.
func Array(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\'')
		for j := 0; j < len(s); j++ {
			switch c := s[j]; c {
			case '\\', '\'':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\t':
				b.WriteString(`\t`)
			case 0:
				b.WriteString(`\0`)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('\'')
	}
	b.WriteByte(']')
	return b.String()
}

// Quote renders s as a ClickHouse string literal. Only used for
// values already validated (site names, partition ids): defence in depth.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// QuoteIdent quotes a validated identifier with backquotes.
func QuoteIdent(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}

// OnCluster is the ON CLUSTER clause of DDL for cluster; "" without one.
func OnCluster(cluster string) string {
	if cluster == "" {
		return ""
	}
	return " ON CLUSTER " + QuoteIdent(cluster)
}

// NewID returns a random 128-bit identifier in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrBadFilter reports a search that cannot be run as asked; the message
// says why. store.ErrBadFilter is this value.
var ErrBadFilter = errors.New("bad filter")

// Where accumulates a WHERE clause and its bound parameters.
type Where struct {
	SQL    strings.Builder
	Params map[string]string
}

// And adds a condition.
func (w *Where) And(cond string) {
	if w.SQL.Len() > 0 {
		w.SQL.WriteString(" AND ")
	}
	w.SQL.WriteString(cond)
}

// QueryContext binds params and the per-query limits of a search:
// server-side execution time (timeout, rounded to seconds) and result size.
// extra, if not nil, adds settings of the caller's.
func QueryContext(ctx context.Context, params map[string]string, timeout time.Duration, limit int, extra clickhouse.Settings) context.Context {
	settings := clickhouse.Settings{
		"max_execution_time":   max(1, int(timeout.Round(time.Second).Seconds())),
		"max_result_rows":      limit,
		"result_overflow_mode": "throw",
		// No "readonly" here: a user whose profile is readonly=2 (the
		// deployed API users) may not set it, and values are bound
		// parameters, never SQL.
	}
	for k, v := range extra {
		settings[k] = v
	}
	return clickhouse.Context(ctx, clickhouse.WithParameters(params), clickhouse.WithSettings(settings))
}

// PrefixRange returns the first and last IPv6 address of p, IPv4 prefixes
// mapped into ::ffff:0:0/96 as they are stored.
func PrefixRange(p netip.Prefix) (lo, hi netip.Addr) {
	p = p.Masked()
	bits := p.Bits()
	a := p.Addr()
	if a.Is4() {
		a = netip.AddrFrom16(a.As16())
		bits += 96
	}
	b := a.As16()
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	return a, netip.AddrFrom16(b)
}
