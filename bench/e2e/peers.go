package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// peerResult is one peer tool over the whole input.
type peerResult struct {
	Name   string
	Lines  int   // lines of input
	Rows   int64 // rows stored (ClickHouse) or requests counted (GoAccess), 0 if unknown
	Wall   time.Duration
	CPU    time.Duration
	Extra  string
	Err    string
	DiskPR float64 // bytes per row on disk, ClickHouse only
}

func (p peerResult) linesPerSec() float64 { return float64(p.Lines) / p.Wall.Seconds() }
func (p peerResult) linesPerCPUSec() float64 {
	if p.CPU == 0 {
		return 0
	}
	return float64(p.Lines) / p.CPU.Seconds()
}

// benchGoAccess times Debian's goaccess producing a JSON report of the
// input (the COMBINED preset), as an analyst would run it.
func benchGoAccess(ctx context.Context, input, work string, lines int) peerResult {
	r := peerResult{Name: "GoAccess", Lines: lines}
	bin, err := exec.LookPath("goaccess")
	if err != nil {
		r.Err = "goaccess not installed (scripts/install-bench-deps.sh installs it)"
		return r
	}
	if out, err := exec.Command(bin, "--version").Output(); err == nil {
		r.Extra = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	report := filepath.Join(work, "goaccess.json")
	cmd := exec.CommandContext(ctx, bin, input, "--log-format=COMBINED", "--no-global-config", "--no-progress", "-o", report)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r.Wall = time.Since(start)
	if err != nil {
		r.Err = fmt.Sprintf("goaccess: %v: %s", err, strings.TrimSpace(string(out)))
		return r
	}
	r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if raw, err := os.ReadFile(report); err == nil {
		// "total_requests": N in the general section
		if i := strings.Index(string(raw), `"total_requests"`); i >= 0 {
			fmt.Sscanf(strings.TrimLeft(string(raw[i+len(`"total_requests"`):]), ": "), "%d", &r.Rows) //nolint:errcheck // informative only
		}
	}
	_ = os.Remove(report)
	return r
}

// peerRegexp is the line pattern for ClickHouse's Regexp input format: the
// combined format with the request split into method, path, query and
// protocol, as connlog stores it; a client that is not an IP address (a
// host name) does not match, as connlog rejects it.
const peerRegexp = `^([0-9A-Fa-f.:]+) (\S+) (\S+) \[([^\]]+)\] "(\S+) ([^ ?"]*)(?:\?([^ "]*))? ([^ "]+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)".*$`

// peerTable is the MergeTree table ClickHouse parses into: typed like
// connlog's access log (IPv6 client, DateTime64 time, sorted by client and
// time, ZSTD strings); the time and byte count go through DEFAULT
// expressions because Regexp hands over their text.
const peerTable = `CREATE TABLE bench_peer.access
(
    client_ip   IPv6,
    ident       String,
    user        String CODEC(ZSTD(1)),
    time_local  String EPHEMERAL,
    method      LowCardinality(String),
    path        String CODEC(ZSTD(1)),
    query       String CODEC(ZSTD(1)),
    protocol    LowCardinality(String),
    status      UInt16,
    bytes_raw   String EPHEMERAL,
    referer     String CODEC(ZSTD(1)),
    user_agent  String CODEC(ZSTD(1)),
    event_time  DateTime64(3, 'UTC') DEFAULT parseDateTime64BestEffortOrZero(replaceOne(time_local, ':', ' ')) CODEC(Delta, ZSTD(1)),
    bytes_sent  UInt64 DEFAULT toUInt64OrZero(bytes_raw)
)
ENGINE = MergeTree
PARTITION BY toDate(event_time)
ORDER BY (client_ip, event_time)`

// benchClickHouseRegexp times the embedded engine parsing the input with
// its own Regexp input format and inserting it into a MergeTree table: one
// INSERT ... FORMAT Regexp through the HTTP interface, body = the file.
func benchClickHouseRegexp(ctx context.Context, in *instance, input string, lines int) peerResult {
	r := peerResult{Name: "ClickHouse Regexp format (embedded chDB)", Lines: lines}
	for _, q := range []string{"DROP DATABASE IF EXISTS bench_peer", "CREATE DATABASE bench_peer", peerTable} {
		if _, err := in.sql(ctx, q, nil); err != nil {
			r.Err = err.Error()
			return r
		}
	}
	defer in.sql(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS bench_peer", nil) //nolint:errcheck // best-effort cleanup
	f, err := os.Open(input)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer func() { _ = f.Close() }()
	settings := url.Values{
		"format_regexp":                   {peerRegexp},
		"format_regexp_escaping_rule":     {"Raw"},
		"format_regexp_skip_unmatched":    {"1"},
		"max_execution_time":              {"3600"},
		"input_format_allow_errors_num":   {"100000"},
		"max_partitions_per_insert_block": {"1000"},
	}
	cpu0, _ := in.cpu()
	start := time.Now()
	_, err = in.sqlBody(ctx, "INSERT INTO bench_peer.access (client_ip, ident, user, time_local, method, path, query, protocol, status, bytes_raw, referer, user_agent) FORMAT Regexp", settings, f)
	r.Wall = time.Since(start)
	cpu1, _ := in.cpu()
	r.CPU = cpu1 - cpu0
	if err != nil {
		r.Err = err.Error()
		return r
	}
	if r.Rows, err = in.count(ctx, "SELECT count() FROM bench_peer.access"); err != nil {
		r.Err = err.Error()
	}
	if d, err := in.parts(ctx, "bench_peer.access"); err == nil && len(d) == 1 {
		r.DiskPR = d[0].bytesPerRow()
	}
	r.Extra = fmt.Sprintf("%d rows matched the pattern and stored", r.Rows)
	return r
}
