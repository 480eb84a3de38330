package store

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The embedded engine's inserts are encoded by the store itself, in the
// Native format, straight from the table descriptions (tables.go): one pass
// over the rows a block at a time, into one buffer per column, then one
// body. Through clickhouse-go's batch API the same rows were first copied
// into a slice per column, then into clickhouse-go's own columns (growing
// them row by row), then encoded again: a fifth of connlog's Go CPU per
// line. The statement and its data go in one request body, as ClickHouse's
// HTTP interface reads them ("INSERT ... FORMAT Native", a line break, the
// block), which connlog's engine adapter streams to the engine (package
// embedded). A ClickHouse server is written through the batch API as
// before: how it reads an inline binary block after the statement is not
// something this project can test.

// nativeColumns are the column buffers of one insert, recycled through a
// pool per table.
type nativeColumns struct{ cols [][]byte }

// nativeBody returns the whole request body that inserts the rows of
// segs, in order, converted by conv (nil: they are rows of t already), into
// t (qualified name full).
func nativeBody[S, T any](t *table[T], pool *sync.Pool, full string, segs [][]S, conv func(*S) T) string {
	nc, _ := pool.Get().(*nativeColumns)
	if nc == nil {
		nc = &nativeColumns{cols: make([][]byte, len(t.cols))}
	}
	defer pool.Put(nc)
	for i := range nc.cols {
		nc.cols[i] = nc.cols[i][:0]
	}
	n := rowCount(segs)
	// A block of rows at a time, every column reading it while it is in
	// the CPU cache (see fillBlock).
	var block []T
	if conv != nil {
		block = make([]T, min(fillBlock, n))
	}
	for _, src := range segs {
		rows, _ := any(src).([]T)
		for lo := 0; lo < len(src); lo += fillBlock {
			hi := min(lo+fillBlock, len(src))
			var b []T
			if conv == nil {
				b = rows[lo:hi]
			} else {
				b = block[:hi-lo]
				for i := range b {
					b[i] = conv(&src[lo+i])
				}
			}
			for i := range t.cols {
				nc.cols[i] = t.cols[i].native(nc.cols[i], b)
			}
		}
	}
	clear(block)
	head := "INSERT INTO " + full + " (" + t.list + ") FORMAT Native\n"
	size := len(head) + 2*binary.MaxVarintLen64
	for i, c := range t.cols {
		size += len(c.name) + len(c.chType) + 2*binary.MaxVarintLen64 + len(nc.cols[i])
	}
	// A string, as Exec takes the statement, built once: never pooled, as
	// the HTTP transport may still read a body after the response came (an
	// early error).
	var body strings.Builder
	body.Grow(size)
	var scratch [binary.MaxVarintLen64]byte
	uvarint := func(v int) { body.Write(binary.AppendUvarint(scratch[:0], uint64(v))) }
	body.WriteString(head)
	uvarint(len(t.cols))
	uvarint(n)
	for i, c := range t.cols {
		uvarint(len(c.name))
		body.WriteString(c.name)
		// LowCardinality columns are sent as their value type, which
		// the engine converts on input (see insertTypes).
		uvarint(len(c.chType))
		body.WriteString(c.chType)
		body.Write(nc.cols[i])
	}
	return body.String()
}

// nativeFramable reports whether a block of n columns can follow its
// statement in one body: the data starts after the blanks and the one line
// break that end "FORMAT Native", so the block's first byte (its column
// count, a varint) must be none of those. A table of 9, 10, 13 or 32
// columns is written through the batch API instead.
func nativeFramable(n int) bool {
	first := binary.AppendUvarint(nil, uint64(n))[0]
	return first != ' ' && first != '\t' && first != '\n' && first != '\r'
}

// insertTable inserts the rows of segs, in order, converted by conv (nil:
// they are rows of t), into t, deduplicated by token: as one Native body on
// the embedded engine, else through clickhouse-go's batch API with buffers
// from pool.
func insertTable[S, T any](ctx context.Context, s *Store, token string, t *table[T], pool *sync.Pool, segs [][]S, conv func(*S) T) error {
	full := t.full(s.db)
	if s.nativeInserts && nativeFramable(len(t.cols)) {
		body := nativeBody(t, pool, full, segs, conv)
		return s.insertWith(ctx, token, func(ctx context.Context) error {
			return s.conn.Exec(ctx, body)
		})
	}
	return s.insert(ctx, token, full, t.list, func(bt driver.Batch) error {
		if conv == nil {
			return t.appendRows(pool, bt, any(segs).([][]T))
		}
		return appendConverted(t, pool, bt, segs, conv)
	})
}
