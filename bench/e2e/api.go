package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// apiResult holds the query API figures over the seeded access log.
type apiResult struct {
	Rows        int64
	Clients     int64
	SeedWall    time.Duration
	SettleWall  time.Duration
	Settle2Wall time.Duration // merges after the connection records
	SyncWall    time.Duration // sync(2): the seed's dirty pages written back
	Disk        []diskUsage
	Lookups     []latency
	Diag        []latency // engine-only timings, to explain Lookups
	ExportRows  int64
	ExportWall  time.Duration
	ExportBytes int64
	ExportNote  string
	Err         string

	// The year shape (-api-days above 30).
	Days, AccessDays int
	ConnRows         int64
	ConnSeedWall     time.Duration
	Settings         string // the engine's defaults of the settings varied
	Engine           []engineRun
	Explains         []explained
	ConnExportRows   int64
	ConnExportWall   time.Duration
	ConnExportBytes  int64
	ConnExportNote   string
	Copies           []diskUsage // tableVariants' copies
	CopyErr          string
}

// latency is one kind of search repeated with random existing targets.
type latency struct {
	Name      string
	Requests  int
	Errors    int
	FirstErr  string
	P50, P99  time.Duration
	Max       time.Duration
	MeanRows  float64
	Truncated int
	Target    time.Duration // p99 target; 0: by name (one IP or /24)
	// Slowest are the slowest requests as "#index duration" (index in
	// the measured sequence), to tell a slow start from scattered spikes.
	Slowest []string
}

// seedSQL inserts generated access-log rows: the rows of seedSelect.
const seedSQL = `INSERT INTO connlog_access.access_log
    (event_time, ingested_at, client_ip, client_port, peer_ip, server_addr, server_port, site, method, path, query,
     protocol, status, bytes_sent, referer, user_agent, request_time_us, tls_protocol, kafka_topic, kafka_partition, kafka_offset)
` + seedSelect

// seedSelect generates requests in ClickHouse itself: request number n of
// {rows} at {start} + n × {span} / {rows} milliseconds (in order, so that
// an insert block covers a few days), numbers {first} to {first}+{count};
// clients drawn from {clients} with a skewed (power-law-like) popularity,
// 90% IPv4 spread over ten /8s and 40 /16-local /24s each, 10% IPv6;
// realistic sites, methods, paths, statuses, sizes, referrers and browser
// user agents. A request is a function of its number only: two selects over
// the same {start}, {span} and {rows} give the same request for the same
// number (the year shape's two tables).
const seedSelect = `WITH
    fromUnixTimestamp64Milli(toInt64({start:Int64} + number * {span:Float64} / {rows:Float64}) + toInt64(cityHash64(number, 0) % 1000), 'UTC') AS t,
    toUInt64(floor({clients:UInt64} * pow((cityHash64(number, 1) % 1000000007) / 1000000007, 2.5))) AS c,
    cityHash64(c, 7) AS h,
    if(c % 10 = 0,
       toIPv6(concat('2a01:', lower(hex(toUInt16(h % 65536))), ':', lower(hex(toUInt16(bitShiftRight(h, 16) % 65536))), '::', lower(hex(toUInt16(c % 65536))))),
       toIPv6(IPv4NumToString(toUInt32(
           [23, 45, 78, 81, 91, 103, 176, 185, 203, 212][h % 10 + 1] * 16777216
           + (bitShiftRight(h, 8) % 256) * 65536 + (bitShiftRight(h, 16) % 40) * 256 + (bitShiftRight(h, 24) % 254) + 1)))) AS ip,
    cityHash64(number, 2) AS r
SELECT
    t AS event_time, t + toIntervalMillisecond(1500 + r % 1000) AS ingested_at, ip AS client_ip, toUInt16(1024 + r % 64000) AS client_port, ip AS peer_ip,
    toIPv6('192.0.2.10') AS server_addr, toUInt16(443) AS server_port,
    ['www.example.org', 'www.example.org', 'shop.example.org', 'api.example.org', 'intranet.example.org'][r % 5 + 1] AS site,
    multiIf(r % 100 < 85, 'GET', r % 100 < 95, 'POST', r % 100 < 97, 'HEAD', r % 100 < 99, 'PUT', 'DELETE') AS method,
    concat('/', ['articles', 'products', 'api/v1/items', 'static/img', 'search', 'account', 'news'][bitShiftRight(r, 8) % 7 + 1], '/', toString(bitShiftRight(r, 16) % 5000)) AS path,
    if(bitShiftRight(r, 24) % 4 = 0, concat('page=', toString(bitShiftRight(r, 28) % 20)), '') AS query,
    if(bitShiftRight(r, 32) % 3 = 0, 'HTTP/2.0', 'HTTP/1.1') AS protocol,
    [200, 200, 200, 200, 200, 200, 304, 304, 404, 301, 302, 500, 403][bitShiftRight(r, 36) % 13 + 1] AS status,
    bitShiftRight(r, 40) % 60000 AS bytes_sent,
    ['', '', '', 'https://www.google.com/', 'https://www.example.org/', 'https://t.co/x', 'https://duckduckgo.com/'][bitShiftRight(r, 44) % 7 + 1] AS referer,
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
     'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
     'Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0',
     'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
     'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
     'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
     'curl/8.5.0'][bitShiftRight(h, 40) % 7 + 1] AS user_agent,
    bitShiftRight(r, 48) % 200000 AS request_time_us, if(bitShiftRight(r, 32) % 3 = 0, 'TLSv1.3', 'TLSv1.2') AS tls_protocol,
    'nginx' AS kafka_topic, toInt32(number % 4) AS kafka_partition, toInt64(intDiv(number, 4)) AS kafka_offset
FROM numbers({first:UInt64}, {count:UInt64})`

// connSQL derives connection records from the seeded access log since
// {since}: content path and user only for create/modify/delete.
const connSQL = `INSERT INTO connlog_connections.connection_records
    (event_time, ingested_at, client_ip, client_port, server_addr, server_port, site, protocol, tls_protocol, operation,
     path, user, status, kafka_topic, kafka_partition, kafka_offset)
SELECT event_time, ingested_at, client_ip, client_port, server_addr, server_port, site, protocol, tls_protocol,
    multiIf(method IN ('GET', 'HEAD'), 'read', method = 'POST', 'create', method = 'PUT', 'modify', 'delete') AS op,
    if(op = 'read', '', path), if(op = 'read', '', user), status, kafka_topic, kafka_partition, kafka_offset
FROM connlog_access.access_log
WHERE event_time >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')`

// benchAPI seeds rows access-log rows over days days, lets the merges
// settle, then times requests through the real API: one IP over 24 hours,
// one /24 over 7 days (targets drawn from the stored rows), and a CSV
// export. Above monthShapeDays days it runs the year shape (benchYear).
func benchAPI(ctx context.Context, in *instance, rows, clients int64, requests, days int) apiResult {
	if days > monthShapeDays {
		return benchYear(ctx, in, rows, clients, requests, days)
	}
	var r apiResult
	r.Days, r.AccessDays = days, days
	end := time.Now().UTC().Truncate(time.Hour)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	t0 := time.Now()
	_, err := in.sql(ctx, seedSQL, seedParams(start, end, rows, clients, 0, rows))
	r.SeedWall = time.Since(t0)
	if err != nil {
		r.Err = "seed: " + err.Error()
		return r
	}
	r.SettleWall, _ = in.waitMerges(ctx, 5*time.Minute)
	if r.Rows, err = in.count(ctx, "SELECT count() FROM connlog_access.access_log"); err != nil {
		r.Err = err.Error()
		return r
	}
	r.Clients, _ = in.count(ctx, "SELECT uniqExact(client_ip) FROM connlog_access.access_log SETTINGS max_execution_time = 600")
	// The connection records of the last 3 days, derived from the same rows,
	// for a realistic bytes/row of that table too.
	if _, err := in.sql(ctx, connSQL, url.Values{"param_since": {strconv.FormatInt(end.Add(-72*time.Hour).UnixMilli(), 10)}, "max_execution_time": {"3600"}}); err != nil {
		r.Err = "seed connection records: " + err.Error()
	}
	r.Settle2Wall, _ = in.waitMerges(ctx, 2*time.Minute)
	// The seed wrote gigabytes in two minutes, what live traffic writes in
	// days; the kernel would write those dirty pages back during the first
	// searches and time its own writeback, not the searches. Flush them now.
	t1 := time.Now()
	syscall.Sync()
	r.SyncWall = time.Since(t1)
	r.Disk, _ = in.parts(ctx, "connlog_access.access_log", "connlog_connections.connection_records")

	// Targets: rows picked at random among the stored ones.
	s, err := in.sql(ctx, `SELECT IPv6NumToString(client_ip), toUnixTimestamp64Milli(event_time) FROM connlog_access.access_log
		WHERE cityHash64(kafka_offset, kafka_partition) % {m:UInt64} = 0 LIMIT {n:UInt64} FORMAT TSV SETTINGS max_execution_time = 600`,
		url.Values{"param_m": {strconv.FormatInt(max(1, r.Rows/int64(requests*4)), 10)}, "param_n": {strconv.Itoa(requests * 2)}})
	if err != nil {
		r.Err = "pick targets: " + err.Error()
		return r
	}
	type target struct {
		ip netip.Addr
		t  time.Time
	}
	var targets []target
	for l := range strings.SplitSeq(s, "\n") {
		ip, ms, ok := strings.Cut(l, "\t")
		a, err := netip.ParseAddr(ip)
		n, err2 := strconv.ParseInt(ms, 10, 64)
		if ok && err == nil && err2 == nil {
			targets = append(targets, target{a.Unmap(), time.UnixMilli(n).UTC()})
		}
	}
	if len(targets) == 0 {
		r.Err = "pick targets: no row"
		return r
	}
	tok, err := in.token()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	rng := rand.New(rand.NewPCG(1, 2))
	clamp := func(t time.Time) time.Time {
		if lim := end.Add(time.Hour); t.After(lim) {
			return lim
		}
		return t
	}

	one := func() (string, time.Time, time.Time) {
		tg := targets[rng.IntN(len(targets))]
		from := tg.t.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
		return tg.ip.String(), from, from.Add(24 * time.Hour)
	}
	net24 := func() (string, time.Time, time.Time) {
		var tg target
		for range 100 {
			if tg = targets[rng.IntN(len(targets))]; tg.ip.Is4() {
				break
			}
		}
		p, _ := tg.ip.Prefix(24)
		if tg.ip.Is6() {
			p, _ = tg.ip.Prefix(48)
		}
		from := tg.t.Add(-time.Duration(rng.Int64N(int64(7 * 24 * time.Hour))))
		return p.String(), from, clamp(from.Add(7 * 24 * time.Hour))
	}
	for _, k := range []struct {
		name string
		gen  func() (string, time.Time, time.Time)
	}{{"one IP, 24 hours", one}, {"one /24, 7 days", net24}} {
		rng = rand.New(rand.NewPCG(1, 2))
		r.Lookups = append(r.Lookups, measure(k.name, requests, func() (int, bool, error) {
			network, from, to := k.gen()
			return apiSearch(ctx, in.api, tok, network, from, to)
		}))
	}
	// Where the time goes: the same searches (same targets) straight to the
	// engine, and the audit row every API request writes first.
	for _, k := range []struct {
		name string
		gen  func() (string, time.Time, time.Time)
	}{{"one IP, 24 hours", one}, {"one /24, 7 days", net24}} {
		rng = rand.New(rand.NewPCG(1, 2))
		r.Diag = append(r.Diag, measure("engine only: "+k.name, requests, func() (int, bool, error) {
			network, from, to := k.gen()
			return engineSearch(ctx, in, network, from, to)
		}))
	}
	if _, err := in.sql(ctx, "CREATE DATABASE IF NOT EXISTS bench_diag", nil); err == nil {
		if _, err := in.sql(ctx, "CREATE TABLE bench_diag.audit AS connlog_ops.audit", nil); err == nil {
			r.Diag = append(r.Diag, measure("engine only: one audit row insert (fsync, as connlog_ops.audit)", requests, func() (int, bool, error) {
				_, err := in.sql(ctx, "INSERT INTO bench_diag.audit (time, actor, purpose) VALUES (now64(3), 'bench', 'make bench')", nil)
				return 1, false, err
			}))
		}
		in.sql(ctx, "DROP DATABASE bench_diag", nil) //nolint:errcheck // scratch
	}

	// CSV export: one of the ten IPv4 /8s over 7 days (≈1/10 of a week).
	q := url.Values{
		"ip":   {"185.0.0.0/8"},
		"from": {end.Add(-7 * 24 * time.Hour).Format(time.RFC3339)},
		"to":   {end.Format(time.RFC3339)},
	}
	r.ExportRows, r.ExportBytes, r.ExportWall, r.ExportNote = exportMedian(ctx, in.api, tok, "/v1/access", q)
	return r
}

// seedParams are the parameters of seedSelect for numbers [first,
// first+count) of rows requests from start to end, and the insert settings
// of a seed.
func seedParams(start, end time.Time, rows, clients, first, count int64) url.Values {
	return url.Values{
		"param_start":        {strconv.FormatInt(start.UnixMilli(), 10)},
		"param_span":         {strconv.FormatInt(end.Sub(start).Milliseconds(), 10)},
		"param_rows":         {strconv.FormatInt(rows, 10)},
		"param_clients":      {strconv.FormatInt(clients, 10)},
		"param_first":        {strconv.FormatInt(first, 10)},
		"param_count":        {strconv.FormatInt(count, 10)},
		"max_execution_time": {"7200"},
		// whole days per block: few, large parts
		"max_insert_block_size":      {"2000000"},
		"min_insert_block_size_rows": {"2000000"},
		// a small seed over a year: a block spans more than 100 days
		"max_partitions_per_insert_block": {"1000"},
	}
}

func searchURL(api, network string, from, to time.Time) string {
	q := url.Values{"ip": {network}, "from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	return "http://" + api + "/v1/access?" + q.Encode()
}

// measure runs do n times (after 10 unmeasured warm-up calls) one at a
// time and records the latency of each.
func measure(name string, n int, do func() (rows int, truncated bool, err error)) latency {
	type answer struct {
		rows      int
		truncated bool
	}
	s, got := latencies(n, 10, func() (answer, time.Duration, error) {
		start := time.Now()
		rows, trunc, err := do()
		return answer{rows, trunc}, time.Since(start), err
	})
	l := latency{Name: name, Requests: n, Errors: s.Errors, FirstErr: s.FirstErr, P50: s.P50, P99: s.P99, Max: s.Max, Slowest: s.Slowest}
	if len(got) == 0 {
		return l
	}
	var rows int
	for _, a := range got {
		rows += a.rows
		if a.truncated {
			l.Truncated++
		}
	}
	l.MeanRows = float64(rows) / float64(len(got))
	return l
}

// apiSearch is one GET /v1/access, response body read in full.
func apiSearch(ctx context.Context, api, tok, network string, from, to time.Time) (int, bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, searchURL(api, network, from, to), nil)
	return doSearch(req, tok)
}

// doSearch sends a search request with the admin token and a purpose and
// decodes the page it answers.
func doSearch(req *http.Request, tok string) (int, bool, error) {
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Purpose", "make bench: API latency")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var res struct {
		Rows      []json.RawMessage `json:"rows"`
		Truncated bool              `json:"truncated"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return 0, false, fmt.Errorf("decode answer: %w", err)
	}
	return len(res.Rows), res.Truncated, nil
}

// engineSearch is the search the API makes (same filter, order and limit
// as store's access search), sent straight to the engine's HTTP interface:
// the API, audit and encoding overhead is the difference.
func engineSearch(ctx context.Context, in *instance, network string, from, to time.Time) (int, bool, error) {
	p, err := netip.ParsePrefix(network)
	if err != nil {
		a, err2 := netip.ParseAddr(network)
		if err2 != nil {
			return 0, false, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	lo, hi := p.Masked().Addr(), lastAddr(p)
	if lo.Is4() {
		lo, hi = netip.AddrFrom16(lo.As16()), netip.AddrFrom16(hi.As16())
	}
	out, err := in.sql(ctx, `SELECT * FROM connlog_access.access_log
		WHERE client_ip BETWEEN {lo:IPv6} AND {hi:IPv6} AND event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}
		ORDER BY client_ip, event_time, kafka_topic, kafka_partition, kafka_offset LIMIT 1001 FORMAT TSV`, url.Values{
		"param_lo": {lo.String()}, "param_hi": {hi.String()},
		"param_from": {from.UTC().Format("2006-01-02 15:04:05.000")}, "param_to": {to.UTC().Format("2006-01-02 15:04:05.000")},
	})
	if err != nil {
		return 0, false, err
	}
	if out == "" {
		return 0, false, nil
	}
	return strings.Count(out, "\n") + 1, false, nil
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last
}

// exportPath streams a search of path (/v1/access, /v1/connections) with
// Accept: text/csv and counts the data lines.
// exportRuns is how many times exportMedian runs an export.
const exportRuns = 3

// exportMedian runs the export of path exportRuns times and returns the run
// of median wall time, with every run's wall and time to first byte in the
// note: one export is a single, partly cold measurement (the first reads
// the parts from the page cache), and its first byte waits for the
// engine's first block whatever the export's size.
func exportMedian(ctx context.Context, api, tok, path string, q url.Values) (rows, size int64, wall time.Duration, note string) {
	type run struct {
		rows, size  int64
		wall, first time.Duration
		note        string
	}
	runs := make([]run, exportRuns)
	for i := range runs {
		r := &runs[i]
		r.rows, r.size, r.wall, r.first, r.note = exportPath(ctx, api, tok, path, q)
		if r.note != "" && r.rows == 0 {
			return r.rows, r.size, r.wall, r.note
		}
	}
	var all []string
	for _, r := range runs {
		all = append(all, fmt.Sprintf("%s (first byte %s)", r.wall.Round(time.Millisecond), r.first.Round(time.Millisecond)))
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.wall, b.wall) })
	m := runs[len(runs)/2]
	return m.rows, m.size, m.wall, strings.TrimSpace(fmt.Sprintf("median of %d runs: %s %s", exportRuns, strings.Join(all, ", "), m.note))
}

// exportPath runs one export of path and reads it to the end; first is the
// time until the response's header (sent with the first row).
func exportPath(ctx context.Context, api, tok, path string, q url.Values) (rows, size int64, wall, first time.Duration, note string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Purpose", "make bench: CSV export")
	req.Header.Set("Accept", "text/csv")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, 0, "request failed: " + err.Error()
	}
	defer resp.Body.Close()
	first = time.Since(start)
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/csv") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 120))
		return 0, 0, time.Since(start), first, fmt.Sprintf("no CSV streaming at measurement time: %d %s %s", resp.StatusCode, ct, bytes.TrimSpace(b))
	}
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	buf := make([]byte, 1<<20)
	var lines int64
	for {
		n, err := br.Read(buf)
		lines += int64(bytes.Count(buf[:n], []byte("\n")))
		size += int64(n)
		if err != nil {
			if err != io.EOF {
				note = "stream ended with " + err.Error()
			}
			break
		}
	}
	wall = time.Since(start)
	if lines > 0 {
		lines-- // header line
	}
	// The API's trailers: the row count it sent and whether it cut the export.
	if t := resp.Trailer.Get("X-Connlog-Rows"); t != "" && t != strconv.FormatInt(lines, 10) {
		note += fmt.Sprintf(" (trailer X-Connlog-Rows %s, counted %d)", t, lines)
	}
	if resp.Trailer.Get("X-Connlog-Truncated") == "true" {
		note += " (truncated at the export bound)"
	}
	return lines, size, wall, first, note
}
