package store

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// The tables under the manifest hash, described once. Hash version 2
// encodes, for every row, every stored column of its table but the ones
// in unhashedColumns, in the order listed here; verify reads the same
// columns back by the same list, and a test compares each list with the
// engine's system.columns, so a column added to a table without being
// added here fails the tests instead of escaping the hash.
//
// The lists of a version are frozen once released: adding, removing or
// reordering a column changes the hash of every row, so it needs a new
// version (and a new Manifest.computeHash case), with this one kept for
// the manifests already written under it.

// unhashedColumns are stored but not signed. ingested_at is when connlog
// received the message: it says nothing about the request, and it lets
// verify tell apart rows that share a Kafka offset after an offset
// regression (see readChainRows).
var unhashedColumns = map[string]bool{"ingested_at": true}

// hashKind says how a column is read back and encoded.
type hashKind uint8

const (
	kindString hashKind = iota // String, LowCardinality, Enum (by name): length-prefixed bytes
	kindUint                   // unsigned integers: 8 bytes big-endian
	kindInt                    // signed integers: 8 bytes big-endian
	kindMillis                 // DateTime64(3): milliseconds since the epoch, 8 bytes
	kindIP                     // IPv6: the 16 stored bytes
	kindBool                   // Bool: one byte
)

// hashColumn is one column under the hash, with the value Write stores in
// it for a source row of type T (Hit or Quarantined): one of the typed
// functions, by kind (typed so that signing a batch allocates no value).
type hashColumn[T any] struct {
	name string
	kind hashKind
	// detail: a column TTL may blank it before the row expires
	// (retention.access_detail): hashed apart, into the group's DetailHash.
	detail bool
	str    func(*T) string   // kindString
	num    func(*T) uint64   // kindUint
	int    func(*T) int64    // kindInt, kindMillis
	ip     func(*T) [16]byte // kindIP
	flag   func(*T) bool     // kindBool
}

func strCol[T any](name string, f func(*T) string) hashColumn[T] {
	return hashColumn[T]{name: name, kind: kindString, str: f}
}
func detailCol[T any](name string, f func(*T) string) hashColumn[T] {
	return hashColumn[T]{name: name, kind: kindString, detail: true, str: f}
}
func uintCol[T any](name string, f func(*T) uint64) hashColumn[T] {
	return hashColumn[T]{name: name, kind: kindUint, num: f}
}
func intCol[T any](name string, f func(*T) int64) hashColumn[T] {
	return hashColumn[T]{name: name, kind: kindInt, int: f}
}
func timeCol[T any](name string, f func(*T) time.Time) hashColumn[T] {
	return hashColumn[T]{name: name, kind: kindMillis, int: func(t *T) int64 { return f(t).UnixMilli() }}
}
func ipCol[T any](name string, f func(*T) netip.Addr) hashColumn[T] {
	return hashColumn[T]{name: name, kind: kindIP, ip: func(t *T) [16]byte { return addr16(f(t)) }}
}
func boolCol[T any](name string, f func(*T) bool) hashColumn[T] {
	return hashColumn[T]{name: name, kind: kindBool, flag: f}
}

// hashTable is the layout of one protected table under hash version 2.
type hashTable struct {
	name    string // short name, as in manifests.db_table
	names   []string
	kinds   []hashKind
	detail  []bool
	offset  int    // index of kafka_offset
	time    int    // index of the column that dates the row (its expiry group)
	site    int    // index of site; -1: the table has none
	arrival string // column read with the rows, not hashed: when the row arrived
}

func newHashTable[T any](name, arrival string, cols []hashColumn[T]) (*hashTable, func(*T) encodedRow) {
	t := &hashTable{name: name, offset: -1, time: -1, site: -1, arrival: arrival}
	for i, c := range cols {
		t.names, t.kinds, t.detail = append(t.names, c.name), append(t.kinds, c.kind), append(t.detail, c.detail)
		switch {
		case c.name == "kafka_offset":
			t.offset = i
		case c.name == "site":
			t.site = i
		case c.kind == kindMillis && t.time < 0:
			t.time = i // the first time column: event_time, received_at
		}
	}
	if t.offset < 0 || t.time < 0 {
		panic("manifest layout " + name + ": no kafka_offset or time column")
	}
	// encode is hash version 2 of a source row, byte for byte what
	// hashTable.encode gives for the row read back.
	encode := func(src *T) encodedRow {
		var e, d encoder
		r := encodedRow{offset: cols[t.offset].int(src), day: dayOf(time.UnixMilli(cols[t.time].int(src)))}
		if t.site >= 0 {
			r.site = cols[t.site].str(src)
		}
		for _, c := range cols {
			enc := &e
			if c.detail {
				enc = &d
			}
			switch c.kind {
			case kindString:
				enc.str(c.str(src))
			case kindUint:
				enc.u64(c.num(src))
			case kindInt, kindMillis:
				enc.i64(c.int(src))
			case kindIP:
				enc.ip(c.ip(src))
			case kindBool:
				enc.flag(c.flag(src))
			}
		}
		r.data, r.detail = e.b, d.b
		return r
	}
	return t, encode
}

var accessLayout, encodeAccessV2 = newHashTable(tableAccess, "ingested_at", []hashColumn[Hit]{
	timeCol("event_time", func(h *Hit) time.Time { return h.EventTime }),
	ipCol("client_ip", func(h *Hit) netip.Addr { return h.ClientIP }),
	uintCol("client_port", func(h *Hit) uint64 { return uint64(h.ClientPort) }),
	ipCol("peer_ip", func(h *Hit) netip.Addr { return h.PeerIP }),
	detailCol("forwarded_for", func(h *Hit) string { return h.ForwardedFor }),
	ipCol("server_addr", func(h *Hit) netip.Addr { return h.ServerAddr }),
	uintCol("server_port", func(h *Hit) uint64 { return uint64(h.ServerPort) }),
	strCol("site", func(h *Hit) string { return h.Site }),
	strCol("method", func(h *Hit) string { return h.Method }),
	strCol("path", func(h *Hit) string { return h.Path }),
	detailCol("query", func(h *Hit) string { return h.Query }),
	strCol("protocol", func(h *Hit) string { return h.Protocol }),
	uintCol("status", func(h *Hit) uint64 { return uint64(h.Status) }),
	uintCol("bytes_sent", func(h *Hit) uint64 { return h.BytesSent }),
	detailCol("referer", func(h *Hit) string { return h.Referer }),
	detailCol("user_agent", func(h *Hit) string { return h.UserAgent }),
	uintCol("request_time_us", func(h *Hit) uint64 { return uint64(h.RequestTime / 1000) }),
	strCol("upstream", func(h *Hit) string { return h.Upstream }),
	strCol("request_id", func(h *Hit) string { return h.RequestID }),
	strCol("user", func(h *Hit) string { return h.User }),
	strCol("tls_protocol", func(h *Hit) string { return h.TLSProtocol }),
	strCol("kafka_topic", func(h *Hit) string { return h.Source.Topic }),
	intCol("kafka_partition", func(h *Hit) int64 { return int64(h.Source.Partition) }),
	intCol("kafka_offset", func(h *Hit) int64 { return h.Source.Offset }),
	strCol("operation", func(h *Hit) string { return hitOperation(h).String() }),
	boolCol("opt_out", func(h *Hit) bool { return h.OptOut }),
	strCol("shipper_host", func(h *Hit) string { return h.ShipperHost }),
	strCol("log_file", func(h *Hit) string { return h.LogFile }),
	strCol("client_text", func(h *Hit) string { return h.ClientText }),
	strCol("raw_request", func(h *Hit) string { return h.RawRequest }),
	boolCol("has_referer", (*Hit).RefererSent),
	boolCol("has_user_agent", (*Hit).UserAgentSent),
})

// connectionLayout: path and user are stored only for what a person
// created, changed or deleted (CPCE L34-1 VI), as Write stores them.
var connectionLayout, encodeConnectionV2 = newHashTable(tableConnections, "ingested_at", []hashColumn[Hit]{
	timeCol("event_time", func(h *Hit) time.Time { return h.EventTime }),
	ipCol("client_ip", func(h *Hit) netip.Addr { return h.ClientIP }),
	uintCol("client_port", func(h *Hit) uint64 { return uint64(h.ClientPort) }),
	ipCol("server_addr", func(h *Hit) netip.Addr { return h.ServerAddr }),
	uintCol("server_port", func(h *Hit) uint64 { return uint64(h.ServerPort) }),
	strCol("site", func(h *Hit) string { return h.Site }),
	strCol("protocol", func(h *Hit) string { return h.Protocol }),
	strCol("tls_protocol", func(h *Hit) string { return h.TLSProtocol }),
	strCol("operation", func(h *Hit) string { return hitOperation(h).String() }),
	strCol("path", func(h *Hit) string { return unlessRead(h, h.Path) }),
	strCol("user", func(h *Hit) string { return unlessRead(h, h.User) }),
	uintCol("status", func(h *Hit) uint64 { return uint64(h.Status) }),
	strCol("kafka_topic", func(h *Hit) string { return h.Source.Topic }),
	intCol("kafka_partition", func(h *Hit) int64 { return int64(h.Source.Partition) }),
	intCol("kafka_offset", func(h *Hit) int64 { return h.Source.Offset }),
})

func unlessRead(h *Hit, v string) string {
	if hitOperation(h) == OpRead {
		return ""
	}
	return v
}

var quarantineLayout, encodeQuarantineV2 = newHashTable(tableQuarantine, "received_at", []hashColumn[Quarantined]{
	timeCol("received_at", func(q *Quarantined) time.Time { return q.Received }),
	strCol("kafka_topic", func(q *Quarantined) string { return q.Source.Topic }),
	intCol("kafka_partition", func(q *Quarantined) int64 { return int64(q.Source.Partition) }),
	intCol("kafka_offset", func(q *Quarantined) int64 { return q.Source.Offset }),
	strCol("reason", func(q *Quarantined) string { return q.Reason }),
	strCol("raw", func(q *Quarantined) string { return string(q.Raw) }),
})

// hashLayouts are the protected tables by short name.
var hashLayouts = map[string]*hashTable{
	tableAccess:      accessLayout,
	tableConnections: connectionLayout,
	tableQuarantine:  quarantineLayout,
}

// selectList reads the hashed columns back, then the arrival column.
func (t *hashTable) selectList() string {
	var b strings.Builder
	for i, n := range append(t.names[:len(t.names):len(t.names)], t.arrival) {
		if i > 0 {
			b.WriteString(", ")
		}
		k := kindMillis
		if i < len(t.kinds) {
			k = t.kinds[i]
		}
		switch k {
		case kindString:
			fmt.Fprintf(&b, "toString(%s)", n)
		case kindUint:
			fmt.Fprintf(&b, "toUInt64(%s)", n)
		case kindInt:
			fmt.Fprintf(&b, "toInt64(%s)", n)
		case kindMillis:
			fmt.Fprintf(&b, "toUnixTimestamp64Milli(%s)", n)
		default:
			b.WriteString(n)
		}
	}
	return b.String()
}

// scanner returns scan destinations for selectList and a function that
// turns the scanned row into the values of the layout (as the value
// functions return them) and the arrival time in milliseconds.
func (t *hashTable) scanner() ([]any, func() ([]any, int64)) {
	dest := make([]any, len(t.names)+1)
	for i, k := range t.kinds {
		switch k {
		case kindString:
			dest[i] = new(string)
		case kindUint:
			dest[i] = new(uint64)
		case kindInt, kindMillis:
			dest[i] = new(int64)
		case kindIP:
			dest[i] = new(net.IP)
		case kindBool:
			dest[i] = new(bool)
		}
	}
	arrival := new(int64)
	dest[len(t.names)] = arrival
	return dest, func() ([]any, int64) {
		vals := make([]any, len(t.names))
		for i, d := range dest[:len(t.names)] {
			switch d := d.(type) {
			case *string:
				vals[i] = *d
			case *uint64:
				vals[i] = *d
			case *int64:
				vals[i] = *d
			case *net.IP:
				var a [16]byte
				copy(a[:], d.To16())
				vals[i] = a
			case *bool:
				vals[i] = *d
			}
		}
		return vals, *arrival
	}
}

// encode is hash version 2 of one row: every column in layout order,
// detail columns apart.
func (t *hashTable) encode(vals []any) encodedRow {
	var e, d encoder
	r := encodedRow{offset: vals[t.offset].(int64), day: dayOf(time.UnixMilli(vals[t.time].(int64)))}
	if t.site >= 0 {
		r.site = vals[t.site].(string)
	}
	hasDetail := false
	for i, v := range vals {
		enc := &e
		if t.detail[i] {
			enc, hasDetail = &d, true
		}
		switch t.kinds[i] {
		case kindString:
			enc.str(v.(string))
		case kindUint:
			enc.u64(v.(uint64))
		case kindInt, kindMillis:
			enc.i64(v.(int64))
		case kindIP:
			enc.ip(v.([16]byte))
		case kindBool:
			enc.flag(v.(bool))
		}
	}
	r.data = e.b
	if hasDetail {
		r.detail = d.b
	}
	return r
}
