package store

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// The manifest hash of the rows of the tables described in tables.go. Hash
// version 2 encodes, for every row, every stored column of its table but
// the unhashed ones, in the order listed there; verify reads the same
// columns back by the same list, and a test compares each list with the
// engine's system.columns, so a column added to a table without being
// added there fails the tests instead of escaping the hash.
//
// The lists of a version are frozen once released: adding, removing or
// reordering a column changes the hash of every row, so it needs a new
// version (and a new Manifest.computeHash case), with this one kept for
// the manifests already written under it.

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
	// v1 and v1Detail are the indexes of the columns hash version 1
	// encodes, in its order; nil: version 1 encoded the row as version 2.
	v1, v1Detail []int
}

func newHashTable[T any](name, arrival string, cols []hashColumn[T]) (*hashTable, func(*encoder, *T) encodedRow) {
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
	// hashTable.encode gives for the row read back. It appends the row's
	// encoding to the arena a batch shares (one allocation per batch
	// rather than several per row): first the columns the row hash covers,
	// then the detail columns, each in list order.
	hasDetail := slices.ContainsFunc(cols, func(c hashColumn[T]) bool { return c.detail })
	encode := func(arena *encoder, src *T) encodedRow {
		r := encodedRow{offset: cols[t.offset].int(src), day: dayOf(time.UnixMilli(cols[t.time].int(src)))}
		if t.site >= 0 {
			r.site = cols[t.site].str(src)
		}
		start := len(arena.b)
		for i := range cols {
			if !cols[i].detail {
				encodeColumn(arena, &cols[i], src)
			}
		}
		mid := len(arena.b)
		if hasDetail {
			for i := range cols {
				if cols[i].detail {
					encodeColumn(arena, &cols[i], src)
				}
			}
			r.detail = arena.b[mid:len(arena.b):len(arena.b)]
		}
		r.data = arena.b[start:mid:mid]
		return r
	}
	return t, encode
}

// encodeColumn appends the value of column c in src to e.
func encodeColumn[T any](e *encoder, c *hashColumn[T], src *T) {
	switch c.kind {
	case kindString:
		e.str(c.str(src))
	case kindUint:
		e.u64(c.num(src))
	case kindInt, kindMillis:
		e.i64(c.int(src))
	case kindIP:
		e.ip(c.ip(src))
	case kindBool:
		e.flag(c.flag(src))
	}
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
	r := t.rowOf(vals)
	hasDetail := false
	for i, v := range vals {
		enc := &e
		if t.detail[i] {
			enc, hasDetail = &d, true
		}
		enc.value(t.kinds[i], v)
	}
	r.data = e.b
	if hasDetail {
		r.detail = d.b
	}
	return r
}

// encodeV1 is hash version 1 of one row, given as encode takes it.
func (t *hashTable) encodeV1(vals []any) encodedRow {
	if t.v1 == nil {
		return t.encode(vals)
	}
	var e, d encoder
	r := t.rowOf(vals)
	for _, i := range t.v1 {
		e.value(t.kinds[i], vals[i])
	}
	for _, i := range t.v1Detail {
		d.value(t.kinds[i], vals[i])
	}
	r.data, r.detail = e.b, d.b
	return r
}

// withV1 sets the columns of hash version 1, by name, in its order.
func (t *hashTable) withV1(cols, detail []string) *hashTable {
	index := func(names []string) []int {
		var out []int
		for _, n := range names {
			i := slices.Index(t.names, n)
			if i < 0 {
				panic("manifest layout " + t.name + ": no column " + n)
			}
			out = append(out, i)
		}
		return out
	}
	t.v1, t.v1Detail = index(cols), index(detail)
	return t
}

// rowOf is the grouping and order of a row, without its encoding.
func (t *hashTable) rowOf(vals []any) encodedRow {
	r := encodedRow{offset: vals[t.offset].(int64), day: dayOf(time.UnixMilli(vals[t.time].(int64)))}
	if t.site >= 0 {
		r.site = vals[t.site].(string)
	}
	return r
}

// value encodes one value of a column of kind k, as scanned or as
// table.values gives it.
func (e *encoder) value(k hashKind, v any) {
	switch k {
	case kindString:
		e.str(v.(string))
	case kindUint:
		e.u64(v.(uint64))
	case kindInt, kindMillis:
		e.i64(v.(int64))
	case kindIP:
		e.ip(v.([16]byte))
	case kindBool:
		e.flag(v.(bool))
	}
}
