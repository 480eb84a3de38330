package main

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/connlog/connlog/ingest/logline"
	"github.com/connlog/connlog/store"
)

// shape is one way the same requests reach Kafka: the line as nginx wrote
// it, or wrapped or re-encoded as a shipper or an nginx log_format would.
type shape struct {
	Name    string
	Formats []string // formats to parse it with (those ingest knows)
	Lines   [][]byte
}

// shapes derives, from the first distinct lines of the input, the other
// wire forms of the same requests: nginx "main" (combined plus
// "$http_x_forwarded_for"), escape=json lines in connlog's recommended
// field names (deploy/nginx/connlog-log-format.conf), the syslog header
// rsyslog and syslog-ng prepend without a template, and Vector's JSON
// envelope. A line ingest cannot parse as combined is left out of the JSON
// shape (there are no fields to encode).
func shapes(distinct [][]byte) []shape {
	mainL := make([][]byte, 0, len(distinct))
	jsonL := make([][]byte, 0, len(distinct))
	sysL := make([][]byte, 0, len(distinct))
	vecL := make([][]byte, 0, len(distinct))
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var h store.Hit
	for i, l := range distinct {
		mainL = append(mainL, append(append([]byte(nil), l...), ` "-"`...))
		sys := append([]byte("<190>"), now.Add(time.Duration(i)*time.Millisecond).Format(time.Stamp)...)
		sysL = append(sysL, append(append(sys, " web1 nginx: "...), l...))
		env, _ := json.Marshal(map[string]string{
			"message": string(l), "host": "web1", "file": "/var/log/nginx/access.log",
			"source_type": "file", "timestamp": now.Format(time.RFC3339Nano),
		})
		vecL = append(vecL, env)
		if logline.ParseCombined(l, &h) == nil {
			req := h.Method + " " + h.Path
			if h.Query != "" {
				req += "?" + h.Query
			}
			if h.Protocol != "" {
				req += " " + h.Protocol
			}
			js, _ := json.Marshal(map[string]string{
				"msec":            strconv.FormatFloat(float64(h.EventTime.UnixMilli())/1000, 'f', 3, 64),
				"time_iso8601":    h.EventTime.Format(time.RFC3339),
				"remote_addr":     h.ClientIP.String(),
				"remote_port":     strconv.Itoa(40000 + i%20000),
				"server_addr":     "192.0.2.10",
				"server_port":     "443",
				"host":            "www.example.org",
				"request_id":      strconv.FormatUint(uint64(i)*2654435761, 16),
				"ssl_protocol":    "TLSv1.3",
				"server_protocol": h.Protocol,
				"remote_user":     h.User,
				"request":         req,
				"status":          strconv.Itoa(int(h.Status)),
				"body_bytes_sent": strconv.FormatUint(h.BytesSent, 10),
				"http_referer":    h.Referer,
				"http_user_agent": h.UserAgent,
				"request_time":    "0.012",
			})
			jsonL = append(jsonL, js)
		}
	}
	return []shape{
		{Name: "nginx main (combined + xff)", Formats: []string{"main", "auto"}, Lines: mainL},
		{Name: "escape=json, connlog fields", Formats: []string{"json", "auto"}, Lines: jsonL},
		{Name: "syslog header + combined", Formats: []string{"combined", "auto"}, Lines: sysL},
		{Name: "Vector envelope + combined", Formats: []string{"combined", "auto"}, Lines: vecL},
	}
}
