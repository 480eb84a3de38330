package store

import (
	"context"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// withParams binds server-side query parameters: the values travel apart
// from the SQL text ({name:Type} placeholders) and are parsed by ClickHouse
// as values of the declared type, never as SQL.
func withParams(ctx context.Context, params map[string]string) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters(params)))
}

// escapeParam prepares a scalar parameter value: ClickHouse reads top-level
// parameter values in its "escaped" text format, so a backslash, tab or
// newline in the value must be escaped to arrive unchanged.
func escapeParam(s string) string {
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

// formatTime renders t as a DateTime64(3, 'UTC') parameter value.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000")
}

// arrayParam renders ss as an Array(String) parameter value. Parameter
// values are parsed with ClickHouse's text format, in which an array element
// is a quoted string: backslash and quote are escaped.
func arrayParam(ss []string) string {
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
