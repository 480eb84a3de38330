package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
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

// nativeBlock encodes the rows of segs, in order, converted by conv (nil:
// they are rows of t already), as one Native block of t, and hands it to
// emit, which must not keep it (it is in buffers recycled through pool).
func nativeBlock[S, T any](t *table[T], pool *sync.Pool, segs [][]S, conv func(*S) T, emit func(block *nativeColumns, rows int)) {
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
	emit(nc, n)
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

// blockWriter is where a Native block is written: a strings.Builder or a
// bytes.Buffer.
type blockWriter interface {
	Write([]byte) (int, error)
	WriteString(string) (int, error)
}

// writeBlock writes the Native block of t, rows rows, whose column data nc
// holds, to w.
func writeBlock[T any](w blockWriter, t *table[T], nc *nativeColumns, rows int) {
	var scratch [binary.MaxVarintLen64]byte
	uvarint := func(v int) { _, _ = w.Write(binary.AppendUvarint(scratch[:0], uint64(v))) }
	uvarint(len(t.cols))
	uvarint(rows)
	for i, c := range t.cols {
		uvarint(len(c.name))
		_, _ = w.WriteString(c.name)
		// LowCardinality columns are sent as their value type, which
		// the engine converts on input (see insertTypes).
		uvarint(len(c.chType))
		_, _ = w.WriteString(c.chType)
		_, _ = w.Write(nc.cols[i])
	}
}

// encodeBlock returns the Native block of the rows of segs (as nativeBlock
// takes them) in a slice of its own.
func encodeBlock[S, T any](t *table[T], pool *sync.Pool, segs [][]S, conv func(*S) T) []byte {
	var out bytes.Buffer
	nativeBlock(t, pool, segs, conv, func(nc *nativeColumns, rows int) {
		out.Grow(blockSize(t, nc))
		writeBlock(&out, t, nc, rows)
	})
	return out.Bytes()
}

// nativeBody returns the whole request body that inserts the rows of
// segs, in order, converted by conv (nil: they are rows of t already), into
// t (qualified name full). When pre holds a block for every segment (the
// batches' own, encoded ahead by Store.Prepare), the body is those blocks
// one after the other, which the engine squashes into one block per
// partition as it would one block (min_insert_block_size_rows); otherwise
// the rows are encoded here, as one block.
func nativeBody[S, T any](t *table[T], pool *sync.Pool, full string, segs [][]S, conv func(*S) T, pre [][]byte) string {
	head := "INSERT INTO " + full + " (" + t.list + ") FORMAT Native\n"
	// A string, as Exec takes the statement, built once: never pooled, as
	// the HTTP transport may still read a body after the response came (an
	// early error).
	var body strings.Builder
	if len(pre) == len(segs) && !slices.ContainsFunc(pre, func(b []byte) bool { return b == nil }) {
		size := len(head)
		for _, b := range pre {
			size += len(b)
		}
		body.Grow(size)
		body.WriteString(head)
		for _, b := range pre {
			body.Write(b)
		}
		return body.String()
	}
	nativeBlock(t, pool, segs, conv, func(nc *nativeColumns, rows int) {
		body.Grow(len(head) + blockSize(t, nc))
		body.WriteString(head)
		writeBlock(&body, t, nc, rows)
	})
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
// the embedded engine (pre: the segments' blocks, encoded ahead), else through clickhouse-go's batch API with buffers
// from pool.
func insertTable[S, T any](ctx context.Context, s *Store, token string, t *table[T], pool *sync.Pool, segs [][]S, conv func(*S) T, pre [][]byte) error {
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
