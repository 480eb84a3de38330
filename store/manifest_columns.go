package store

import (
	"fmt"
	"net"
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
// it for a source row of type T (*Hit or *Quarantined).
type hashColumn[T any] struct {
	name string
	kind hashKind
	// detail: a column TTL may blank it before the row expires
	// (retention.access_detail): hashed apart, into the group's DetailHash.
	detail bool
	value  func(*T) any
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

func newHashTable[T any](name, arrival string, cols []hashColumn[T]) (*hashTable, func(*T) []any) {
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
	values := func(src *T) []any {
		out := make([]any, len(cols))
		for i, c := range cols {
			out[i] = c.value(src)
		}
		return out
	}
	return t, values
}

func hitOperation(h *Hit) Operation {
	if h.Operation == OpUnknown {
		return OperationOfMethod(h.Method)
	}
	return h.Operation
}

var accessLayout, accessValues = newHashTable(tableAccess, "ingested_at", []hashColumn[Hit]{
	{name: "event_time", kind: kindMillis, value: func(h *Hit) any { return h.EventTime.UnixMilli() }},
	{name: "client_ip", kind: kindIP, value: func(h *Hit) any { return addr16(h.ClientIP) }},
	{name: "client_port", kind: kindUint, value: func(h *Hit) any { return uint64(h.ClientPort) }},
	{name: "peer_ip", kind: kindIP, value: func(h *Hit) any { return addr16(h.PeerIP) }},
	{name: "forwarded_for", kind: kindString, detail: true, value: func(h *Hit) any { return h.ForwardedFor }},
	{name: "server_addr", kind: kindIP, value: func(h *Hit) any { return addr16(h.ServerAddr) }},
	{name: "server_port", kind: kindUint, value: func(h *Hit) any { return uint64(h.ServerPort) }},
	{name: "site", kind: kindString, value: func(h *Hit) any { return h.Site }},
	{name: "method", kind: kindString, value: func(h *Hit) any { return h.Method }},
	{name: "path", kind: kindString, value: func(h *Hit) any { return h.Path }},
	{name: "query", kind: kindString, detail: true, value: func(h *Hit) any { return h.Query }},
	{name: "protocol", kind: kindString, value: func(h *Hit) any { return h.Protocol }},
	{name: "status", kind: kindUint, value: func(h *Hit) any { return uint64(h.Status) }},
	{name: "bytes_sent", kind: kindUint, value: func(h *Hit) any { return h.BytesSent }},
	{name: "referer", kind: kindString, detail: true, value: func(h *Hit) any { return h.Referer }},
	{name: "user_agent", kind: kindString, detail: true, value: func(h *Hit) any { return h.UserAgent }},
	{name: "request_time_us", kind: kindUint, value: func(h *Hit) any { return uint64(h.RequestTime / 1000) }},
	{name: "upstream", kind: kindString, value: func(h *Hit) any { return h.Upstream }},
	{name: "request_id", kind: kindString, value: func(h *Hit) any { return h.RequestID }},
	{name: "user", kind: kindString, value: func(h *Hit) any { return h.User }},
	{name: "tls_protocol", kind: kindString, value: func(h *Hit) any { return h.TLSProtocol }},
	{name: "kafka_topic", kind: kindString, value: func(h *Hit) any { return h.Source.Topic }},
	{name: "kafka_partition", kind: kindInt, value: func(h *Hit) any { return int64(h.Source.Partition) }},
	{name: "kafka_offset", kind: kindInt, value: func(h *Hit) any { return h.Source.Offset }},
	{name: "operation", kind: kindString, value: func(h *Hit) any { return hitOperation(h).String() }},
	{name: "opt_out", kind: kindBool, value: func(h *Hit) any { return h.OptOut }},
	{name: "shipper_host", kind: kindString, value: func(h *Hit) any { return h.ShipperHost }},
	{name: "log_file", kind: kindString, value: func(h *Hit) any { return h.LogFile }},
})

// connectionLayout: path and user are stored only for what a person
// created, changed or deleted (CPCE L34-1 VI), as Write stores them.
var connectionLayout, connectionValues = newHashTable(tableConnections, "ingested_at", []hashColumn[Hit]{
	{name: "event_time", kind: kindMillis, value: func(h *Hit) any { return h.EventTime.UnixMilli() }},
	{name: "client_ip", kind: kindIP, value: func(h *Hit) any { return addr16(h.ClientIP) }},
	{name: "client_port", kind: kindUint, value: func(h *Hit) any { return uint64(h.ClientPort) }},
	{name: "server_addr", kind: kindIP, value: func(h *Hit) any { return addr16(h.ServerAddr) }},
	{name: "server_port", kind: kindUint, value: func(h *Hit) any { return uint64(h.ServerPort) }},
	{name: "site", kind: kindString, value: func(h *Hit) any { return h.Site }},
	{name: "protocol", kind: kindString, value: func(h *Hit) any { return h.Protocol }},
	{name: "tls_protocol", kind: kindString, value: func(h *Hit) any { return h.TLSProtocol }},
	{name: "operation", kind: kindString, value: func(h *Hit) any { return hitOperation(h).String() }},
	{name: "path", kind: kindString, value: func(h *Hit) any { return unlessRead(h, h.Path) }},
	{name: "user", kind: kindString, value: func(h *Hit) any { return unlessRead(h, h.User) }},
	{name: "status", kind: kindUint, value: func(h *Hit) any { return uint64(h.Status) }},
	{name: "kafka_topic", kind: kindString, value: func(h *Hit) any { return h.Source.Topic }},
	{name: "kafka_partition", kind: kindInt, value: func(h *Hit) any { return int64(h.Source.Partition) }},
	{name: "kafka_offset", kind: kindInt, value: func(h *Hit) any { return h.Source.Offset }},
})

func unlessRead(h *Hit, v string) string {
	if hitOperation(h) == OpRead {
		return ""
	}
	return v
}

var quarantineLayout, quarantineValues = newHashTable(tableQuarantine, "received_at", []hashColumn[Quarantined]{
	{name: "received_at", kind: kindMillis, value: func(q *Quarantined) any { return q.Received.UnixMilli() }},
	{name: "kafka_topic", kind: kindString, value: func(q *Quarantined) any { return q.Source.Topic }},
	{name: "kafka_partition", kind: kindInt, value: func(q *Quarantined) any { return int64(q.Source.Partition) }},
	{name: "kafka_offset", kind: kindInt, value: func(q *Quarantined) any { return q.Source.Offset }},
	{name: "reason", kind: kindString, value: func(q *Quarantined) any { return q.Reason }},
	{name: "raw", kind: kindString, value: func(q *Quarantined) any { return string(q.Raw) }},
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
			if v.(bool) {
				enc.b = append(enc.b, 1)
			} else {
				enc.b = append(enc.b, 0)
			}
		}
	}
	r.data = e.b
	if hasDetail {
		r.detail = d.b
	}
	return r
}
