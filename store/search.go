package store

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/connlog/connlog/store/internal/chsql"
)

// AccessQuery selects rows of the access log. Zero optional fields do not
// filter.
type AccessQuery struct {
	// Network is the client address or network; a single IP is a /32 or
	// /128 prefix. Required.
	Network netip.Prefix
	// From and To bound event time, half-open [From, To). Required.
	From, To time.Time
	// Site restricts to one site; "" means all sites the caller may see.
	Site string
	// Sites, if non-empty, restricts to these sites (credential scoping).
	Sites []string
	// Port is the client source port; 0 means any.
	Port uint16
	// PathPrefix keeps requests whose path starts with it.
	PathPrefix string
	// Method is the exact HTTP method, e.g. "POST".
	Method string
	// StatusMin and StatusMax bound the HTTP status, inclusive; 0 means
	// unbounded. An exact status sets both.
	StatusMin, StatusMax uint16
	// UserAgent keeps requests whose user agent contains it, ignoring
	// ASCII case.
	UserAgent string
	// User is the exact authenticated user name ($remote_user).
	User string
	// Client is the exact client text of rows whose client is not an IP
	// address (Hit.ClientText: "unix:", a host name). Such rows have no
	// address, so Client replaces Network: set one or the other.
	Client string
	// After, if set, continues a search after this row (keyset pagination).
	After *Cursor
	// Limit caps the rows returned. Required, positive.
	Limit int
	// Timeout bounds the query on the server (max_execution_time); zero
	// means Config.QueryTimeout.
	Timeout time.Duration
}

// ConnectionQuery selects connection records. Zero optional fields do not
// filter.
type ConnectionQuery struct {
	// Network is the client address or network. Required.
	Network netip.Prefix
	// From and To bound event time, half-open [From, To). Required.
	From, To time.Time
	// Site restricts to one site; Sites, if non-empty, to these sites.
	Site  string
	Sites []string
	// Port is the client source port; 0 means any.
	Port uint16
	// PathPrefix keeps records whose content identifier starts with it
	// (only create, modify and delete records carry one).
	PathPrefix string
	// Operation keeps one kind of operation; OpUnknown means any.
	Operation Operation
	// StatusMin and StatusMax bound the HTTP status, inclusive; 0 means
	// unbounded.
	StatusMin, StatusMax uint16
	// User is the exact author identifier.
	User string
	// After, if set, continues a search after this row.
	After *Cursor
	// Limit caps the rows returned. Required, positive.
	Limit int
	// Timeout bounds the query on the server; zero means Config.QueryTimeout.
	Timeout time.Duration
}

// Cursor is the sort key of a row of a search: searches return rows ordered
// by client address, then time, then Kafka position, which is the order of
// the tables' primary key, so that a page is a range read and needs no sort
// of the whole window.
type Cursor struct {
	ClientIP  netip.Addr
	Time      time.Time
	Topic     string
	Partition int32
	Offset    int64
}

// CursorOf returns the cursor of h, to continue a search after it.
func CursorOf(h *Hit) Cursor {
	return Cursor{ClientIP: h.ClientIP, Time: h.EventTime, Topic: h.Source.Topic, Partition: h.Source.Partition, Offset: h.Source.Offset}
}

// Cursor returns the cursor of r, to continue a search after it.
func (r *ConnectionRecord) Cursor() Cursor {
	return Cursor{ClientIP: r.ClientIP, Time: r.EventTime, Topic: r.Source.Topic, Partition: r.Source.Partition, Offset: r.Source.Offset}
}

// searchOrder is the order of every search: the primary key (client_ip,
// event_time), then the Kafka position, which makes it total.
const searchOrder = " ORDER BY client_ip, event_time, kafka_topic, kafka_partition, kafka_offset"

// filter is the WHERE clause of a search, with the conditions every
// search has (common).
type filter struct{ chsql.Where }

// common adds the filters every search has: network, window, sites,
// port, path prefix, status range, user, cursor.
func (f *filter) common(network netip.Prefix, from, to time.Time, site string, sites []string, port uint16,
	pathPrefix string, statusMin, statusMax uint16, user string, after *Cursor) error {
	if !network.IsValid() {
		return fmt.Errorf("%w: an IP address or network is required", ErrBadFilter)
	}
	if !from.Before(to) {
		return fmt.Errorf("%w: the time window is empty (from must be before to)", ErrBadFilter)
	}
	if statusMax != 0 && statusMin > statusMax {
		return fmt.Errorf("%w: the status range is empty", ErrBadFilter)
	}
	lo, hi := chsql.PrefixRange(network)
	f.Params = map[string]string{
		"lo":   lo.String(),
		"hi":   hi.String(),
		"from": chsql.Time(from),
		"to":   chsql.Time(to),
	}
	f.And("client_ip BETWEEN {lo:IPv6} AND {hi:IPv6} AND event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}")
	if site != "" {
		f.And("site = {site:String}")
		f.Params["site"] = chsql.Escape(site)
	}
	if len(sites) > 0 {
		f.And("site IN {sites:Array(String)}")
		f.Params["sites"] = chsql.Array(sites)
	}
	if port != 0 {
		f.And("client_port = {port:UInt16}")
		f.Params["port"] = strconv.Itoa(int(port))
	}
	if pathPrefix != "" {
		f.And("startsWith(path, {path_prefix:String})")
		f.Params["path_prefix"] = chsql.Escape(pathPrefix)
	}
	if statusMin != 0 {
		f.And("status >= {status_min:UInt16}")
		f.Params["status_min"] = strconv.Itoa(int(statusMin))
	}
	if statusMax != 0 {
		f.And("status <= {status_max:UInt16}")
		f.Params["status_max"] = strconv.Itoa(int(statusMax))
	}
	if user != "" {
		f.And("user = {user:String}")
		f.Params["user"] = chsql.Escape(user)
	}
	if after != nil {
		a := after.ClientIP
		if !a.IsValid() {
			a = netip.IPv6Unspecified()
		}
		// The first condition lets the primary key skip what the cursor
		// has passed; the second is the exact keyset comparison.
		f.And("client_ip >= {c_ip:IPv6} AND (client_ip > {c_ip:IPv6} OR (client_ip = {c_ip:IPv6} AND (event_time > {c_time:DateTime64(3, 'UTC')}" +
			" OR (event_time = {c_time:DateTime64(3, 'UTC')} AND (kafka_topic, kafka_partition, kafka_offset) > ({c_topic:String}, {c_partition:Int32}, {c_offset:Int64})))))")
		f.Params["c_ip"] = netip.AddrFrom16(a.As16()).String()
		f.Params["c_time"] = chsql.Time(after.Time)
		f.Params["c_topic"] = chsql.Escape(after.Topic)
		f.Params["c_partition"] = strconv.Itoa(int(after.Partition))
		f.Params["c_offset"] = strconv.FormatInt(after.Offset, 10)
	}
	return nil
}

// queryContext binds params and the per-query limits: server-side execution
// time (zero: Config.QueryTimeout) and result size.
func (s *Store) queryContext(ctx context.Context, params map[string]string, timeout time.Duration, limit int) context.Context {
	return s.searchContext(ctx, params, timeout, limit, false, false)
}

// searchContext is queryContext for the searches of EachAccess and
// EachConnection (each: true), which may read lazily (see lazyRead) or, an
// export too large for that, stream in blocks of streamBlockRows.
func (s *Store) searchContext(ctx context.Context, params map[string]string, timeout time.Duration, limit int, each, lazy bool) context.Context {
	if timeout <= 0 {
		timeout = s.cfg.QueryTimeout
	}
	var extra clickhouse.Settings
	switch {
	case lazy:
		extra = clickhouse.Settings{lazyColumnsSetting: 0}
	case each && limit > lazyColumnsDefaultLimit && s.streamBlockRows > 0:
		extra = clickhouse.Settings{"max_block_size": s.streamBlockRows}
	}
	return chsql.QueryContext(ctx, params, timeout, limit, extra)
}

// streamBlockRows is the block size of an export that streams (one larger
// than a page and not read lazily): the engine's default, 65,409 rows,
// made the client wait for the first of them, up to a third of a second
// with the day partitions' rows merged in key order, and left the export's
// two goroutines idle meanwhile; 8,192 rows (one granule) start the stream
// at once (BENCHMARKS.md). Store.streamBlockRows is it, 0 in tests that
// compare with the default.
const streamBlockRows = 8192

// lazyColumnsSetting is the engine's bound on the LIMIT up to which it
// reads the columns a query does not sort or filter on only for the rows it
// returns (lazy materialization, ClickHouse 25.x and later); 0 lifts it.
// lazyColumnsDefaultLimit is its default. lazyColumnsMaxRows bounds the
// searches that lift it (lazyRead; Store.lazyMaxRows, which tests lower).
const (
	lazyColumnsSetting      = "query_plan_max_limit_for_lazy_materialization"
	lazyColumnsDefaultLimit = 10_000
	lazyColumnsMaxRows      = 100_000
)

// lazyRead reports whether a search of table filtered by where, with a
// limit above a page, should lift lazyColumnsSetting: whether it returns at
// most lazyColumnsMaxRows rows, which a count() of the same filter tells
// (9 ms at the 50 M-row year shape, BENCHMARKS.md).
//
// An export is sorted in Cursor order, and the engine merges the day
// partitions' rows in key order: carrying all 33 columns of the access log
// through that merge was most of its time (one /8 over 7 days, 57,628 rows:
// 110 ms in the engine, 55 ms lazily, first byte 157-177 -> 87-120 ms
// through the API). But the engine holds the whole sorted result before it
// reads the other columns, about 1 kB a row: an export of 1,500,000 rows
// took 2.43 s instead of 1.01 s and 1.5 GB more memory. Hence the count:
// only a result that is small reads lazily, and a large one streams as it
// always did. Pages (at most lazyColumnsDefaultLimit rows) read lazily by
// the engine's default.
func (s *Store) lazyRead(ctx context.Context, table, where string, params map[string]string, timeout time.Duration, limit int) bool {
	if !s.lazyColumns || limit <= lazyColumnsDefaultLimit {
		return false
	}
	counted := maps.Clone(params)
	counted["lazy_cap"] = strconv.Itoa(s.lazyMaxRows + 1)
	var n uint64
	if err := s.conn.QueryRow(s.queryContext(ctx, counted, timeout, 1),
		"SELECT count() FROM (SELECT 1 FROM "+table+" WHERE "+where+" LIMIT {lazy_cap:UInt64})").Scan(&n); err != nil {
		return false // the search itself tells what went wrong
	}
	return n <= uint64(s.lazyMaxRows)
}

// accessSQL builds the statement, its WHERE clause and its parameters of q.
func (s *Store) accessSQL(q *AccessQuery) (stmt, where string, params map[string]string, err error) {
	if q.Limit <= 0 {
		return "", "", nil, fmt.Errorf("%w: limit must be positive", ErrBadFilter)
	}
	network := q.Network
	if q.Client != "" {
		if network.IsValid() {
			return "", "", nil, fmt.Errorf("%w: a client text and an IP address or network exclude each other", ErrBadFilter)
		}
		// rows with a client text have no address: they are stored at ::
		network = netip.PrefixFrom(netip.IPv6Unspecified(), 128)
	}
	var f filter
	if err := f.common(network, q.From, q.To, q.Site, q.Sites, q.Port, q.PathPrefix, q.StatusMin, q.StatusMax, q.User, q.After); err != nil {
		return "", "", nil, err
	}
	switch {
	case q.Client != "":
		f.And("client_text = {client:String}")
		f.Params["client"] = chsql.Escape(q.Client)
	case network.Contains(netip.IPv6Unspecified()):
		// rows with a client text sit at :: but have no address
		f.And("client_text = ''")
	}
	if q.Method != "" {
		f.And("method = {method:String}")
		f.Params["method"] = chsql.Escape(q.Method)
	}
	if q.UserAgent != "" {
		f.And("positionCaseInsensitive(user_agent, {ua:String}) > 0")
		f.Params["ua"] = chsql.Escape(q.UserAgent)
	}
	f.Params["limit"] = strconv.Itoa(q.Limit)
	where = f.SQL.String()
	return "SELECT " + accessTable.list + " FROM " + accessTable.full(s.db) + " WHERE " + where +
		searchOrder + " LIMIT {limit:UInt64}", where, f.Params, nil
}

// SearchAccess returns at most q.Limit access-log rows matching q, in
// [Cursor] order. Every value is a bound parameter.
func (s *Store) SearchAccess(ctx context.Context, q AccessQuery) ([]Hit, error) {
	var out []Hit
	err := s.EachAccess(ctx, q, func(h *Hit) error {
		out = append(out, *h)
		return nil
	})
	return out, err
}

// EachAccess calls fn for each of at most q.Limit access-log rows matching
// q, in [Cursor] order, as they arrive from ClickHouse: the result is never
// held in memory whole. fn must not keep h; an error from fn stops the
// iteration and is returned as is.
func (s *Store) EachAccess(ctx context.Context, q AccessQuery, fn func(h *Hit) error) error {
	sql, where, params, err := s.accessSQL(&q)
	if err != nil {
		return err
	}
	lazy := s.lazyRead(ctx, accessTable.full(s.db), where, params, q.Timeout, q.Limit)
	rows, err := s.conn.Query(s.searchContext(ctx, params, q.Timeout, q.Limit, true, lazy), sql)
	if err != nil {
		return fmt.Errorf("search access log: %w", err)
	}
	defer rows.Close()
	var (
		h                            Hit
		clientIP, peerIP, serverAddr netip.Addr
		requestTimeUS                uint64
		operation                    string
		hasReferer, hasUserAgent     bool
	)
	dest := []any{&h.EventTime, &h.Ingested, &clientIP, &h.ClientPort, &peerIP, &h.ForwardedFor, &serverAddr, &h.ServerPort,
		&h.Site, &h.Method, &h.Path, &h.Query, &h.Protocol, &h.Status, &h.BytesSent, &h.Referer, &h.UserAgent, &requestTimeUS,
		&h.Upstream, &h.RequestID, &h.User, &h.TLSProtocol, &h.Source.Topic, &h.Source.Partition, &h.Source.Offset,
		&operation, &h.OptOut, &h.ShipperHost, &h.LogFile, &h.ClientText, &h.RawRequest, &hasReferer, &hasUserAgent}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read access log row: %w", err)
		}
		h.ClientIP, h.PeerIP, h.ServerAddr = fromStored(clientIP), fromStored(peerIP), fromStored(serverAddr)
		h.RequestTime = time.Duration(requestTimeUS) * time.Microsecond
		h.EventTime, h.Ingested = h.EventTime.UTC(), h.Ingested.UTC()
		h.Operation = ParseOperation(operation)
		h.Has = 0
		if hasReferer {
			h.Has |= HasReferer
		}
		if hasUserAgent {
			h.Has |= HasUserAgent
		}
		if err := fn(&h); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("search access log: %w", err)
	}
	return nil
}

// connectionFilter builds the WHERE clause and parameters of q.
func connectionFilter(q *ConnectionQuery) (string, map[string]string, error) {
	if q.Limit <= 0 {
		return "", nil, fmt.Errorf("%w: limit must be positive", ErrBadFilter)
	}
	var f filter
	if err := f.common(q.Network, q.From, q.To, q.Site, q.Sites, q.Port, q.PathPrefix, q.StatusMin, q.StatusMax, q.User, q.After); err != nil {
		return "", nil, err
	}
	if q.Operation != OpUnknown {
		if q.Operation > OpDelete {
			return "", nil, fmt.Errorf("%w: unknown operation %d", ErrBadFilter, q.Operation)
		}
		f.And("operation = {operation:String}")
		f.Params["operation"] = q.Operation.String()
	}
	f.Params["limit"] = strconv.Itoa(q.Limit)
	return f.SQL.String(), f.Params, nil
}

// connectionSQL builds the statement and parameters of q; held: held
// copies may answer it (heldMatch).
func (s *Store) connectionSQL(q *ConnectionQuery, held bool) (string, map[string]string, error) {
	w, params, err := connectionFilter(q)
	if err != nil {
		return "", nil, err
	}
	records := connectionTable.full(s.db)
	if !held {
		return "SELECT " + connectionTable.list + " FROM " + records + " WHERE " + w + searchOrder + " LIMIT {limit:UInt64}", params, nil
	}
	// Held copies (legal holds) answer too, once each, and only when the
	// original has expired: while it exists, the original answers.
	const pos = "kafka_topic, kafka_partition, kafka_offset"
	return "SELECT " + connectionTable.list + " FROM (SELECT " + connectionTable.list + " FROM " + records + " WHERE " + w +
		" UNION ALL SELECT " + connectionTable.list + " FROM " + s.db.Connections + ".held_records WHERE " + w +
		" AND (" + pos + ") NOT IN (SELECT " + pos + " FROM " + records + " WHERE " + w + ") LIMIT 1 BY " + pos + ")" +
		searchOrder + " LIMIT {limit:UInt64}", params, nil
}

// heldMatch reports whether held copies may answer q: the hold storage
// exists and holds a row matching q's filters. Most searches match none,
// and the union with the held copies then only doubles the reading of the
// records and keeps the sorted read from stopping at the limit (one IP
// over 12 months: p99 680 ms with it, 362 ms without, over 134 million
// records; BENCHMARKS.md). A hold made after the check copies records that
// still exist, so the plain search still finds them.
func (s *Store) heldMatch(ctx context.Context, q *ConnectionQuery) (bool, error) {
	held, err := s.hasHeldRecords(ctx)
	if err != nil || !held {
		return false, err
	}
	w, params, err := connectionFilter(q)
	if err != nil {
		return false, err
	}
	var n uint64
	if err := s.conn.QueryRow(s.queryContext(ctx, params, q.Timeout, 1), "SELECT count() FROM (SELECT 1 FROM "+s.HeldRecordsTable()+" WHERE "+w+" LIMIT 1)").Scan(&n); err != nil {
		return false, fmt.Errorf("look for held records: %w", err)
	}
	return n > 0, nil
}

// hasHeldRecords reports whether the hold storage table exists (migration
// 0005); once it does, it always will.
func (s *Store) hasHeldRecords(ctx context.Context) (bool, error) {
	if s.heldSeen.Load() {
		return true, nil
	}
	var n uint64
	ctx = chsql.WithParams(ctx, map[string]string{"db": chsql.Escape(s.db.Connections)})
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'held_records'").Scan(&n); err != nil {
		return false, fmt.Errorf("look for hold storage: %w", err)
	}
	if n > 0 {
		s.heldSeen.Store(true)
	}
	return n > 0, nil
}

// RequisitionRecords runs q over the connection records for a requisition
// and calls fn for each record, in the order of [Store.EachConnection]. It
// returns the exact statement and bound parameters it ran, for the export
// manifest. fn must not keep r.
func (s *Store) RequisitionRecords(ctx context.Context, q ConnectionQuery, fn func(r *ConnectionRecord) error) (stmt string, params map[string]string, err error) {
	held, err := s.heldMatch(ctx, &q)
	if err != nil {
		return "", nil, err
	}
	stmt, params, err = s.connectionSQL(&q, held)
	if err != nil {
		return "", nil, err
	}
	rows, err := s.conn.Query(s.queryContext(ctx, params, q.Timeout, q.Limit), stmt)
	if err != nil {
		return stmt, params, fmt.Errorf("search connection records: %w", err)
	}
	defer rows.Close()
	return stmt, params, scanConnections(rows, fn)
}

// HeldRecordsTable is the table (db.table) of the held copies of
// connection records (package legal): the columns of connection_records
// plus hold_id. Connection searches include it (UNION ALL, distinct on
// kafka_topic, kafka_partition, kafka_offset) so that a held record is
// still found after its original expired.
func (s *Store) HeldRecordsTable() string { return s.db.Connections + ".held_records" }

// SearchConnections returns at most q.Limit connection records matching q,
// in [Cursor] order.
func (s *Store) SearchConnections(ctx context.Context, q ConnectionQuery) ([]ConnectionRecord, error) {
	var out []ConnectionRecord
	err := s.EachConnection(ctx, q, func(r *ConnectionRecord) error {
		out = append(out, *r)
		return nil
	})
	return out, err
}

// EachConnection calls fn for each of at most q.Limit connection records
// matching q, in [Cursor] order, as they arrive. fn must not keep r; an
// error from fn stops the iteration and is returned as is.
func (s *Store) EachConnection(ctx context.Context, q ConnectionQuery, fn func(r *ConnectionRecord) error) error {
	held, err := s.heldMatch(ctx, &q)
	if err != nil {
		return err
	}
	sql, params, err := s.connectionSQL(&q, held)
	if err != nil {
		return err
	}
	lazy := false
	if !held { // the union with the held copies is not counted: rare, left as it was
		w, wparams, err := connectionFilter(&q)
		if err != nil {
			return err
		}
		lazy = s.lazyRead(ctx, connectionTable.full(s.db), w, wparams, q.Timeout, q.Limit)
	}
	rows, err := s.conn.Query(s.searchContext(ctx, params, q.Timeout, q.Limit, true, lazy), sql)
	if err != nil {
		return fmt.Errorf("search connection records: %w", err)
	}
	defer rows.Close()
	return scanConnections(rows, fn)
}

func scanConnections(rows driver.Rows, fn func(r *ConnectionRecord) error) error {
	var (
		r                    ConnectionRecord
		clientIP, serverAddr netip.Addr
		op                   string
	)
	dest := []any{&r.EventTime, &r.Ingested, &clientIP, &r.ClientPort, &serverAddr, &r.ServerPort, &r.Site, &r.Protocol,
		&r.TLSProtocol, &op, &r.Path, &r.User, &r.Status, &r.Source.Topic, &r.Source.Partition, &r.Source.Offset}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read connection record: %w", err)
		}
		r.ClientIP, r.ServerAddr = fromStored(clientIP), fromStored(serverAddr)
		r.EventTime, r.Ingested = r.EventTime.UTC(), r.Ingested.UTC()
		r.Operation = ParseOperation(op)
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("search connection records: %w", err)
	}
	return nil
}

// ParseOperation returns the operation named s ("read", "create", "modify",
// "delete"), or OpUnknown.
func ParseOperation(s string) Operation {
	for o := OpRead; o <= OpDelete; o++ {
		if o.String() == s {
			return o
		}
	}
	return OpUnknown
}

// IPSummary describes what one address did over a window: the analyst's
// first look.
type IPSummary struct {
	// Requests is the number of access-log rows; zero means never seen.
	Requests uint64
	// FirstSeen and LastSeen are the times of the first and last request.
	FirstSeen, LastSeen time.Time
	// Bytes is the sum of the response body sizes.
	Bytes uint64
	// ClientPorts and Paths are the numbers of distinct source ports and
	// paths.
	ClientPorts, Paths uint64
	// Sites, ServerPorts, Methods, Statuses and UserAgents are the most
	// frequent values, most frequent first, at most the query's Limit each.
	Sites, ServerPorts, Methods, Statuses, UserAgents []ValueCount
}

// ValueCount is a value and how many rows have it.
type ValueCount struct {
	Value string
	Count uint64
}

// SummarizeIP summarises the access-log rows of q.Network in [q.From,
// q.To), restricted to q.Site/q.Sites. q.Limit caps each list of frequent
// values; the other filters of q are ignored.
func (s *Store) SummarizeIP(ctx context.Context, q AccessQuery) (IPSummary, error) {
	var sum IPSummary
	if q.Limit <= 0 {
		return sum, fmt.Errorf("%w: limit must be positive", ErrBadFilter)
	}
	var f filter
	if err := f.common(q.Network, q.From, q.To, q.Site, q.Sites, 0, "", 0, 0, "", nil); err != nil {
		return sum, err
	}
	from := s.db.Access + ".access_log WHERE " + f.SQL.String()
	qctx := s.queryContext(ctx, f.Params, q.Timeout, 1)
	row := s.conn.QueryRow(qctx, "SELECT count(), min(event_time), max(event_time), sum(bytes_sent), uniqExact(client_port), uniqExact(path) FROM "+from)
	if err := row.Scan(&sum.Requests, &sum.FirstSeen, &sum.LastSeen, &sum.Bytes, &sum.ClientPorts, &sum.Paths); err != nil {
		return sum, fmt.Errorf("summarise address: %w", err)
	}
	if sum.Requests == 0 {
		return IPSummary{}, nil
	}
	sum.FirstSeen, sum.LastSeen = sum.FirstSeen.UTC(), sum.LastSeen.UTC()
	f.Params["top"] = strconv.Itoa(q.Limit)
	dims := []struct {
		name, expr string
		dst        *[]ValueCount
	}{
		{"site", "site", &sum.Sites},
		{"server_port", "toString(server_port)", &sum.ServerPorts},
		{"method", "method", &sum.Methods},
		{"status", "toString(status)", &sum.Statuses},
		{"user_agent", "user_agent", &sum.UserAgents},
	}
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = "SELECT '" + d.name + "' AS dim, " + d.expr + " AS value, count() AS n FROM " + from + " GROUP BY value"
	}
	rows, err := s.conn.Query(s.queryContext(ctx, f.Params, q.Timeout, len(dims)*q.Limit),
		"SELECT dim, value, n FROM ("+strings.Join(parts, " UNION ALL ")+") ORDER BY dim, n DESC, value LIMIT {top:UInt64} BY dim")
	if err != nil {
		return sum, fmt.Errorf("summarise address: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dim string
		var vc ValueCount
		if err := rows.Scan(&dim, &vc.Value, &vc.Count); err != nil {
			return sum, fmt.Errorf("summarise address: %w", err)
		}
		for _, d := range dims {
			if d.name == dim {
				*d.dst = append(*d.dst, vc)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return sum, fmt.Errorf("summarise address: %w", err)
	}
	return sum, nil
}
