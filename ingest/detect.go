package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/connlog/connlog/store"
)

type formatKind uint8

const (
	kindAuto formatKind = iota
	kindCombined
	kindMain
	kindJSON
	kindLogFormat
)

func kindOf(name string) (formatKind, error) {
	switch name {
	case FormatAuto, "":
		return kindAuto, nil
	case FormatCombined, FormatCommon, FormatApacheCombined:
		return kindCombined, nil
	case FormatMain:
		return kindMain, nil
	case FormatJSON:
		return kindJSON, nil
	case FormatLogFormat:
		return kindLogFormat, nil
	}
	return 0, fmt.Errorf("format %q: %w (known: %v)", name, ErrUnknownFormat, knownFormats)
}

// LineParser turns Kafka messages into hits: it unwraps shipper envelopes
// and syslog headers, parses the topic's format, resolves the real client
// through trusted proxies, redacts secret query parameters and classifies
// the operation. Build it once with [NewLineParser]; it is immutable and
// safe for concurrent use.
type LineParser struct {
	topics   map[string]formatKind
	def      formatKind
	lf       *logFormat // the configured log_format, or nil
	main     *logFormat
	json     *jsonFormat
	proxies  trustedProxies
	redact   redactor
	classify classifier
}

// NewLineParser validates cfg and compiles its formats.
func NewLineParser(cfg ParseConfig) (*LineParser, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	p := &LineParser{topics: map[string]formatKind{}}
	for topic, name := range cfg.Formats {
		k, _ := kindOf(name)
		if topic == DefaultTopic {
			p.def = k
		} else {
			p.topics[topic] = k
		}
	}
	var err error
	if cfg.LogFormat != "" {
		if p.lf, err = compileLogFormat(cfg.LogFormat); err != nil {
			return nil, fmt.Errorf("compile log_format: %w", err)
		}
	}
	if p.main, err = compileLogFormat(LogFormatMain); err != nil {
		return nil, fmt.Errorf("compile main: %w", err)
	}
	if p.json, err = newJSONFormat(cfg.JSONFields); err != nil {
		return nil, err
	}
	for _, s := range cfg.TrustedProxies {
		pr, _ := parsePrefixOrAddr(s)
		p.proxies = append(p.proxies, pr)
	}
	redact := cfg.RedactParams
	if redact == nil {
		redact = DefaultRedactParams
	}
	p.redact = newRedactor(redact)
	if p.classify, err = newClassifier(cfg.Operations); err != nil {
		return nil, err
	}
	return p, nil
}

// Parse parses one Kafka message body from topic into h, which it resets
// first: it unwraps a Vector/Filebeat/Fluent Bit envelope and a syslog
// header, parses the topic's format (see [ParseConfig.Formats]), resolves
// the client through the trusted proxies, redacts the configured query
// parameters and sets h.Operation. One trailing newline is ignored.
//
// Strings in h may alias msg: h is valid as long as msg's bytes are
// unchanged. A combined line is parsed without allocating; an envelope, a
// JSON value with escapes or a redaction allocates. An error for bad input
// wraps [ErrMalformed] (a [*ParseError] whose message quotes nothing from
// the line, safe as a quarantine reason).
func (p *LineParser) Parse(topic string, msg []byte, h *store.Hit) error {
	*h = store.Hit{}
	line := trimEOL(msg)
	if len(line) == 0 {
		return perr("line", 0, "empty line")
	}
	kind := p.def
	if len(p.topics) > 0 {
		if k, ok := p.topics[topic]; ok {
			kind = k
		}
	}
	var st lineState
	host, err := p.parseLine(kind, line, h, &st)
	file := ""
	if err != nil && line[0] == '{' {
		// A shipper's envelope: the JSON reader stops at its "message" or
		// "log" (errEnvelope); other formats simply failed on it.
		*h = store.Hit{}
		inner, ok := unwrapEnvelope(line, p.jsonFor(kind), h)
		switch {
		case ok:
			ehost := h.ShipperHost
			file = h.LogFile
			*h, st = store.Hit{}, lineState{}
			if len(inner) == 0 {
				return perr("message", 0, "empty line in the shipper's envelope")
			}
			host, err = p.parseLine(kind, inner, h, &st)
			if ehost != "" {
				host = ehost
			}
		case errors.Is(err, errEnvelope):
			err = perr("json", 0, "malformed shipper envelope")
		}
	}
	if err != nil {
		return err
	}
	h.ShipperHost, h.LogFile = host, file
	p.proxies.resolveClient(h, &st)
	p.redact.apply(h)
	if h.RawRequest != "" && strings.ContainsAny(h.RawRequest, "?&") {
		// A request line that is not HTTP keeps its secrets out too.
		if b := p.redact.raw([]byte(h.RawRequest)); string(b) != h.RawRequest {
			h.RawRequest, h.Redacted = string(b), true
		}
	}
	p.classify.classify(h)
	return nil
}

// parseLine strips a syslog header if there is one and parses the line
// with the format kind. It returns the syslog sender's host, if any.
func (p *LineParser) parseLine(kind formatKind, line []byte, h *store.Hit, st *lineState) (host string, err error) {
	stripped, shost, ok := stripSyslog(line)
	if !ok {
		return "", p.parseBody(kind, line, h, st)
	}
	if err = p.parseBody(kind, stripped, h, st); err == nil {
		return str(shost), nil
	}
	// A format starting with $time_iso8601 looks like a syslog header: try
	// the line as it is before giving up.
	*h, *st = store.Hit{}, lineState{}
	if p.parseBody(kind, line, h, st) == nil {
		return "", nil
	}
	return "", err
}

func (p *LineParser) jsonFor(kind formatKind) *jsonFormat {
	if kind == kindLogFormat && p.lf != nil && p.lf.json != nil {
		return p.lf.json
	}
	if kind == kindAuto && p.lf != nil && p.lf.json != nil {
		return p.lf.json
	}
	return p.json
}

// parseBody parses an unwrapped line with the format kind.
func (p *LineParser) parseBody(kind formatKind, line []byte, h *store.Hit, st *lineState) error {
	if len(line) == 0 {
		return perr("line", 0, "empty line")
	}
	switch kind {
	case kindCombined:
		_, err := parseCombined(line, h)
		return err
	case kindMain:
		return parseCompiled(p.main, line, h, st)
	case kindJSON:
		return parseJSON(p.json, line, h, st)
	case kindLogFormat:
		if p.lf == nil {
			return errors.New("no log_format configured")
		}
		return parseCompiled(p.lf, line, h, st)
	}
	// auto
	if line[0] == '{' {
		return parseJSON(p.jsonFor(kind), line, h, st)
	}
	// The configured log_format is the most specific: try it first.
	var lerr error
	if p.lf != nil && p.lf.json == nil {
		if lerr = parseCompiled(p.lf, line, h, st); lerr == nil {
			return nil
		}
		*h, *st = store.Hit{}, lineState{}
	}
	end, err := parseCombined(line, h)
	if err == nil {
		trailingXFF(line, end, h)
		return nil
	}
	if lerr != nil {
		return lerr
	}
	return err
}

// trailingXFF keeps nginx main's trailing "$http_x_forwarded_for" when a
// line auto-detected as combined carries it.
func trailingXFF(line []byte, end int, h *store.Hit) {
	if h.ForwardedFor != "" || end+1 >= len(line) || line[end] != ' ' || line[end+1] != '"' {
		return
	}
	s, e, _, ok := quoted(line, end+1)
	if !ok || e == s || (e-s == 1 && line[s] == '-') {
		return
	}
	v := line[s:e]
	first := v
	if c := bytes.IndexByte(v, ','); c >= 0 {
		first = v[:c]
	}
	if _, ok := parseForwardedAddr(bytes.TrimSpace(first)); ok {
		h.ForwardedFor = str(v)
	}
}

func parseCompiled(lf *logFormat, line []byte, h *store.Hit, st *lineState) error {
	if lf.json != nil {
		return parseJSON(lf.json, line, h, st)
	}
	if err := lf.parse(line, h, st); err != nil {
		return err
	}
	return finishFields(h, st)
}

func parseJSON(jf *jsonFormat, line []byte, h *store.Hit, st *lineState) error {
	if err := jf.parse(line, h, st); err != nil {
		return err
	}
	return finishFields(h, st)
}

// Topic returns a [Parser] that parses lines as if they came from topic.
func (p *LineParser) Topic(topic string) Parser {
	return ParserFunc(func(line []byte, h *store.Hit) error { return p.Parse(topic, line, h) })
}

// Formats returns the format names [NewParser] accepts, sorted. The format
// "log_format" also needs the format string: use [NewLogFormatParser].
func Formats() []string {
	names := slices.DeleteFunc(slices.Clone(knownFormats), func(s string) bool { return s == FormatLogFormat })
	slices.Sort(names)
	return names
}

// NewParser returns a parser for a format name (see [Formats]) with the
// defaults of [DefaultParseConfig] (redaction, no trusted proxy). An unknown
// name yields an error wrapping [ErrUnknownFormat].
func NewParser(format string) (Parser, error) {
	if _, err := kindOf(format); err != nil || format == FormatLogFormat {
		return nil, fmt.Errorf("format %q: %w (known: %v)", format, ErrUnknownFormat, Formats())
	}
	cfg := DefaultParseConfig()
	cfg.Formats = map[string]string{DefaultTopic: format}
	p, err := NewLineParser(cfg)
	if err != nil {
		return nil, err
	}
	return p.Topic(""), nil
}

// NewLogFormatParser returns a parser for an nginx log_format string (as
// in nginx.conf, see [ParseConfig.LogFormat]) with the defaults of
// [DefaultParseConfig]. A format connlog cannot use is an error saying why.
func NewLogFormatParser(logFormat string) (Parser, error) {
	cfg := DefaultParseConfig()
	cfg.Formats = map[string]string{DefaultTopic: FormatLogFormat}
	cfg.LogFormat = logFormat
	p, err := NewLineParser(cfg)
	if err != nil {
		return nil, err
	}
	return p.Topic(""), nil
}

// ParserFor returns the parser `connlog parse` runs: cfg (trusted proxies,
// redaction, operations, JSON keys) with every topic read as format, or as
// the nginx log_format logFormat when that is set. An empty format means
// cfg's own formats (auto-detection by default).
func ParserFor(cfg ParseConfig, format, logFormat string) (Parser, error) {
	switch {
	case logFormat != "":
		cfg.Formats = map[string]string{DefaultTopic: FormatLogFormat}
		cfg.LogFormat = logFormat
	case format != "":
		cfg.Formats = map[string]string{DefaultTopic: format}
	case cfg.Formats == nil:
		cfg.Formats = map[string]string{DefaultTopic: FormatAuto}
	}
	p, err := NewLineParser(cfg)
	if err != nil {
		return nil, err
	}
	return p.Topic(""), nil
}
