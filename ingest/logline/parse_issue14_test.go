package logline

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/connlog/connlog/store"
)

// Hand-written lines for what the real-nginx test cannot produce: Apache's
// own escaping and host names, statuses nginx writes only in rare states,
// raw quotes an attacker places to fake fields, and JSON nginx never writes.
// Each case is one of the categories of issue 14; the format rules are in
// ingest/logline/doc.go ("Log lines: what is stored").

func TestApacheAndRareLines(t *testing.T) {
	const tm = "[22/Nov/2026:10:00:00 +0000]"
	tests := []struct {
		name string
		line string
		want store.Hit
	}{
		{"Apache HostnameLookups: the client is a host name", `client-7.isp.example - - ` + tm + ` "GET / HTTP/1.1" 200 5 "-" "UA"`,
			store.Hit{ClientText: "client-7.isp.example", Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200, BytesSent: 5, UserAgent: "UA",
				Has: store.HasStatus | store.HasBytes | store.HasUserAgent}},
		{"Apache vhost_combined with a host-name client", `www.example.org:443 host.isp.example - - ` + tm + ` "GET / HTTP/1.1" 200 5 "-" "UA"`,
			store.Hit{ClientText: "host.isp.example", Site: "www.example.org", ServerPort: 443, Method: "GET", Path: "/", Protocol: "HTTP/1.1",
				Status: 200, BytesSent: 5, UserAgent: "UA", Has: store.HasStatus | store.HasBytes | store.HasUserAgent}},
		{"Apache escapes quotes as \\\" and writes - for 0 bytes", `192.0.2.1 - - ` + tm + ` "GET /a\"b HTTP/1.1" 304 - "http://r/\"x\"" "A \"q\" \\ UA"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), Method: "GET", Path: `/a\"b`, Protocol: "HTTP/1.1", Status: 304,
				Referer: `http://r/\"x\"`, UserAgent: `A \"q\" \\ UA`, Has: store.HasStatus | store.HasBytes | store.HasReferer | store.HasUserAgent}},
		{"user name with spaces and a dash", `192.0.2.1 - Jean - Paul Dupont ` + tm + ` "GET / HTTP/1.1" 401 0 "-" "-"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), User: "Jean - Paul Dupont", Method: "GET", Path: "/", Protocol: "HTTP/1.1",
				Status: 401, Has: store.HasStatus | store.HasBytes}},
		{"user name with a bracket", `192.0.2.1 - a[b] ` + tm + ` "GET / HTTP/1.1" 200 0 "-" "-"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), User: "a[b]", Method: "GET", Path: "/", Protocol: "HTTP/1.1",
				Status: 200, Has: store.HasStatus | store.HasBytes}},
		{"status 000: the connection closed before an answer", `192.0.2.1 - - ` + tm + ` "GET /slow HTTP/2.0" 000 0 "-" "-"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), Method: "GET", Path: "/slow", Protocol: "HTTP/2.0",
				Has: store.HasStatus | store.HasBytes}},
		{"status 009: an HTTP/0.9 request", `192.0.2.1 - - ` + tm + ` "GET /" 009 0`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), Method: "GET", Path: "/", Status: 9, Has: store.HasStatus | store.HasBytes}},
		{"escape=none: raw quotes in the referer and the user agent, one reading", `192.0.2.1 - - ` + tm + ` "GET / HTTP/1.1" 200 5 "https://r/?q="x"" "Mozilla "quoted" x"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200, BytesSent: 5,
				Referer: `https://r/?q="x"`, UserAgent: `Mozilla "quoted" x`, Has: store.HasStatus | store.HasBytes | store.HasReferer | store.HasUserAgent}},
		{"escape=none: a raw quote in the request", `192.0.2.1 - - ` + tm + ` "GET /a"b HTTP/1.1" 200 5 "-" "UA"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), Method: "GET", Path: `/a"b`, Protocol: "HTTP/1.1", Status: 200, BytesSent: 5,
				UserAgent: "UA", Has: store.HasStatus | store.HasBytes | store.HasUserAgent}},
		{"proxy request with an absolute URL", `192.0.2.1 - - ` + tm + ` "GET http://example.org/x?y=1 HTTP/1.1" 200 5 "-" "-"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), Method: "GET", Path: "http://example.org/x", Query: "y=1", Protocol: "HTTP/1.1",
				Status: 200, BytesSent: 5, Has: store.HasStatus | store.HasBytes}},
		{"CONNECT with an authority", `192.0.2.1 - - ` + tm + ` "CONNECT example.org:443 HTTP/1.1" 400 0 "-" "-"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), Method: "CONNECT", Path: "example.org:443", Protocol: "HTTP/1.1",
				Status: 400, Has: store.HasStatus | store.HasBytes}},
		{"a word and a word is not an HTTP request", `192.0.2.1 - - ` + tm + ` "hello world" 400 0 "-" "-"`,
			store.Hit{ClientIP: ip("192.0.2.1"), PeerIP: ip("192.0.2.1"), RawRequest: "hello world", Status: 400, Has: store.HasStatus | store.HasBytes}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h store.Hit
			if err := ParseCombined([]byte(tt.line), &h); err != nil {
				t.Fatal(err)
			}
			tt.want.EventTime = utc("2026-11-22T10:00:00Z")
			if h != tt.want {
				t.Errorf("got  %+v\nwant %+v", h, tt.want)
			}
		})
	}
}

// TestRawQuotesNeverGuessed: lines whose raw quotes allow two readings are
// refused, with a reason that quotes nothing from the line.
func TestRawQuotesNeverGuessed(t *testing.T) {
	const pre = `192.0.2.1 - - [22/Nov/2026:10:00:00 +0000] `
	for name, line := range map[string]string{
		"a fake status inside the request": pre + `"GET /x" 200 5 "y HTTP/1.1" 404 0 "R3F" "U4A"`,
		"a fake separator in the referer":  pre + `"GET / HTTP/1.1" 200 5 "a" "b" "U4A with "quote"`,
		"referer without a user agent":     pre + `"GET / HTTP/1.1" 200 5 "y HTTP/1.1" 404 0 "R3F"`,
	} {
		t.Run(name, func(t *testing.T) {
			var h store.Hit
			err := ParseCombined([]byte(line), &h)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("accepted as %+v", h)
			}
			if strings.Contains(err.Error(), "R3F") || strings.Contains(err.Error(), "U4A") || strings.Contains(err.Error(), "192.0.2.1") {
				t.Errorf("error %q quotes the line", err)
			}
		})
	}
}

// TestLogFormatEscapeNone: with the log_format's escape=none declared,
// every reading is tried; one is stored, two are refused, and "" is an
// absent value.
func TestLogFormatEscapeNone(t *testing.T) {
	p, err := New(DefaultConfig().WithFormat("", `log_format n escape=none '$remote_addr $remote_port - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$host"';`))
	if err != nil {
		t.Fatal(err)
	}
	const pre = `192.0.2.1 5000 - bob [22/Nov/2026:10:00:00 +0000] `
	var h store.Hit
	if err := p.Parse("", []byte(pre+`"GET /a"b HTTP/1.1" 200 5 "" "Mo "z" x" "h"`), &h); err != nil {
		t.Fatal(err)
	}
	if h.Path != `/a"b` || h.UserAgent != `Mo "z" x` || h.Site != "h" || h.Has&store.HasReferer != 0 || h.Referer != "" || h.User != "bob" {
		t.Errorf("got %+v", h)
	}
	err = p.Parse("", []byte(pre+`"GET / HTTP/1.1" 200 5 "-" "x" "y" "h"`), &h)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("two readings: %v, want ambiguous", err)
	}
}

// TestStrictJSON: escape=json lines with escapes JSON does not have, or raw
// control bytes, are refused; valid escapes are decoded.
func TestStrictJSON(t *testing.T) {
	p, err := New(DefaultConfig().WithFormat(FormatJSON, ""))
	if err != nil {
		t.Fatal(err)
	}
	good := `{"msec":"1795345200.1","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1","status":"200","http_user_agent":"a\"b\\c\u00e9\/\t"}`
	var h store.Hit
	if err := p.Parse("", []byte(good), &h); err != nil || h.UserAgent != "a\"b\\c\u00e9/\t" {
		t.Fatalf("valid JSON: %v %q", err, h.UserAgent)
	}
	for name, line := range map[string]string{
		`\x (nginx's default escaping)`: strings.Replace(good, `a\"b`, `a\x22b`, 1),
		`\u with three hex digits`:      strings.Replace(good, `\u00e9`, `\u0e9`, 1),
		`\a`:                            strings.Replace(good, `\/`, `\a`, 1),
		"a raw tab":                     strings.Replace(good, `\t`, "\t", 1),
		"a raw control byte in a key":   strings.Replace(good, `"status"`, "\"sta\x01tus\"", 1),
		`\x in a nested value`:          strings.Replace(good, `}`, `,"n":{"k":"\x41"}}`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			err := p.Parse("", []byte(line), &h)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Field != "json" {
				t.Fatalf("got %v, want a json ParseError", err)
			}
		})
	}
}

// TestParseOutputShowsWhatTheLineCarries: `connlog parse` shows zeros,
// headers sent empty, the client text and the raw request, and says how
// bytes that are not UTF-8 were shown.
func TestParseOutputShowsWhatTheLineCarries(t *testing.T) {
	in := `unix: - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 000 0 "" "-"` + "\n" +
		`192.0.2.1 - - [22/Nov/2026:10:00:00 +0000] "\x16\x03\x01" 400 157 "-" "-"` + "\n" +
		`192.0.2.1 - - [22/Nov/2026:10:00:00 +0000] "GET /caf` + "\xe9" + ` HTTP/1.1" 200 1 "-" "-"` + "\n"
	var out bytes.Buffer
	if err := ParseStream(strings.NewReader(in), &out, combinedParser(t)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		`{"time":"2026-11-22T10:00:00.000Z","client_text":"unix:","method":"GET","path":"/","protocol":"HTTP/1.1","status":0,"bytes":0,"referer":"","operation":"read"}`,
		`{"time":"2026-11-22T10:00:00.000Z","client_ip":"192.0.2.1","peer_ip":"192.0.2.1","raw_request":"\\x16\\x03\\x01","status":400,"bytes":157,"operation":"read"}`,
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d:\n got  %s\n want %s", i+1, lines[i], w)
		}
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &obj); err != nil || obj["path"] != "/caf\ufffd" || !strings.Contains(obj["invalid_utf8"].(string), "U+FFFD") {
		t.Errorf("line 3: %s (%v)", lines[2], err)
	}
}

// FuzzEscapeNone writes any request, user, referer and user agent the way
// nginx's escape=none does (raw) into a combined-shaped line and parses it
// with that log_format: the line is refused, or every field comes back as
// written. A raw quote may make a line ambiguous, never wrong.
func FuzzEscapeNone(f *testing.F) {
	f.Add("GET /a\"b HTTP/1.1", "john doe", `https://r/?q="x"`, `Mozilla "quoted" x`)
	f.Add("GET / HTTP/1.1", "", "a", `x" "y`)
	f.Add(`GET /x" 200 5 "y HTTP/1.1`, "-", "ref", "ua")
	f.Add("\\x16\\x03", "a [b]", "", "")
	p, err := New(DefaultConfig().WithFormat("", ngNoneFormat))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, req, user, ref, ua string) {
		for _, s := range []string{req, user, ref, ua} {
			if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) {
				return // quarantined by the pipeline before parsing
			}
		}
		line := "192.0.2.1 - " + user + " [22/Nov/2026:10:00:00 +0000] \"" + req + "\" 200 5 \"" + ref + "\" \"" + ua + "\""
		var h store.Hit
		if err := p.Parse("", []byte(line), &h); err != nil {
			return
		}
		got := h.RawRequest
		if got == "" && h.Method != "" {
			got = h.Method + " " + h.Path
			// A '?' in the target (not in the protocol) splits off the query.
			if h.Query != "" || strings.Contains(strings.TrimSuffix(req, " "+h.Protocol), "?") {
				got += "?" + h.Query
			}
			if h.Protocol != "" {
				got += " " + h.Protocol
			}
		}
		if h.Redacted {
			// A secret (a password in a URL, a secret query parameter) is
			// replaced by RedactedValue: the rest of the field is as written.
			if !inLine([]byte(req), got) || !inLine([]byte(ref), h.Referer) {
				t.Fatalf("line %q redacted as request %q referer %q", line, got, h.Referer)
			}
			got, h.Referer = req, ref
		}
		if got != req || h.User != user || h.Referer != ref || h.UserAgent != ua || h.Status != 200 || h.BytesSent != 5 {
			t.Fatalf("line %q read as request %q user %q referer %q agent %q status %d bytes %d", line, got, h.User, h.Referer, h.UserAgent, h.Status, h.BytesSent)
		}
	})
}

// FuzzDefaultEscaping writes any request, user, referer and user agent as
// nginx's built-in combined does (default escaping, "-" for an absent
// header) and parses it: every field comes back as nginx wrote it.
func FuzzDefaultEscaping(f *testing.F) {
	f.Add("GET /a\"b HTTP/1.1", "john - doe", `https://r/?q="x"`, `x" "y`, true, false)
	f.Add("\x16\x03\x01\x00\xc8", "", "", "", false, true)
	f.Fuzz(func(t *testing.T, req, user, ref, ua string, sentRef, sentUA bool) {
		if strings.ContainsAny(user, "\x00\r\n") || user == "" || strings.HasPrefix(user, " ") {
			return // nginx writes "-" for no user; a user never starts with a space after decoding here
		}
		refField, uaField := "-", "-"
		if sentRef {
			refField = nginxEscape(ref)
		}
		if sentUA {
			uaField = nginxEscape(ua)
		}
		line := "192.0.2.1 - " + nginxEscape(user) + " [22/Nov/2026:10:00:00 +0000] \"" + nginxEscape(req) + "\" 200 5 \"" + refField + "\" \"" + uaField + "\""
		var h store.Hit
		if err := ParseCombined([]byte(line), &h); err != nil {
			if strings.Contains(nginxEscape(user), " [") || strings.Contains(nginxEscape(user), " - ") {
				return // a user name holding the delimiters themselves
			}
			t.Fatalf("%q: %v", line, err)
		}
		if refField == "-" {
			refField = ""
		}
		if uaField == "-" {
			uaField = ""
		}
		wantUser := nginxEscape(user)
		if wantUser == "-" {
			wantUser = ""
		}
		if h.Referer != refField || h.UserAgent != uaField || (h.Has&store.HasReferer != 0) != (sentRef && ref != "-") ||
			(h.Has&store.HasUserAgent != 0) != (sentUA && ua != "-") || h.Status != 200 || h.BytesSent != 5 {
			t.Fatalf("%q read as referer %q agent %q has %b", line, h.Referer, h.UserAgent, h.Has)
		}
		if h.User != wantUser && !strings.Contains(wantUser, " - ") && !strings.Contains(wantUser, " [") {
			t.Fatalf("%q read as user %q", line, h.User)
		}
	})
}

// TestScanJSONString: the string scan, eight bytes at a time, finds the
// closing quote and says whether a control byte or an escape came first,
// wherever they sit.
func TestScanJSONString(t *testing.T) {
	for n := range 20 {
		for pos := range n {
			for _, c := range []byte{0, 0x1f, 0x20, 0x7f, 0x80, 0x9f, 0xff, '\\', '"'} {
				b := bytes.Repeat([]byte{'a'}, n)
				b[pos] = c
				line := append(append([]byte{'"'}, b...), '"', ' ')
				s, e, next, esc, ctl, ok := scanJSONString(line, 0)
				wantEnd := n + 1
				switch c {
				case '"':
					wantEnd = pos + 1
				case '\\':
					if pos == n-1 { // escapes the closing quote
						if ok {
							t.Errorf("len %d, backslash last: terminated at %d", n, e)
						}
						continue
					}
				}
				if !ok || s != 1 || e != wantEnd || next != wantEnd+1 || ctl != (c < 0x20) || esc != (c == '\\') {
					t.Errorf("len %d, 0x%02x at %d: %d %d %d esc=%v ctl=%v ok=%v", n, c, pos, s, e, next, esc, ctl, ok)
				}
			}
		}
	}
}
