package store

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/connlog/connlog/store/retention"
)

// The tables of the data classes that ingest writes, described once: each
// column's name, the value Write stores in it for a row of the table's Go
// type, and how the manifest hash encodes that value. The writer's INSERT,
// the searches' SELECT lists, the hold copies and both manifest hash
// versions are built from these lists; the DDL is the migrations
// (migrations/*.sql), and a test compares every list with the engine's
// system.columns (names and types), so that a column added to a table
// without being added here fails the tests instead of escaping the writer
// or the hash.
//
// The order of a list is the order of hash version 2, frozen once
// released (see manifest_columns.go): add a column at the end, with a new
// hash version.

// The protected tables, by short name (as in manifests.db_table).
const (
	tableAccess      = "access_log"
	tableConnections = "connection_records"
	tableQuarantine  = "quarantine"
)

// accessTable is the access log (the security data class, 6 months): a
// [Hit], whole.
var accessTable = newTable(tableAccess, func(d Databases) string { return d.Access }, "ingested_at", []column[Hit]{
	timeCol("event_time", func(h *Hit) time.Time { return h.EventTime }),
	unhashed(timeCol("ingested_at", func(h *Hit) time.Time { return h.Ingested })),
	ipCol("client_ip", func(h *Hit) netip.Addr { return h.ClientIP }),
	u16Col("client_port", func(h *Hit) uint16 { return h.ClientPort }),
	ipCol("peer_ip", func(h *Hit) netip.Addr { return h.PeerIP }),
	detail(strCol("forwarded_for", func(h *Hit) string { return h.ForwardedFor })),
	ipCol("server_addr", func(h *Hit) netip.Addr { return h.ServerAddr }),
	u16Col("server_port", func(h *Hit) uint16 { return h.ServerPort }),
	strCol("site", func(h *Hit) string { return h.Site }),
	strCol("method", func(h *Hit) string { return h.Method }),
	strCol("path", func(h *Hit) string { return h.Path }),
	detail(strCol("query", func(h *Hit) string { return h.Query })),
	strCol("protocol", func(h *Hit) string { return h.Protocol }),
	u16Col("status", func(h *Hit) uint16 { return h.Status }),
	u64Col("bytes_sent", func(h *Hit) uint64 { return h.BytesSent }),
	detail(strCol("referer", func(h *Hit) string { return h.Referer })),
	detail(strCol("user_agent", func(h *Hit) string { return h.UserAgent })),
	u64Col("request_time_us", func(h *Hit) uint64 { return uint64(h.RequestTime / time.Microsecond) }),
	strCol("upstream", func(h *Hit) string { return h.Upstream }),
	strCol("request_id", func(h *Hit) string { return h.RequestID }),
	strCol("user", func(h *Hit) string { return h.User }),
	strCol("tls_protocol", func(h *Hit) string { return h.TLSProtocol }),
	strCol("kafka_topic", func(h *Hit) string { return h.Source.Topic }),
	i32Col("kafka_partition", func(h *Hit) int32 { return h.Source.Partition }),
	i64Col("kafka_offset", func(h *Hit) int64 { return h.Source.Offset }),
	opCol("operation", hitOperation),
	boolCol("opt_out", func(h *Hit) bool { return h.OptOut }),
	strCol("shipper_host", func(h *Hit) string { return h.ShipperHost }),
	strCol("log_file", func(h *Hit) string { return h.LogFile }),
	strCol("client_text", func(h *Hit) string { return h.ClientText }),
	strCol("raw_request", func(h *Hit) string { return h.RawRequest }),
	boolCol("has_referer", (*Hit).RefererSent),
	boolCol("has_user_agent", (*Hit).UserAgentSent),
}).withV1(accessV1, retention.AccessDetailColumns())

// accessV1 is the access log under hash version 1 (the manifests written
// before every column was covered): these columns in this order, then the
// detail columns in the order of retention.AccessDetailColumns.
var accessV1 = []string{"event_time", "client_ip", "client_port", "peer_ip", "server_addr", "server_port", "site", "method", "path",
	"protocol", "status", "bytes_sent", "request_time_us", "upstream", "request_id", "user", "tls_protocol",
	"kafka_topic", "kafka_partition", "kafka_offset"}

// ConnectionRecord is one connection record (the legal data class, 12
// months): the subset of a request the law asks to keep for a year, as
// stored and as searches return it. [ConnectionOf] is the one rule that
// makes a record of a [Hit].
type ConnectionRecord struct {
	Source     Source
	EventTime  time.Time
	Ingested   time.Time
	ClientIP   netip.Addr
	ClientPort uint16
	ServerAddr netip.Addr
	ServerPort uint16
	Site       string
	Protocol   string
	// TLSProtocol is e.g. "TLSv1.3"; "" for plain HTTP.
	TLSProtocol string
	Operation   Operation
	// Path and User are only kept for create, modify and delete.
	Path   string
	User   string
	Status uint16
}

// ConnectionOf returns the connection record Write stores for h: its
// operation (see [Hit.Operation]), and the content identifier and author
// only for what a person created, changed or deleted (CPCE L34-1 VI: the
// pages consulted are not connection data). The writer and both manifest
// hash versions make records with it, so the rule exists once.
func ConnectionOf(h *Hit) ConnectionRecord {
	r := ConnectionRecord{
		Source: h.Source, EventTime: h.EventTime, Ingested: h.Ingested,
		ClientIP: h.ClientIP, ClientPort: h.ClientPort, ServerAddr: h.ServerAddr, ServerPort: h.ServerPort,
		Site: h.Site, Protocol: h.Protocol, TLSProtocol: h.TLSProtocol, Operation: hitOperation(h), Status: h.Status,
	}
	if r.Operation != OpRead {
		r.Path, r.User = h.Path, h.User
	}
	return r
}

// connectionTable is the connection records.
var connectionTable = newTable(tableConnections, func(d Databases) string { return d.Connections }, "ingested_at", []column[ConnectionRecord]{
	timeCol("event_time", func(r *ConnectionRecord) time.Time { return r.EventTime }),
	unhashed(timeCol("ingested_at", func(r *ConnectionRecord) time.Time { return r.Ingested })),
	ipCol("client_ip", func(r *ConnectionRecord) netip.Addr { return r.ClientIP }),
	u16Col("client_port", func(r *ConnectionRecord) uint16 { return r.ClientPort }),
	ipCol("server_addr", func(r *ConnectionRecord) netip.Addr { return r.ServerAddr }),
	u16Col("server_port", func(r *ConnectionRecord) uint16 { return r.ServerPort }),
	strCol("site", func(r *ConnectionRecord) string { return r.Site }),
	strCol("protocol", func(r *ConnectionRecord) string { return r.Protocol }),
	strCol("tls_protocol", func(r *ConnectionRecord) string { return r.TLSProtocol }),
	opCol("operation", func(r *ConnectionRecord) Operation { return r.Operation }),
	strCol("path", func(r *ConnectionRecord) string { return r.Path }),
	strCol("user", func(r *ConnectionRecord) string { return r.User }),
	u16Col("status", func(r *ConnectionRecord) uint16 { return r.Status }),
	strCol("kafka_topic", func(r *ConnectionRecord) string { return r.Source.Topic }),
	i32Col("kafka_partition", func(r *ConnectionRecord) int32 { return r.Source.Partition }),
	i64Col("kafka_offset", func(r *ConnectionRecord) int64 { return r.Source.Offset }),
})

// quarantineTable is the quarantine (operations data, 30 days): a
// [Quarantined] message.
var quarantineTable = newTable(tableQuarantine, func(d Databases) string { return d.Ops }, "received_at", []column[Quarantined]{
	timeCol("received_at", func(q *Quarantined) time.Time { return q.Received }),
	strCol("kafka_topic", func(q *Quarantined) string { return q.Source.Topic }),
	i32Col("kafka_partition", func(q *Quarantined) int32 { return q.Source.Partition }),
	i64Col("kafka_offset", func(q *Quarantined) int64 { return q.Source.Offset }),
	strCol("reason", func(q *Quarantined) string { return q.Reason }),
	strCol("raw", func(q *Quarantined) string { return string(q.Raw) }),
})

// hashLayouts are the protected tables by short name.
var hashLayouts = map[string]*hashTable{
	tableAccess:      accessTable.hash,
	tableConnections: connectionTable.hash,
	tableQuarantine:  quarantineTable.hash,
}

// column is one stored column of a table whose rows are built from values
// of type T (Hit, ConnectionRecord, Quarantined).
type column[T any] struct {
	hashColumn[T]
	// chType is the engine's type of the column, as system.columns names it
	// (without LowCardinality), checked by the tests against the DDL.
	chType string
	// unhashed: stored but not signed (see table.hash).
	unhashed bool
	// fill returns a buffer of the column's values for n rows, typed for
	// the insert.
	fill func(n int) columnBuffer[T]
	// native appends the column's values for rows in the Native format
	// (nativeInsert): the same value fill stores, encoded as chType.
	native func(dst []byte, rows []T) []byte
}

// columnBuffer holds the values of one column of an insert.
type columnBuffer[T any] interface {
	// set stores the values of rows, the rows from index at.
	set(at int, rows []T)
	// values is what the batch column appends.
	values() any
	// resize makes room for n rows; release drops the values (and what
	// they reference) so that the buffer can serve another insert.
	resize(n int)
	release()
}

type bufferOf[T, V any] struct {
	get  func(*T) V
	vals []V
}

func (b *bufferOf[T, V]) set(at int, rows []T) {
	vals := b.vals[at : at+len(rows)]
	for i := range rows {
		vals[i] = b.get(&rows[i])
	}
}

func (b *bufferOf[T, V]) values() any { return b.vals }

func (b *bufferOf[T, V]) resize(n int) {
	if cap(b.vals) < n {
		b.vals = make([]V, n)
	}
	b.vals = b.vals[:n]
}

func (b *bufferOf[T, V]) release() {
	clear(b.vals)
	b.vals = b.vals[:0]
}

// fillOf builds a column's fill from the typed value Write stores.
func fillOf[T, V any](get func(*T) V) func(int) columnBuffer[T] {
	return func(n int) columnBuffer[T] { return &bufferOf[T, V]{get: get, vals: make([]V, n)} }
}

func strCol[T any](name string, f func(*T) string) column[T] {
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindString, str: f}, chType: "String", fill: fillOf(f),
		native: func(dst []byte, rows []T) []byte {
			for i := range rows {
				v := f(&rows[i])
				dst = binary.AppendUvarint(dst, uint64(len(v)))
				dst = append(dst, v...)
			}
			return dst
		}}
}
func u16Col[T any](name string, f func(*T) uint16) column[T] {
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindUint, num: func(t *T) uint64 { return uint64(f(t)) }},
		chType: "UInt16", fill: fillOf(f), native: nativeOf(f, binary.LittleEndian.AppendUint16)}
}
func u64Col[T any](name string, f func(*T) uint64) column[T] {
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindUint, num: f}, chType: "UInt64", fill: fillOf(f),
		native: nativeOf(f, binary.LittleEndian.AppendUint64)}
}
func i32Col[T any](name string, f func(*T) int32) column[T] {
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindInt, int: func(t *T) int64 { return int64(f(t)) }},
		chType: "Int32", fill: fillOf(f), native: nativeOf(func(t *T) uint32 { return uint32(f(t)) }, binary.LittleEndian.AppendUint32)}
}
func i64Col[T any](name string, f func(*T) int64) column[T] {
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindInt, int: f}, chType: "Int64", fill: fillOf(f),
		native: nativeOf(func(t *T) uint64 { return uint64(f(t)) }, binary.LittleEndian.AppendUint64)}
}

// timeCol is a DateTime64(3): milliseconds since the epoch (Native: Int64).
func timeCol[T any](name string, f func(*T) time.Time) column[T] {
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindMillis, int: func(t *T) int64 { return f(t).UnixMilli() }},
		chType: "DateTime64(3, 'UTC')", fill: fillOf(f),
		native: nativeOf(func(t *T) uint64 { return uint64(f(t).UnixMilli()) }, binary.LittleEndian.AppendUint64)}
}

// ipCol stores an address as IPv6 (see addr16; Native: the 16 bytes in
// network order).
func ipCol[T any](name string, f func(*T) netip.Addr) column[T] {
	g := func(t *T) [16]byte { return addr16(f(t)) }
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindIP, ip: g}, chType: "IPv6", fill: fillOf(g),
		native: func(dst []byte, rows []T) []byte {
			for i := range rows {
				a := g(&rows[i])
				dst = append(dst, a[:]...)
			}
			return dst
		}}
}
func boolCol[T any](name string, f func(*T) bool) column[T] {
	return column[T]{hashColumn: hashColumn[T]{name: name, kind: kindBool, flag: f}, chType: "Bool", fill: fillOf(f),
		native: nativeOf(func(t *T) uint8 {
			if f(t) {
				return 1
			}
			return 0
		}, func(b []byte, v uint8) []byte { return append(b, v) })}
}

// opCol stores an [Operation] in its Enum8 column by value; the hash
// encodes it by name.
func opCol[T any](name string, f func(*T) Operation) column[T] {
	return column[T]{
		hashColumn: hashColumn[T]{name: name, kind: kindString, str: func(t *T) string { return f(t).String() }},
		chType:     "Enum8('read' = 1, 'create' = 2, 'modify' = 3, 'delete' = 4)",
		fill:       fillOf(func(t *T) int8 { return int8(f(t)) }),
		native:     nativeOf(func(t *T) uint8 { return uint8(f(t)) }, func(b []byte, v uint8) []byte { return append(b, v) }),
	}
}

// nativeOf is the Native encoder of a fixed-width column: put appends one
// value, little-endian.
func nativeOf[T, V any](get func(*T) V, put func([]byte, V) []byte) func([]byte, []T) []byte {
	return func(dst []byte, rows []T) []byte {
		for i := range rows {
			dst = put(dst, get(&rows[i]))
		}
		return dst
	}
}

// detail marks a column a column TTL may blank before the row expires
// (retention.access_detail): the hash covers it apart, in DetailHash.
func detail[T any](c column[T]) column[T] { c.detail = true; return c }

// unhashed marks a column stored but not signed. ingested_at is when
// connlog received the message: it says nothing about the request, and it
// lets verify tell apart rows that share a Kafka offset after an offset
// regression (see readChainRows).
func unhashed[T any](c column[T]) column[T] { c.unhashed = true; return c }

// table is one stored table, its rows built from values of type T.
type table[T any] struct {
	name   string                        // short name
	db     func(Databases) string        // the database of its data class
	cols   []column[T]                   // every stored column, in list order
	list   string                        // the column names, comma-separated
	hash   *hashTable                    // the hashed columns (hash version 2)
	encode func(*encoder, *T) encodedRow // hash version 2 of a row, appended to an arena
	hashed []hashColumn[T]               // the hashed columns
}

func newTable[T any](name string, db func(Databases) string, arrival string, cols []column[T]) *table[T] {
	t := &table[T]{name: name, db: db, cols: cols}
	var names []string
	for _, c := range cols {
		names = append(names, c.name)
		if !c.unhashed {
			t.hashed = append(t.hashed, c.hashColumn)
		}
	}
	t.list = strings.Join(names, ", ")
	t.hash, t.encode = newHashTable(name, arrival, t.hashed)
	return t
}

// withV1 sets the columns of hash version 1, by name, in its order; the
// detail ones must be the columns marked detail.
func (t *table[T]) withV1(cols, detailCols []string) *table[T] {
	var marked []string
	for _, c := range t.cols {
		if c.detail {
			marked = append(marked, c.name)
		}
	}
	if !sameSet(marked, detailCols) {
		panic("table " + t.name + ": detail columns " + strings.Join(marked, ",") + " are not " + strings.Join(detailCols, ","))
	}
	t.hash.withV1(cols, detailCols)
	return t
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// hashTableFull is the full name of the protected table of short name
// table in the databases d.
func hashTableFull(table string, d Databases) string {
	switch table {
	case tableAccess:
		return accessTable.full(d)
	case tableConnections:
		return connectionTable.full(d)
	}
	return quarantineTable.full(d)
}

// columns is the number of the table's stored columns.
func (t *table[T]) columns() int { return len(t.cols) }

// full is the table's name qualified by its database.
func (t *table[T]) full(d Databases) string { return t.db(d) + "." + t.name }

// fillBlock is how many rows appendRows fills column by column at a time:
// few enough that they stay in the CPU cache while every column reads
// them, rather than each column streaming the whole batch from memory.
const fillBlock = 128

// appendRows appends the rows of segs, in order, to bt, whose INSERT names
// t.list, with column buffers from pool (kept for the next insert:
// clickhouse-go copies the values into its own columns).
func (t *table[T]) appendRows(pool *sync.Pool, bt driver.Batch, segs [][]T) error {
	bufs := t.buffers(pool, rowCount(segs))
	defer t.release(pool, bufs)
	base := 0
	for _, rows := range segs {
		for lo := 0; lo < len(rows); lo += fillBlock {
			block := rows[lo:min(lo+fillBlock, len(rows))]
			for _, b := range bufs {
				b.set(base+lo, block)
			}
		}
		base += len(rows)
	}
	return t.appendBuffers(bt, bufs)
}

// appendConverted appends to bt, whose INSERT names t.list, the rows conv
// makes of the rows of segs, in order, a block at a time (no slice of
// every converted row).
func appendConverted[S, T any](t *table[T], pool *sync.Pool, bt driver.Batch, segs [][]S, conv func(*S) T) error {
	n := rowCount(segs)
	bufs := t.buffers(pool, n)
	defer t.release(pool, bufs)
	block := make([]T, min(fillBlock, n))
	base := 0
	for _, src := range segs {
		for lo := 0; lo < len(src); lo += fillBlock {
			b := block[:min(fillBlock, len(src)-lo)]
			for i := range b {
				b[i] = conv(&src[lo+i])
			}
			for _, c := range bufs {
				c.set(base+lo, b)
			}
		}
		base += len(src)
	}
	return t.appendBuffers(bt, bufs)
}

// rowCount is the number of rows of segs.
func rowCount[S any](segs [][]S) int {
	n := 0
	for _, s := range segs {
		n += len(s)
	}
	return n
}

// buffers returns column buffers for n rows, from pool when it has some.
func (t *table[T]) buffers(pool *sync.Pool, n int) []columnBuffer[T] {
	if bufs, ok := pool.Get().([]columnBuffer[T]); ok {
		for _, b := range bufs {
			b.resize(n)
		}
		return bufs
	}
	bufs := make([]columnBuffer[T], len(t.cols))
	for i, c := range t.cols {
		bufs[i] = c.fill(n)
	}
	return bufs
}

// release returns bufs to pool, emptied.
func (t *table[T]) release(pool *sync.Pool, bufs []columnBuffer[T]) {
	for _, b := range bufs {
		b.release()
	}
	pool.Put(bufs) //nolint:staticcheck // SA6002: a slice header per insert, against megabytes of buffers
}

func (t *table[T]) appendBuffers(bt driver.Batch, bufs []columnBuffer[T]) error {
	for i, b := range bufs {
		if err := bt.Column(i).Append(b.values()); err != nil {
			return fmt.Errorf("column %s: %w", t.cols[i].name, err)
		}
	}
	return nil
}

// values returns the hashed values of src in layout order, as verify
// reads them back (hashTable.scanner).
func (t *table[T]) values(src *T) []any {
	out := make([]any, len(t.hashed))
	for i, c := range t.hashed {
		switch c.kind {
		case kindString:
			out[i] = c.str(src)
		case kindUint:
			out[i] = c.num(src)
		case kindInt, kindMillis:
			out[i] = c.int(src)
		case kindIP:
			out[i] = c.ip(src)
		case kindBool:
			out[i] = c.flag(src)
		}
	}
	return out
}

// unhashedColumns returns the stored columns of the protected tables that
// the hash leaves out.
func unhashedColumns() map[string]bool {
	out := map[string]bool{}
	add := func(name string, u bool) {
		if u {
			out[name] = true
		}
	}
	for _, c := range accessTable.cols {
		add(c.name, c.unhashed)
	}
	for _, c := range connectionTable.cols {
		add(c.name, c.unhashed)
	}
	for _, c := range quarantineTable.cols {
		add(c.name, c.unhashed)
	}
	return out
}
