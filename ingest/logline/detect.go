package logline

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

// Parser turns Kafka messages into hits: it unwraps shipper envelopes
// and syslog headers, parses the topic's format, resolves the real client
// through trusted proxies, redacts secret query parameters and classifies
// the operation. Build it once with [New]; it is immutable and
// safe for concurrent use.
type Parser struct {
	topics   map[string]formatKind
	def      formatKind
	lf       *logFormat // the configured log_format, or nil
	main     *logFormat
	json     *jsonFormat
	proxies  trustedProxies
	redact   redactor
	classify classifier
}

// New validates cfg and compiles its formats.
func New(cfg Config) (*Parser, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	p := &Parser{topics: map[string]formatKind{}}
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
// header, parses the topic's format (see [Config.Formats]), resolves
// the client through the trusted proxies, redacts the configured query
// parameters and sets h.Operation. One trailing newline is ignored.
//
// Strings in h may alias msg: h is valid as long as msg's bytes are
// unchanged. A combined line is parsed without allocating; an envelope, a
// JSON value with escapes or a redaction allocates. An error for bad input
// wraps [ErrMalformed] (a [*ParseError] whose message quotes nothing from
// the line, safe as a quarantine reason).
func (p *Parser) Parse(topic string, msg []byte, h *store.Hit) error {
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
func (p *Parser) parseLine(kind formatKind, line []byte, h *store.Hit, st *lineState) (host string, err error) {
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

func (p *Parser) jsonFor(kind formatKind) *jsonFormat {
	if kind == kindLogFormat && p.lf != nil && p.lf.json != nil {
		return p.lf.json
	}
	if kind == kindAuto && p.lf != nil && p.lf.json != nil {
		return p.lf.json
	}
	return p.json
}

// parseBody parses an unwrapped line with the format kind.
func (p *Parser) parseBody(kind formatKind, line []byte, h *store.Hit, st *lineState) error {
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

// Formats returns the format names a topic can be read as, sorted, without
// "log_format", which also needs the format string ([Config.LogFormat]).
func Formats() []string {
	names := slices.DeleteFunc(slices.Clone(knownFormats), func(s string) bool { return s == FormatLogFormat })
	slices.Sort(names)
	return names
}

// CheckFormat returns an error wrapping [ErrUnknownFormat] if name is not
// a format name of [Config.Formats] ("" means auto).
func CheckFormat(name string) error {
	_, err := kindOf(name)
	return err
}

// WithFormat returns c with every topic read as format, or as the nginx
// log_format logFormat (see [Config.LogFormat]) when that is set; the rest
// of c (trusted proxies, redaction, operations, JSON keys) is kept. With
// both empty, c's own formats stay (auto-detection if it has none). This
// is what `connlog parse -format` and `-log-format` run.
func (c Config) WithFormat(format, logFormat string) Config {
	switch {
	case logFormat != "":
		c.Formats = map[string]string{DefaultTopic: FormatLogFormat}
		c.LogFormat = logFormat
	case format != "":
		c.Formats = map[string]string{DefaultTopic: format}
	case c.Formats == nil:
		c.Formats = map[string]string{DefaultTopic: FormatAuto}
	}
	return c
}
