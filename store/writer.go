package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Write stores a batch: every hit into the access log and the connection
// records, every audience row into the statistics (aggregated on the way
// in), every quarantined message into quarantine. Each table gets one
// insert carrying an insert_deduplication_token derived from the Kafka
// offsets of the batch, so retrying the same batch after an error or a
// timeout never stores it twice. Write returns only when ClickHouse has
// acknowledged every insert; the caller may then commit the offsets.
// With a signer (SetSigner), the integrity layer around the inserts then
// stores the signed, chained manifests of what they stored.
//
// Write is safe for concurrent use.
func (s *Store) Write(ctx context.Context, b Batch) error {
	token := b.ID
	if token == "" {
		token = batchToken(b)
	}
	if len(b.Audience) > 0 && b.ID == "" && len(b.Hits) == 0 {
		return fmt.Errorf("insert %d audience rows: a batch without hits needs an ID", len(b.Audience))
	}
	return s.write.writeBatch(ctx, token, b)
}

// batchWriter stores one batch under its deduplication token. The write
// path is layers of it: tableRows inserts the rows, and signingWriter
// (manifest.go) wraps it with the tamper evidence.
type batchWriter interface {
	writeBatch(ctx context.Context, token string, b Batch) error
}

// tableRows inserts a batch's rows into their tables, one insert per
// table, each deduplicated by the token.
type tableRows struct{ s *Store }

func (w tableRows) writeBatch(ctx context.Context, token string, b Batch) error {
	s := w.s
	if len(b.Hits) > 0 {
		if err := insertTable[Hit](ctx, s, token, accessTable, &s.buffers.access, b.Hits, nil); err != nil {
			return fmt.Errorf("insert %d access log rows: %w", len(b.Hits), err)
		}
		if err := insertTable(ctx, s, token, connectionTable, &s.buffers.connections, b.Hits, ConnectionOf); err != nil {
			return fmt.Errorf("insert %d connection records: %w", len(b.Hits), err)
		}
	}
	if len(b.Audience) > 0 {
		if err := s.insertAudience(ctx, token, b.Audience); err != nil {
			return fmt.Errorf("insert %d audience rows: %w", len(b.Audience), err)
		}
	}
	if len(b.Quarantine) > 0 {
		if err := insertTable[Quarantined](ctx, s, token, quarantineTable, &s.buffers.quarantine, b.Quarantine, nil); err != nil {
			return fmt.Errorf("insert %d quarantined lines: %w", len(b.Quarantine), err)
		}
	}
	return nil
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
