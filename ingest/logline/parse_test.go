package logline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
)

func TestParseCombined(t *testing.T) {
	ua := "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0"
	tests := []struct {
		name string
		line string
		want store.Hit
	}{
		{
			name: "combined line",
			line: `85.181.35.98 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "` + ua + `"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasUserAgent, EventTime: utc("2016-12-07T10:05:07Z"), ClientIP: ip("85.181.35.98"), PeerIP: ip("85.181.35.98"),
				Method: "GET", Path: "/ocelot", Protocol: "HTTP/1.1", Status: 200, BytesSent: 571, UserAgent: ua},
		},
		{
			name: "IPv6 client",
			line: `2001:41d0:8:f69::1 - - [29/Oct/2015:06:47:36 +0100] "GET / HTTP/1.1" 200 20526 "http://niels.basjes.nl/" "UA"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasReferer | store.HasUserAgent, EventTime: utc("2015-10-29T05:47:36Z"), ClientIP: ip("2001:41d0:8:f69::1"), PeerIP: ip("2001:41d0:8:f69::1"),
				Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200, BytesSent: 20526, Referer: "http://niels.basjes.nl/", UserAgent: "UA"},
		},
		{
			name: "IPv4-mapped IPv6 peer is unmapped",
			line: `::ffff:10.1.2.3 - - [07/Dec/2016:11:05:07 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2016-12-07T11:05:07Z"), ClientIP: ip("10.1.2.3"), PeerIP: ip("10.1.2.3"),
				Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200, BytesSent: 1},
		},
		{
			name: "XFF list before remote_addr",
			line: `10.0.0.2, 10.0.0.1, 127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "-"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2016-12-07T10:05:07Z"), ClientIP: ip("127.0.0.1"), PeerIP: ip("127.0.0.1"), ForwardedFor: "10.0.0.2, 10.0.0.1",
				Method: "GET", Path: "/ocelot", Protocol: "HTTP/1.1", Status: 200, BytesSent: 571},
		},
		{
			name: "quoted XFF list before remote_addr",
			line: `"10.5.102.222, 199.96.1.1, 204.246.1.1" 10.2.1.185 - - [22/Jan/2016:13:18:29 +0000] "GET /assets/xxxx?q=100 HTTP/1.1" 200 25507 "-" "Amazon CloudFront"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasUserAgent, EventTime: utc("2016-01-22T13:18:29Z"), ClientIP: ip("10.2.1.185"), PeerIP: ip("10.2.1.185"), ForwardedFor: "10.5.102.222, 199.96.1.1, 204.246.1.1",
				Method: "GET", Path: "/assets/xxxx", Query: "q=100", Protocol: "HTTP/1.1", Status: 200, BytesSent: 25507, UserAgent: "Amazon CloudFront"},
		},
		{
			name: "vhost and port before remote_addr, user and trailing request time",
			line: `localhost:443 178.20.184.42 1j0vhgd jsmith [26/Jul/2023:00:01:26 -0700] "GET /s?a=1 HTTP/2.0" 200 17163 "-" "Mozilla/5.0" 116075`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasUserAgent, EventTime: utc("2023-07-26T07:01:26Z"), ClientIP: ip("178.20.184.42"), PeerIP: ip("178.20.184.42"), Site: "localhost", ServerPort: 443, User: "jsmith",
				Method: "GET", Path: "/s", Query: "a=1", Protocol: "HTTP/2.0", Status: 200, BytesSent: 17163, UserAgent: "Mozilla/5.0"},
		},
		{
			name: "empty request",
			line: `127.0.0.1 - - [12/Apr/2018:09:48:40 +0200] "" 400 0 "-" "-"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2018-04-12T07:48:40Z"), ClientIP: ip("127.0.0.1"), PeerIP: ip("127.0.0.1"), Status: 400},
		},
		{
			name: "dash request and dash bytes in common format",
			line: `::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2016-12-26T14:16:48Z"), ClientIP: ip("::1"), PeerIP: ip("::1"), Status: 408},
		},
		{
			name: "common format",
			line: `::1 - - [26/Dec/2016:16:16:29 +0200] "GET /favicon.ico HTTP/1.1" 404 209`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2016-12-26T14:16:29Z"), ClientIP: ip("::1"), PeerIP: ip("::1"),
				Method: "GET", Path: "/favicon.ico", Protocol: "HTTP/1.1", Status: 404, BytesSent: 209},
		},
		{
			name: "extra trailing field",
			line: `172.17.0.1 - - [29/May/2017:19:02:48 +0000] "GET /stringpatch HTTP/1.1" 404 612 "-" "UA" "-"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasUserAgent, EventTime: utc("2017-05-29T19:02:48Z"), ClientIP: ip("172.17.0.1"), PeerIP: ip("172.17.0.1"),
				Method: "GET", Path: "/stringpatch", Protocol: "HTTP/1.1", Status: 404, BytesSent: 612, UserAgent: "UA"},
		},
		{
			name: "+0330 offset",
			line: `54.36.149.41 - - [22/Jan/2019:03:56:14 +0330] "GET /filter/27|13%20%D9%85 HTTP/1.1" 200 30577 "-" "UA" "-"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasUserAgent, EventTime: utc("2019-01-22T00:26:14Z"), ClientIP: ip("54.36.149.41"), PeerIP: ip("54.36.149.41"),
				Method: "GET", Path: "/filter/27|13%20%D9%85", Protocol: "HTTP/1.1", Status: 200, BytesSent: 30577, UserAgent: "UA"},
		},
		{
			name: "negative offset crossing midnight and year",
			line: `1.2.3.4 - - [31/Dec/2016:23:30:00 -0130] "GET / HTTP/1.1" 200 1`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2017-01-01T01:00:00Z"), ClientIP: ip("1.2.3.4"), PeerIP: ip("1.2.3.4"),
				Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200, BytesSent: 1},
		},
		{
			name: "leap day",
			line: `1.2.3.4 - - [29/Feb/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 1`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2024-02-29T12:00:00Z"), ClientIP: ip("1.2.3.4"), PeerIP: ip("1.2.3.4"),
				Method: "GET", Path: "/", Protocol: "HTTP/1.1", Status: 200, BytesSent: 1},
		},
		{
			name: "escapes are left as they are",
			line: `1.2.3.4 - - [07/Dec/2016:11:05:07 +0000] "\x16\x03\x01\x00\xA5" 400 166 "-" "a \"quoted\" UA"`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasUserAgent, EventTime: utc("2016-12-07T11:05:07Z"), ClientIP: ip("1.2.3.4"), PeerIP: ip("1.2.3.4"),
				RawRequest: `\x16\x03\x01\x00\xA5`, Status: 400, BytesSent: 166, UserAgent: `a \"quoted\" UA`},
		},
		{
			name: "HTTP/0.9 request without protocol",
			line: `1.2.3.4 - - [07/Dec/2016:11:05:07 +0000] "GET /x?" 200 5`,
			want: store.Hit{Has: store.HasStatus | store.HasBytes, EventTime: utc("2016-12-07T11:05:07Z"), ClientIP: ip("1.2.3.4"), PeerIP: ip("1.2.3.4"),
				Method: "GET", Path: "/x", Status: 200, BytesSent: 5},
		},
		{
			name: "line with CRLF",
			line: "1.2.3.4 - bob [07/Dec/2016:11:05:07 +0000] \"POST /login HTTP/1.1\" 302 0 \"https://x/\" \"UA\"\r\n",
			want: store.Hit{Has: store.HasStatus | store.HasBytes | store.HasReferer | store.HasUserAgent, EventTime: utc("2016-12-07T11:05:07Z"), ClientIP: ip("1.2.3.4"), PeerIP: ip("1.2.3.4"), User: "bob",
				Method: "POST", Path: "/login", Protocol: "HTTP/1.1", Status: 302, Referer: "https://x/", UserAgent: "UA"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := store.Hit{Site: "stale", Status: 999} // must be reset
			if err := ParseCombined([]byte(tt.line), &h); err != nil {
				t.Fatalf("ParseCombined: %v", err)
			}
			if h != tt.want {
				t.Errorf("got  %+v\nwant %+v", h, tt.want)
			}
		})
	}
}

func TestParseCombinedErrors(t *testing.T) {
	good := `1.2.3.4 - - [07/Dec/2016:11:05:07 +0000] "GET / HTTP/1.1" 200 5 "-" "UA"`
	tests := []struct {
		name, line, field string
	}{
		{"empty line", "\n", "line"},
		{"binary junk", "\x00\x01\xff\xfe garbage", "time_local"},
		{"junk word", "xxxxxxxxxxxx", "time_local"},
		{"remote_addr neither an address nor a host name", `monitoring/server - - [29/May/2017:19:02:48 +0000] "GET / HTTP/1.1" 200 612`, "remote_addr"},
		{"missing ident and user", `192.168.202.254 [20/Jul/2009:22:59:29 +0000] "GET / HTTP/1.0" 404 46210`, "remote_user"},
		{"invalid month", strings.Replace(good, "Dec", "Dez", 1), "time_local"},
		{"invalid date", strings.Replace(good, "07/Dec", "31/Nov", 1), "time_local"},
		{"29 February of a common year", strings.Replace(good, "07/Dec/2016", "29/Feb/2017", 1), "time_local"},
		{"hour out of range", strings.Replace(good, "11:05:07", "24:05:07", 1), "time_local"},
		{"bad offset", strings.Replace(good, "+0000", "Z0000", 1), "time_local"},
		{"truncated in time", good[:30], "time_local"},
		{"truncated in request", good[:50], "request"},
		{"truncated after request", good[:57], "status"},
		{"truncated after status", good[:61], "body_bytes_sent"},
		{"truncated in user agent", good[:len(good)-2], "http_user_agent"},
		{"status not a number", strings.Replace(good, " 200 ", " 2x0 ", 1), "status"},
		{"bytes not a number", strings.Replace(good, " 5 ", " 5k ", 1), "body_bytes_sent"},
		{"bytes overflow", strings.Replace(good, " 5 ", " 99999999999999999999 ", 1), "body_bytes_sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h store.Hit
			err := ParseCombined([]byte(tt.line), &h)
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseCombined(%q) = %v, want a *ParseError wrapping ErrMalformed", tt.line, err)
			}
			if pe.Field != tt.field || pe.Reason == "" || pe.Pos < 0 || pe.Pos > len(tt.line) {
				t.Errorf("got %+v, want field %q, a reason and a position in the line", pe, tt.field)
			}
		})
	}
}

func TestParseErrorDoesNotQuoteTheLine(t *testing.T) {
	var h store.Hit
	err := ParseCombined([]byte(`203.0.113.7 - - [07/Dec/2016:11:05:07 +0000] "GET /secret HTTP/1.1" abc 5`), &h)
	if err == nil || strings.Contains(err.Error(), "203.0.113.7") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v must exist and must not contain line content", err)
	}
}

func TestNewForEveryFormat(t *testing.T) {
	for _, name := range Formats() {
		if _, err := New(DefaultConfig().WithFormat(name, "")); err != nil {
			t.Errorf("format %q: %v", name, err)
		}
	}
	if _, err := New(DefaultConfig().WithFormat("nope", "")); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("format nope: %v, want ErrUnknownFormat", err)
	}
	if err := CheckFormat("nope"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("CheckFormat(nope) = %v, want ErrUnknownFormat", err)
	}
}

// combinedParser is the parser for the format combined with the defaults.
func combinedParser(t testing.TB) *Parser {
	t.Helper()
	p, err := New(DefaultConfig().WithFormat(FormatCombined, ""))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sharedLogs is the repository-wide corpus of real logs, outside this package.
const sharedLogs = "../../../shared/testdata/logs"

func TestParseCombinedRealFiles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(sharedLogs, "*.log"))
	if len(files) == 0 {
		t.Skip("no shared test logs at " + sharedLogs)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var ok, bad int
			for n, line := range readLines(t, f) {
				var h store.Hit
				err := ParseCombined(line, &h)
				if err == nil {
					ok++
					checkHit(t, line, &h)
					continue
				}
				bad++
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Reason == "" {
					t.Errorf("line %d: %v is not a ParseError with a reason", n+1, err)
				}
			}
			t.Logf("%d parsed, %d rejected", ok, bad)
			if ok == 0 {
				t.Errorf("no line parsed")
			}
		})
	}
}

// checkHit verifies invariants of an accepted line: strings are substrings
// of the line, the time is UTC, the peer is valid, and the JSON is valid.
func checkHit(t testing.TB, line []byte, h *store.Hit) {
	t.Helper()
	for name, s := range map[string]string{
		"method": h.Method, "path": h.Path, "query": h.Query, "protocol": h.Protocol, "referer": h.Referer,
		"user_agent": h.UserAgent, "user": h.User, "forwarded_for": h.ForwardedFor, "site": h.Site,
	} {
		if !bytes.Contains(line, []byte(s)) {
			t.Errorf("%s %q is not a substring of the line", name, s)
		}
	}
	if h.EventTime.Location() != time.UTC || h.EventTime.IsZero() {
		t.Errorf("time %v is not a UTC time", h.EventTime)
	}
	if h.PeerIP.IsValid() == (h.ClientText != "") || h.PeerIP.Is4In6() || h.ClientIP != h.PeerIP {
		t.Errorf("peer %v / client %v / client text %q: want a valid, unmapped peer equal to client, or a client text", h.PeerIP, h.ClientIP, h.ClientText)
	}
	if h.ClientText != "" && !bytes.Contains(line, []byte(h.ClientText)) {
		t.Errorf("client text %q is not a substring of the line", h.ClientText)
	}
	if h.RawRequest != "" && (h.Method != "" || h.Path != "" || h.Protocol != "" || !bytes.Contains(line, []byte(h.RawRequest))) {
		t.Errorf("raw request %q with method %q path %q protocol %q", h.RawRequest, h.Method, h.Path, h.Protocol)
	}
	if js := AppendJSON(nil, h); !json.Valid(js) {
		t.Errorf("invalid JSON %s", js)
	}
}

func TestParseCombinedMatchesFilebeat(t *testing.T) {
	lines := readLines(t, "testdata/beats_nginx_test.log")
	var rows [][]string
	for _, l := range readLines(t, "testdata/beats_nginx_test.expected.tsv") {
		if len(l) > 0 && l[0] != '#' {
			rows = append(rows, strings.Split(string(l), "\t"))
		}
	}
	if len(rows) != len(lines) {
		t.Fatalf("%d expected rows for %d lines", len(rows), len(lines))
	}
	none := func(s string) string {
		if s == "(none)" || s == "-" {
			return ""
		}
		return s
	}
	for i, line := range lines {
		row := rows[i]
		var h store.Hit
		if err := ParseCombined(line, &h); err != nil {
			t.Errorf("line %d: %v", i+1, err)
			continue
		}
		// Filebeat's remote_ip_list ends with the TCP peer; it picks source.ip
		// by its own rules, which trusted-proxy resolution will replace.
		list := strings.Split(row[2], ",")
		peer := list[len(list)-1]
		url := h.Path
		if h.Query != "" {
			url += "?" + h.Query
		}
		got := []string{
			h.EventTime.Format(time.RFC3339), h.PeerIP.String(), h.Method, url,
			strings.TrimPrefix(h.Protocol, "HTTP/"), strconv.Itoa(int(h.Status)), strconv.FormatUint(h.BytesSent, 10), h.Referer, h.User,
		}
		want := []string{row[0], peer, none(row[3]), none(row[4]), none(row[5]), row[6], row[7], none(row[8]), none(row[9])}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("line %d:\n got  %q\n want %q", i+1, got, want)
		}
		if h.ClientIP != h.PeerIP {
			t.Errorf("line %d: client %v != peer %v", i+1, h.ClientIP, h.PeerIP)
		}
		if !strings.Contains(row[2], "...") {
			wantXFF := strings.Join(list[:len(list)-1], ",")
			if gotXFF := strings.ReplaceAll(h.ForwardedFor, " ", ""); gotXFF != wantXFF {
				t.Errorf("line %d: forwarded_for %q, want %q", i+1, gotXFF, wantXFF)
			}
		}
	}
}

func TestAppendJSON(t *testing.T) {
	var h store.Hit
	line := `"10.5.102.222, 199.96.1.1" 10.2.1.185 - - [22/Jan/2016:13:18:29 +0000] "GET /a\"b?q=1 HTTP/1.1" 200 0 "-" "caf` + "\xe9" + `"`
	if err := ParseCombined([]byte(line), &h); err != nil {
		t.Fatal(err)
	}
	got := string(AppendJSON(nil, &h))
	want := `{"time":"2016-01-22T13:18:29.000Z","client_ip":"10.2.1.185","peer_ip":"10.2.1.185","method":"GET","path":"/a\\\"b","query":"q=1",` +
		`"protocol":"HTTP/1.1","status":200,"bytes":0,"user_agent":"caf\ufffd","forwarded_for":"10.5.102.222, 199.96.1.1"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if strings.Contains(got, `""`) {
		t.Errorf("empty string in %s", got)
	}
}

func TestParseStream(t *testing.T) {
	in := "1.2.3.4 - - [07/Dec/2016:11:05:07 +0000] \"GET / HTTP/1.1\" 200 5\n" +
		"garbage\n" +
		"1.2.3.4 - - [07/Dec/2016:11:05:07 +0000] \"GET /" + strings.Repeat("a", 100<<10) + " HTTP/1.1\" 200 5\r\n" +
		"::1 - - [26/Dec/2016:16:16:48 +0200] \"-\" 408 -" // no final newline
	var out bytes.Buffer
	if err := ParseStream(strings.NewReader(in), &out, combinedParser(t)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), out.String())
	}
	var obj map[string]any
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
	}
	if want := `{"error":"time_local at byte 7: missing [time_local]","line":2}`; lines[1] != want {
		t.Errorf("line 2 = %s, want %s", lines[1], want)
	}
	if !strings.Contains(lines[2], `"path":"/aaaa`) {
		t.Errorf("long line not parsed: %.100s", lines[2])
	}
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}
