package embedded

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// The engine's grants (engineconf.go) refuse every table function, table
// engine, dictionary and backup that reaches the network or the file
// system. Three ways to read or write files are not covered by grants in
// chDB, which runs as clickhouse-local: the scalar file() function, SELECT
// … INTO OUTFILE and INSERT … FROM INFILE. guardStatement refuses them, and,
// as a second line behind the grants, the table functions by name.
//
// It works on tokens, so a name inside a string literal is no match. Its
// reading of comments and literals may only ever see more code than
// ClickHouse does, never less: '…' and "…" and `…` end as ClickHouse ends
// them (backslash escapes, doubled quotes); -- and /* */ are comments
// (ClickHouse's nested /* */ comments are longer than ours: more code for
// us, not less); # is not treated as a comment at all; a quoted identifier
// counts as a name, since `file`('x') calls file.
//
// connlog's own statements never use any of these.

// deniedFunctions are lower-cased names refused as a call, whatever
// their case or quoting.
var deniedFunctions = map[string]bool{
	"file": true, "filecluster": true, "url": true, "urlcluster": true,
	"remote": true, "remotesecure": true, "cluster": true, "clusterallreplicas": true,
	"s3": true, "s3cluster": true, "gcs": true, "oss": true, "cosn": true,
	"hdfs": true, "hdfscluster": true, "azureblobstorage": true, "azureblobstoragecluster": true,
	"mysql": true, "postgresql": true, "sqlite": true, "odbc": true, "jdbc": true,
	"mongodb": true, "redis": true, "executable": true, "executablepool": true,
	"hive": true, "iceberg": true, "icebergs3": true, "icebergazure": true, "iceberghdfs": true,
	"iceberglocal": true, "deltalake": true, "deltalakes3": true, "deltalakeazure": true,
	"hudi": true, "ytsaurus": true, "arrowflight": true, "catboostevaluate": true,
}

// guardStatement returns an error naming the first construct of sql that
// reaches the file system or the network outside the engine's grants.
func guardStatement(sql string) error {
	var prev token
	for toks := (tokenizer{s: sql}); ; {
		t, ok := toks.next()
		if !ok {
			return nil
		}
		if t.kind == tokPunct && t.text == "(" && prev.kind == tokIdent && deniedFunctions[strings.ToLower(prev.text)] {
			return fmt.Errorf("%s() reaches the file system or the network and is disabled in connlog's embedded ClickHouse", prev.text)
		}
		if t.kind == tokIdent && !t.quoted {
			switch strings.ToUpper(t.text) {
			case "OUTFILE", "INFILE":
				return fmt.Errorf("%s reaches the file system and is disabled in connlog's embedded ClickHouse", strings.ToUpper(t.text))
			}
		}
		prev = t
	}
}

// guardValues guards the data of an INSERT … FORMAT Values: its rows are
// SQL expressions the engine evaluates. It returns the data to insert.
func guardValues(sql string, data io.Reader) (io.Reader, error) {
	if err := guardStatement(sql); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(data, maxInsertSize+1))
	if err != nil {
		return nil, fmt.Errorf("read insert body: %w", err)
	}
	if err := guardStatement(string(b)); err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

type tokenKind int

const (
	tokIdent tokenKind = iota + 1
	tokString
	tokPunct
)

type token struct {
	kind   tokenKind
	text   string // identifier name (unquoted) or the punctuation byte
	quoted bool
}

// tokenizer splits SQL into identifiers, string literals and single-byte
// punctuation, skipping blanks and comments.
type tokenizer struct {
	s string
	i int
}

func (z *tokenizer) next() (token, bool) {
	for z.i < len(z.s) {
		c := z.s[z.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			z.i++
		case c == '-' && strings.HasPrefix(z.s[z.i:], "--"):
			if j := strings.IndexByte(z.s[z.i:], '\n'); j >= 0 {
				z.i += j + 1
			} else {
				z.i = len(z.s)
			}
		case c == '/' && strings.HasPrefix(z.s[z.i:], "/*"):
			if j := strings.Index(z.s[z.i+2:], "*/"); j >= 0 {
				z.i += j + 4
			} else {
				z.i = len(z.s)
			}
		case c == '\'':
			end := skipQuoted(z.s, z.i)
			z.i = end
			return token{kind: tokString}, true
		case c == '`' || c == '"':
			start := z.i
			end := skipQuoted(z.s, z.i)
			z.i = end
			return token{kind: tokIdent, text: unquoteIdent(z.s[start:end]), quoted: true}, true
		case isIdentStart(c) || c >= 0x80:
			j := z.i + 1
			for j < len(z.s) && (isIdentChar(z.s[j]) || z.s[j] >= 0x80 || z.s[j] == '$') {
				j++
			}
			t := token{kind: tokIdent, text: z.s[z.i:j]}
			z.i = j
			return t, true
		default:
			z.i++
			return token{kind: tokPunct, text: string(c)}, true
		}
	}
	return token{}, false
}

// unquoteIdent returns the name inside a `…` or "…" identifier.
func unquoteIdent(q string) string {
	if len(q) < 2 {
		return ""
	}
	body := q[1 : len(q)-1]
	if q[len(q)-1] != q[0] {
		body = q[1:]
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		switch {
		case body[i] == '\\' && i+1 < len(body):
			i++
			b.WriteByte(body[i])
		case body[i] == q[0] && i+1 < len(body) && body[i+1] == q[0]:
			i++
			b.WriteByte(body[i])
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String()
}
