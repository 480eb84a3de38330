package logline

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/connlog/connlog/store"
)

// benchLines returns the real combined lines of testdata and the same
// requests written in each other format.
func benchLines(b *testing.B) map[string][][]byte {
	var comb [][]byte
	for _, f := range []string{"access.log", "hackers-access.log", "apache_logs.log"} {
		for _, l := range readLines(b, filepath.Join("testdata", f)) {
			var h store.Hit
			if ParseCombined(l, &h) == nil {
				comb = append(comb, l)
			}
		}
	}
	out := map[string][][]byte{}
	for i, l := range comb {
		var h store.Hit
		_ = ParseCombined(l, &h)
		port := strconv.Itoa(1024 + i%60000)
		msec := strconv.FormatInt(h.EventTime.Unix(), 10) + ".123"
		req := string(l[indexQuote(l)+1:])
		req = req[:closingIdx(req)]
		out["combined"] = append(out["combined"], l)
		if end, _ := parseCombined(l, &store.Hit{}); end == len(trimEOL(l)) && h.UserAgent != "" {
			out["main"] = append(out["main"], append(append([]byte{}, trimEOL(l)...), ` "192.0.2.1, 10.0.0.1"`...))
		}
		rec := h.PeerIP.String() + " " + port + ` - - [` + h.EventTime.Format("02/Jan/2006:15:04:05 -0700") + `] "` + req + `" ` +
			strconv.Itoa(int(h.Status)) + " " + strconv.FormatUint(h.BytesSent, 10) + ` "-" "` + h.UserAgent + `" ` + msec +
			` 4f1c2a9b8e7d6c5b "www.example.org" "TLSv1.3" 192.0.2.1 443 "-"`
		out["log_format"] = append(out["log_format"], []byte(rec))
		js, _ := json.Marshal(map[string]string{"msec": msec, "remote_addr": h.PeerIP.String(), "remote_port": port, "server_addr": "192.0.2.1",
			"server_port": "443", "host": "www.example.org", "request_id": "4f1c2a9b8e7d6c5b", "ssl_protocol": "TLSv1.3", "request": req,
			"status": strconv.Itoa(int(h.Status)), "body_bytes_sent": strconv.FormatUint(h.BytesSent, 10), "http_referer": h.Referer,
			"http_user_agent": h.UserAgent, "request_time": "0.004", "http_x_forwarded_for": ""})
		out["json"] = append(out["json"], js)
		env, _ := json.Marshal(map[string]string{"host": "web1", "file": "/var/log/nginx/access.log", "message": string(l), "source_type": "file"})
		out["vector"] = append(out["vector"], env)
		out["rsyslog"] = append(out["rsyslog"], append([]byte("2026-11-22T11:00:00.123456+01:00 web1 nginx-access "), append(l, '\n')...))
	}
	return out
}

func indexQuote(l []byte) int {
	for i, c := range l {
		if c == '"' {
			return i
		}
	}
	return 0
}

// closingIdx finds the end of the quoted request.
func closingIdx(s string) int {
	q, _ := closingQuote([]byte(s), 0)
	return q
}

// BenchmarkLineParser parses the same requests in each format through
// Parser.Parse (detection, proxies, redaction, classification
// included); one op is one line. "combined" must stay at 0 allocs/op.
//
//	go test -run '^$' -bench BenchmarkLineParser -count 10 ./ingest/logline > new.txt
//	benchstat old.txt new.txt
func BenchmarkLineParser(b *testing.B) {
	lines := benchLines(b)
	for _, tc := range []struct{ name, format, data string }{
		{"combined", FormatCombined, "combined"},
		{"auto-combined", FormatAuto, "combined"},
		{"main", FormatMain, "main"},
		{"log_format", FormatLogFormat, "log_format"},
		{"json", FormatJSON, "json"},
		{"auto-json", FormatAuto, "json"},
		{"vector-envelope", FormatAuto, "vector"},
		{"rsyslog-header", FormatAuto, "rsyslog"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Formats = map[string]string{DefaultTopic: tc.format}
			cfg.TrustedProxies = []string{"10.0.0.0/8"}
			if tc.format == FormatLogFormat {
				cfg.LogFormat = LogFormatRecommended
			}
			p, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			data := lines[tc.data]
			var total int
			for _, l := range data {
				total += len(l)
			}
			b.SetBytes(int64(total / len(data)))
			b.ReportAllocs()
			var h store.Hit
			n := 0
			for b.Loop() {
				if err := p.Parse("nginx", data[n%len(data)], &h); err != nil {
					b.Fatalf("line %d: %v", n%len(data), err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// TestCombinedDoesNotAllocate guards the hot path: a combined line through
// Parser (auto-detection, trusted proxies, redaction check,
// classification) allocates nothing.
func TestCombinedDoesNotAllocate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.Operations = []OperationRule{{PathPrefix: "/search", Method: "POST", Operation: "read"}}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, "testdata/access.log")
	var h store.Hit
	for _, format := range []string{FormatAuto, FormatCombined} {
		p.def, _ = kindOf(format)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			_ = p.Parse("nginx", lines[i%len(lines)], &h)
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per line, want 0", format, allocs)
		}
	}
}
