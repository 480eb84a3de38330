package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Write stores batches: every hit into the access log and the connection
// records, every audience row into the statistics (aggregated on the way
// in), every quarantined message into quarantine. Write returns only when
// ClickHouse has acknowledged every insert; the caller may then commit the
// offsets. With a signer (SetSigner), the integrity layer around the
// inserts then stores the signed, chained manifests of what they stored.
//
// One batch goes to each table as one insert carrying an
// insert_deduplication_token, the batch's ID (without one, derived from its
// offsets), so retrying it after an error or a timeout never stores it
// twice. Several batches (ingest's write round: the batches of the
// partitions an instance consumes, each with its ID) go to each table as
// one insert too, so that the engine writes one part per table and day for
// all of them rather than one per partition; the token is then derived from
// their IDs, in order, so retrying the same round stores it once. A batch
// rebuilt alone after a crash finds its rows themselves ([Batch.Rebuilt]);
// the statistics keep no trace of the rows they counted, so their insert
// carries a marker cell per batch that tells the rebuilt batch whether its
// round's statistics were stored (insertRebuiltAudience).
//
// Write is safe for concurrent use.
func (s *Store) Write(ctx context.Context, bs ...Batch) error {
	switch len(bs) {
	case 0:
		return nil
	case 1:
		b := bs[0]
		if b.ID == "" {
			if len(b.Audience) > 0 && len(b.Hits) == 0 {
				return fmt.Errorf("insert %d audience rows: a batch without hits needs an ID", len(b.Audience))
			}
			b.ID = batchToken(b) // what its rows and manifests carry
		}
		return s.released(s.write.writeBatch(ctx, b.ID, []Batch{b}), bs)
	}
	h := sha256.New()
	for i := range bs {
		if bs[i].ID == "" || bs[i].Rebuilt {
			return fmt.Errorf("write %d batches together: each needs an ID, and a rebuilt batch is written alone", len(bs))
		}
		h.Write([]byte(bs[i].ID))
		h.Write([]byte{'\n'})
	}
	return s.released(s.write.writeBatch(ctx, "round/"+hex.EncodeToString(h.Sum(nil)), bs), bs)
}

// released returns err, the outcome of writing bs; once they are stored,
// it gives what Prepare encoded of them back to the store's buffers (a
// later Write of the same batches encodes them again).
func (s *Store) released(err error, bs []Batch) error {
	if err != nil {
		return err // kept for the retry
	}
	for i := range bs {
		if p := bs[i].preparedFor(s); p != nil {
			p.release()
		}
	}
	return nil
}

// batchWriter stores batches, each with its ID, under one deduplication
// token (a lone batch's is its ID). The write
// path is layers of it: tableRows inserts the rows, and signingWriter
// (manifest.go) wraps it with the tamper evidence.
type batchWriter interface {
	writeBatch(ctx context.Context, token string, bs []Batch) error
}

// tableRows inserts the batches' rows into their tables, one insert per
// table, each deduplicated by the token.
type tableRows struct{ s *Store }

func (w tableRows) writeBatch(ctx context.Context, token string, bs []Batch) error {
	s := w.s
	var access, conns [][]Hit
	var quarantine [][]Quarantined
	// The blocks Store.Prepare encoded, one per segment (nil: the segment
	// is encoded at the insert).
	var preAccess, preConns, preQuar []*nativeBlock
	if len(bs) == 1 && bs[0].Rebuilt {
		var err error
		if access, conns, quarantine, err = s.unstored(ctx, bs[0]); err != nil {
			return err
		}
	} else {
		for i := range bs {
			p := bs[i].preparedFor(s)
			if p == nil {
				p = &prepared{}
			}
			if len(bs[i].Hits) > 0 {
				access = append(access, bs[i].Hits)
				preAccess, preConns = append(preAccess, p.access), append(preConns, p.connections)
			}
			if len(bs[i].Quarantine) > 0 {
				quarantine = append(quarantine, bs[i].Quarantine)
				preQuar = append(preQuar, p.quarantined)
			}
		}
		conns = access
	}
	// The inserts run side by side: the engine parses and writes each on
	// one thread, and they are independent (each deduplicated by its
	// token; a failed one fails the write, which is retried whole).
	var ins inserts
	if n := rowCount(access); n > 0 {
		ins.run(func() error {
			if err := insertTable[Hit](ctx, s, token, accessTable, &s.buffers.access, access, nil, preAccess); err != nil {
				return fmt.Errorf("insert %d access log rows: %w", n, err)
			}
			return nil
		})
	}
	if n := rowCount(conns); n > 0 {
		ins.run(func() error {
			if err := insertTable(ctx, s, token, connectionTable, &s.buffers.connections, conns, ConnectionOf, preConns); err != nil {
				return fmt.Errorf("insert %d connection records: %w", n, err)
			}
			return nil
		})
	}
	if n := rowCount(quarantine); n > 0 {
		ins.run(func() error {
			if err := insertTable[Quarantined](ctx, s, token, quarantineTable, &s.buffers.quarantine, quarantine, nil, preQuar); err != nil {
				return fmt.Errorf("insert %d quarantined lines: %w", n, err)
			}
			return nil
		})
	}
	if len(bs) == 1 && bs[0].Rebuilt {
		if n := len(bs[0].Audience); n > 0 {
			ins.run(func() error {
				if err := s.insertRebuiltAudience(ctx, bs[0]); err != nil {
					return fmt.Errorf("insert %d audience rows: %w", n, err)
				}
				return nil
			})
		}
	} else if segs, n := audienceOf(bs); n > 0 {
		ins.run(func() error {
			if err := s.insertAudience(ctx, token, cellsTable, segs); err != nil {
				return fmt.Errorf("insert %d audience rows: %w", n, err)
			}
			return nil
		})
	}
	return ins.wait()
}

// audienceOf returns the audience rows of bs, one segment per batch that
// has some, each with its batch's markers, and how many rows they hold.
func audienceOf(bs []Batch) (segs []audienceSegment, rows int) {
	for i := range bs {
		if len(bs[i].Audience) > 0 {
			segs = append(segs, audienceSegment{marked: bs[i].ID, rows: bs[i].Audience})
			rows += len(bs[i].Audience)
		}
	}
	return segs, rows
}

// inserts runs a write's inserts side by side and keeps the first error.
type inserts struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	first error
}

func (in *inserts) run(f func() error) {
	in.wg.Go(func() {
		if err := f(); err != nil {
			in.mu.Lock()
			if in.first == nil {
				in.first = err
			}
			in.mu.Unlock()
		}
	})
}

func (in *inserts) wait() error {
	in.wg.Wait()
	return in.first
}

// batchToken identifies a batch by the offsets it covers: the same messages
// give the same token, whatever process sends them.
func batchToken(b Batch) string {
	h := sha256.New()
	var buf []byte
	add := func(src Source) {
		buf = buf[:0]
		buf = append(buf, src.Topic...)
		buf = append(buf, 0)
		buf = strconv.AppendInt(buf, int64(src.Partition), 10)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, src.Offset, 10)
		buf = append(buf, '\n')
		h.Write(buf)
	}
	for i := range b.Hits {
		add(b.Hits[i].Source)
	}
	h.Write([]byte{'q'})
	for i := range b.Quarantine {
		add(b.Quarantine[i].Source)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// insert runs one insert through clickhouse-go's batch API: fill appends
// the rows to the batch of "INSERT INTO table (columns)".
func (s *Store) insert(ctx context.Context, token, table string, columns string, fill func(driver.Batch) error) error {
	return s.insertWith(ctx, token, func(ctx context.Context) error {
		bt, err := s.prepareInsert(ctx, table, columns)
		if err != nil {
			return err
		}
		defer bt.Abort() //nolint:errcheck // no-op once sent
		if err := fill(bt); err != nil {
			return err
		}
		return bt.Send()
	})
}

// insertWith runs do, one insert, with the insert timeout and the settings
// every batch insert carries.
func (s *Store) insertWith(ctx context.Context, token string, do func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplication_token": token,
		// a batch of old lines may span many days (one partition each)
		"max_partitions_per_insert_block": 10000,
	}))
	return do(ctx)
}

func appendColumns(bt driver.Batch, cols ...any) error {
	for i, c := range cols {
		if err := bt.Column(i).Append(c); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

// addr16 stores an address as IPv6 (IPv4 as IPv4-mapped); an absent address
// is stored as ::.
func addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}
