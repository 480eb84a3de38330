package logline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/connlog/connlog/store"
)

// The fuzz tests below run their seeds and the corpus committed in
// testdata/fuzz/<Name> on every `go test` (CI). To search for new inputs:
//
//	go test -run '^$' -fuzz '^FuzzLineParser$' -fuzztime 1m ./ingest/logline
//	go test -run '^$' -fuzz '^FuzzLogFormat$' -fuzztime 1m ./ingest/logline
//	go test -run '^$' -fuzz '^FuzzJSONLine$' -fuzztime 1m ./ingest/logline
//	go test -run '^$' -fuzz '^FuzzEnvelope$' -fuzztime 1m ./ingest/logline
//	go test -run '^$' -fuzz '^FuzzSyslog$' -fuzztime 1m ./ingest/logline
//
// and commit what go test writes under testdata/fuzz when it finds a failure.

// seedLines adds every line of the package's test logs.
func seedLines(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, file := range files {
		for _, line := range readLines(f, file) {
			f.Add(line)
		}
	}
}

// checkParsed verifies what holds for any message Parse accepts or rejects.
func checkParsed(t *testing.T, p *Parser, topic string, msg []byte) (store.Hit, bool) {
	t.Helper()
	orig := bytes.Clone(msg)
	var h store.Hit
	err := p.Parse(topic, msg, &h)
	if !bytes.Equal(msg, orig) {
		t.Fatal("input modified")
	}
	if err != nil {
		var pe *ParseError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) || pe.Reason == "" {
			t.Fatalf("error %v is not a ParseError with a reason", err)
		}
		return h, false
	}
	if h.PeerIP.IsValid() == (h.ClientText != "") || h.ClientIP.IsValid() != h.PeerIP.IsValid() || h.PeerIP.Is4In6() || h.EventTime.IsZero() || h.Operation == store.OpUnknown {
		t.Fatalf("accepted hit without peer (or client text), client, time or operation: %+v", h)
	}
	if h.RawRequest != "" && (h.Method != "" || h.Path != "" || h.Protocol != "") {
		t.Fatalf("raw request with method, path or protocol: %+v", h)
	}
	var h2 store.Hit
	if err := p.Parse(topic, msg, &h2); err != nil || h2 != h {
		t.Fatalf("second parse differs: %v\n%+v\n%+v", err, h, h2)
	}
	var obj map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &h), &obj); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	for k, v := range obj {
		if v == "" && !(k == "referer" && h.Has&store.HasReferer != 0) && !(k == "user_agent" && h.Has&store.HasUserAgent != 0) {
			t.Fatalf("empty string for %s", k)
		}
	}
	return h, true
}

// inLine reports whether a parsed string comes from the line (possibly
// with redacted values).
func inLine(line []byte, s string) bool {
	if bytes.Contains(line, []byte(s)) {
		return true
	}
	for _, part := range strings.Split(s, RedactedValue) {
		if !bytes.Contains(line, []byte(part)) {
			return false
		}
	}
	return true
}

func FuzzLineParser(f *testing.F) {
	seedLines(f)
	f.Add([]byte(combinedIn))
	f.Add([]byte("<190>Nov 22 11:00:00 web6 nginx: " + combinedIn + "\n"))
	f.Add([]byte(`{"host":"h","message":` + jsonString(combinedIn) + `}`))
	f.Add([]byte(`{"msec":"1795345200.123","remote_addr":"2001:db8::7","request":"GET /?a=1 HTTP/1.1","status":"200"}`))
	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8", "2001:db8::/32"}
	cfg.LogFormat = LogFormatRecommended
	p, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkParsed(t, p, "any", msg)
		orig := bytes.Clone(msg)
		red := p.RedactRaw(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatal("RedactRaw modified its input")
		}
		if again := p.RedactRaw(red); !bytes.Equal(again, red) {
			t.Fatalf("RedactRaw is not idempotent: %q then %q", red, again)
		}
	})
}

func FuzzLogFormat(f *testing.F) {
	f.Add([]byte(`198.51.100.4 40111 - - [22/Nov/2026:11:00:00 +0100] "DELETE /api/items/7?key=1 HTTP/1.1" 204 0 "-" "curl/8" 1795345200.250 ab12 "api.example" "TLSv1.2" 192.0.2.1 8443 "-"`))
	f.Add([]byte(`2001:db8::1 1 - bob [29/Feb/2024:00:00:00 -1200] "GET / HTTP/2.0" 200 1 "https://r/?email=x" "u \"q\"" 1709164800.001 - "-" "-" ::1 80 "192.0.2.1, 10.0.0.1"`))
	cfg := DefaultConfig()
	cfg.Formats = map[string]string{DefaultTopic: FormatLogFormat}
	cfg.LogFormat = LogFormatRecommended
	p, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	cfg.LogFormat = `$remote_addr:$remote_port [$time_local] "$request" $status $server_addr:$server_port "$http_x_forwarded_for"`
	p2, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`2001:db8::1:443 [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 2001:db8::2:8443 "-"`))
	// the recommended format with escape=none: values may hold raw quotes
	cfg.LogFormat = "log_format n escape=none '" + LogFormatRecommended + "';"
	p3, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkParsed(t, p2, "t", line)
		if h, ok := checkParsed(t, p3, "t", line); ok {
			for name, s := range map[string]string{"method": h.Method, "path": h.Path, "query": h.Query, "raw_request": h.RawRequest,
				"referer": h.Referer, "user_agent": h.UserAgent, "user": h.User, "site": h.Site, "client_text": h.ClientText} {
				if !inLine(line, s) {
					t.Fatalf("escape=none: %s %q is not from the line", name, s)
				}
			}
		}
		h, ok := checkParsed(t, p, "t", line)
		if !ok {
			return
		}
		for name, s := range map[string]string{"method": h.Method, "path": h.Path, "query": h.Query, "protocol": h.Protocol, "referer": h.Referer,
			"user_agent": h.UserAgent, "user": h.User, "forwarded_for": h.ForwardedFor, "site": h.Site, "request_id": h.RequestID, "tls": h.TLSProtocol} {
			if !inLine(line, s) {
				t.Fatalf("%s %q is not from the line", name, s)
			}
		}
	})
}

// FuzzJSONLine checks that an accepted escape=json line round-trips: the
// hit written back as a JSON line parses to the same hit.
func FuzzJSONLine(f *testing.F) {
	f.Add([]byte(`{"msec":"1795345200.123","remote_addr":"2001:db8::7","remote_port":"5","request":"POST /x?token=1 HTTP/1.1","status":"201","http_user_agent":"a\"b\\c\u00e9\ud83d\ude00"}`))
	f.Add([]byte(`{"time_iso8601":"2026-11-22T11:00:00+01:00","remote_addr":"192.0.2.1","request_method":"GET","request_uri":"/?a","host":"h","server_addr":"::1","server_port":"443"}`))
	cfg := DefaultConfig()
	cfg.Formats = map[string]string{DefaultTopic: FormatJSON}
	cfg.RedactParams = []string{}
	p, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		h, ok := checkParsed(t, p, "t", line)
		if !ok {
			return
		}
		uri := h.Path
		if h.Query != "" || strings.HasSuffix(string(line), "?") {
			uri += "?" + h.Query
		}
		fields := map[string]string{
			"msec":        strconv.FormatInt(h.EventTime.Unix(), 10) + "." + strconv.FormatInt(int64(h.EventTime.Nanosecond()), 10),
			"remote_addr": h.PeerIP.String(), "request_method": h.Method, "request_uri": uri, "server_protocol": h.Protocol,
			"http_referer": h.Referer, "http_user_agent": h.UserAgent, "remote_user": h.User, "host": h.Site, "request_id": h.RequestID,
			"ssl_protocol": h.TLSProtocol, "http_x_forwarded_for": h.ForwardedFor, "upstream_addr": h.Upstream,
		}
		if h.ServerAddr.IsValid() {
			fields["server_addr"] = h.ServerAddr.String()
		}
		if h.ClientText != "" {
			fields["remote_addr"] = h.ClientText
		}
		if h.RawRequest != "" {
			// a request line that is not HTTP is only ever read from $request
			delete(fields, "request_method")
			delete(fields, "request_uri")
			fields["request"] = h.RawRequest
		}
		for k, v := range map[string]uint64{"remote_port": uint64(h.ClientPort), "server_port": uint64(h.ServerPort), "body_bytes_sent": h.BytesSent} {
			if v != 0 || (k == "body_bytes_sent" && h.Has&store.HasBytes != 0) {
				fields[k] = strconv.FormatUint(v, 10)
			}
		}
		if h.Status != 0 || h.Has&store.HasStatus != 0 {
			fields["status"] = fmt.Sprintf("%03d", h.Status)
		}
		ns := h.EventTime.Nanosecond()
		fields["msec"] = strconv.FormatInt(h.EventTime.Unix(), 10) + "." + strings.TrimRight(strconv.FormatInt(int64(1e9+ns), 10)[1:], "0") + "0"
		if h.RequestTime != 0 || h.Has&store.HasRequestTime != 0 {
			fields["request_time"] = strconv.FormatFloat(h.RequestTime.Seconds(), 'f', 9, 64)
		}
		if h.OptOut {
			fields["http_sec_gpc"] = "1"
		}
		for _, v := range fields {
			// nginx's escape=json passes bytes >= 0x80 through raw and the
			// parser keeps them as they are; encoding/json, which renders
			// the line here, would turn them into U+FFFD, so such a hit
			// cannot be written back by this test.
			if !utf8.ValidString(v) {
				return
			}
		}
		out, _ := json.Marshal(fields)
		var back store.Hit
		if err := p.Parse("t", out, &back); err != nil {
			t.Fatalf("rendered line %s: %v", out, err)
		}
		if h.Method == "" && h.RawRequest == "" {
			// a request without a method (request_uri alone) is read back
			// through $request_uri, which has none either
			back.Method, back.Path, back.Query, back.Protocol = h.Method, h.Path, h.Query, h.Protocol
			back.Operation = h.Operation
		}
		// escape=json writes "" for a header sent empty and for none
		back.Has |= h.Has & (store.HasReferer | store.HasUserAgent)
		if back != h {
			t.Fatalf("round trip differs:\n%+v\n%+v\n%s", h, back, out)
		}
	})
}

// FuzzEnvelope checks that wrapping any line in a Vector, Filebeat or
// Fluent Bit envelope gives the same hit as the bare line, plus the host
// and file.
func FuzzEnvelope(f *testing.F) {
	f.Add("web1", "/var/log/nginx/access.log", []byte(combinedIn), uint8(0))
	f.Add("w\"2", "/a b", []byte(combinedIn+"\n"), uint8(1))
	f.Add("", "", []byte(`{"msec":"1795345200.123","remote_addr":"192.0.2.1"}`), uint8(2))
	p, err := New(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host, file string, line []byte, shape uint8) {
		var env map[string]any
		switch shape % 3 {
		case 0: // Vector
			env = map[string]any{"host": host, "file": file, "message": string(line), "source_type": "file"}
		case 1: // Filebeat
			env = map[string]any{"host": map[string]any{"name": host}, "log": map[string]any{"file": map[string]any{"path": file}}, "message": string(line)}
		default: // Fluent Bit
			env = map[string]any{"hostname": host, "file": file, "log": string(line), "date": 1.5}
		}
		msg, _ := json.Marshal(env)
		got, ok := checkParsed(t, p, "t", msg)
		if !ok || !json.Valid(msg) {
			return
		}
		// json.Marshal replaces invalid UTF-8: compare with what it carried.
		var inner string
		if shape%3 == 2 {
			inner = env["log"].(string)
		} else {
			inner = env["message"].(string)
		}
		var decoded map[string]any
		_ = json.Unmarshal(msg, &decoded)
		if s, ok := decoded["message"].(string); ok {
			inner = s
		} else if s, ok := decoded["log"].(string); ok {
			inner = s
		}
		var want store.Hit
		if err := p.Parse("t", []byte(inner), &want); err != nil {
			t.Fatalf("envelope accepted, bare line rejected: %v", err)
		}
		want.ShipperHost, want.LogFile = got.ShipperHost, got.LogFile
		if got != want {
			t.Fatalf("envelope changes the hit:\n%+v\n%+v", got, want)
		}
	})
}

// FuzzSyslog checks that a syslog header in front of a line changes
// nothing but ShipperHost, and that no header makes the parser panic.
func FuzzSyslog(f *testing.F) {
	f.Add("web6", []byte(combinedIn), uint8(0))
	f.Add("h", []byte(`{"msec":"1795345200.123","remote_addr":"192.0.2.1"}`), uint8(1))
	f.Add("x", []byte("<13>1 2026-11-22T10:00:00Z h a - - [x y=\"]\"] "+combinedIn), uint8(4))
	p, err := New(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	headers := []string{"<190>Nov 22 11:00:00 %s nginx: ", "2026-11-22T11:00:00.123456+01:00 %s nginx-access ", "Nov  2 11:00:00 %s nginx[12]: ",
		"<165>1 2026-11-22T10:00:00.003Z %s nginx 77 - - "}
	f.Fuzz(func(t *testing.T, host string, line []byte, shape uint8) {
		if int(shape) >= len(headers) {
			checkParsed(t, p, "t", line) // any bytes, header or not
			return
		}
		if host == "" || strings.ContainsAny(host, " \t\r\n") || host == "-" {
			return
		}
		msg := append([]byte(strings.Replace(headers[shape], "%s", host, 1)), line...)
		got, ok := checkParsed(t, p, "t", msg)
		var want store.Hit
		if err := p.Parse("t", line, &want); err != nil || !ok || bytes.ContainsAny(line[:min(len(line), 64)], "\r\n") {
			return
		}
		if got.ShipperHost == host {
			want.ShipperHost = host
		}
		if got != want && looksLikeLineStart(line[:max(1, bytes.IndexByte(line, ' '))]) {
			t.Fatalf("header changes the hit:\n%+v\n%+v", got, want)
		}
	})
}
