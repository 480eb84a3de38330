package main

import (
	"context"
	"fmt"
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

// The year shape (-api-days above 30): a year of evidence, the connection
// records of every request over -api-days days (their legal lifetime is 12
// months) and the access log of the same requests over its last
// accessDays days (its lifetime is 6 months: older rows would only wait
// for their TTL).
const (
	monthShapeDays = 30  // up to this -api-days, today's shape
	accessDays     = 180 // the access log's 6 months, less a few days so no part expires during a run
)

// Targets of issue 16 item 5, the year shape.
const (
	targetRequisitionP99       = 50 * time.Millisecond
	targetYearP99              = 500 * time.Millisecond
	targetYearExportRowsPerSec = 300_000
)

// splitYear splits total rows between the two tables of the year shape at
// the same requests per day: connection records over days, the access log
// over the last min(days, accessDays) of them. It returns the connection
// records (requests 0 to conn-1) and the access-log rows (the last access
// of those requests).
func splitYear(total int64, days int) (conn, access int64, aDays int) {
	aDays = min(days, accessDays)
	conn = int64(float64(total) * float64(days) / float64(days+aDays))
	return conn, total - conn, aDays
}

// connSeedSQL inserts the connection records of seedSelect's requests:
// content path only for create/modify/delete.
const connSeedSQL = `INSERT INTO connlog_connections.connection_records
    (event_time, ingested_at, client_ip, client_port, server_addr, server_port, site, protocol, tls_protocol, operation,
     path, user, status, kafka_topic, kafka_partition, kafka_offset)
SELECT event_time, ingested_at, client_ip, client_port, server_addr, server_port, site, protocol, tls_protocol,
    multiIf(method IN ('GET', 'HEAD'), 'read', method = 'POST', 'create', method = 'PUT', 'modify', 'delete') AS op,
    if(op = 'read', '', path), '', status, kafka_topic, kafka_partition, kafka_offset
FROM (` + seedSelect + `)`

// connCols are the columns of a connection-record search, in the order
// store's connectionTable lists them.
const connCols = "event_time, ingested_at, client_ip, client_port, server_addr, server_port, site, protocol, tls_protocol, operation, path, user, status, kafka_topic, kafka_partition, kafka_offset"

// connSearchSQL is the statement store.connectionSQL builds for a
// connection-record search by network, window and optional port, with
// held (the hold storage exists: always, since migration 0005) or without
// the union with the held copies; limit 1001 as the API's first page.
func connSearchSQL(port bool, held bool) string {
	w := "client_ip BETWEEN {lo:IPv6} AND {hi:IPv6} AND event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}"
	if port {
		w += " AND client_port = {port:UInt16}"
	}
	const order = " ORDER BY client_ip, event_time, kafka_topic, kafka_partition, kafka_offset LIMIT 1001"
	const records = "connlog_connections.connection_records"
	if !held {
		return "SELECT " + connCols + " FROM " + records + " WHERE " + w + order
	}
	const pos = "kafka_topic, kafka_partition, kafka_offset"
	return "SELECT " + connCols + " FROM (SELECT " + connCols + " FROM " + records + " WHERE " + w +
		" UNION ALL SELECT " + connCols + " FROM connlog_connections.held_records WHERE " + w +
		" AND (" + pos + ") NOT IN (SELECT " + pos + " FROM " + records + " WHERE " + w + ") LIMIT 1 BY " + pos + ")" + order
}

// accessSearchSQL is the access search's statement (store.accessSQL, no
// filter but network and window), limit 1001.
const accessSearchSQL = `SELECT * FROM connlog_access.access_log
	WHERE client_ip BETWEEN {lo:IPv6} AND {hi:IPv6} AND event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}
	ORDER BY client_ip, event_time, kafka_topic, kafka_partition, kafka_offset LIMIT 1001`

// search is one search request: a network, a window and an optional port.
type search struct {
	network  string
	from, to time.Time
	port     uint16
}

// params are the engine's bound parameters of s.
func (s search) params() (url.Values, error) {
	p, err := netip.ParsePrefix(s.network)
	if err != nil {
		a, err2 := netip.ParseAddr(s.network)
		if err2 != nil {
			return nil, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	lo, hi := p.Masked().Addr(), lastAddr(p)
	if lo.Is4() {
		lo, hi = netip.AddrFrom16(lo.As16()), netip.AddrFrom16(hi.As16())
	}
	v := url.Values{
		"param_lo": {lo.String()}, "param_hi": {hi.String()},
		"param_from": {s.from.UTC().Format("2006-01-02 15:04:05.000")}, "param_to": {s.to.UTC().Format("2006-01-02 15:04:05.000")},
	}
	if s.port != 0 {
		v.Set("param_port", strconv.Itoa(int(s.port)))
	}
	return v, nil
}

// query is the API query string of s.
func (s search) query() url.Values {
	q := url.Values{"ip": {s.network}, "from": {s.from.UTC().Format(time.RFC3339Nano)}, "to": {s.to.UTC().Format(time.RFC3339Nano)}}
	if s.port != 0 {
		q.Set("port", strconv.Itoa(int(s.port)))
	}
	return q
}

// minuteOf is the one-minute window [t truncated to the minute, +1 min)
// of a requisition that names the minute of a connection.
func minuteOf(t time.Time) (time.Time, time.Time) {
	from := t.UTC().Truncate(time.Minute)
	return from, from.Add(time.Minute)
}

// connTarget is a stored connection record: address, source port, time.
type connTarget struct {
	ip   netip.Addr
	port uint16
	t    time.Time
}

// parseConnTargets reads "ip\tport\tmilliseconds" lines.
func parseConnTargets(s string) []connTarget {
	var out []connTarget
	for l := range strings.SplitSeq(s, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		p, err2 := strconv.ParseUint(f[1], 10, 16)
		ms, err3 := strconv.ParseInt(f[2], 10, 64)
		if err == nil && err2 == nil && err3 == nil {
			out = append(out, connTarget{a.Unmap(), uint16(p), time.UnixMilli(ms).UTC()})
		}
	}
	return out
}

// net24 is the /24 (IPv4) or /48 (IPv6) of a.
func net24(a netip.Addr) string {
	p, _ := a.Prefix(24)
	if a.Is6() {
		p, _ = a.Prefix(48)
	}
	return p.String()
}

// yearKind is one kind of search of the year shape.
type yearKind struct {
	name   string
	path   string // API path
	sql    string // the engine's statement (held union for connections)
	plain  string // the statement without the held union; "" if the same
	target time.Duration
	gen    func(rng *rand.Rand) search
}

// seedYear seeds the year shape: conn connection records over days days
// ending at end, and the access log of the last aDays of those requests.
func seedYear(ctx context.Context, in *instance, r *apiResult, total, clients int64, days int, end time.Time) error {
	conn, access, aDays := splitYear(total, days)
	r.Days, r.AccessDays = days, aDays
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	t0 := time.Now()
	if _, err := in.sql(ctx, connSeedSQL, seedParams(start, end, conn, clients, 0, conn)); err != nil {
		return fmt.Errorf("seed connection records: %w", err)
	}
	r.ConnSeedWall = time.Since(t0)
	r.SettleWall, _ = in.waitMerges(ctx, 10*time.Minute)
	t1 := time.Now()
	if _, err := in.sql(ctx, seedSQL, seedParams(start, end, conn, clients, conn-access, access)); err != nil {
		return fmt.Errorf("seed access log: %w", err)
	}
	r.SeedWall = time.Since(t1)
	r.Settle2Wall, _ = in.waitMerges(ctx, 10*time.Minute)
	var err error
	if r.Rows, err = in.count(ctx, "SELECT count() FROM connlog_access.access_log"); err != nil {
		return err
	}
	if r.ConnRows, err = in.count(ctx, "SELECT count() FROM connlog_connections.connection_records"); err != nil {
		return err
	}
	r.Clients, _ = in.count(ctx, "SELECT uniq(client_ip) FROM connlog_connections.connection_records SETTINGS max_execution_time = 600")
	return nil
}

// benchYear is benchAPI's year shape: after the seed, today's access
// searches, then the connection-record searches of a requisition (one IP,
// port and minute; one IP over 12 months; one /24 over 7 days) through
// the API, then the same statements on the engine with their read
// statistics, with and without the held-copies union and read in order,
// and what the indexes selected (EXPLAIN indexes = 1); two CSV exports.
func benchYear(ctx context.Context, in *instance, rows, clients int64, requests, days int) apiResult {
	var r apiResult
	end := time.Now().UTC().Truncate(time.Hour)
	if err := seedYear(ctx, in, &r, rows, clients, days, end); err != nil {
		r.Err = err.Error()
		return r
	}
	t1 := time.Now()
	syscall.Sync()
	r.SyncWall = time.Since(t1)
	r.Disk, _ = in.parts(ctx, "connlog_access.access_log", "connlog_connections.connection_records")
	r.Settings, _ = in.sql(ctx, `SELECT name || ' = ' || value FROM system.settings
		WHERE name IN ('optimize_read_in_order', 'read_in_order_use_virtual_row', 'use_skip_indexes', 'optimize_use_projections', 'max_threads') ORDER BY name FORMAT TSV`, nil)

	// Targets: stored rows picked at random, from each table.
	pick := func(table, cols string, n int64) (string, error) {
		return in.sql(ctx, `SELECT `+cols+` FROM `+table+`
			WHERE cityHash64(kafka_offset, kafka_partition) % {m:UInt64} = 0 LIMIT {n:UInt64} FORMAT TSV SETTINGS max_execution_time = 600`,
			url.Values{"param_m": {strconv.FormatInt(max(1, n/int64(requests*2)), 10)}, "param_n": {strconv.Itoa(requests * 4)}})
	}
	s, err := pick("connlog_connections.connection_records", "IPv6NumToString(client_ip), client_port, toUnixTimestamp64Milli(event_time)", r.ConnRows)
	if err != nil {
		r.Err = "pick targets: " + err.Error()
		return r
	}
	conns := parseConnTargets(s)
	s, err = pick("connlog_access.access_log", "IPv6NumToString(client_ip), client_port, toUnixTimestamp64Milli(event_time)", r.Rows)
	if err != nil {
		r.Err = "pick targets: " + err.Error()
		return r
	}
	hits := parseConnTargets(s)
	if len(conns) == 0 || len(hits) == 0 {
		r.Err = "pick targets: no row"
		return r
	}
	tok, err := in.token()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	clamp := func(t time.Time) time.Time {
		if lim := end.Add(time.Hour); t.After(lim) {
			return lim
		}
		return t
	}
	v4 := func(rng *rand.Rand, ts []connTarget) connTarget {
		var tg connTarget
		for range 100 {
			if tg = ts[rng.IntN(len(ts))]; tg.ip.Is4() {
				break
			}
		}
		return tg
	}
	kinds := []yearKind{
		{name: "one IP, 24 hours (access log)", path: "/v1/access", sql: accessSearchSQL, target: targetOneIPP99, gen: func(rng *rand.Rand) search {
			tg := hits[rng.IntN(len(hits))]
			from := tg.t.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour))))
			return search{network: tg.ip.String(), from: from, to: from.Add(24 * time.Hour)}
		}},
		{name: "one /24, 7 days (access log)", path: "/v1/access", sql: accessSearchSQL, target: targetNet24P99, gen: func(rng *rand.Rand) search {
			tg := v4(rng, hits)
			from := tg.t.Add(-time.Duration(rng.Int64N(int64(7 * 24 * time.Hour))))
			return search{network: net24(tg.ip), from: from, to: clamp(from.Add(7 * 24 * time.Hour))}
		}},
		{name: "requisition: one IP + port, one minute (connection records)", path: "/v1/connections", sql: connSearchSQL(true, true), plain: connSearchSQL(true, false), target: targetRequisitionP99, gen: func(rng *rand.Rand) search {
			tg := conns[rng.IntN(len(conns))]
			from, to := minuteOf(tg.t)
			return search{network: tg.ip.String(), from: from, to: to, port: tg.port}
		}},
		{name: "one IP, 12 months (connection records)", path: "/v1/connections", sql: connSearchSQL(false, true), plain: connSearchSQL(false, false), target: targetYearP99, gen: func(rng *rand.Rand) search {
			tg := conns[rng.IntN(len(conns))]
			return search{network: tg.ip.String(), from: end.Add(-365 * 24 * time.Hour), to: end.Add(time.Hour)}
		}},
		{name: "one /24, 7 days (connection records)", path: "/v1/connections", sql: connSearchSQL(false, true), plain: connSearchSQL(false, false), target: targetYearP99, gen: func(rng *rand.Rand) search {
			tg := v4(rng, conns)
			from := tg.t.Add(-time.Duration(rng.Int64N(int64(7 * 24 * time.Hour))))
			return search{network: net24(tg.ip), from: from, to: clamp(from.Add(7 * 24 * time.Hour))}
		}},
	}
	for _, k := range kinds {
		rng := rand.New(rand.NewPCG(1, 2))
		l := measure(k.name, requests, func() (int, bool, error) {
			return apiGet(ctx, in.api, tok, k.path, k.gen(rng).query())
		})
		l.Target = k.target
		r.Lookups = append(r.Lookups, l)
	}
	// The engine alone, same targets (first diagN of each kind), with its
	// read statistics: the statement as the store sends it, then variants.
	const diagN = 50
	for _, k := range kinds {
		type variant struct {
			name, sql string
			settings  url.Values
		}
		vs := []variant{{"as sent", k.sql, nil}}
		base := k.sql
		if k.plain != "" {
			vs = append(vs, variant{"without the held-copies union", k.plain, nil})
			base = k.plain
		}
		vs = append(vs,
			variant{"optimize_read_in_order = 0", base, url.Values{"optimize_read_in_order": {"0"}}},
			variant{"read_in_order_use_virtual_row = 1", base, url.Values{"read_in_order_use_virtual_row": {"1"}}})
		for _, v := range vs {
			rng := rand.New(rand.NewPCG(1, 2))
			r.Engine = append(r.Engine, engineProfile(ctx, in, k.name, v.name, diagN, v.sql, v.settings, func() search { return k.gen(rng) }))
		}
		// The API on exactly these targets (3 unmeasured, then diagN), to
		// compare with "as sent" request for request.
		rng := rand.New(rand.NewPCG(1, 2))
		r.Engine = append(r.Engine, apiProfile(k.name, diagN, func() (int, bool, error) {
			return apiGet(ctx, in.api, tok, k.path, k.gen(rng).query())
		}))
		rng = rand.New(rand.NewPCG(1, 2))
		sr := k.gen(rng)
		p, _ := sr.params()
		st := base
		if ex, err := in.sql(ctx, "EXPLAIN indexes = 1 "+st, p); err == nil {
			r.Explains = append(r.Explains, explained{k.name, sr.network, condenseExplain(ex)})
		} else {
			r.Explains = append(r.Explains, explained{k.name, sr.network, err.Error()})
		}
	}

	r.Copies, r.CopyErr = tableVariants(ctx, in, &r, end, requests)

	// CSV exports: one of the ten IPv4 /8s over 7 days (≈1/10 of a week),
	// from each table.
	q := url.Values{
		"ip":   {"185.0.0.0/8"},
		"from": {end.Add(-7 * 24 * time.Hour).Format(time.RFC3339)},
		"to":   {end.Format(time.RFC3339)},
	}
	r.ExportRows, r.ExportBytes, r.ExportWall, r.ExportNote = exportMedian(ctx, in.api, tok, "/v1/access", q)
	r.ConnExportRows, r.ConnExportBytes, r.ConnExportWall, r.ConnExportNote = exportMedian(ctx, in.api, tok, "/v1/connections", q)
	return r
}

// apiGet is one GET of a search endpoint, answer read and decoded in full.
func apiGet(ctx context.Context, api, tok, path string, q url.Values) (int, bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+path+"?"+q.Encode(), nil)
	return doSearch(req, tok)
}

// engineRun is one search kind and statement variant on the engine alone:
// wall time per request and what the engine selected and read.
type engineRun struct {
	Kind, Variant string
	Requests      int
	Errors        int
	FirstErr      string
	P50, P99, Max time.Duration
	Rows          float64 // mean per request
	Read          readStats
}

// readStats are the engine's counters of what queries selected and read
// (system.events), or their mean per request.
type readStats struct {
	Parts, Marks, Rows, Bytes, Compressed float64
}

// readEvents are the system.events readStats holds, in its field order.
var readEvents = []string{"SelectedParts", "SelectedMarks", "SelectedRows", "SelectedBytes", "ReadCompressedBytes"}

// events reads the engine's readStats counters.
func events(ctx context.Context, in *instance) (readStats, error) {
	s, err := in.sql(ctx, "SELECT event, value FROM system.events WHERE has({e:Array(String)}, event) FORMAT TSV",
		url.Values{"param_e": {"['" + strings.Join(readEvents, "','") + "']"}})
	if err != nil {
		return readStats{}, err
	}
	return parseEvents(s), nil
}

// parseEvents reads "event\tvalue" lines; events not listed count 0.
func parseEvents(s string) readStats {
	var st readStats
	f := []*float64{&st.Parts, &st.Marks, &st.Rows, &st.Bytes, &st.Compressed}
	for l := range strings.SplitSeq(s, "\n") {
		name, v, _ := strings.Cut(l, "\t")
		if i := slices.Index(readEvents, name); i >= 0 {
			*f[i], _ = strconv.ParseFloat(v, 64)
		}
	}
	return st
}

func (a readStats) sub(b readStats) readStats {
	return readStats{a.Parts - b.Parts, a.Marks - b.Marks, a.Rows - b.Rows, a.Bytes - b.Bytes, a.Compressed - b.Compressed}
}

func (a readStats) add(b readStats) readStats {
	return readStats{a.Parts + b.Parts, a.Marks + b.Marks, a.Rows + b.Rows, a.Bytes + b.Bytes, a.Compressed + b.Compressed}
}

func (a readStats) div(n float64) readStats {
	return readStats{a.Parts / n, a.Marks / n, a.Rows / n, a.Bytes / n, a.Compressed / n}
}

// apiProfile is engineProfile's timing of do, without read statistics.
func apiProfile(kind string, n int, do func() (int, bool, error)) engineRun {
	s, got := latencies(n, 3, func() (int, time.Duration, error) {
		t0 := time.Now()
		rows, _, err := do()
		return rows, time.Since(t0), err
	})
	e := engineRun{Kind: kind, Variant: "through the API, the same targets", Requests: n, Errors: s.Errors, FirstErr: s.FirstErr, P50: s.P50, P99: s.P99, Max: s.Max}
	if len(got) == 0 {
		return e
	}
	var rows float64
	for _, r := range got {
		rows += float64(r)
	}
	e.Rows = rows / float64(len(got))
	return e
}

// engineProfile runs sql n times (after 3 unmeasured) with the parameters
// of gen's searches; around each it reads system.events, whose deltas say
// what the statement selected and read (connlog's own background
// statements, a few small ones a second, count too).
func engineProfile(ctx context.Context, in *instance, kind, variant string, n int, sql string, settings url.Values, gen func() search) engineRun {
	// statement is one run of sql: the rows it returned and what it read.
	type statement struct {
		rows float64
		read readStats
	}
	s, got := latencies(n, 3, func() (statement, time.Duration, error) {
		p, err := gen().params()
		if err != nil {
			return statement{}, 0, err
		}
		for k, v := range settings {
			p[k] = v
		}
		before, err := events(ctx, in)
		t0 := time.Now()
		var out string
		if err == nil {
			out, err = in.sql(ctx, sql+" FORMAT TSV", p)
		}
		el := time.Since(t0)
		var after readStats
		if err == nil {
			after, err = events(ctx, in)
		}
		var st statement
		if out != "" {
			st.rows = float64(strings.Count(out, "\n") + 1)
		}
		st.read = after.sub(before)
		return st, el, err
	})
	e := engineRun{Kind: kind, Variant: variant, Requests: n, Errors: s.Errors, FirstErr: s.FirstErr, P50: s.P50, P99: s.P99, Max: s.Max}
	if len(got) == 0 {
		return e
	}
	var rows float64
	var read readStats
	for _, st := range got {
		rows += st.rows
		read = read.add(st.read)
	}
	e.Rows, e.Read = rows/float64(len(got)), read.div(float64(len(got)))
	return e
}

// explained is the condensed EXPLAIN indexes = 1 of one search.
type explained struct {
	Kind, Network, Text string
}

// condenseExplain keeps the index lines of an EXPLAIN indexes = 1: which
// index (MinMax, Partition, PrimaryKey, Skip, ...), its condition, and the
// parts and granules it kept.
func condenseExplain(s string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		t := strings.TrimLeft(l, " │├└─")
		switch t {
		case "MinMax", "Min-Max", "Partition", "PrimaryKey", "Skip", "PrimaryKeyExpand":
			out = append(out, t)
			continue
		}
		for _, p := range []string{"ReadFromMergeTree", "Read type:", "Type:", "Name:", "Description:", "Condition:", "Parts:", "Granules:", "Search Algorithm:", "Ranges:", "Projection", "Lazily read columns:", "JoinLazyColumnsStep"} {
			if strings.HasPrefix(t, p) {
				out = append(out, "  "+t)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// year prints the year shape's figures.
func (r *report) year(a *apiResult) {
	r.printf("\n## Query API over a year of evidence\n\n")
	if a.Err != "" {
		r.printf("error: %s\n", a.Err)
	}
	r.printf("seeded %d connection records over %d days in %s (%.0f rows/s), merges settled after %s more; then the access log of the same requests over the last %d days, %d rows in %s (%.0f rows/s), merges settled after %s more; %d distinct clients (uniq); sync(2) then took %s\n",
		a.ConnRows, a.Days, a.ConnSeedWall.Round(time.Second), float64(a.ConnRows)/a.ConnSeedWall.Seconds(), a.SettleWall.Round(time.Second),
		a.AccessDays, a.Rows, a.SeedWall.Round(time.Second), float64(a.Rows)/a.SeedWall.Seconds(), a.Settle2Wall.Round(time.Second), a.Clients, a.SyncWall.Round(time.Millisecond))
	for _, d := range a.Disk {
		r.printf("%s: %d rows, %d active parts, %.2f GB on disk, %.1f bytes/row on disk (%.1f uncompressed)\n", d.Table, d.Rows, d.Parts, float64(d.Bytes)/1e9, d.bytesPerRow(), float64(d.Uncompressed)/float64(max(d.Rows, 1)))
	}
	r.printf("\n| search (through the API) | requests | errors | p50 | p99 | max | target p99 | mean rows | truncated | slowest (request #) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, l := range a.Lookups {
		r.printf("| %s | %d | %d | %s | %s | %s | %s | %.1f | %d | %s |\n", l.Name, l.Requests, l.Errors, l.P50.Round(time.Microsecond*100), l.P99.Round(time.Microsecond*100), l.Max.Round(time.Microsecond*100), l.Target, l.MeanRows, l.Truncated, strings.Join(l.Slowest, ", "))
		if l.FirstErr != "" {
			r.printf("first error: %s\n", l.FirstErr)
		}
	}
	r.printf("\nThe same searches on the engine alone (its HTTP interface; per request, the deltas of system.events SelectedParts, SelectedMarks (granules), SelectedRows, SelectedBytes (uncompressed) and ReadCompressedBytes), engine defaults: %s\n\n", strings.ReplaceAll(a.Settings, "\n", ", "))
	r.printf("| search | statement | requests | errors | p50 | p99 | max | parts | granules | rows selected | MB selected | MB read (compressed) | rows |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, e := range a.Engine {
		r.printf("| %s | %s | %d | %d | %s | %s | %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.1f |\n", e.Kind, e.Variant, e.Requests, e.Errors, e.P50.Round(time.Microsecond*100), e.P99.Round(time.Microsecond*100), e.Max.Round(time.Microsecond*100),
			e.Read.Parts, e.Read.Marks, e.Read.Rows, e.Read.Bytes/1e6, e.Read.Compressed/1e6, e.Rows)
		if e.FirstErr != "" {
			r.printf("first error: %s\n", e.FirstErr)
		}
	}
	if a.CopyErr != "" {
		r.printf("\nlayout copies: %s\n", a.CopyErr)
	}
	for _, d := range a.Copies {
		r.printf("\ncopy %s (the connection records of a tenth of the clients): %d rows, %d active parts, %.1f bytes/row on disk", d.Table, d.Rows, d.Parts, d.bytesPerRow())
	}
	if len(a.Copies) > 0 {
		r.printf("\n")
	}
	for _, x := range a.Explains {
		r.printf("\nEXPLAIN indexes = 1, %s (%s; on the connection records, the statement without the held-copies union):\n\n```\n%s\n```\n", x.Kind, x.Network, x.Text)
	}
	for _, e := range []struct {
		what string
		rows int64
		wall time.Duration
		size int64
		note string
	}{{"access log", a.ExportRows, a.ExportWall, a.ExportBytes, a.ExportNote}, {"connection records", a.ConnExportRows, a.ConnExportWall, a.ConnExportBytes, a.ConnExportNote}} {
		if e.rows > 0 {
			r.printf("\nCSV export, %s (Accept: text/csv, one /8 over 7 days): %d rows, %.1f MB in %s: %.0f rows/s %s\n", e.what, e.rows, float64(e.size)/1e6, e.wall.Round(time.Millisecond), float64(e.rows)/e.wall.Seconds(), e.note)
		} else {
			r.printf("\nCSV export, %s: %s\n", e.what, e.note)
		}
	}
}

// copyVariants are the layouts tableVariants compares: connection_records'
// own DDL with one change each.
var copyVariants = []struct {
	name, table, from, to string
}{
	{"as connection_records (day partitions, index_granularity 8192)", "bench_diag.cr_day", "", ""},
	{"index_granularity = 1024", "bench_diag.cr_g1024", "index_granularity = 8192", "index_granularity = 1024"},
	{"PARTITION BY toYYYYMM(event_time)", "bench_diag.cr_month", "PARTITION BY toDate(event_time)", "PARTITION BY toYYYYMM(event_time)"},
	// index_granularity cannot be altered (READONLY_SETTING); a projection's can be set
	{"+ PROJECTION (SELECT * ORDER BY the key) WITH SETTINGS (index_granularity = 1024)", "bench_diag.cr_proj", "\n)\nENGINE",
		",\n    PROJECTION fine (SELECT * ORDER BY client_ip, event_time, client_port) WITH SETTINGS (index_granularity = 1024)\n)\nENGINE"},
}

// variantDDL is create (SHOW CREATE TABLE of connection_records) for
// table with from replaced by to; an error if from is not in it.
func variantDDL(create, table, from, to string) (string, error) {
	const orig = "CREATE TABLE connlog_connections.connection_records"
	if !strings.Contains(create, orig) {
		return "", fmt.Errorf("not the DDL of connection_records: %.80q", create)
	}
	ddl := strings.Replace(create, orig, "CREATE TABLE "+table, 1)
	if from != "" {
		if !strings.Contains(ddl, from) {
			return "", fmt.Errorf("no %q in the DDL of connection_records", from)
		}
		ddl = strings.Replace(ddl, from, to, 1)
	}
	return ddl, nil
}

// tableVariants copies the connection records of a tenth of the clients
// (whole clients, so a search finds all of a client's rows) into tables
// of connection_records' DDL with one layout change each, then times the
// year-long and one-minute searches on each copy with the same targets:
// what the granularity and the partitioning do to them. A part's rows of
// one client sit in one or two granules whatever the part's size, so the
// rows read by "one IP, 12 months" are about parts × granule, on the copy
// as on the whole table.
func tableVariants(ctx context.Context, in *instance, r *apiResult, end time.Time, requests int) ([]diskUsage, string) {
	create, err := in.sql(ctx, "SHOW CREATE TABLE connlog_connections.connection_records FORMAT TSVRaw", nil)
	if err != nil {
		return nil, err.Error()
	}
	if _, err := in.sql(ctx, "CREATE DATABASE IF NOT EXISTS bench_diag", nil); err != nil {
		return nil, err.Error()
	}
	defer in.sql(ctx, "DROP DATABASE IF EXISTS bench_diag SYNC", nil) //nolint:errcheck // scratch
	var tables, names, notes []string
	for _, v := range copyVariants {
		ddl, err := variantDDL(create, v.table, v.from, v.to)
		if err == nil {
			_, err = in.sql(ctx, ddl, nil)
		}
		if err == nil {
			_, err = in.sql(ctx, "INSERT INTO "+v.table+" SELECT * FROM connlog_connections.connection_records WHERE cityHash64(client_ip) % 10 = 0",
				url.Values{"max_execution_time": {"3600"}, "max_partitions_per_insert_block": {"1000"}})
		}
		if err != nil {
			notes = append(notes, v.name+": "+err.Error())
			continue
		}
		tables, names = append(tables, v.table), append(names, v.name)
	}
	note := strings.Join(notes, "; ")
	if len(tables) == 0 {
		return nil, note
	}
	_, _ = in.waitMerges(ctx, 5*time.Minute)
	disk, _ := in.parts(ctx, tables...)
	s, err := in.sql(ctx, `SELECT IPv6NumToString(client_ip), client_port, toUnixTimestamp64Milli(event_time) FROM `+tables[0]+`
		WHERE cityHash64(kafka_offset, kafka_partition) % 97 = 0 LIMIT {n:UInt64} FORMAT TSV SETTINGS max_execution_time = 600`, url.Values{"param_n": {strconv.Itoa(requests)}})
	if err != nil {
		return disk, "pick targets: " + err.Error()
	}
	ts := parseConnTargets(s)
	if len(ts) == 0 {
		return disk, "pick targets: no row"
	}
	const n = 50
	for _, k := range []struct {
		name string
		port bool
		gen  func(rng *rand.Rand) search
	}{
		{"copy: one IP, 12 months", false, func(rng *rand.Rand) search {
			tg := ts[rng.IntN(len(ts))]
			return search{network: tg.ip.String(), from: end.Add(-365 * 24 * time.Hour), to: end.Add(time.Hour)}
		}},
		{"copy: requisition, one IP + port, one minute", true, func(rng *rand.Rand) search {
			tg := ts[rng.IntN(len(ts))]
			from, to := minuteOf(tg.t)
			return search{network: tg.ip.String(), from: from, to: to, port: tg.port}
		}},
	} {
		for i, t := range tables {
			sql := strings.ReplaceAll(connSearchSQL(k.port, false), "connlog_connections.connection_records", t)
			rng := rand.New(rand.NewPCG(3, 4))
			r.Engine = append(r.Engine, engineProfile(ctx, in, k.name, names[i], n, sql, nil, func() search { return k.gen(rng) }))
		}
	}
	return disk, note
}
