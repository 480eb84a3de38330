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

// encodeColumns encodes the rows of segs, in order, converted by conv
// (nil: they are rows of t already), into the column buffers of a Native
// block of t, from pool (the caller puts them back), and returns them with
// the number of rows.
func encodeColumns[S, T any](t *table[T], pool *sync.Pool, segs [][]S, conv func(*S) T) (*nativeColumns, int) {
	nc, _ := pool.Get().(*nativeColumns)
	if nc == nil {
		nc = &nativeColumns{cols: make([][]byte, len(t.cols))}
	}
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
	return nc, n
}

// nativeBlock is a Native block of a table, encoded: its column data, in
// buffers of the table's pool, and its row count.
type nativeBlock struct {
	cols *nativeColumns
	rows int
}

// encodeBlock encodes the rows of segs (as encodeColumns takes them) as a
// block of t, in buffers of pool that its owner puts back.
func encodeBlock[S, T any](t *table[T], pool *sync.Pool, segs [][]S, conv func(*S) T) *nativeBlock {
	nc, n := encodeColumns(t, pool, segs, conv)
	return &nativeBlock{cols: nc, rows: n}
}

// blockSize is the size of the Native block of t whose column data nc
// holds.
func blockSize[T any](t *table[T], nc *nativeColumns) int {
	size := 2 * binary.MaxVarintLen64
	for i, c := range t.cols {
		size += len(c.name) + len(c.chType) + 2*binary.MaxVarintLen64 + len(nc.cols[i])
	}
	return size
}

// writeBlock writes the Native block of t, rows rows, whose column data nc
// holds, to w.
func writeBlock[T any](w *strings.Builder, t *table[T], nc *nativeColumns, rows int) {
	var scratch [binary.MaxVarintLen64]byte
	uvarint := func(v int) { w.Write(binary.AppendUvarint(scratch[:0], uint64(v))) }
	uvarint(len(t.cols))
	uvarint(rows)
	for i, c := range t.cols {
		uvarint(len(c.name))
		w.WriteString(c.name)
		// LowCardinality columns are sent as their value type, which
		// the engine converts on input (see insertTypes).
		uvarint(len(c.chType))
		w.WriteString(c.chType)
		w.Write(nc.cols[i])
	}
}

// nativeBody returns the whole request body that inserts the rows of
// segs, in order, converted by conv (nil: they are rows of t already), into
// t (qualified name full): one Native block per segment (a batch), the
// block pre holds for it when Store.Prepare encoded it ahead, else encoded
// here. The engine squashes them into one block per partition
// (min_insert_block_size_rows), so a round is still one part per table and
// day. One block per batch whichever way it was encoded, because the
// engine derives an insert's deduplication from its token and its blocks:
// the same rows retried under the same token as one block instead of two
// are stored again.
func nativeBody[S, T any](t *table[T], pool *sync.Pool, full string, segs [][]S, conv func(*S) T, pre []*nativeBlock) string {
	head := "INSERT INTO " + full + " (" + t.list + ") FORMAT Native\n"
	blocks := make([]*nativeBlock, len(segs))
	for i := range segs {
		if i < len(pre) && pre[i] != nil {
			blocks[i] = pre[i]
			continue
		}
		blocks[i] = encodeBlock(t, pool, segs[i:i+1], conv)
		defer pool.Put(blocks[i].cols)
	}
	size := len(head)
	for _, b := range blocks {
		size += blockSize(t, b.cols)
	}
	// A string, as Exec takes the statement, built once: never pooled, as
	// the HTTP transport may still read a body after the response came (an
	// early error).
	var body strings.Builder
	body.Grow(size)
	body.WriteString(head)
	for _, b := range blocks {
		writeBlock(&body, t, b.cols, b.rows)
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

// nativeWrites reports whether the rows of t are inserted as a Native body.
func (s *Store) nativeWrites(t interface{ columns() int }) bool {
	return s.nativeInserts && nativeFramable(t.columns())
}

// insertTable inserts the rows of segs, in order, converted by conv (nil:
// they are rows of t), into t, deduplicated by token: as one Native body on
// the embedded engine (pre: the segments' blocks, encoded ahead), else
// through clickhouse-go's batch API with buffers from pool.
func insertTable[S, T any](ctx context.Context, s *Store, token string, t *table[T], pool *sync.Pool, segs [][]S, conv func(*S) T, pre []*nativeBlock) error {
	full := t.full(s.db)
	if s.nativeWrites(t) {
		body := nativeBody(t, pool, full, segs, conv, pre)
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
