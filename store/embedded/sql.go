package embedded

import "strings"

// statement is what the adapter needs to know about one SQL statement. It is
// found by a small lexer that skips string literals, quoted identifiers and
// comments; it does not parse SQL.
type statement struct {
	keyword string // first keyword, upper case: "SELECT", "INSERT", ...
	// format is the name after a top-level FORMAT keyword, "" if none.
	format string
	// formatAt is the byte offset of the FORMAT keyword; dataAt is the offset
	// just after the format name. Both are -1 without FORMAT.
	formatAt, dataAt int
}

// scanStatement finds the first keyword and the last FORMAT clause of sql.
func scanStatement(sql string) statement {
	st := statement{formatAt: -1, dataAt: -1}
	var prevFormatAt = -1
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(sql, i)
			prevFormatAt = -1
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '#':
			if j := strings.IndexByte(sql[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(sql)
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			if j := strings.Index(sql[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(sql)
			}
		case isIdentStart(c):
			j := i + 1
			for j < len(sql) && isIdentChar(sql[j]) {
				j++
			}
			word := sql[i:j]
			if st.keyword == "" {
				st.keyword = strings.ToUpper(word)
			}
			switch {
			case prevFormatAt >= 0:
				st.format, st.formatAt, st.dataAt = word, prevFormatAt, j
				prevFormatAt = -1
				if st.keyword == "INSERT" {
					return st // the rest is data
				}
			case strings.EqualFold(word, "FORMAT"):
				prevFormatAt = i
			}
			i = j
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			prevFormatAt = -1
			i++
		}
	}
	return st
}

// skipQuoted returns the offset after the literal or quoted identifier that
// starts at i; quotes are escaped by doubling or by backslash.
func skipQuoted(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// isIdent reports whether s is a plain identifier: a setting or database name.
func isIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// quoteString returns s as a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// settingValue renders a URL setting value for a SET statement: numbers stay
// bare, anything else becomes a string literal, which ClickHouse converts to
// the setting's type.
func settingValue(v string) string {
	digits := strings.TrimPrefix(v, "-")
	if digits != "" && strings.Trim(digits, "0123456789") == "" {
		return v
	}
	return quoteString(v)
}

// contentType maps a ClickHouse output format to an HTTP Content-Type.
func contentType(format string) string {
	f := strings.ToLower(format)
	switch {
	case f == "native" || strings.HasPrefix(f, "rowbinary") || f == "parquet" || f == "arrow" || f == "arrowstream" || f == "orc" || f == "avro":
		return "application/octet-stream"
	case strings.HasPrefix(f, "json"):
		return "application/json; charset=UTF-8"
	case strings.HasPrefix(f, "csv"):
		return "text/csv; charset=UTF-8; header=absent"
	case strings.HasPrefix(f, "tabseparated") || strings.HasPrefix(f, "tsv"):
		return "text/tab-separated-values; charset=UTF-8"
	default:
		return "text/plain; charset=UTF-8"
	}
}
